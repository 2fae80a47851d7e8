/*
 * Raw Linux system calls for the hvt monitor's run loop (x86_64).
 *
 * The run loop runs after the monitor has unmapped libc along with everything else of the
 * host process, so it cannot call libc's wrappers: these issue the syscall instruction
 * directly and return the kernel's result (-errno on failure; there is no errno, no TLS).
 * Always inlined, so no copy of them ends up outside the loop image.
 */
#ifndef RUNNC_HVT_LOOP_SYS_H
#define RUNNC_HVT_LOOP_SYS_H

#include <asm/unistd.h>

#define SYS_INLINE static inline __attribute__((always_inline))

SYS_INLINE long sys_call6(long nr, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

#define SYS_ARG(x) ((long)(x))

SYS_INLINE long sys_write(int fd, const void *buf, unsigned long len)
{
    return sys_call6(__NR_write, fd, SYS_ARG(buf), SYS_ARG(len), 0, 0, 0);
}

SYS_INLINE long sys_read(int fd, void *buf, unsigned long len)
{
    return sys_call6(__NR_read, fd, SYS_ARG(buf), SYS_ARG(len), 0, 0, 0);
}

SYS_INLINE long sys_pread(int fd, void *buf, unsigned long len, long offset)
{
    return sys_call6(__NR_pread64, fd, SYS_ARG(buf), SYS_ARG(len), offset, 0, 0);
}

SYS_INLINE long sys_pwrite(int fd, const void *buf, unsigned long len, long offset)
{
    return sys_call6(__NR_pwrite64, fd, SYS_ARG(buf), SYS_ARG(len), offset, 0, 0);
}

SYS_INLINE long sys_open(const char *path, int flags)
{
    return sys_call6(__NR_open, SYS_ARG(path), flags, 0, 0, 0, 0);
}

SYS_INLINE long sys_close(int fd)
{
    return sys_call6(__NR_close, fd, 0, 0, 0, 0, 0);
}

SYS_INLINE long sys_poll(void *fds, unsigned long nfds, int timeout)
{
    return sys_call6(__NR_poll, SYS_ARG(fds), SYS_ARG(nfds), timeout, 0, 0, 0);
}

SYS_INLINE long sys_ioctl(int fd, unsigned long request, long arg)
{
    return sys_call6(__NR_ioctl, fd, SYS_ARG(request), arg, 0, 0, 0);
}

SYS_INLINE long sys_munmap(unsigned long addr, unsigned long len)
{
    return sys_call6(__NR_munmap, SYS_ARG(addr), SYS_ARG(len), 0, 0, 0, 0);
}

SYS_INLINE long sys_prctl(int option, unsigned long arg2)
{
    return sys_call6(__NR_prctl, option, SYS_ARG(arg2), 0, 0, 0, 0);
}

SYS_INLINE long sys_seccomp(unsigned op, unsigned flags, const void *args)
{
    return sys_call6(__NR_seccomp, op, flags, SYS_ARG(args), 0, 0, 0);
}

SYS_INLINE long sys_clock_gettime(int clock, void *ts)
{
    return sys_call6(__NR_clock_gettime, clock, SYS_ARG(ts), 0, 0, 0, 0);
}

/* epoll_pwait with no signal mask: the call the hvt policy allows (glibc's epoll_wait). */
SYS_INLINE long sys_epoll_pwait(int epfd, void *events, int maxevents, int timeout)
{
    return sys_call6(__NR_epoll_pwait, epfd, SYS_ARG(events), maxevents, timeout, 0, 8);
}

SYS_INLINE long sys_timerfd_settime(int fd, int flags, const void *new_value)
{
    return sys_call6(__NR_timerfd_settime, fd, flags, SYS_ARG(new_value), 0, 0, 0);
}

SYS_INLINE __attribute__((noreturn)) void sys_exit_group(int status)
{
    for (;;)
        sys_call6(__NR_exit_group, status, 0, 0, 0, 0, 0);
}

#endif
