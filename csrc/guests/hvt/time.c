/*
 * time (hvt): the clock hypercalls and the TSC. Reads wall time, waits in the poll hypercall
 * for 50 ms (token `ms=N`: N ms) with no devices, and checks that both wall time and the TSC
 * (scaled by the boot info's cpu_cycle_freq) advanced by about that much. Prints "time: ok".
 * Tests also use a long wait to look at the running monitor from outside.
 */
#include "hvt_guest.h"

GUEST_MANIFEST(0);

static uint64_t walltime(void)
{
    struct hvt_hc_walltime w = { 0 };
    hvt_hypercall(HVT_HC_WALLTIME, &w);
    return w.nsecs;
}

static uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

int guest_main(const struct hvt_boot_info *bi)
{
    uint64_t ms = 50;
    if (cmdline_value("ms", &(size_t){ 0 }) && (!cmdline_uint("ms", &ms) || ms == 0)) {
        cprintf("time: ms= needs a positive number\n");
        return 1;
    }
    const uint64_t wait = ms * 1000000ULL; /* ns */
    cprintf("time: waiting %lu ms\n", ms);
    uint64_t w0 = walltime(), t0 = rdtsc();
    struct hvt_hc_poll p = { .timeout_nsecs = wait, .ret = -1 };
    hvt_hypercall(HVT_HC_POLL, &p);
    uint64_t w1 = walltime(), t1 = rdtsc();
    uint64_t wall_ns = w1 - w0;
    uint64_t tsc_us = (t1 - t0) / (bi->cpu_cycle_freq / 1000000ULL);
    cprintf("time: poll ret=%d wall=%lu us tsc=%lu us\n", p.ret, wall_ns / 1000, tsc_us);
    if (w0 < 1500000000ULL * 1000000000ULL) {
        cprintf("time: wall clock before 2017\n");
        return 1;
    }
    if (p.ret != 0 || p.ready_set != 0 || wall_ns < wait || wall_ns > 20 * wait ||
        tsc_us < wait / 1000 / 2 || tsc_us > 20 * wait / 1000) {
        cprintf("time: out of range\n");
        return 1;
    }
    cprintf("time: ok\n");
    return 0;
}
