/* kmemdbg._kallsymsc: expands the kernel's compressed kallsyms_names table in one pass.
 *
 * The pure-Python decoder in kmemdbg/kallsyms.py is the reference; this module
 * only does the same expansion faster (start-up of every command that needs a
 * symbol pays for it).  Record format: a length byte (bit 7 set: a second byte
 * gives bits 7..14), then that many indices into the 256-entry token table.
 * The first character of a record's expansion is its type letter.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* expand(names, count, tokens) -> (names, types) or None
 *   names:  bytes-like, the table from kallsyms_names on
 *   count:  kallsyms_num_syms
 *   tokens: a sequence of 256 bytes objects, the expanded tokens
 * Returns None when the buffer ends before record ``count`` (the caller decodes in
 * Python, reading on); raises ValueError naming an empty record (where it is met) or
 * one that expands to nothing (once every record is read), as the Python decoder does. */
static PyObject *expand(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer buf;
    Py_ssize_t count;
    PyObject *tokens;
    if (!PyArg_ParseTuple(args, "y*nO", &buf, &count, &tokens))
        return NULL;
    PyObject *result = NULL, *names = NULL, *types = NULL, *fast = NULL;
    char *scratch = NULL;
    const char *tp[256];
    Py_ssize_t tl[256];
    fast = PySequence_Fast(tokens, "tokens must be a sequence");
    if (!fast)
        goto done;
    if (PySequence_Fast_GET_SIZE(fast) != 256) {
        PyErr_SetString(PyExc_ValueError, "tokens must hold 256 entries");
        goto done;
    }
    Py_ssize_t longest = 0;
    for (int t = 0; t < 256; t++) {
        PyObject *o = PySequence_Fast_GET_ITEM(fast, t);
        if (!PyBytes_Check(o)) {
            PyErr_SetString(PyExc_TypeError, "tokens must be bytes");
            goto done;
        }
        tp[t] = PyBytes_AS_STRING(o);
        tl[t] = PyBytes_GET_SIZE(o);
        if (tl[t] > longest)
            longest = tl[t];
    }
    if (count < 0) {
        PyErr_SetString(PyExc_ValueError, "count must not be negative");
        goto done;
    }
    names = PyList_New(count);
    scratch = PyMem_Malloc((size_t)count + 1);
    if (!names || !scratch) {
        PyErr_NoMemory();
        goto done;
    }
    const uint8_t *b = buf.buf;
    Py_ssize_t len = buf.len, pos = 0;
    Py_ssize_t cap = 0;
    char *text = NULL;
    int nothing = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (pos + 2 > len)      /* as the Python decoder, which reads on unless two bytes are left */
            goto short_buffer;
        Py_ssize_t n = b[pos];
        if (n & 0x80) {
            n = (n & 0x7F) | ((Py_ssize_t)b[pos + 1] << 7);
            pos++;
        }
        pos++;
        if (n == 0) {
            PyErr_SetString(PyExc_ValueError, "kallsyms_names: an empty symbol record");
            goto fail_text;
        }
        if (pos + n > len)
            goto short_buffer;
        Py_ssize_t need = n * longest;
        if (need > cap) {
            char *more = PyMem_Realloc(text, (size_t)need);
            if (!more) {
                PyErr_NoMemory();
                goto fail_text;
            }
            text = more;
            cap = need;
        }
        Py_ssize_t out = 0;
        for (Py_ssize_t j = pos; j < pos + n; j++) {
            memcpy(text + out, tp[b[j]], (size_t)tl[b[j]]);
            out += tl[b[j]];
        }
        pos += n;
        if (out == 0) {         /* said once the whole table is read, as the Python decoder does */
            nothing = 1;
            scratch[i] = ' ';
            out = 1;
        } else
            scratch[i] = text[0];
        PyObject *name = PyUnicode_DecodeLatin1(text + 1, out - 1, NULL);
        if (!name)
            goto fail_text;
        PyList_SET_ITEM(names, i, name);
    }
    PyMem_Free(text);
    if (nothing) {
        PyErr_SetString(PyExc_ValueError, "kallsyms_names: a symbol record expands to nothing");
        goto done;
    }
    types = PyUnicode_DecodeLatin1(scratch, count, NULL);
    if (types)
        result = PyTuple_Pack(2, names, types);
    goto done;
short_buffer:
    PyMem_Free(text);
    Py_INCREF(Py_None);
    result = Py_None;
    goto done;
fail_text:
    PyMem_Free(text);
done:
    PyBuffer_Release(&buf);
    PyMem_Free(scratch);
    Py_XDECREF(fast);
    Py_XDECREF(names);
    Py_XDECREF(types);
    return result;
}

static PyMethodDef methods[] = {
    {"expand", expand, METH_VARARGS,
     "expand(names, count, tokens) -> (names, types), or None when the buffer ends first"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "kmemdbg._kallsymsc",
    "The kallsyms_names expansion of kmemdbg.kallsyms, compiled (the Python decoder is the reference).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__kallsymsc(void) {
    return PyModule_Create(&module);
}
