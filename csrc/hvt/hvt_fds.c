/*
 * The poll hypercall's fds: an epoll set with a timerfd (made before the VM, so a seccomp
 * policy can name them) to which the taps are added once the VM exists. The hypercalls
 * themselves are served by the run loop (loop/hypercall.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "hvt_internal.h"

#define INTERNAL_TIMERFD (~1ULL) /* epoll data of the poll timer, never a manifest index */

int runnc_hvt_make_fds(int *epollfd, int *timerfd)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1)
        return -1;
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = INTERNAL_TIMERFD};
    if (tfd == -1 || epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) == -1) {
        int saved = errno;
        close(ep);
        if (tfd != -1)
            close(tfd);
        errno = saved;
        return -1;
    }
    *epollfd = ep;
    *timerfd = tfd;
    return 0;
}

int hvt_devices_setup(struct runnc_hvt *vm, char *err, size_t errlen)
{
    struct epoll_event ev = {.events = EPOLLIN};
    for (uint32_t i = 0; i < vm->nnets; i++) {
        ev.data.u64 = vm->nets[i].index; /* poll reports readiness as 1 << handle */
        if (epoll_ctl(vm->epollfd, EPOLL_CTL_ADD, vm->nets[i].fd, &ev) == -1)
            return hvt_fail(err, errlen, "epoll_ctl(net fd %d): %s", vm->nets[i].fd,
                            strerror(errno));
    }
    return 0;
}
