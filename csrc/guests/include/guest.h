/*
 * The small runtime shared by our freestanding spt test guests (csrc/guests/lib/).
 *
 * A guest defines GUEST_MANIFEST(...) and `int guest_main(const struct spt_boot_info *bi)`;
 * lib/start.c enters it and passes its return value to exit_group. Everything the runtime
 * does goes through raw `syscall` instructions from the spt allowlist (no libc, no vDSO).
 */
#ifndef GUEST_GUEST_H
#define GUEST_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime.h"
#include "solo5_spt.h"

/* Exit status of a guest whose boot info fails the runtime's sanity checks (lib/start.c). */
#define GUEST_EXIT_BAD_BOOT 2

int guest_main(const struct spt_boot_info *bi);

/* The boot info guest_main was given (lib/start.c checked it is at 0x11000 and sane). */
const struct spt_boot_info *guest_boot_info(void);

/* ---- syscalls (lib/sys.c): return the raw kernel result, -errno on failure ---------------- */

#define SYS_read            0
#define SYS_write           1
#define SYS_pread64         17
#define SYS_pwrite64        18
#define SYS_getpid          39
#define SYS_arch_prctl      158
#define SYS_clock_gettime   228
#define SYS_exit_group      231
#define SYS_epoll_pwait     281
#define SYS_timerfd_settime 286

#define ARCH_SET_FS     0x1002
#define CLOCK_REALTIME  0
#define CLOCK_MONOTONIC 1
#define EAGAIN          11
#define EINTR           4
#define EPOLLIN         0x001U

struct timespec {
    int64_t tv_sec;
    int64_t tv_nsec;
};

struct itimerspec {
    struct timespec it_interval;
    struct timespec it_value;
};

/* The kernel's x86_64 epoll_event is packed: 12 bytes. */
struct epoll_event {
    uint32_t events;
    uint64_t data;
} __attribute__((packed));

long sys_call6(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
long sys_read(int fd, void *buf, size_t count);
long sys_write(int fd, const void *buf, size_t count);
long sys_pread64(int fd, void *buf, size_t count, uint64_t offset);
long sys_pwrite64(int fd, const void *buf, size_t count, uint64_t offset);
long sys_clock_gettime(int clock, struct timespec *ts);
long sys_epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout_ms);
long sys_timerfd_settime(int fd, int flags, const struct itimerspec *new_value);
long sys_arch_prctl(int code, unsigned long addr);
__attribute__((noreturn)) void sys_exit_group(int status);

/* strings, console and command line: common/runtime.h */

/* ---- manifest (lib/mft.c) -------------------------------------------------------------------- */

/* The tender's manifest copy (boot info); valid after start. */
const struct mft *mft_get(void);
/* The device named `name` of `type`, or NULL. Also returns its index in *index if non-NULL
 * (the epoll data.u64 of a net device). */
const struct mft_entry *mft_find(const char *name, uint32_t type, unsigned *index);

/* ---- time (lib/clock.c) ---------------------------------------------------------------------- */

#define NSEC_PER_SEC ((uint64_t)1000000000)

/* Nanoseconds on CLOCK_MONOTONIC / CLOCK_REALTIME; exits the guest if the call fails. */
uint64_t clock_ns(int clock);
/* Arm the tender's timerfd for `ns` and wait in epoll_pwait until it fires; disarms it after
 * (a fired, still-armed timerfd would keep the epoll set readable). Events for other fds that
 * arrive meanwhile are ignored. */
void sleep_ns(uint64_t ns);
/* Wait in epoll_pwait (timeout_ms: -1 forever) and return the number of events, >= 0. */
int wait_events(struct epoll_event *events, int max, int timeout_ms);

/* ---- checksums (lib/checksum.c) -------------------------------------------------------------- */

/* One's-complement sum of `len` bytes (network order words) added to `sum`, not folded. */
uint32_t csum_add(uint32_t sum, const void *data, size_t len);
/* Fold and complement a csum_add() result: the value to store in a checksum field. */
uint16_t csum_fold(uint32_t sum);

/* ---- byte order ---------------------------------------------------------------------------------- */

static inline uint16_t get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

#endif
