/*
 * time: tests the clocks and the timer path of the spt allowlist.
 *
 * Default: reads CLOCK_MONOTONIC and CLOCK_REALTIME, sleeps ~50 ms with timerfd_settime on the
 * tender's timerfd + epoll_pwait on its epoll fd, and checks both clocks advanced (monotonic
 * by at least the sleep). Prints `time: ok` and exits 0, or `time: FAIL <why>` and exits 1.
 *
 * Token `sleep=SECONDS`: prints `sleeping`, sleeps that long, exits 0 (lifecycle and signal
 * tests: it must die on SIGTERM / SIGKILL while blocked in epoll_pwait).
 * No devices.
 */
#include "guest.h"

GUEST_MANIFEST(0);

#define SLEEP_NS ((uint64_t)50 * 1000 * 1000)

int guest_main(const struct spt_boot_info *bi)
{
    (void)bi;
    uint64_t seconds;
    if (cmdline_uint("sleep", &seconds)) {
        cprintf("sleeping\n");
        sleep_ns(seconds * NSEC_PER_SEC);
        return 0;
    }

    uint64_t mono0 = clock_ns(CLOCK_MONOTONIC), wall0 = clock_ns(CLOCK_REALTIME);
    sleep_ns(SLEEP_NS);
    uint64_t mono1 = clock_ns(CLOCK_MONOTONIC), wall1 = clock_ns(CLOCK_REALTIME);

    if (mono0 == 0 || wall0 == 0) {
        cprintf("time: FAIL a clock reads zero (monotonic %lu, realtime %lu)\n", mono0, wall0);
        return 1;
    }
    if (mono1 < mono0 + SLEEP_NS) {
        cprintf("time: FAIL monotonic advanced %lu ns across a %lu ns sleep\n", mono1 - mono0,
                SLEEP_NS);
        return 1;
    }
    if (wall1 <= wall0) {
        cprintf("time: FAIL realtime did not advance (%lu -> %lu)\n", wall0, wall1);
        return 1;
    }
    cprintf("time: ok (slept %lu us)\n", (mono1 - mono0) / 1000);
    return 0;
}
