/*
 * Processes by identity: a pid is only "ours" while /proc/PID/stat field 22 (its start time)
 * equals the one recorded at create, so a recycled pid never passes for our init.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "front.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

long long proc_start_time(pid_t pid)
{
    char path[32], buf[1024];
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* comm (field 2) may hold spaces and parentheses: fields start after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ')
        return -1;
    p += 2;
    if (*p == 'Z' || *p == 'X')
        return -1;
    /* Field 3 (state) is at p; field 22 is 19 fields further. */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (p == NULL)
            return -1;
        p++;
    }
    char *end;
    errno = 0;
    long long start = strtoll(p, &end, 10);
    if (errno != 0 || end == p || (*end != ' ' && *end != '\n' && *end != '\0'))
        return -1;
    return start;
}

bool pid_matches(pid_t pid, long long start)
{
    long long now = proc_start_time(pid);
    return now >= 0 && now == start;
}

int signal_verified(pid_t pid, long long start, int signum)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return -1;
    /* Checked after the pidfd is open: if PID was recycled before this point the start time
     * differs, and once the pidfd is open it names this process, whatever happens to PID. */
    int rc = -1;
    if (pid_matches(pid, start)) {
        rc = (int)syscall(SYS_pidfd_send_signal, pidfd, signum, NULL, 0);
        if (rc < 0 && errno == ESRCH)
            rc = 0;
    }
    close(pidfd);
    return rc;
}
