/*
 * Raw x86_64 Linux system calls: number in %rax, arguments in %rdi %rsi %rdx %r10 %r8 %r9,
 * result (or -errno) in %rax; the instruction clobbers %rcx and %r11.
 */
#include "guest.h"

long sys_call6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    long ret;

    __asm__ __volatile__("syscall"
                         : "=a"(ret)
                         : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                         : "rcx", "r11", "memory");
    return ret;
}

long sys_read(int fd, void *buf, size_t count)
{
    return sys_call6(SYS_read, fd, (long)buf, (long)count, 0, 0, 0);
}

long sys_write(int fd, const void *buf, size_t count)
{
    return sys_call6(SYS_write, fd, (long)buf, (long)count, 0, 0, 0);
}

long sys_pread64(int fd, void *buf, size_t count, uint64_t offset)
{
    return sys_call6(SYS_pread64, fd, (long)buf, (long)count, (long)offset, 0, 0);
}

long sys_pwrite64(int fd, const void *buf, size_t count, uint64_t offset)
{
    return sys_call6(SYS_pwrite64, fd, (long)buf, (long)count, (long)offset, 0, 0);
}

long sys_clock_gettime(int clock, struct timespec *ts)
{
    return sys_call6(SYS_clock_gettime, clock, (long)ts, 0, 0, 0, 0);
}

long sys_epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout_ms)
{
    /* No signal mask (NULL, size 8), like Solo5's spt bindings. */
    return sys_call6(SYS_epoll_pwait, epfd, (long)events, maxevents, timeout_ms, 0, 8);
}

long sys_timerfd_settime(int fd, int flags, const struct itimerspec *new_value)
{
    return sys_call6(SYS_timerfd_settime, fd, flags, (long)new_value, 0, 0, 0);
}

long sys_arch_prctl(int code, unsigned long addr)
{
    return sys_call6(SYS_arch_prctl, code, (long)addr, 0, 0, 0, 0);
}

void sys_exit_group(int status)
{
    sys_call6(SYS_exit_group, status, 0, 0, 0, 0, 0);
    for (;;)
        __asm__ __volatile__("ud2"); /* not reached; a fault beats running on */
}
