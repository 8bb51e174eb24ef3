// SPDX-License-Identifier: GPL-2.0
/*
 * kmemdbg_probe: ground truth printed by the guest kernel itself.
 *
 * Loaded by the fixture factory's guest /init (vmcores/build.py) and never
 * unloaded (it has no exit function), so the dump taken afterwards holds
 * every buffer below.  Each report is one line:
 *
 *   kmemdbg_probe: <name> va=0x... <key>=0x... ...
 *
 * Every value is printed as 0x%llx.  For each buffer the line carries the
 * kernel's own answers as they apply: virt_to_phys(), vmalloc_to_pfn(),
 * virt_addr_valid(), is_vmalloc_addr() and, on x86, slow_virt_to_phys() and
 * lookup_address()'s level (1 = 4K, 2 = 2M, 3 = 1G).  Mapped (non-linear)
 * buffers also get one "<name>.run" line per run of pages whose frames are
 * consecutive, so every page's frame is in the printout.
 *
 * Every page of every RAM-backed buffer starts with a 32-byte marker
 * (struct kmemdbg_probe_marker) so that a reader of the dump can check that
 * a walk landed on the right frame.
 *
 * Planted defects, for dump-time audits to find:
 *   - kmemdbg_probe_bogus_pa: virt_to_phys() of a vmalloc pointer, in a global;
 *   - the same bogus value in a kmalloc'd descriptor, next to a valid
 *     physical address of a kmalloc buffer (struct kmemdbg_probe_desc);
 *   - a W+X mapping: vmap() of one page with PAGE_KERNEL_EXEC, then its PTE
 *     made executable by hand (x86: through lookup_address(); arm64: by a
 *     walk from TTBR1_EL1), since vmap() applies pgprot_nx() to whatever
 *     protection it is given (v5.8+) and set_memory_x() is not exported.
 *
 * Stored virt_to_phys()/virt_to_page() misuse in every kind of kernel memory
 * ("plants"), each with negative controls.  Every plant is a driver-style
 * pair: the source pointer in one 8-byte word, the value computed from it in
 * the next (struct kmemdbg_probe_pair), or the pointer followed by a struct
 * scatterlist (struct kmemdbg_probe_sgpair: the value word is sg.page_link).
 * Each plant is one line:
 *
 *   kmemdbg_probe: plant.<kind tag>.<what>[.cpuN] kind=<kind> form=<form>
 *     control=0x0|0x1 word_va=0x... value=0x... source_va=0x...
 *     source_pfn=0x... source_region=<vmalloc|module|stack|linear>
 *     source_page=0x... how=<computation>
 *
 * word_va: the word holding value (value is read back from it, so it is the
 * 8 bytes in memory, sg flag bits included); source_va: the pointer stored
 * at word_va - 8, the one given to virt_to_phys()/virt_to_page()/
 * sg_init_one(); source_pfn: its true frame (vmalloc_to_pfn(), or
 * virt_to_phys() >> PAGE_SHIFT for linear sources); source_page:
 * pfn_to_page(source_pfn).  control=0x1: a correct value no checker may
 * flag.  form: what value claims to be for source_va (virt_to_phys: a
 * physical address; virt_to_page: a struct page pointer; sg_page_link: a
 * scatterlist's page_link); how: the computation (virt_to_phys,
 * virt_to_page, sg_init_one, vmalloc_to_page_phys = page_to_phys(
 * vmalloc_to_page(src)) + offset_in_page(src), vmalloc_to_page,
 * sg_set_page_vmalloc_to_page).
 *
 * Kinds (where the structure lives, struct kmemdbg_probe_plants): module-data
 * (an initialized static), module-bss, module-ro_after_init (filled in init,
 * before the module is made read-only), slab (kzalloc), page
 * (__get_free_page, +0x40), vmalloc (vzalloc, one page), percpu-static (a
 * module DEFINE_PER_CPU: one set of lines per possible CPU, word_va =
 * per_cpu_ptr()), percpu-dynamic (alloc_percpu: likewise), stack (a local
 * of the kthread "kmemdbg_stack", on its own vmapped stack; it prints its
 * lines, signals module init and then sleeps for ever; the "stack_thread"
 * line gives its stack).  In every kind the same ten slots:
 *
 *   <tag>.v2p_vmalloc          virt_to_phys(vmalloc src)            bogus
 *   <tag>.v2p_module           virt_to_phys(module static buffer)   bogus
 *   <tag>.v2page_vmalloc       virt_to_page(vmalloc src)            bogus
 *   <tag>.sg_vmalloc           sg_init_one(vmalloc src)             bogus
 *   <tag>.control_v2p_kmalloc  virt_to_phys(kmalloc src)            control
 *   <tag>.control_v2page_kmalloc virt_to_page(kmalloc src)          control
 *   <tag>.control_pa_vmalloc   page_to_phys(vmalloc_to_page()) + offset  control
 *   <tag>.control_page_vmalloc vmalloc_to_page(vmalloc src)         control
 *   <tag>.control_sg_kmalloc   sg_init_one(kmalloc src)             control
 *   <tag>.control_sg_vmalloc   sg_set_page(vmalloc_to_page(src))    control
 *
 * except in the stack kind, where the vmalloc source of v2p_/v2page_/sg_/
 * control_pa_/control_page_/control_sg_ is a buffer on the same stack
 * (names *_stack: the classic "DMA from the stack" bug) and the second
 * virt_to_phys() takes a vmalloc source instead of a module one
 * (v2p_vmalloc).  The vmalloc sources are the 6-page "vmalloc" buffer at a
 * different byte offset per kind (and per CPU); the "plants" line at the
 * end counts the lines.
 */
#include <linux/completion.h>
#include <linux/init.h>
#include <linux/io.h>
#include <linux/kernel.h>
#include <linux/kthread.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/percpu.h>
#include <linux/sched.h>
#include <linux/sched/task_stack.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/stddef.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <asm/tlbflush.h>
#ifdef CONFIG_X86
#include <asm/pgtable_types.h>
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#endif

#define TAG "kmemdbg_probe: "
#define MARKER_MAGIC 0x4252504742444d4bULL	/* the bytes "KMDBGPRB" */
#define DESC_MAGIC 0x4353444742444d4bULL	/* the bytes "KMDBGDSC" */
#define PLANTS_MAGIC 0x544c504742444d4bULL	/* the bytes "KMDBGPLT" */

#ifdef CONFIG_X86
#define DEVICE_PHYS 0xfed00000UL	/* the HPET of QEMU's pc machine */
#else
#define DEVICE_PHYS 0x09010000UL	/* the PL031 RTC of QEMU's arm64 virt machine */
#endif
#define HUGE_SIZE (4UL << 20)
#define VMALLOC_PAGES 6
#define VMAP_PAGES 4

typedef unsigned long long ull;

/* The first 32 bytes of every page of every probe buffer. */
struct kmemdbg_probe_marker {
	u64 magic;	/* MARKER_MAGIC */
	u64 va;		/* the virtual address of this page of the buffer */
	u64 index;	/* page index inside the buffer */
	char name[8];	/* buffer name, truncated, NUL-padded */
};

/* A driver-style descriptor: one valid physical address, one planted bug. */
struct kmemdbg_probe_desc {
	u64 magic;		/* DESC_MAGIC */
	phys_addr_t good_pa;	/* virt_to_phys() of a kmalloc buffer: valid */
	phys_addr_t bogus_pa;	/* virt_to_phys() of a vmalloc buffer: WRONG */
	void *good_va;		/* that kmalloc buffer */
	void *bogus_va;		/* that vmalloc buffer */
};

/* Planted defect (a): virt_to_phys() of a vmalloc pointer. */
phys_addr_t kmemdbg_probe_bogus_pa;
EXPORT_SYMBOL_GPL(kmemdbg_probe_bogus_pa);
/* A kmalloc buffer reachable only through this global pointer. */
void *kmemdbg_probe_pinned;
EXPORT_SYMBOL_GPL(kmemdbg_probe_pinned);
/* The descriptor of planted defect (b). */
struct kmemdbg_probe_desc *kmemdbg_probe_desc_ptr;
EXPORT_SYMBOL_GPL(kmemdbg_probe_desc_ptr);
/* Everything else, so that nothing is leaked. */
static void *kmemdbg_probe_keep[16];

static void mark(void *va, size_t bytes, const char *name)
{
	size_t off;

	for (off = 0; off < bytes; off += PAGE_SIZE) {
		struct kmemdbg_probe_marker *m = va + off;

		m->magic = MARKER_MAGIC;
		m->va = (u64)(unsigned long)m;
		m->index = off / PAGE_SIZE;
		memset(m->name, 0, sizeof(m->name));
		memcpy(m->name, name, min(strlen(name), sizeof(m->name)));
	}
}

#ifdef CONFIG_X86
static int level_of(const void *va)
{
	unsigned int level = 0;

	if (!lookup_address((unsigned long)va, &level))
		return 0;
	return level;
}

/* " slow_virt_to_phys=0x... level=0x..." (x86 only: neither exists elsewhere). */
static const char *x86_walk(char *out, size_t len, const void *va)
{
	snprintf(out, len, " slow_virt_to_phys=0x%llx level=0x%x",
		 (ull)slow_virt_to_phys((void *)va), level_of(va));
	return out;
}
#else
static const char *x86_walk(char *out, size_t len, const void *va)
{
	out[0] = 0;
	return out;
}
#endif

/*
 * Clear the no-execute bit of the kernel PTE mapping ``va`` (one 4K/16K
 * page), leaving it writable: the W+X defect.  Returns the new PTE, 0 if
 * that could not be done.
 */
#ifdef CONFIG_X86
static u64 make_executable(void *va)
{
	unsigned int level;
	pte_t *ptep = lookup_address((unsigned long)va, &level);

	if (!ptep || level != PG_LEVEL_4K)
		return 0;
	set_pte(ptep, pte_mkexec(*ptep));
	__flush_tlb_all();
	return pte_val(*ptep);
}
#else
/*
 * arm64: init_mm and swapper_pg_dir are not exported, but at EL1 TTBR1_EL1
 * holds swapper_pg_dir's physical address (bits 47:6 here: this machine's
 * RAM is below 2**48; ASID in 63:48): walk it with the kernel's own
 * accessors (which fold levels at run time) to the PTE and clear PXN.
 */
static u64 make_executable(void *va)
{
	unsigned long addr = (unsigned long)va;
	u64 ttbr1 = read_sysreg(ttbr1_el1);
	pgd_t *pgdp = pgd_offset_pgd((pgd_t *)phys_to_virt(ttbr1 & GENMASK_ULL(47, 6)), addr);
	p4d_t *p4dp;
	pud_t *pudp;
	pmd_t *pmdp;
	pte_t *ptep, pte;

	if (pgd_none(READ_ONCE(*pgdp)))
		return 0;
	p4dp = p4d_offset(pgdp, addr);
	if (p4d_none(READ_ONCE(*p4dp)))
		return 0;
	pudp = pud_offset(p4dp, addr);
	if (pud_none(READ_ONCE(*pudp)))
		return 0;
	pmdp = pmd_offset(pudp, addr);
	if (pmd_none(READ_ONCE(*pmdp)))
		return 0;
	ptep = pte_offset_kernel(pmdp, addr);
	pte = ptep_get(ptep);
	if (!pte_present(pte) || (pte_pfn(pte) << PAGE_SHIFT) != page_to_phys(vmalloc_to_page(va)))
		return 0;
	pte = clear_pte_bit(pte, __pgprot(PTE_PXN));
	set_pte(ptep, pte);
	flush_tlb_kernel_range(addr, addr + PAGE_SIZE);
	return pte_val(pte);
}
#endif

/* A buffer in the linear map (kmalloc): one line, it is contiguous. */
static void report_linear(const char *name, void *buf, size_t bytes)
{
	char walk[80];

	pr_info(TAG "%s va=0x%llx size=0x%llx virt_to_phys=0x%llx page_to_pfn=0x%llx "
		"virt_addr_valid=0x%x is_vmalloc_addr=0x%x%s\n",
		name, (ull)(unsigned long)buf, (ull)bytes, (ull)virt_to_phys(buf),
		(ull)page_to_pfn(virt_to_page(buf)), virt_addr_valid(buf) ? 1 : 0,
		is_vmalloc_addr(buf) ? 1 : 0, x86_walk(walk, sizeof(walk), buf));
}

/* A vmalloc/vmap buffer: one line, then one "<name>.run" line per frame run. */
static void report_mapped(const char *name, void *buf, size_t bytes)
{
	unsigned long va = (unsigned long)buf;
	unsigned long run_pfn = 0, pages = 0, pfn;
	size_t off, run_off = 0;
	char walk[80];

	pr_info(TAG "%s va=0x%llx size=0x%llx vmalloc_to_pfn=0x%llx virt_addr_valid=0x%x "
		"is_vmalloc_addr=0x%x%s\n",
		name, (ull)va, (ull)bytes, (ull)vmalloc_to_pfn(buf), virt_addr_valid(buf) ? 1 : 0,
		is_vmalloc_addr(buf) ? 1 : 0, x86_walk(walk, sizeof(walk), buf));
	for (off = 0; off <= bytes; off += PAGE_SIZE) {
		pfn = off < bytes ? vmalloc_to_pfn(buf + off) : 0;
		if (pages && off < bytes && pfn == run_pfn + pages) {
			pages++;
			continue;
		}
		if (pages)
			pr_info(TAG "%s.run va=0x%llx vmalloc_to_pfn=0x%llx pages=0x%lx%s\n",
				name, (ull)(va + run_off), (ull)run_pfn, pages,
				x86_walk(walk, sizeof(walk), buf + run_off));
		run_off = off;
		run_pfn = pfn;
		pages = 1;
	}
}

/* A variable in the module's own data (module space, not the linear map). */
static void report_global(const char *name, const void *var, u64 value, const char *more)
{
	char walk[80];

	pr_info(TAG "%s va=0x%llx vmalloc_to_pfn=0x%llx value=0x%llx%s%s\n",
		name, (ull)(unsigned long)var, (ull)vmalloc_to_pfn(var), (ull)value,
		x86_walk(walk, sizeof(walk), var), more);
}

/* --- stored virt_to_phys()/virt_to_page() misuse, with controls ------------- */

/* A driver's buffer pointer and the "physical address" it computed from it. */
struct kmemdbg_probe_pair {
	void *src;
	u64 value;
};

/* A driver's buffer pointer and the scatterlist entry it built for it. */
struct kmemdbg_probe_sgpair {
	void *src;
	struct scatterlist sg;	/* sg.page_link: the word right after src */
};

enum { PAIR_V2P_BAD, PAIR_V2P_BAD2, PAIR_V2PAGE_BAD, PAIR_V2P_GOOD, PAIR_V2PAGE_GOOD,
       PAIR_PA_TRUE, PAIR_PAGE_TRUE, NR_PAIRS };
enum { SG_BAD, SG_GOOD, SG_TRUE, NR_SGS };

/* One kind's set of plants (see the header comment). */
struct kmemdbg_probe_plants {
	u64 magic;		/* PLANTS_MAGIC */
	struct kmemdbg_probe_pair pair[NR_PAIRS];
	struct kmemdbg_probe_sgpair sg[NR_SGS];
};

/* Where one set's source pointers point. */
struct kmemdbg_probe_sources {
	void *bad;		/* non-linear: vmalloc (the stack kind: its own stack) */
	const char *bad_region;
	void *bad2;		/* non-linear: module (the stack kind: vmalloc) */
	const char *bad2_region;
	void *good;		/* linear: kmalloc */
};

#define PLANT_SG_LEN 64
#define PLANT_GOOD_BYTES 1024

/* The module source of virt_to_phys(): __pa() takes x86-64's image branch. */
static char kmemdbg_probe_module_buf[512] = "kmemdbg_probe: a static buffer in module .data";
/* module-data: initialized (non-zero), so it is in .data, not .bss */
static struct kmemdbg_probe_plants kmemdbg_probe_plants_data = { .magic = PLANTS_MAGIC };
static struct kmemdbg_probe_plants kmemdbg_probe_plants_bss;
static struct kmemdbg_probe_plants kmemdbg_probe_plants_ro __ro_after_init;
static DEFINE_PER_CPU(struct kmemdbg_probe_plants, kmemdbg_probe_plants_pcpu);
/* The plants' own allocations, apart from kmemdbg_probe_keep ("end buffers=" stays). */
static void *kmemdbg_probe_plant_keep[8];
static void *kmemdbg_probe_vbuf;	/* the 6-page vmalloc buffer */
static void *kmemdbg_probe_goodbuf;	/* a kmalloc buffer: the linear source */
static int kmemdbg_probe_bogus_lines, kmemdbg_probe_control_lines;
static DECLARE_COMPLETION(kmemdbg_probe_stack_done);

static void report_plant(const char *name, const char *kind, const char *form, int control,
			 const void *word, const void *src, const char *region, const char *how)
{
	u64 value = READ_ONCE(*(const u64 *)word);
	unsigned long pfn = strcmp(region, "linear") ? vmalloc_to_pfn(src)
						      : PHYS_PFN(virt_to_phys((void *)src));

	pr_info(TAG "plant.%s kind=%s form=%s control=0x%x word_va=0x%llx value=0x%llx "
		"source_va=0x%llx source_pfn=0x%llx source_region=%s source_page=0x%llx how=%s\n",
		name, kind, form, control, (ull)(unsigned long)word, (ull)value,
		(ull)(unsigned long)src, (ull)pfn, region, (ull)(unsigned long)pfn_to_page(pfn), how);
	if (control)
		kmemdbg_probe_control_lines++;
	else
		kmemdbg_probe_bogus_lines++;
}

/* The real-world path: sg_init_one() (sg_set_buf(), virt_to_page() inside). */
static void plant_sg_init_one(struct scatterlist *sg, void *buf)
{
#ifdef CONFIG_DEBUG_SG
	/* sg_set_buf() BUGs on a non-linear buffer here: the same entry by hand */
	sg_init_table(sg, 1);
	sg_set_page(sg, virt_to_page(buf), PLANT_SG_LEN, offset_in_page(buf));
#else
	sg_init_one(sg, buf, PLANT_SG_LEN);
#endif
}

static void plant_pair(struct kmemdbg_probe_pair *q, void *src, u64 value, const char *name,
		       const char *kind, const char *form, int control, const char *region,
		       const char *how)
{
	WRITE_ONCE(q->src, src);
	WRITE_ONCE(q->value, value);
	report_plant(name, kind, form, control, &q->value, src, region, how);
}

/* Fill one set (tag: the name's first part; suffix: ".cpuN" or ""), print its lines. */
static void plant_set(struct kmemdbg_probe_plants *p, const char *kind, const char *tag,
		      const char *suffix, const struct kmemdbg_probe_sources *s)
{
	struct kmemdbg_probe_pair *q = p->pair;
	struct kmemdbg_probe_sgpair *g = p->sg;
	char n[80];

	BUILD_BUG_ON(offsetof(struct kmemdbg_probe_pair, value) != sizeof(void *));
	BUILD_BUG_ON(offsetof(struct kmemdbg_probe_sgpair, sg.page_link) != sizeof(void *));
	p->magic = PLANTS_MAGIC;

	snprintf(n, sizeof(n), "%s.v2p_%s%s", tag, s->bad_region, suffix);
	plant_pair(&q[PAIR_V2P_BAD], s->bad, virt_to_phys(s->bad), n, kind, "virt_to_phys", 0,
		   s->bad_region, "virt_to_phys");
	snprintf(n, sizeof(n), "%s.v2p_%s%s", tag, s->bad2_region, suffix);
	plant_pair(&q[PAIR_V2P_BAD2], s->bad2, virt_to_phys(s->bad2), n, kind, "virt_to_phys", 0,
		   s->bad2_region, "virt_to_phys");
	snprintf(n, sizeof(n), "%s.v2page_%s%s", tag, s->bad_region, suffix);
	plant_pair(&q[PAIR_V2PAGE_BAD], s->bad, (u64)(unsigned long)virt_to_page(s->bad), n, kind,
		   "virt_to_page", 0, s->bad_region, "virt_to_page");

	g[SG_BAD].src = s->bad;
	plant_sg_init_one(&g[SG_BAD].sg, s->bad);
	snprintf(n, sizeof(n), "%s.sg_%s%s", tag, s->bad_region, suffix);
	report_plant(n, kind, "sg_page_link", 0, &g[SG_BAD].sg.page_link, s->bad, s->bad_region,
		     "sg_init_one");

	/* controls: the same shapes, correct values */
	snprintf(n, sizeof(n), "%s.control_v2p_kmalloc%s", tag, suffix);
	plant_pair(&q[PAIR_V2P_GOOD], s->good, virt_to_phys(s->good), n, kind, "virt_to_phys", 1,
		   "linear", "virt_to_phys");
	snprintf(n, sizeof(n), "%s.control_v2page_kmalloc%s", tag, suffix);
	plant_pair(&q[PAIR_V2PAGE_GOOD], s->good, (u64)(unsigned long)virt_to_page(s->good), n, kind,
		   "virt_to_page", 1, "linear", "virt_to_page");
	snprintf(n, sizeof(n), "%s.control_pa_%s%s", tag, s->bad_region, suffix);
	plant_pair(&q[PAIR_PA_TRUE], s->bad,
		   (u64)page_to_phys(vmalloc_to_page(s->bad)) + offset_in_page(s->bad), n, kind,
		   "virt_to_phys", 1, s->bad_region, "vmalloc_to_page_phys");
	snprintf(n, sizeof(n), "%s.control_page_%s%s", tag, s->bad_region, suffix);
	plant_pair(&q[PAIR_PAGE_TRUE], s->bad, (u64)(unsigned long)vmalloc_to_page(s->bad), n, kind,
		   "virt_to_page", 1, s->bad_region, "vmalloc_to_page");

	g[SG_GOOD].src = s->good;
	sg_init_one(&g[SG_GOOD].sg, s->good, PLANT_SG_LEN);
	snprintf(n, sizeof(n), "%s.control_sg_kmalloc%s", tag, suffix);
	report_plant(n, kind, "sg_page_link", 1, &g[SG_GOOD].sg.page_link, s->good, "linear",
		     "sg_init_one");
	g[SG_TRUE].src = s->bad;
	sg_init_table(&g[SG_TRUE].sg, 1);
	sg_set_page(&g[SG_TRUE].sg, vmalloc_to_page(s->bad), PLANT_SG_LEN, offset_in_page(s->bad));
	snprintf(n, sizeof(n), "%s.control_sg_%s%s", tag, s->bad_region, suffix);
	report_plant(n, kind, "sg_page_link", 1, &g[SG_TRUE].sg.page_link, s->bad, s->bad_region,
		     "sg_set_page_vmalloc_to_page");
}

/* The sources of set number ``variant``: another byte offset each time. */
static void plant_sources(struct kmemdbg_probe_sources *s, int variant)
{
	static const unsigned long offsets[] = {
		0, 0x123, PAGE_SIZE + 0x40, 2 * PAGE_SIZE + 0x7f8, 3 * PAGE_SIZE + 0x10,
		4 * PAGE_SIZE + 0x234, 5 * PAGE_SIZE + 0x800, 0x9a0, PAGE_SIZE + 0xc08,
		2 * PAGE_SIZE + 0x18, 3 * PAGE_SIZE + 0x5f0, 5 * PAGE_SIZE + 0xf00,
	};

	s->bad = kmemdbg_probe_vbuf + offsets[variant % ARRAY_SIZE(offsets)];
	s->bad_region = "vmalloc";
	s->bad2 = kmemdbg_probe_module_buf + 0x40 * (variant % 8);
	s->bad2_region = "module";
	s->good = kmemdbg_probe_goodbuf + 0x40 * (variant % (PLANT_GOOD_BYTES / 0x40));
}

/* The stack kind's frame: a "DMA buffer" and the plants, both on the kthread's stack. */
struct kmemdbg_probe_stack_frame {
	char buf[256];
	struct kmemdbg_probe_plants plants;
};

static int kmemdbg_probe_stack_fn(void *arg)
{
	struct kmemdbg_probe_stack_frame frame;
	struct kmemdbg_probe_sources s = *(struct kmemdbg_probe_sources *)arg;
	void *stack = task_stack_page(current);

	memset(&frame, 0, sizeof(frame));
	strscpy(frame.buf, "kmemdbg_probe: a buffer on a kthread's stack", sizeof(frame.buf));
	s.bad2 = s.bad;
	s.bad2_region = s.bad_region;
	s.bad = frame.buf + 0x10;
	s.bad_region = "stack";
	pr_info(TAG "stack_thread pid=0x%x task=0x%llx stack=0x%llx stack_size=0x%llx "
		"stack_pfn=0x%llx frame=0x%llx frame_size=0x%llx is_vmalloc_addr=0x%x\n",
		task_pid_nr(current), (ull)(unsigned long)current, (ull)(unsigned long)stack,
		(ull)THREAD_SIZE, (ull)vmalloc_to_pfn(stack), (ull)(unsigned long)&frame,
		(ull)sizeof(frame), is_vmalloc_addr(stack) ? 1 : 0);
	plant_set(&frame.plants, "stack", "stack", "", &s);
	complete(&kmemdbg_probe_stack_done);
	/* never stops: the module has no exit function; the frame stays as it is */
	while (!kthread_should_stop()) {
		set_current_state(TASK_INTERRUPTIBLE);
		barrier_data(&frame);
		schedule();
	}
	__set_current_state(TASK_RUNNING);
	barrier_data(&frame);
	return 0;
}

/* Plant every kind; "plants_error" lines say what could not be done. */
static void plant_all(void *vbuf)
{
	struct kmemdbg_probe_sources s;
	struct kmemdbg_probe_plants *slab, *vm, __percpu *dyn;
	struct task_struct *thread;
	unsigned long page;
	char suffix[16];
	int variant = 0, cpu, k = 0;

	kmemdbg_probe_vbuf = vbuf;
	kmemdbg_probe_goodbuf = kzalloc(PLANT_GOOD_BYTES, GFP_KERNEL);
	if (!kmemdbg_probe_goodbuf) {
		pr_info(TAG "plants_error step=kmalloc_source\n");
		return;
	}
	kmemdbg_probe_plant_keep[k++] = kmemdbg_probe_goodbuf;

	plant_sources(&s, variant++);
	plant_set(&kmemdbg_probe_plants_data, "module-data", "data", "", &s);
	plant_sources(&s, variant++);
	plant_set(&kmemdbg_probe_plants_bss, "module-bss", "bss", "", &s);
	plant_sources(&s, variant++);
	plant_set(&kmemdbg_probe_plants_ro, "module-ro_after_init", "ro_after_init", "", &s);

	slab = kzalloc(sizeof(*slab), GFP_KERNEL);
	if (slab) {
		kmemdbg_probe_plant_keep[k++] = slab;
		plant_sources(&s, variant++);
		plant_set(slab, "slab", "slab", "", &s);
	} else {
		pr_info(TAG "plants_error step=slab\n");
	}

	page = __get_free_page(GFP_KERNEL | __GFP_ZERO);
	if (page) {
		kmemdbg_probe_plant_keep[k++] = (void *)page;
		mark((void *)page, PAGE_SIZE, "plants");
		plant_sources(&s, variant++);
		plant_set((void *)(page + 0x40), "page", "page", "", &s);
	} else {
		pr_info(TAG "plants_error step=page\n");
	}

	vm = vzalloc(PAGE_SIZE);
	if (vm) {
		kmemdbg_probe_plant_keep[k++] = vm;
		mark(vm, PAGE_SIZE, "plants");
		plant_sources(&s, variant++);
		plant_set((void *)vm + 0x40, "vmalloc", "vmalloc", "", &s);
	} else {
		pr_info(TAG "plants_error step=vmalloc\n");
	}

	for_each_possible_cpu(cpu) {
		snprintf(suffix, sizeof(suffix), ".cpu%d", cpu);
		plant_sources(&s, variant++);
		plant_set(per_cpu_ptr(&kmemdbg_probe_plants_pcpu, cpu), "percpu-static", "pcpu_static",
			  suffix, &s);
	}

	dyn = alloc_percpu(struct kmemdbg_probe_plants);
	if (dyn) {
		kmemdbg_probe_plant_keep[k++] = (void __force *)dyn;
		for_each_possible_cpu(cpu) {
			snprintf(suffix, sizeof(suffix), ".cpu%d", cpu);
			plant_sources(&s, variant++);
			plant_set(per_cpu_ptr(dyn, cpu), "percpu-dynamic", "pcpu_dynamic", suffix, &s);
		}
	} else {
		pr_info(TAG "plants_error step=alloc_percpu\n");
	}

	/* the thread copies s before it signals: s may go out of scope afterwards */
	plant_sources(&s, variant++);
	thread = kthread_run(kmemdbg_probe_stack_fn, &s, "kmemdbg_stack");
	if (IS_ERR(thread)) {
		pr_info(TAG "plants_error step=kthread_run\n");
	} else {
		kmemdbg_probe_plant_keep[k++] = thread;
		if (!wait_for_completion_timeout(&kmemdbg_probe_stack_done, 120 * HZ))
			pr_info(TAG "plants_error step=stack_thread_timeout\n");
	}
	pr_info(TAG "plants bogus=0x%x controls=0x%x sets=0x%x possible_cpus=0x%x\n",
		kmemdbg_probe_bogus_lines, kmemdbg_probe_control_lines, variant,
		num_possible_cpus());
}

#ifdef CONFIG_X86
/*
 * The kernel's own page-table dump, as PTDUMP_DEBUGFS would show it.
 * Debian builds the x86 ptdump core (DEBUG_WX selects it) and exports its
 * walker for the debugfs module, but leaves that module out; this file
 * calls the same walker, so /init can print the kernel's ptdump of the
 * boot that is then dumped.  The reader's mm shares the kernel half of
 * init_mm's tables.
 */
void ptdump_walk_pgd_level_debugfs(struct seq_file *m, struct mm_struct *mm, bool user);

static int kmemdbg_ptdump_show(struct seq_file *m, void *v)
{
	ptdump_walk_pgd_level_debugfs(m, current->mm, false);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(kmemdbg_ptdump);
#endif

static int __init kmemdbg_probe_init(void)
{
	static const size_t kmalloc_sizes[] = { 64, 256, 4096, 65536 };
	static const char *const kmalloc_names[] = { "kmalloc64", "kmalloc256", "kmalloc4k", "kmalloc64k" };
	struct page *scattered[VMAP_PAGES], *skipped[VMAP_PAGES], *exec_page;
	struct kmemdbg_probe_desc *desc;
	void *buf, *vbuf, *huge, *vm, *wx, *pinned;
	void __iomem *io;
	char more[160];
	int i, n = 0;

#ifdef CONFIG_X86
	pr_info(TAG "begin arch=x86_64 page_offset_base=0x%llx phys_base=0x%llx module=0x%llx\n",
		(ull)page_offset_base, (ull)phys_base, (ull)(unsigned long)THIS_MODULE);
#else
	pr_info(TAG "begin arch=arm64 page_offset=0x%llx phys_offset=0x%llx module=0x%llx\n",
		(ull)PAGE_OFFSET, (ull)PHYS_OFFSET, (ull)(unsigned long)THIS_MODULE);
#endif

	for (i = 0; i < ARRAY_SIZE(kmalloc_sizes); i++) {
		buf = kmalloc(kmalloc_sizes[i], GFP_KERNEL);
		if (!buf)
			return -ENOMEM;
		memset(buf, 0, kmalloc_sizes[i]);
		mark(buf, kmalloc_sizes[i], kmalloc_names[i]);
		report_linear(kmalloc_names[i], buf, kmalloc_sizes[i]);
		kmemdbg_probe_keep[n++] = buf;
	}

	pinned = kmalloc(512, GFP_KERNEL);
	if (!pinned)
		return -ENOMEM;
	memset(pinned, 0, 512);
	mark(pinned, 512, "pinned");
	kmemdbg_probe_pinned = pinned;
	report_linear("pinned", pinned, 512);
	report_global("pinned_ptr", &kmemdbg_probe_pinned, (u64)(unsigned long)pinned, "");

	vbuf = vmalloc(VMALLOC_PAGES * PAGE_SIZE);
	if (!vbuf)
		return -ENOMEM;
	memset(vbuf, 0, VMALLOC_PAGES * PAGE_SIZE);
	mark(vbuf, VMALLOC_PAGES * PAGE_SIZE, "vmalloc");
	report_mapped("vmalloc", vbuf, VMALLOC_PAGES * PAGE_SIZE);
	kmemdbg_probe_keep[n++] = vbuf;

	huge = vmalloc_huge(HUGE_SIZE, GFP_KERNEL);
	if (!huge)
		return -ENOMEM;
	mark(huge, HUGE_SIZE, "huge");
	report_mapped("vmalloc_huge", huge, HUGE_SIZE);
#ifdef CONFIG_X86
	pr_info(TAG "vmalloc_huge_pmd va=0x%llx first_pmd_leaf=0x%x pmd_aligned=0x%x\n",
		(ull)(unsigned long)huge, level_of(huge) == PG_LEVEL_2M ? 1 : 0,
		IS_ALIGNED((unsigned long)huge, PMD_SIZE) ? 1 : 0);
#else
	pr_info(TAG "vmalloc_huge_pmd va=0x%llx pmd_aligned=0x%x\n",
		(ull)(unsigned long)huge, IS_ALIGNED((unsigned long)huge, PMD_SIZE) ? 1 : 0);
#endif
	kmemdbg_probe_keep[n++] = huge;

	/* Scattered frames: allocate two pages at a time, map only the first. */
	for (i = 0; i < VMAP_PAGES; i++) {
		scattered[i] = alloc_page(GFP_KERNEL);
		skipped[i] = alloc_page(GFP_KERNEL);
		if (!scattered[i] || !skipped[i])
			return -ENOMEM;
	}
	vm = vmap(scattered, VMAP_PAGES, VM_MAP, PAGE_KERNEL);
	if (!vm)
		return -ENOMEM;
	memset(vm, 0, VMAP_PAGES * PAGE_SIZE);
	mark(vm, VMAP_PAGES * PAGE_SIZE, "vmap");
	report_mapped("vmap", vm, VMAP_PAGES * PAGE_SIZE);
	for (i = 0; i < VMAP_PAGES; i++)
		pr_info(TAG "vmap.page va=0x%llx index=0x%x page_to_pfn=0x%llx\n",
			(ull)(unsigned long)(vm + i * PAGE_SIZE), i, (ull)page_to_pfn(scattered[i]));
	kmemdbg_probe_keep[n++] = vm;

	/*
	 * Planted defect (c): a writable and executable kernel mapping.  vmap()
	 * maps it NX whatever it is asked (pgprot_nx()); the PTE is then made
	 * executable by hand.  pte= is the PTE afterwards, 0x0 if that failed.
	 */
	exec_page = alloc_page(GFP_KERNEL);
	if (!exec_page)
		return -ENOMEM;
	wx = vmap(&exec_page, 1, VM_MAP, PAGE_KERNEL_EXEC);
	if (!wx)
		return -ENOMEM;
	memset(wx, 0, PAGE_SIZE);
	mark(wx, PAGE_SIZE, "wx");
	report_mapped("wx", wx, PAGE_SIZE);
	pr_info(TAG "wx_page va=0x%llx page_to_pfn=0x%llx pgprot=0x%llx pte=0x%llx\n",
		(ull)(unsigned long)wx, (ull)page_to_pfn(exec_page),
		(ull)pgprot_val(PAGE_KERNEL_EXEC), (ull)make_executable(wx));
	kmemdbg_probe_keep[n++] = wx;

	io = ioremap(DEVICE_PHYS, PAGE_SIZE);
	if (io) {
		char walk[80];

		pr_info(TAG "ioremap va=0x%llx phys=0x%llx vmalloc_to_pfn=0x%llx virt_addr_valid=0x%x "
			"is_vmalloc_addr=0x%x device_word0=0x%x%s\n",
			(ull)(unsigned long)io, (ull)DEVICE_PHYS, (ull)vmalloc_to_pfn((void *)io),
			virt_addr_valid((void *)io) ? 1 : 0, is_vmalloc_addr((void *)io) ? 1 : 0,
			readl(io), x86_walk(walk, sizeof(walk), (void *)io));
		kmemdbg_probe_keep[n++] = (void *)io;
	}

	/* Planted defect (a): the linear-map arithmetic applied to vmalloc memory. */
	kmemdbg_probe_bogus_pa = virt_to_phys(vbuf);
	snprintf(more, sizeof(more), " source_va=0x%llx source_pfn=0x%llx",
		 (ull)(unsigned long)vbuf, (ull)vmalloc_to_pfn(vbuf));
	report_global("bogus_global", &kmemdbg_probe_bogus_pa, (u64)kmemdbg_probe_bogus_pa, more);

	/* Planted defect (b): the same mistake inside a kmalloc'd descriptor. */
	desc = kzalloc(sizeof(*desc), GFP_KERNEL);
	if (!desc)
		return -ENOMEM;
	desc->magic = DESC_MAGIC;
	desc->good_va = kmemdbg_probe_keep[1];
	desc->good_pa = virt_to_phys(desc->good_va);
	desc->bogus_va = vbuf;
	desc->bogus_pa = virt_to_phys(vbuf);
	kmemdbg_probe_desc_ptr = desc;
	report_linear("desc", desc, sizeof(*desc));
	pr_info(TAG "desc_fields va=0x%llx good_pa_offset=0x%llx bogus_pa_offset=0x%llx "
		"good_va_offset=0x%llx bogus_va_offset=0x%llx good_pa=0x%llx bogus_pa=0x%llx "
		"good_va=0x%llx bogus_va=0x%llx bogus_va_pfn=0x%llx\n",
		(ull)(unsigned long)desc,
		(ull)offsetof(struct kmemdbg_probe_desc, good_pa),
		(ull)offsetof(struct kmemdbg_probe_desc, bogus_pa),
		(ull)offsetof(struct kmemdbg_probe_desc, good_va),
		(ull)offsetof(struct kmemdbg_probe_desc, bogus_va),
		(ull)desc->good_pa, (ull)desc->bogus_pa,
		(ull)(unsigned long)desc->good_va, (ull)(unsigned long)desc->bogus_va,
		(ull)vmalloc_to_pfn(vbuf));
	report_global("desc_ptr", &kmemdbg_probe_desc_ptr, (u64)(unsigned long)desc, "");

	/* Stored virt_to_phys()/virt_to_page() misuse in every kind of memory, with controls. */
	plant_all(vbuf);

#ifdef CONFIG_X86
	debugfs_create_file("kmemdbg_ptdump", 0400, NULL, NULL, &kmemdbg_ptdump_fops);
#endif
	pr_info(TAG "end buffers=0x%x\n", n);
	return 0;
}

module_init(kmemdbg_probe_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmemdbg ground-truth probe: allocations and planted virt_to_phys defects");
