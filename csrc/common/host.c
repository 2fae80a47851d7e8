#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "host.h"

int runnc_fail(char *err, size_t errlen, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    errno = saved;
    return -1;
}

int runnc_single_threaded(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *t = strstr(buf, "\nThreads:");
    return t != NULL && strtol(t + 9, NULL, 10) == 1;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

void runnc_close_fds_except(int *keep, size_t nkeep)
{
    qsort(keep, nkeep, sizeof *keep, cmp_int);
    unsigned lo = 3;
    for (size_t i = 0; i < nkeep; i++) {
        if (keep[i] < (int)lo)
            continue;
        if ((unsigned)keep[i] > lo)
            syscall(SYS_close_range, lo, (unsigned)keep[i] - 1, 0);
        lo = (unsigned)keep[i] + 1;
    }
    syscall(SYS_close_range, lo, ~0U, 0);
}

void runnc_reset_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
}

void runnc_unregister_rseq(void)
{
    if (__rseq_size == 0)
        return;
    void *area = (char *)__builtin_thread_pointer() + __rseq_offset;
    /* The registered length is 32 on glibc 2.35..2.39 even where __rseq_size says 20. */
    if (syscall(SYS_rseq, area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) == 0)
        return;
    syscall(SYS_rseq, area, __rseq_size, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
}

int runnc_handshake(int ready_fd, int go_fd)
{
    ssize_t n;
    do
        n = write(ready_fd, "ok", 2);
    while (n < 0 && errno == EINTR);
    if (n != 2)
        return -1;
    char answer[16];
    do
        n = read(go_fd, answer, sizeof answer);
    while (n < 0 && errno == EINTR);
    return n == 2 && memcmp(answer, "go", 2) == 0 ? 0 : -1;
}

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/* struct open_how of <linux/openat2.h>, spelled out: older headers lack it. */
struct runnc_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

int runnc_openat2(int dirfd, const char *path, unsigned long long flags,
                  unsigned long long resolve)
{
    struct runnc_open_how how = {.flags = flags, .mode = 0, .resolve = resolve};
    for (int attempt = 0;; attempt++) {
        long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
        if (fd >= 0 || (errno != EAGAIN && errno != EINTR) || attempt >= 64)
            return (int)fd;
    }
}
