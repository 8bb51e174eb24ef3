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
 */
#include <linux/init.h>
#include <linux/io.h>
#include <linux/kernel.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/module.h>
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

#ifdef CONFIG_X86
	debugfs_create_file("kmemdbg_ptdump", 0400, NULL, NULL, &kmemdbg_ptdump_fops);
#endif
	pr_info(TAG "end buffers=0x%x\n", n);
	return 0;
}

module_init(kmemdbg_probe_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmemdbg ground-truth probe: allocations and planted virt_to_phys defects");
