/*
 * Internals of the hvt monitor shared by its C files (not part of the cffi interface).
 *
 * ABI facts come from Solo5's include/hvt_abi.h and tenders/hvt/hvt_cpu_x86_64.h (ABI
 * version 2, Solo5 >= 0.8; version 1 guests use the same boot protocol and hypercalls):
 * every value here is what a Solo5 hvt guest's bindings expect to find.
 */
#ifndef RUNNC_HVT_INTERNAL_H
#define RUNNC_HVT_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hvt_monitor.h"

/* ---- guest-physical memory map (x86_64) --------------------------------------------------- */

#define HVT_GDT_BASE        0x1000ULL
#define HVT_PML4_BASE       0x2000ULL
#define HVT_PDPTE_BASE      0x3000ULL
#define HVT_PDE_BASE        0x4000ULL  /* four pages: one page directory per GiB */
#define HVT_PT0_BASE        0x8000ULL  /* 4 KiB page table of the first 2 MiB */
#define HVT_BOOT_INFO_BASE  0x10000ULL /* boot info, then the manifest, then the command line */
#define HVT_GUEST_MIN_BASE  0x100000ULL
#define HVT_PAGE_2M         0x200000ULL
#define HVT_MAX_MEM         (2048ULL * HVT_PAGE_2M) /* 4 GiB: hypercall pointers are 32-bit */
#define HVT_CMDLINE_SIZE    8192U

/* ---- hypercalls: outl to port 0x500 + nr with the guest-physical address of the args ------ */

#define HVT_PIO_BASE 0x500
enum {
    HVT_HC_WALLTIME = 1,
    HVT_HC_PUTS = 2,
    HVT_HC_POLL = 3,
    HVT_HC_BLOCK_WRITE = 4,
    HVT_HC_BLOCK_READ = 5,
    HVT_HC_NET_WRITE = 6,
    HVT_HC_NET_READ = 7,
    HVT_HC_HALT = 8,
    HVT_HC_MAX = 9,
};

/* solo5_result_t */
enum { SOLO5_R_OK = 0, SOLO5_R_AGAIN = 1, SOLO5_R_EINVAL = 2, SOLO5_R_EUNSPEC = 3 };

/* Argument structs as the guest lays them out (x86_64: pointers and size_t are 64-bit). */
struct hvt_boot_info {
    uint64_t mem_size;
    uint64_t kernel_end;
    uint64_t cpu_cycle_freq; /* TSC frequency, Hz */
    uint64_t cmdline;        /* guest-physical address of the C string */
    uint64_t mft;            /* guest-physical address of the manifest */
};
struct hvt_hc_walltime { uint64_t nsecs; };
struct hvt_hc_puts { uint64_t data; uint64_t len; };
struct hvt_hc_block_write { uint64_t handle, offset, data, len; int32_t ret; };
struct hvt_hc_block_read { uint64_t handle, offset, data, len; int32_t ret; };
struct hvt_hc_net_write { uint64_t handle, data, len; int32_t ret; };
struct hvt_hc_net_read { uint64_t handle, data, len; int32_t ret; };
struct hvt_hc_poll { uint64_t timeout_nsecs, ready_set; int32_t ret; };
struct hvt_hc_halt { uint64_t cookie; int32_t exit_status; };

_Static_assert(sizeof(struct hvt_boot_info) == 40, "hvt_boot_info layout");
_Static_assert(sizeof(struct hvt_hc_block_read) == 40, "hvt_hc_block_read layout");
_Static_assert(sizeof(struct hvt_hc_net_read) == 32, "hvt_hc_net_read layout");
_Static_assert(sizeof(struct hvt_hc_poll) == 24, "hvt_hc_poll layout");
_Static_assert(sizeof(struct hvt_hc_halt) == 16, "hvt_hc_halt layout");

/* ---- the VM ---------------------------------------------------------------------------------- */

#define HVT_MAX_RO 16      /* read-only guest ranges the monitor refuses to write into */
#define HVT_MAX_DEVICES 63 /* manifest entries 1..63 */

struct runnc_hvt {
    int kvmfd, vmfd, vcpufd;
    struct kvm_run *run;
    size_t run_size;
    uint8_t *mem;
    uint64_t mem_size;
    uint64_t tsc_hz;
    /* Guest ranges mapped read-only on the host side (text, rodata): hypercalls must not
     * write there, or the monitor itself would take the SIGSEGV. */
    uint64_t ro[HVT_MAX_RO][2];
    unsigned nro;
    /* devices, copied from the plan; the guest names them by manifest index */
    struct runnc_hvt_block blocks[HVT_MAX_DEVICES];
    uint32_t nblocks;
    struct runnc_hvt_net nets[HVT_MAX_DEVICES];
    uint32_t nnets;
    int epollfd, timerfd; /* solo5_yield(): taps + a timer, as solo5-hvt on Linux (caller's) */
    bool sync_regs;       /* KVM copies the registers into the run area at every exit */
};

/* How a run of the vCPU loop ended. */
enum hvt_outcome { HVT_HALTED, HVT_GUEST_FAULT, HVT_MONITOR_ERROR };

/* hvt_vm.c */
int hvt_vm_open(struct runnc_hvt *vm, uint64_t mem_size, char *err, size_t errlen);
int hvt_vm_start_cpu(struct runnc_hvt *vm, uint64_t entry, char *err, size_t errlen);
void hvt_vm_close(struct runnc_hvt *vm);

/* hvt_layout.c: writes into guest memory only (no KVM), so it is testable on a plain buffer */
void hvt_layout_pagetables(uint8_t *mem, uint64_t mem_size);
void hvt_layout_gdt(uint8_t *mem);
int hvt_layout_boot_info(uint8_t *mem, uint64_t mem_size, uint64_t kernel_end, uint64_t tsc_hz,
                         const uint8_t *mft, uint32_t mft_size, const char *cmdline);
int hvt_check_plan(const struct runnc_hvt_plan *p, char *err, size_t errlen);
int hvt_load_segments(struct runnc_hvt *vm, const struct runnc_hvt_plan *p, char *err,
                      size_t errlen);

/* hvt_fds.c: add the taps to the poll hypercall's epoll set */
int hvt_devices_setup(struct runnc_hvt *vm, char *err, size_t errlen);

/* ---- the run loop (loop/): a freestanding image the monitor runs from memory of its own ---- */

#define HVT_LOOP_MAX_UNMAP 4 /* the gaps around guest memory, kvm_run and the loop's region */

/* What hvt_loop_entry() gets, in the loop's region: everything it touches besides guest
 * memory and kvm_run lives here or on the loop's stack. */
struct hvt_loop_args {
    struct runnc_hvt vm;                   /* a copy: the original is on the heap, unmapped */
    uint64_t unmap[HVT_LOOP_MAX_UNMAP][2]; /* host ranges to unmap first, {start, length} */
    uint32_t nunmap;
    uint16_t filter_len;                   /* struct sock_filter entries; 0: no filter */
    const void *filter;                    /* the program, in the region */
    int32_t fifo_fd;                       /* -1, or wait for `start` on this fifo first */
    const char *fifo_path;                 /* in the region: to reopen it (runnc_hvt_gate) */
};

/* The image build.py links from loop/ (generated source); its entry is at offset 0. */
extern const unsigned char runnc_hvt_loop_image[];
extern const size_t runnc_hvt_loop_image_size;

/* helpers: runnc_fail() and runnc_single_threaded() from csrc/common/host.h */
#include "host.h"
#define hvt_fail runnc_fail

#endif
