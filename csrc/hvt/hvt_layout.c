/*
 * Guest memory layout: page tables, GDT, boot info, segments. Everything here writes into
 * the guest's memory buffer only; KVM is not involved.
 *
 *   0x0000  unmapped (a NULL dereference in the guest faults)
 *   0x1000  GDT: null, code, data
 *   0x2000  PML4 -> 0x3000 PDPT -> 0x4000..0x7fff four page directories (one per GiB)
 *   0x8000  page table of the first 2 MiB, in 4 KiB pages
 *  0x10000  struct hvt_boot_info, the manifest, the command line     (read-only to the guest)
 * 0x100000  the unikernel's segments, then heap, then stack at the top (read-write)
 *
 * This is solo5-hvt's layout for ABI version 2 (tenders/hvt/hvt_cpu_x86_64.c, hvt_boot_info.c);
 * a guest finds everything through rdi, so the addresses matter only for compatibility of
 * guests that assume them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hvt_internal.h"

#define PTE_P (1ULL << 0)
#define PTE_RW (1ULL << 1)
#define PTE_PS (1ULL << 7)
#define PAGE_4K 0x1000ULL

void hvt_layout_pagetables(uint8_t *mem, uint64_t mem_size)
{
    uint64_t *pml4 = (uint64_t *)(mem + HVT_PML4_BASE);
    uint64_t *pdpte = (uint64_t *)(mem + HVT_PDPTE_BASE);
    uint64_t *pde = (uint64_t *)(mem + HVT_PDE_BASE);
    uint64_t *pt0 = (uint64_t *)(mem + HVT_PT0_BASE);

    memset(mem + HVT_PML4_BASE, 0, HVT_PT0_BASE + PAGE_4K - HVT_PML4_BASE);
    pml4[0] = HVT_PDPTE_BASE | PTE_P | PTE_RW;
    for (int i = 0; i < 4; i++)
        pdpte[i] = (HVT_PDE_BASE + (uint64_t)i * PAGE_4K) | PTE_P | PTE_RW;

    /* First 2 MiB in 4 KiB pages, so the monitor's own structures can be hidden from (below
     * the boot info) or read-only to (boot info .. 1 MiB) the guest. */
    pde[0] = HVT_PT0_BASE | PTE_P | PTE_RW;
    for (uint64_t addr = HVT_BOOT_INFO_BASE; addr < HVT_PAGE_2M; addr += PAGE_4K)
        pt0[addr / PAGE_4K] = addr | PTE_P | (addr >= HVT_GUEST_MIN_BASE ? PTE_RW : 0);
    /* The rest in 2 MiB pages; the four directories are contiguous, so one index runs on. */
    for (uint64_t addr = HVT_PAGE_2M; addr < mem_size; addr += HVT_PAGE_2M)
        pde[addr / HVT_PAGE_2M] = addr | PTE_P | PTE_RW | PTE_PS;
}

/* A flat 4 GiB descriptor: limit 0xfffff in 4 KiB units, present, ring 0. */
static uint64_t gdt_entry(uint64_t type, uint64_t long_mode, uint64_t db)
{
    return 0xffffULL | (type << 40) | (1ULL << 44) /* S: code/data */ | (1ULL << 47) /* P */ |
           (0xfULL << 48) | (long_mode << 53) | (db << 54) | (1ULL << 55) /* G */;
}

void hvt_layout_gdt(uint8_t *mem)
{
    uint64_t *gdt = (uint64_t *)(mem + HVT_GDT_BASE);
    gdt[0] = 0;
    gdt[1] = gdt_entry(9, 1, 0); /* code: execute-only, accessed, 64-bit */
    gdt[2] = gdt_entry(3, 0, 1); /* data: read-write, accessed */
}

int hvt_layout_boot_info(uint8_t *mem, uint64_t mem_size, uint64_t kernel_end, uint64_t tsc_hz,
                         const uint8_t *mft, uint32_t mft_size, const char *cmdline)
{
    uint64_t mft_at = HVT_BOOT_INFO_BASE + sizeof(struct hvt_boot_info);
    uint64_t cmdline_at = mft_at + mft_size;
    if (cmdline_at + HVT_CMDLINE_SIZE > HVT_GUEST_MIN_BASE)
        return -1;
    size_t len = strnlen(cmdline, HVT_CMDLINE_SIZE);
    if (len >= HVT_CMDLINE_SIZE)
        return -1;
    struct hvt_boot_info *bi = (struct hvt_boot_info *)(mem + HVT_BOOT_INFO_BASE);
    bi->mem_size = mem_size;
    bi->kernel_end = kernel_end;
    bi->cpu_cycle_freq = tsc_hz;
    bi->mft = mft_at;
    bi->cmdline = cmdline_at;
    memcpy(mem + mft_at, mft, mft_size);
    memcpy(mem + cmdline_at, cmdline, len);
    mem[cmdline_at + len] = '\0';
    return 0;
}

/* The plan comes from our own Python, which validated the ELF; these checks keep a bad plan
 * from turning into a write outside guest memory. */
int hvt_check_plan(const struct runnc_hvt_plan *p, char *err, size_t errlen)
{
    if (p->mem_size % HVT_PAGE_2M || p->mem_size < HVT_PAGE_2M || p->mem_size > HVT_MAX_MEM)
        return hvt_fail(err, errlen,
                        "guest memory size %#llx is not a multiple of 2 MiB from 2 MiB to 4 GiB",
                        (unsigned long long)p->mem_size);
    if (p->kernel_end > p->mem_size || p->kernel_end < HVT_GUEST_MIN_BASE)
        return hvt_fail(err, errlen, "unikernel end %#llx outside guest memory of %llu bytes",
                        (unsigned long long)p->kernel_end, (unsigned long long)p->mem_size);
    if (p->nsegments == 0 || p->segments == NULL)
        return hvt_fail(err, errlen, "no loadable segments");
    for (uint32_t i = 0; i < p->nsegments; i++) {
        const struct runnc_hvt_segment *s = &p->segments[i];
        if (s->paddr < HVT_GUEST_MIN_BASE || s->filesz > s->memsz ||
            s->memsz > p->mem_size || s->paddr > p->mem_size - s->memsz)
            return hvt_fail(err, errlen, "segment %u at %#llx does not fit guest memory", i,
                            (unsigned long long)s->paddr);
    }
    if (p->entry < HVT_GUEST_MIN_BASE || p->entry >= p->mem_size)
        return hvt_fail(err, errlen, "entry point %#llx outside guest memory",
                        (unsigned long long)p->entry);
    if (p->cmdline == NULL || strnlen(p->cmdline, HVT_CMDLINE_SIZE) >= HVT_CMDLINE_SIZE)
        return hvt_fail(err, errlen, "guest command line longer than %u bytes",
                        HVT_CMDLINE_SIZE - 1);
    if (p->mft == NULL || p->mft_size < 8 ||
        HVT_BOOT_INFO_BASE + sizeof(struct hvt_boot_info) + p->mft_size + HVT_CMDLINE_SIZE >
            HVT_GUEST_MIN_BASE)
        return hvt_fail(err, errlen, "manifest of %u bytes does not fit low memory", p->mft_size);
    if (p->nblocks + p->nnets > HVT_MAX_DEVICES)
        return hvt_fail(err, errlen, "%u devices, at most %d", p->nblocks + p->nnets,
                        HVT_MAX_DEVICES);
    for (uint32_t i = 0; i < p->nblocks; i++) {
        const struct runnc_hvt_block *b = &p->blocks[i];
        if (b->index >= 64 || b->fd < 0 || b->block_size == 0 || b->capacity < b->block_size ||
            b->capacity % b->block_size)
            return hvt_fail(err, errlen, "block device %u (manifest entry %u) is malformed", i,
                            b->index);
    }
    if (p->epollfd < 0 || p->timerfd < 0)
        return hvt_fail(err, errlen, "no epoll/timer fds (see runnc_hvt_make_fds)");
    for (uint32_t i = 0; i < p->nnets; i++)
        if (p->nets[i].index >= 64 || p->nets[i].fd < 0)
            return hvt_fail(err, errlen, "net device %u (manifest entry %u) is malformed", i,
                            p->nets[i].index);
    return 0;
}

static uint64_t page_down(uint64_t x) { return x & ~(PAGE_4K - 1); }
static uint64_t page_up(uint64_t x) { return (x + PAGE_4K - 1) & ~(PAGE_4K - 1); }

int hvt_load_segments(struct runnc_hvt *vm, const struct runnc_hvt_plan *p, char *err,
                      size_t errlen)
{
    for (uint32_t i = 0; i < p->nsegments; i++) {
        const struct runnc_hvt_segment *s = &p->segments[i];
        uint8_t *dst = vm->mem + s->paddr;
        uint64_t done = 0;
        while (done < s->filesz) {
            ssize_t n = pread(p->elf_fd, dst + done, s->filesz - done, (off_t)(s->offset + done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return hvt_fail(err, errlen, "reading segment %u: %s", i,
                                n == 0 ? "file truncated" : strerror(errno));
            done += (uint64_t)n;
        }
    }
    /* Host-side protections, after all segments are in (they may share no page: the ELF
     * checks demand 4 KiB alignment). KVM maps a read-only host page read-only into the guest,
     * so a guest writing to its own text or rodata stops with EFAULT -- solo5-hvt's W^X. Never
     * PROT_EXEC: the host has no business executing guest code. */
    vm->nro = 0;
    for (uint32_t i = 0; i < p->nsegments; i++) {
        const struct runnc_hvt_segment *s = &p->segments[i];
        if (s->prot & PROT_WRITE)
            continue;
        uint64_t start = page_down(s->paddr), end = page_up(s->paddr + s->memsz);
        if (end <= start)
            continue;
        if (vm->nro == HVT_MAX_RO)
            return hvt_fail(err, errlen, "more than %d read-only segments", HVT_MAX_RO);
        if (mprotect(vm->mem + start, end - start, PROT_READ) == -1)
            return hvt_fail(err, errlen, "mprotect of segment %u: %s", i, strerror(errno));
        vm->ro[vm->nro][0] = start;
        vm->ro[vm->nro][1] = end;
        vm->nro++;
    }
    return 0;
}
