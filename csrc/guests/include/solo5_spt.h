/*
 * The Solo5 spt guest/tender interface, as our test guests see it.
 *
 * Written from the facts in Solo5's include/solo5/spt_abi.h (see /work/shared/DESIGN.md
 * section 2); manifest and notes are common/solo5_notes.h.
 */
#ifndef GUEST_SOLO5_SPT_H
#define GUEST_SOLO5_SPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef SOLO5_ABI_VERSION
#error "build with -DSOLO5_ABI_VERSION=1 (Solo5 <= 0.7) or 2 (Solo5 >= 0.8)"
#endif

/* ---- memory map (spt) ------------------------------------------------------------------ */

#define SPT_HOST_MEM_BASE    0x10000UL  /* lowest guest address the tender maps */
#define SPT_BOOT_INFO_BASE   0x11000UL  /* where struct spt_boot_info lives */
#define SPT_GUEST_MIN_BASE   0x100000UL /* lowest address a PT_LOAD segment may use */
#define SPT_CMDLINE_SIZE     8192       /* bytes, including the terminating NUL */
#define SPT_INTERNAL_TIMERFD (~1U)      /* epoll data.u64 of the tender's timerfd */

/* Passed in %rdi to _start. */
struct spt_boot_info {
    uint64_t mem_size;   /* guest memory is SPT_HOST_MEM_BASE .. mem_size */
    uint64_t kernel_end; /* first address after the loaded ELF */
    const char *cmdline; /* NUL-terminated, arguments joined by single spaces */
    const void *mft;     /* struct mft, with the tender's fields filled in */
    int epollfd;         /* contains the timerfd and every net device's fd */
    int timerfd;
};

_Static_assert(offsetof(struct spt_boot_info, mft) == 24, "spt_boot_info.mft");
_Static_assert(offsetof(struct spt_boot_info, epollfd) == 32, "spt_boot_info.epollfd");
_Static_assert(sizeof(struct spt_boot_info) == 40, "spt_boot_info size");

#include "solo5_notes.h"

#define SPT_ABI_TARGET 2U /* enum abi_target: 1 hvt, 2 spt */

#endif
