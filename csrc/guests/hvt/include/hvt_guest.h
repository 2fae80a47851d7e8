/*
 * The small runtime of our freestanding hvt test guests (csrc/guests/hvt/lib/).
 *
 * An hvt guest runs in ring 0 of its own KVM virtual machine: no system calls, only
 * hypercalls (`outl` of an argument struct's guest-physical address to port 0x500 + nr).
 * Layouts follow Solo5's include/hvt_abi.h, elf_abi.h and mft_abi.h and are pinned with
 * _Static_assert. Build with -mgeneral-regs-only: on paravirtual KVM hosts guest SSE/FPU
 * instructions may not be emulated.
 *
 * A guest defines GUEST_MANIFEST(...) and `int guest_main(const struct hvt_boot_info *bi)`;
 * lib/start.c enters it and halts with its return value as the exit status.
 */
#ifndef HVT_GUEST_H
#define HVT_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime.h"

#ifndef SOLO5_ABI_VERSION
#error "build with -DSOLO5_ABI_VERSION=1 (Solo5 <= 0.7) or 2 (Solo5 >= 0.8)"
#endif

/* ---- memory map and boot info ------------------------------------------------------------ */

#define HVT_BOOT_INFO_BASE 0x10000UL
#define HVT_GUEST_MIN_BASE 0x100000UL
#define HVT_CMDLINE_SIZE   8192

struct hvt_boot_info {
    uint64_t mem_size;       /* guest memory is 0 .. mem_size */
    uint64_t kernel_end;     /* first address after the loaded ELF */
    uint64_t cpu_cycle_freq; /* TSC frequency in Hz */
    const char *cmdline;     /* NUL-terminated, arguments joined by single spaces */
    const void *mft;         /* struct mft, tender fields filled in */
};
_Static_assert(sizeof(struct hvt_boot_info) == 40, "hvt_boot_info size");

/* Exit status of a guest whose boot info fails the runtime's checks (lib/start.c). */
#define GUEST_EXIT_BAD_BOOT 2

int guest_main(const struct hvt_boot_info *bi);

/* ---- hypercalls ---------------------------------------------------------------------------- */

#define HVT_PIO_BASE 0x500
enum {
    HVT_HC_WALLTIME = 1,
    HVT_HC_PUTS,
    HVT_HC_POLL,
    HVT_HC_BLOCK_WRITE,
    HVT_HC_BLOCK_READ,
    HVT_HC_NET_WRITE,
    HVT_HC_NET_READ,
    HVT_HC_HALT,
};

enum { SOLO5_R_OK = 0, SOLO5_R_AGAIN, SOLO5_R_EINVAL, SOLO5_R_EUNSPEC };

struct hvt_hc_walltime { uint64_t nsecs; };
struct hvt_hc_puts { const char *data; size_t len; };
struct hvt_hc_poll { uint64_t timeout_nsecs; uint64_t ready_set; int ret; };
struct hvt_hc_block_write { uint64_t handle; uint64_t offset; const void *data; size_t len; int ret; };
struct hvt_hc_block_read { uint64_t handle; uint64_t offset; void *data; size_t len; int ret; };
struct hvt_hc_net_write { uint64_t handle; const void *data; size_t len; int ret; };
struct hvt_hc_net_read { uint64_t handle; void *data; size_t len; int ret; };
struct hvt_hc_halt { void *cookie; int exit_status; };

/* Guest memory is identity-mapped and at most 4 GiB, so a pointer is its 32-bit port value. */
static inline void hvt_hypercall(int nr, volatile void *arg)
{
    __asm__ __volatile__("outl %0, %1"
                         :
                         : "a"((uint32_t)(uintptr_t)arg), "d"((uint16_t)(HVT_PIO_BASE + nr))
                         : "memory");
}

__attribute__((noreturn)) void guest_halt(int status);

/* strings, console and command line: common/runtime.h */

/* ---- manifest and notes: common/solo5_notes.h ------------------------------------------- */

#include "solo5_notes.h"

#define HVT_ABI_TARGET 1U /* enum abi_target: 1 hvt, 2 spt */

/* The manifest the tender handed over, after start; and a device (with its handle). */
const struct mft *mft_get(void);
const struct mft_entry *mft_find(const char *name, uint32_t type, uint64_t *handle);

#endif
