/*
 * kmemdbg._walkc: the compiled inner loop of kmemdbg.walk.Walker (optional).
 *
 * A Format holds the same data as a kmemdbg.arch.base.PagingFormat (levels,
 * valid/leaf/page masks, reserved bits per level, address fields, the
 * canonical-address rule); it knows no architecture.  A View is a read-only
 * buffer (a dump file's map) and the physical ranges whose bytes it holds:
 * (pa_start, pa_end, offset of pa_start in the buffer), sorted, disjoint.
 * A View may also carry what its source declared about the rest: the
 * physical ranges the source holds at all, and the error it raises for a
 * read whose first byte lies outside them, so a one-page read there fails
 * here, with the source's own words, without a call back into Python.
 *
 * Only the plain case is answered here: a canonical address in the walked
 * half, an aligned root, tables wholly inside one range, every entry a valid
 * table or leaf with no reserved bit set, no table repeated on the path.
 * Anything else returns None, and the caller asks the pure-Python walker,
 * which is the reference (it gives the fault and its reason).  Nothing is
 * cached here: each entry is read from the buffer, as a hardware walker
 * reads memory.
 *
 * Integers: va is virtual; root, pa, table addresses are physical; sizes in
 * bytes.  Entries are 64-bit little-endian (the host's order: kmemdbg.memory
 * refuses big-endian hosts).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_LEVELS 6
#define MAX_FIELDS 4
#define STEP_SLOTS 256      /* per upper level: table Steps kept, direct-mapped by entry address */

/* One kept Step of an upper level: the same table entry read with the same value gives the
 * same immutable Step, so walks under one path share their upper Steps. */
typedef struct {
    uint64_t table_pa, entry_pa, raw;
    PyObject *step;         /* a strong reference, or NULL */
} StepSlot;

typedef struct {
    PyObject_HEAD
    int nlev;
    int shift[MAX_LEVELS];
    uint64_t imask[MAX_LEVELS];
    uint64_t tsize[MAX_LEVELS];
    int leaf_ok[MAX_LEVELS];
    uint64_t res_table[MAX_LEVELS];
    uint64_t res_leaf[MAX_LEVELS];
    uint64_t valid_mask, leaf_mask, leaf_value, page_mask, page_value;
    int nfields;
    uint64_t fmask[MAX_FIELDS];
    int fshift[MAX_FIELDS];
    int uniform_from;
    uint64_t root_align;
    /* the records a walk returns (set by records(); NULL until then) */
    PyObject *step_type, *walk_type, *names, *format_name, *leaf_kind, *table_kind, *flags_fn, *perms_fn;
    PyObject *flags_memo[2 * MAX_LEVELS];   /* per (level, leaf): raw & flag_bits -> flag names */
    PyObject *perms_memo[MAX_LEVELS];       /* per path length: packed permission bits -> Permissions */
    uint64_t flag_bits, perm_bits;
    int perm_width;                         /* set bits in perm_bits; packed keys need nlev * width <= 64 */
    Py_ssize_t memo_limit;
    StepSlot *step_slots;   /* (MAX_LEVELS - 1) * STEP_SLOTS, allocated by the first walk(), or NULL */
} FormatObject;

typedef struct {
    PyObject_HEAD
    PyObject *owner;
    Py_ssize_t nseg;
    uint64_t *start;
    uint64_t *end;
    uint64_t *offset;
    Py_ssize_t last;
    /* what the source holds at all (its rule: the last range starting at or below the first
     * byte must reach past it), or nheld = -1 when it declared nothing */
    Py_ssize_t nheld;
    uint64_t *held_start, *held_end;
    PyObject *absent_type, *absent_reason;   /* the error raised outside them: type(pa, size, reason, pa) */
} ViewObject;

static PyTypeObject FormatType;
static PyTypeObject ViewType;

/* ---- View ------------------------------------------------------------------------- */

static void view_dealloc(ViewObject *self) {
    Py_XDECREF(self->owner);
    Py_XDECREF(self->absent_type);
    Py_XDECREF(self->absent_reason);
    PyMem_Free(self->start);
    PyMem_Free(self->held_start);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* held ranges (start, end) sorted by start, as the source's own lookup has them; may overlap */
static int view_held(ViewObject *self, PyObject *held, PyObject *type, PyObject *reason) {
    PyObject *seq = PySequence_Fast(held, "held must be a sequence of (start, end)");
    if (!seq)
        return -1;
    if (!PyExceptionClass_Check(type) || !PyUnicode_Check(reason)) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_TypeError, "held needs an exception class and a reason template");
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    uint64_t *mem = PyMem_Calloc(n ? 2 * n : 2, sizeof(uint64_t));
    if (!mem) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long long a, b;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "KK", &a, &b) || b < a ||
            (i && a < mem[i - 1])) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "held must be [start, end) ranges sorted by start");
            Py_DECREF(seq);
            PyMem_Free(mem);
            return -1;
        }
        mem[i] = a;
        mem[n + i] = b;
    }
    Py_DECREF(seq);
    PyMem_Free(self->held_start);
    Py_INCREF(type);
    Py_INCREF(reason);
    Py_XSETREF(self->absent_type, type);
    Py_XSETREF(self->absent_reason, reason);
    self->nheld = n;
    self->held_start = mem;
    self->held_end = mem + n;
    return 0;
}

/* Whether the source declared it holds nothing at physical pa (the first byte of a read). */
static int view_absent(ViewObject *v, uint64_t pa) {
    if (v->nheld < 0 || !v->absent_type)
        return 0;
    Py_ssize_t lo = 0, hi = v->nheld;
    while (lo < hi) {                 /* first range starting above pa */
        Py_ssize_t mid = (lo + hi) / 2;
        if (v->held_start[mid] <= pa)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 || pa >= v->held_end[lo - 1];
}

/* Raise the source's error for a read of size bytes at physical pa; returns NULL. */
static PyObject *view_raise_absent(ViewObject *v, uint64_t pa, Py_ssize_t size) {
    PyObject *pa_obj = PyLong_FromUnsignedLongLong(pa), *size_obj = PyLong_FromSsize_t(size), *args = NULL;
    if (pa_obj && size_obj)
        args = PyTuple_Pack(4, pa_obj, size_obj, v->absent_reason, pa_obj);
    Py_XDECREF(pa_obj);
    Py_XDECREF(size_obj);
    if (args) {
        PyObject *err = PyObject_Call(v->absent_type, args, NULL);
        Py_DECREF(args);
        if (err) {
            PyErr_SetObject(v->absent_type, err);
            Py_DECREF(err);
        }
    }
    return NULL;
}

static int view_init(ViewObject *self, PyObject *args, PyObject *kw) {
    PyObject *owner, *segs, *seq = NULL, *held = Py_None, *absent_type = Py_None, *absent_reason = Py_None;
    if (!PyArg_ParseTuple(args, "OO|OOO", &owner, &segs, &held, &absent_type, &absent_reason))
        return -1;
    self->nheld = -1;
    if (held != Py_None && view_held(self, held, absent_type, absent_reason) < 0)
        return -1;
    if (!PyObject_CheckBuffer(owner)) {
        PyErr_SetString(PyExc_TypeError, "View needs an object with the buffer protocol");
        return -1;
    }
    seq = PySequence_Fast(segs, "segments must be a sequence of (start, end, offset)");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    uint64_t *mem = PyMem_Calloc(n ? 3 * n : 3, sizeof(uint64_t));
    if (!mem) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long long a, b, c;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "KKK", &a, &b, &c))
            goto bad;
        if (b < a || (i && a < mem[n + i - 1])) {
            PyErr_SetString(PyExc_ValueError, "segments must be sorted, disjoint [start, end) ranges");
            goto bad;
        }
        mem[i] = a;
        mem[n + i] = b;
        mem[2 * n + i] = c;
    }
    Py_DECREF(seq);
    PyMem_Free(self->start);
    Py_XDECREF(self->owner);
    Py_INCREF(owner);
    self->owner = owner;
    self->nseg = n;
    self->start = mem;
    self->end = mem + n;
    self->offset = mem + 2 * n;
    self->last = 0;
    return 0;
bad:
    Py_DECREF(seq);
    PyMem_Free(mem);
    return -1;
}

/* Buffer offset of physical [pa, pa + n), or -1 when no one range holds it all. */
static inline int64_t view_offset(ViewObject *v, uint64_t pa, uint64_t n, Py_ssize_t blen) {
    Py_ssize_t i = v->last;
    if (!(i < v->nseg && v->start[i] <= pa && pa < v->end[i])) {
        Py_ssize_t lo = 0, hi = v->nseg;
        while (lo < hi) {             /* first range starting above pa */
            Py_ssize_t mid = (lo + hi) / 2;
            if (v->start[mid] <= pa)
                lo = mid + 1;
            else
                hi = mid;
        }
        i = lo - 1;
        if (i < 0 || pa >= v->end[i])
            return -1;
        v->last = i;
    }
    if (n > v->end[i] - pa)
        return -1;
    uint64_t off = v->offset[i] + (pa - v->start[i]);
    if (off > (uint64_t)blen || n > (uint64_t)blen - off)
        return -1;
    return (int64_t)off;
}

static PyTypeObject ViewType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kmemdbg._walkc.View",
    .tp_basicsize = sizeof(ViewObject),
    .tp_dealloc = (destructor)view_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "View(buffer, segments[, held, error, reason]): physical ranges (start, end, buffer offset) "
              "of a read-only buffer; outside held, a read raises error(pa, size, reason, pa).",
    .tp_init = (initproc)view_init,
    .tp_new = PyType_GenericNew,
};

/* ---- Format ----------------------------------------------------------------------- */

static int u64_items(PyObject *obj, uint64_t *out, int n, const char *what) {
    PyObject *seq = PySequence_Fast(obj, what);
    if (!seq)
        return -1;
    if (PySequence_Fast_GET_SIZE(seq) != n) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s: %d values expected", what, n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        out[i] = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

static int format_init(FormatObject *self, PyObject *args, PyObject *kw) {
    PyObject *levels, *res_table, *res_leaf, *fields;
    unsigned long long valid, lmask, lvalue, pmask, pvalue, align;
    int uniform;
    if (!PyArg_ParseTuple(args, "OKKKKKOOOiK", &levels, &valid, &lmask, &lvalue, &pmask, &pvalue,
                          &res_table, &res_leaf, &fields, &uniform, &align))
        return -1;
    PyObject *seq = PySequence_Fast(levels, "levels must be a sequence of (shift, bits, leaf_ok)");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1 || n > MAX_LEVELS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "1 to %d levels, not %zd", MAX_LEVELS, n);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int shift, bits, ok;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "iip", &shift, &bits, &ok)) {
            Py_DECREF(seq);
            return -1;
        }
        if (shift < 0 || bits < 1 || shift + bits > 64 || bits > 20) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "a level's index bits must lie inside 64 bits");
            return -1;
        }
        self->shift[i] = shift;
        self->imask[i] = (1ULL << bits) - 1;
        self->tsize[i] = 8ULL << bits;
        self->leaf_ok[i] = ok;
    }
    Py_DECREF(seq);
    self->nlev = (int)n;
    if (u64_items(res_table, self->res_table, (int)n, "reserved_table") < 0 ||
        u64_items(res_leaf, self->res_leaf, (int)n, "reserved_leaf") < 0)
        return -1;
    seq = PySequence_Fast(fields, "fields must be a sequence of (mask, shift)");
    if (!seq)
        return -1;
    Py_ssize_t nf = PySequence_Fast_GET_SIZE(seq);
    if (nf < 1 || nf > MAX_FIELDS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "1 to %d address fields, not %zd", MAX_FIELDS, nf);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nf; i++) {
        unsigned long long m;
        int s;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "Ki", &m, &s)) {
            Py_DECREF(seq);
            return -1;
        }
        /* a field moved up must not lose bits past 64 (Python's integers would keep them) */
        if (s <= -64 || s >= 64 || (s > 0 && (m >> (64 - s)))) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "an address field must stay inside 64 bits");
            return -1;
        }
        self->fmask[i] = m;
        self->fshift[i] = s;
    }
    Py_DECREF(seq);
    self->nfields = (int)nf;
    if (uniform < 1 || uniform > 64 || align == 0) {
        PyErr_SetString(PyExc_ValueError, "uniform_from must be 1..64 and root_align positive");
        return -1;
    }
    self->valid_mask = valid;
    self->leaf_mask = lmask;
    self->leaf_value = lvalue;
    self->page_mask = pmask;
    self->page_value = pvalue;
    self->uniform_from = uniform;
    self->root_align = align;
    return 0;
}


static void format_clear_records(FormatObject *self) {
    Py_CLEAR(self->step_type);
    Py_CLEAR(self->walk_type);
    Py_CLEAR(self->names);
    Py_CLEAR(self->format_name);
    Py_CLEAR(self->leaf_kind);
    Py_CLEAR(self->table_kind);
    Py_CLEAR(self->flags_fn);
    Py_CLEAR(self->perms_fn);
    for (int i = 0; i < 2 * MAX_LEVELS; i++)
        Py_CLEAR(self->flags_memo[i]);
    for (int i = 0; i < MAX_LEVELS; i++)
        Py_CLEAR(self->perms_memo[i]);
    if (self->step_slots) {     /* Steps of the old record types */
        for (int i = 0; i < (MAX_LEVELS - 1) * STEP_SLOTS; i++)
            Py_CLEAR(self->step_slots[i].step);
        PyMem_Free(self->step_slots);
        self->step_slots = NULL;
    }
}

static void format_dealloc(FormatObject *self) {
    format_clear_records(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/*
 * records(step_type, walk_type, level_names, format_name, leaf_kind, table_kind, flags, permissions,
 *         flag_bits, permission_bits, memo_limit): what walk() builds its result from.  step_type and
 * walk_type are the tuple types kmemdbg.walk.Step and Walk; flags(raw, level, leaf) and
 * permissions(bits_per_level, level) are the format's own decoders, called once per distinct key.
 */
static PyObject *format_records(FormatObject *self, PyObject *args) {
    PyObject *st, *wt, *names, *fname, *lk, *tk, *ff, *pf;
    unsigned long long fb, pb;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "O!O!O!UUUOOKKn", &PyType_Type, &st, &PyType_Type, &wt, &PyTuple_Type, &names,
                          &fname, &lk, &tk, &ff, &pf, &fb, &pb, &limit))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)st, &PyTuple_Type) ||
        !PyType_IsSubtype((PyTypeObject *)wt, &PyTuple_Type) || PyTuple_GET_SIZE(names) != self->nlev ||
        limit < 1) {
        PyErr_SetString(PyExc_ValueError, "records: tuple types, one name per level and a positive limit");
        return NULL;
    }
    format_clear_records(self);
    PyObject *objs[] = {st, wt, names, fname, lk, tk, ff, pf};
    PyObject **slots[] = {&self->step_type, &self->walk_type, &self->names, &self->format_name,
                          &self->leaf_kind, &self->table_kind, &self->flags_fn, &self->perms_fn};
    for (int i = 0; i < 8; i++) {
        Py_INCREF(objs[i]);
        *slots[i] = objs[i];
    }
    for (int i = 0; i < 2 * self->nlev; i++)
        if (!(self->flags_memo[i] = PyDict_New()))
            return NULL;
    for (int i = 0; i < self->nlev; i++)
        if (!(self->perms_memo[i] = PyDict_New()))
            return NULL;
    self->flag_bits = fb;
    self->perm_bits = pb;
    self->perm_width = __builtin_popcountll(pb);
    self->memo_limit = limit;
    Py_RETURN_NONE;
}

static inline uint64_t output_address(FormatObject *f, uint64_t raw) {
    uint64_t pa = 0;
    for (int i = 0; i < f->nfields; i++) {
        uint64_t b = raw & f->fmask[i];
        int s = f->fshift[i];
        pa |= s >= 0 ? b << s : b >> -s;
    }
    return pa;
}

/*
 * Walk va from root.  Returns the number of levels read (the last one a leaf)
 * with *pa and *size set, or 0 when the walk is not the plain case.  tables
 * and raws (either may be NULL) receive each level's table address and entry.
 */
static int walk(FormatObject *f, ViewObject *v, const uint8_t *base, Py_ssize_t blen, uint64_t root,
                int half, uint64_t va, uint64_t *pa, uint64_t *size, uint64_t *tables, uint64_t *raws) {
    uint64_t top = f->uniform_from == 64 ? 0 : va >> f->uniform_from;
    if (top && top != (~0ULL >> f->uniform_from))
        return 0;
    if (half >= 0 && (int)(va >> 63) != half)
        return 0;
    if (root % f->root_align)
        return 0;
    uint64_t seen[MAX_LEVELS];
    uint64_t table = root;
    int last = f->nlev - 1;
    for (int i = 0; i <= last; i++) {
        for (int j = 0; j < i; j++)
            if (seen[j] == table)
                return 0;
        seen[i] = table;
        /* the whole table must be readable, as the pure walker reads tables whole */
        int64_t off = view_offset(v, table, f->tsize[i], blen);
        if (off < 0)
            return 0;
        uint64_t idx = (va >> f->shift[i]) & f->imask[i];
        uint64_t raw;
        memcpy(&raw, base + off + idx * 8, 8);
        if (tables)
            tables[i] = table;
        if (raws)
            raws[i] = raw;
        if (!(raw & f->valid_mask))
            return 0;
        if (i == last) {
            if ((raw & f->page_mask) != f->page_value || (raw & f->res_leaf[i]))
                return 0;
        } else if ((raw & f->leaf_mask) == f->leaf_value) {
            if (!f->leaf_ok[i] || (raw & f->res_leaf[i]))
                return 0;
        } else {
            if (raw & f->res_table[i])
                return 0;
            table = output_address(f, raw);
            continue;
        }
        uint64_t leaf = 1ULL << f->shift[i];
        *pa = (output_address(f, raw) & ~(leaf - 1)) | (va & (leaf - 1));
        *size = leaf;
        return i + 1;
    }
    return 0;
}

/* Common arguments: (view, root, half, va, ...); va is parsed where the caller asks for it. */
static int common_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, ViewObject **v,
                       uint64_t *root, int *half, uint64_t *va) {
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%zd arguments expected, %zd given", want, nargs);
        return -1;
    }
    if (!PyObject_TypeCheck(args[0], &ViewType)) {
        PyErr_SetString(PyExc_TypeError, "the first argument must be a View");
        return -1;
    }
    *v = (ViewObject *)args[0];
    *root = PyLong_AsUnsignedLongLongMask(args[1]);
    if (*root == (uint64_t)-1 && PyErr_Occurred())
        return -1;
    long h = PyLong_AsLong(args[2]);
    if (h == -1 && PyErr_Occurred())
        return -1;
    *half = h < 0 ? -1 : (int)h;
    if (va) {          /* the single-address methods: args[3] is the virtual address */
        *va = PyLong_AsUnsignedLongLongMask(args[3]);
        if (*va == (uint64_t)-1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

static int get_buffer(ViewObject *v, Py_buffer *buf) {
    if (PyObject_GetBuffer(v->owner, buf, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();       /* a closed map: the caller's pure path says why */
        return -1;
    }
    return 0;
}

static PyObject *format_translate(FormatObject *self, PyObject *const *args, Py_ssize_t nargs) {
    ViewObject *v;
    uint64_t root, pa, size;
    int half;
    uint64_t va;
    if (common_args(args, nargs, 4, &v, &root, &half, &va) < 0)
        return NULL;
    Py_buffer buf;
    if (get_buffer(v, &buf) < 0)
        Py_RETURN_NONE;
    int got = walk(self, v, buf.buf, buf.len, root, half, va, &pa, &size, NULL, NULL);
    PyBuffer_Release(&buf);
    if (!got)
        Py_RETURN_NONE;
    /* (pa, page size, no fault): what Walker.translate_one answers */
    PyObject *out = PyTuple_New(3);
    if (!out)
        return NULL;
    PyObject *a = PyLong_FromUnsignedLongLong(pa), *b = PyLong_FromUnsignedLongLong(size);
    if (!a || !b) {
        Py_XDECREF(a);
        Py_XDECREF(b);
        Py_DECREF(out);
        return NULL;
    }
    PyTuple_SET_ITEM(out, 0, a);
    PyTuple_SET_ITEM(out, 1, b);
    Py_INCREF(Py_None);
    PyTuple_SET_ITEM(out, 2, Py_None);
    return out;
}

/* A new tuple of tuple subtype ``type`` holding ``n`` new references (stolen), or NULL.  The
 * items exist before the record is allocated, so no collection sees it half filled. */
static PyObject *record(PyObject *type, PyObject **items, int n) {
    PyObject *out = NULL;
    for (int i = 0; i < n; i++)
        if (!items[i])
            goto fail;
    out = ((PyTypeObject *)type)->tp_alloc((PyTypeObject *)type, n);
    if (!out)
        goto fail;
    for (int i = 0; i < n; i++)
        PyTuple_SET_ITEM(out, i, items[i]);
    return out;
fail:
    for (int j = 0; j < n; j++)
        Py_XDECREF(items[j]);
    return NULL;
}

/* memo[key], or NULL with no error when it is not there; a borrowed reference. */
static PyObject *memo_peek(PyObject *memo, uint64_t key, PyObject **k) {
    *k = PyLong_FromUnsignedLongLong(key);
    return *k ? PyDict_GetItemWithError(memo, *k) : NULL;
}

/* Store got under k (the memo starts over at memo_limit); steals k, returns got. */
static PyObject *memo_put(FormatObject *f, PyObject *memo, PyObject *k, PyObject *got) {
    if (got) {
        if (PyDict_GET_SIZE(memo) >= f->memo_limit)
            PyDict_Clear(memo);
        if (PyDict_SetItem(memo, k, got) < 0)
            Py_CLEAR(got);
    }
    Py_DECREF(k);
    return got;
}

/* The bits of value selected by mask, packed together from bit 0 up (value & mask, compressed). */
static inline uint64_t compress(uint64_t value, uint64_t mask) {
    uint64_t out = 0;
    int pos = 0;
    while (mask) {
        uint64_t low = mask & -mask;
        if (value & low)
            out |= 1ULL << pos;
        pos++;
        mask &= mask - 1;
    }
    return out;
}

static PyObject *flags_of(FormatObject *f, int i, int leaf, uint64_t raw) {
    PyObject *k, *memo = f->flags_memo[2 * i + leaf];
    PyObject *got = memo_peek(memo, raw & f->flag_bits, &k);
    if (got || !k || PyErr_Occurred()) {
        Py_XDECREF(k);
        Py_XINCREF(got);
        return got;
    }
    PyObject *r = PyLong_FromUnsignedLongLong(raw), *lv = PyLong_FromLong(i);
    got = r && lv ? PyObject_CallFunctionObjArgs(f->flags_fn, r, lv, leaf ? Py_True : Py_False, NULL) : NULL;
    Py_XDECREF(r);
    Py_XDECREF(lv);
    return memo_put(f, memo, k, got);
}

static PyObject *permissions_of(FormatObject *f, int n, const uint64_t *raws) {
    PyObject *k = NULL, *memo = f->perms_memo[n - 1], *got;
    if (n * f->perm_width <= 64) {
        uint64_t packed = 0;
        for (int i = 0; i < n; i++)
            packed |= compress(raws[i], f->perm_bits) << (i * f->perm_width);
        got = memo_peek(memo, packed, &k);
        if (got || !k || PyErr_Occurred()) {
            Py_XDECREF(k);
            Py_XINCREF(got);
            return got;
        }
    }
    /* not remembered (or too many bits to pack a key: then asked each time) */
    PyObject *bits = PyTuple_New(n), *lv = PyLong_FromLong(n - 1);
    got = NULL;
    if (bits && lv) {
        int ok = 1;
        for (int i = 0; i < n && ok; i++) {
            PyObject *b = PyLong_FromUnsignedLongLong(raws[i] & f->perm_bits);
            if (!b)
                ok = 0;
            else
                PyTuple_SET_ITEM(bits, i, b);
        }
        if (ok)
            got = PyObject_CallFunctionObjArgs(f->perms_fn, bits, lv, NULL);
    }
    Py_XDECREF(bits);
    Py_XDECREF(lv);
    return k ? memo_put(f, memo, k, got) : got;
}

/* walk(view, root, half, va) -> kmemdbg.walk.Walk of the plain case, or None. */
static PyObject *format_walk(FormatObject *self, PyObject *const *args, Py_ssize_t nargs) {
    ViewObject *v;
    uint64_t root, pa, size, tables[MAX_LEVELS], raws[MAX_LEVELS];
    int half;
    if (!self->walk_type) {
        PyErr_SetString(PyExc_RuntimeError, "walk() before records()");
        return NULL;
    }
    uint64_t va;
    if (common_args(args, nargs, 4, &v, &root, &half, &va) < 0)
        return NULL;
    Py_buffer buf;
    if (get_buffer(v, &buf) < 0)
        Py_RETURN_NONE;
    int n = walk(self, v, buf.buf, buf.len, root, half, va, &pa, &size, tables, raws);
    PyBuffer_Release(&buf);
    if (!n)
        Py_RETURN_NONE;
    PyObject *steps = PyTuple_New(n);
    if (!steps)
        return NULL;
    if (!self->step_slots)      /* without it (no memory) every Step is built, as before */
        self->step_slots = PyMem_Calloc((MAX_LEVELS - 1) * STEP_SLOTS, sizeof(StepSlot));
    for (int i = 0; i < n; i++) {
        int leaf = i == n - 1;
        uint64_t idx = (va >> self->shift[i]) & self->imask[i], entry = tables[i] + idx * 8;
        StepSlot *slot = NULL;
        if (!leaf && self->step_slots) {
            slot = &self->step_slots[i * STEP_SLOTS + ((entry >> 3) & (STEP_SLOTS - 1))];
            if (slot->step && slot->table_pa == tables[i] && slot->entry_pa == entry && slot->raw == raws[i]) {
                Py_INCREF(slot->step);
                PyTuple_SET_ITEM(steps, i, slot->step);
                continue;
            }
        }
        PyObject *name = PyTuple_GET_ITEM(self->names, i), *kind = leaf ? self->leaf_kind : self->table_kind;
        Py_INCREF(name);
        Py_INCREF(kind);
        PyObject *items[7] = {name, PyLong_FromUnsignedLongLong(tables[i]), PyLong_FromUnsignedLongLong(idx),
                              PyLong_FromUnsignedLongLong(entry),
                              PyLong_FromUnsignedLongLong(raws[i]), kind, flags_of(self, i, leaf, raws[i])};
        PyObject *step = record(self->step_type, items, 7);
        if (!step) {
            Py_DECREF(steps);
            return NULL;
        }
        PyTuple_SET_ITEM(steps, i, step);
        if (slot) {
            PyObject *old = slot->step;
            Py_INCREF(step);
            slot->step = step;
            slot->table_pa = tables[i];
            slot->entry_pa = entry;
            slot->raw = raws[i];
            Py_XDECREF(old);
        }
    }
    Py_INCREF(self->format_name);
    Py_INCREF(Py_None);
    PyObject *items[8] = {PyLong_FromUnsignedLongLong(va), self->format_name, PyLong_FromUnsignedLongLong(root),
                          steps, PyLong_FromUnsignedLongLong(pa), PyLong_FromUnsignedLongLong(size),
                          permissions_of(self, n, raws), Py_None};
    return record(self->walk_type, items, 8);
}

static PyObject *format_read(FormatObject *self, PyObject *const *args, Py_ssize_t nargs) {
    ViewObject *v;
    uint64_t root, pa, size;
    int half;
    uint64_t va;
    if (common_args(args, nargs, 5, &v, &root, &half, &va) < 0)
        return NULL;
    Py_ssize_t want = PyLong_AsSsize_t(args[4]);
    if (want == -1 && PyErr_Occurred())
        return NULL;
    if (want <= 0)
        Py_RETURN_NONE;
    Py_buffer buf;
    if (get_buffer(v, &buf) < 0)
        Py_RETURN_NONE;
    const uint8_t *base = buf.buf;
    if (!walk(self, v, base, buf.len, root, half, va, &pa, &size, NULL, NULL))
        goto pure;
    uint64_t first = size - (pa & (size - 1));
    if ((uint64_t)want <= first) {        /* the usual case: inside one page */
        int64_t off = view_offset(v, pa, (uint64_t)want, buf.len);
        /* mapped, but the view does not hold it: the source's refusal where it declared one,
         * else the physical address, for the source to read or refuse */
        PyObject *out = off >= 0 ? PyBytes_FromStringAndSize((const char *)base + off, want)
                        : view_absent(v, pa) ? view_raise_absent(v, pa, want)
                        : PyLong_FromUnsignedLongLong(pa);
        PyBuffer_Release(&buf);
        return out;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, want);
    if (!out) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    char *dst = PyBytes_AS_STRING(out);
    uint64_t done = 0;
    while (done < (uint64_t)want) {
        uint64_t n = size - (pa & (size - 1));
        if (n > (uint64_t)want - done)
            n = (uint64_t)want - done;
        int64_t off = view_offset(v, pa, n, buf.len);
        if (off < 0) {
            Py_DECREF(out);
            goto pure;
        }
        memcpy(dst + done, base + off, n);
        done += n;
        if (done < (uint64_t)want &&
            !walk(self, v, base, buf.len, root, half, (va + done), &pa, &size, NULL, NULL)) {
            Py_DECREF(out);
            goto pure;
        }
    }
    PyBuffer_Release(&buf);
    return out;
pure:
    PyBuffer_Release(&buf);
    Py_RETURN_NONE;
}

/* translate_many(view, root, half, vas) -> (pas, sizes): lists, None where the pure walker must answer. */
static PyObject *format_translate_many(FormatObject *self, PyObject *const *args, Py_ssize_t nargs) {
    ViewObject *v;
    uint64_t root, pa, size;
    int half;
    if (common_args(args, nargs, 4, &v, &root, &half, NULL) < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(args[3], "vas must be a sequence of integers");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *pas = PyList_New(n), *sizes = PyList_New(n);
    if (!pas || !sizes)
        goto fail;
    Py_buffer buf;
    int have = get_buffer(v, &buf) == 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t va = PyLong_AsUnsignedLongLongMask(PySequence_Fast_GET_ITEM(seq, i));
        if (va == (uint64_t)-1 && PyErr_Occurred()) {
            if (have)
                PyBuffer_Release(&buf);
            goto fail;
        }
        if (have && walk(self, v, buf.buf, buf.len, root, half, va, &pa, &size, NULL, NULL)) {
            PyObject *a = PyLong_FromUnsignedLongLong(pa), *b = PyLong_FromUnsignedLongLong(size);
            if (!a || !b) {
                Py_XDECREF(a);
                Py_XDECREF(b);
                PyBuffer_Release(&buf);
                goto fail;
            }
            PyList_SET_ITEM(pas, i, a);
            PyList_SET_ITEM(sizes, i, b);
        } else {
            Py_INCREF(Py_None);
            Py_INCREF(Py_None);
            PyList_SET_ITEM(pas, i, Py_None);
            PyList_SET_ITEM(sizes, i, Py_None);
        }
    }
    if (have)
        PyBuffer_Release(&buf);
    Py_DECREF(seq);
    return Py_BuildValue("(NN)", pas, sizes);
fail:
    Py_DECREF(seq);
    Py_XDECREF(pas);
    Py_XDECREF(sizes);
    return NULL;
}

static PyMethodDef format_methods[] = {
    {"translate", (PyCFunction)(void (*)(void))format_translate, METH_FASTCALL,
     "translate(view, root_pa, half, va) -> (pa, page_size) or None"},
    {"walk", (PyCFunction)(void (*)(void))format_walk, METH_FASTCALL,
     "walk(view, root_pa, half, va) -> kmemdbg.walk.Walk of the plain case, or None"},
    {"records", (PyCFunction)format_records, METH_VARARGS,
     "records(step_type, walk_type, level_names, format_name, leaf_kind, table_kind, flags, permissions, "
     "flag_bits, permission_bits, memo_limit): what walk() builds"},
    {"read", (PyCFunction)(void (*)(void))format_read, METH_FASTCALL,
     "read(view, root_pa, half, va, size) -> bytes, the physical address of a one-page read the view lacks, or None"},
    {"translate_many", (PyCFunction)(void (*)(void))format_translate_many, METH_FASTCALL,
     "translate_many(view, root_pa, half, vas) -> (pas, page_sizes), None where not answered"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FormatType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kmemdbg._walkc.Format",
    .tp_basicsize = sizeof(FormatObject),
    .tp_dealloc = (destructor)format_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Format(levels, valid_mask, leaf_mask, leaf_value, page_mask, page_value, reserved_table, "
              "reserved_leaf, fields, uniform_from, root_align): a paging format's walk data.",
    .tp_methods = format_methods,
    .tp_init = (initproc)format_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef walkc_module = {
    PyModuleDef_HEAD_INIT, "kmemdbg._walkc",
    "The compiled inner loop of kmemdbg.walk.Walker (the pure-Python walker is the reference).", -1, NULL,
};

PyMODINIT_FUNC PyInit__walkc(void) {
    if (PyType_Ready(&FormatType) < 0 || PyType_Ready(&ViewType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&walkc_module);
    if (!m)
        return NULL;
    Py_INCREF(&FormatType);
    Py_INCREF(&ViewType);
    if (PyModule_AddObject(m, "Format", (PyObject *)&FormatType) < 0 ||
        PyModule_AddObject(m, "View", (PyObject *)&ViewType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
