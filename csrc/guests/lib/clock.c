/*
 * Clocks and sleeping the way Solo5's spt bindings do it: clock_gettime for time, and for
 * waiting the tender's timerfd (already in the epoll set with data.u64 = ~1U) plus
 * epoll_pwait on the tender's epoll fd. Both fds come from the boot info.
 */
#include "guest.h"

uint64_t clock_ns(int clock)
{
    struct timespec ts;
    long rc = sys_clock_gettime(clock, &ts);
    if (rc != 0) {
        cprintf("guest: clock_gettime(%d) failed: %ld\n", clock, rc);
        sys_exit_group(1);
    }
    return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void arm_timer(uint64_t ns)
{
    /* Relative time, flags 0; an all-zero it_value disarms (and clears pending expiries). */
    struct itimerspec its = {
        .it_value = { .tv_sec = (int64_t)(ns / NSEC_PER_SEC),
                      .tv_nsec = (int64_t)(ns % NSEC_PER_SEC) },
    };
    long rc = sys_timerfd_settime(guest_boot_info()->timerfd, 0, &its);
    if (rc != 0) {
        cprintf("guest: timerfd_settime failed: %ld\n", rc);
        sys_exit_group(1);
    }
}

int wait_events(struct epoll_event *events, int max, int timeout_ms)
{
    for (;;) {
        long n = sys_epoll_pwait(guest_boot_info()->epollfd, events, max, timeout_ms);
        if (n >= 0)
            return (int)n;
        if (n != -EINTR) {
            cprintf("guest: epoll_pwait failed: %ld\n", n);
            sys_exit_group(1);
        }
    }
}

void sleep_ns(uint64_t ns)
{
    if (ns == 0)
        return;
    arm_timer(ns);
    for (bool fired = false; !fired;) {
        struct epoll_event ev[8];
        int n = wait_events(ev, 8, -1);
        for (int i = 0; i < n; i++)
            fired |= ev[i].data == SPT_INTERNAL_TIMERFD;
    }
    arm_timer(0);
}
