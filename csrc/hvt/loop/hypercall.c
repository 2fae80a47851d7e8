/*
 * The hvt hypercalls (Solo5 include/hvt_abi.h): the guest writes the guest-physical address
 * of an argument struct to port 0x500 + nr; we read and write that struct in guest memory.
 *
 * Part of the run loop image (loop.h): raw syscalls only.
 *
 * Every guest pointer is checked against guest memory before use, and pointers the monitor
 * writes through are also checked against the read-only segments (the host mapping there is
 * read-only; writing would crash the monitor instead of failing the call). A malformed
 * argument pointer is a guest fault; a bad handle, offset or length is SOLO5_R_EINVAL, as in
 * solo5-hvt. Host I/O errors, where solo5-hvt asserts, return SOLO5_R_EUNSPEC to the guest.
 */
#include <linux/errno.h>
#include <linux/eventpoll.h>
#include <linux/time.h>
#include <linux/time_types.h>
#include <stdbool.h>

#include "loop.h"
#include "sys.h"

#define INTERNAL_TIMERFD (~1ULL) /* epoll data of the poll timer, never a manifest index */
#define NSEC_PER_SEC 1000000000ULL

/* A switch, not a table of pointers: the image must hold no absolute addresses. */
static const char *hypercall_name(unsigned nr)
{
    switch (nr) {
    case HVT_HC_WALLTIME: return "walltime";
    case HVT_HC_PUTS: return "puts";
    case HVT_HC_POLL: return "poll";
    case HVT_HC_BLOCK_WRITE: return "block_write";
    case HVT_HC_BLOCK_READ: return "block_read";
    case HVT_HC_NET_WRITE: return "net_write";
    case HVT_HC_NET_READ: return "net_read";
    default: return "halt";
    }
}

/* The host address of guest range [gpa, gpa + len), or NULL if it is not all guest memory
 * (or, for writable, touches a read-only segment). */
static void *guest_ptr(const struct runnc_hvt *vm, uint64_t gpa, uint64_t len, bool writable)
{
    if (gpa > vm->mem_size || len > vm->mem_size - gpa)
        return NULL;
    if (writable)
        for (unsigned i = 0; i < vm->nro; i++)
            if (gpa < vm->ro[i][1] && gpa + len > vm->ro[i][0])
                return NULL;
    return vm->mem + gpa;
}

static const struct runnc_hvt_block *find_block(const struct runnc_hvt *vm, uint64_t handle)
{
    for (uint32_t i = 0; i < vm->nblocks; i++)
        if (vm->blocks[i].index == handle)
            return &vm->blocks[i];
    return NULL;
}

static const struct runnc_hvt_net *find_net(const struct runnc_hvt *vm, uint64_t handle)
{
    for (uint32_t i = 0; i < vm->nnets; i++)
        if (vm->nets[i].index == handle)
            return &vm->nets[i];
    return NULL;
}

/* By raw syscall: the vDSO that libc's clock_gettime uses is unmapped with everything else. */
static void hc_walltime(struct hvt_hc_walltime *a)
{
    struct __kernel_timespec ts = {0, 0};
    sys_clock_gettime(CLOCK_REALTIME, &ts);
    a->nsecs = (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void write_all(int fd, const uint8_t *data, uint64_t len)
{
    while (len) {
        long n = sys_write(fd, data, len);
        if (n == -EINTR)
            continue;
        if (n <= 0)
            return; /* console gone: drop the output, as a serial line would */
        data += n;
        len -= (uint64_t)n;
    }
}

static int hc_poll(struct runnc_hvt *vm, struct hvt_hc_poll *a, char *err, size_t errlen)
{
    struct __kernel_itimerspec it = {
        .it_value = {.tv_sec = (long long)(a->timeout_nsecs / NSEC_PER_SEC),
                     .tv_nsec = (long long)(a->timeout_nsecs % NSEC_PER_SEC)},
    };
    /* A zero it_value would disarm the timer and an empty wait set would then block forever. */
    it.it_value.tv_nsec |= 1;
    long rc = sys_timerfd_settime(vm->timerfd, 0, &it);
    if (rc < 0)
        return loop_fail_errno(err, errlen, "timerfd_settime", (int)-rc);
    struct epoll_event events[65];
    long n;
    do
        n = sys_epoll_pwait(vm->epollfd, events, 65, -1);
    while (n == -EINTR);
    if (n < 0)
        return loop_fail_errno(err, errlen, "epoll_pwait", (int)-n);
    uint64_t ready = 0;
    int count = 0;
    for (long i = 0; i < n; i++) {
        if (events[i].data == INTERNAL_TIMERFD)
            continue;
        ready |= 1ULL << events[i].data;
        count++;
    }
    a->ready_set = ready;
    a->ret = count;
    return 0;
}

/* Bounds and alignment of a block request: offset and length whole sectors inside the
 * device. Solo5's bindings check alignment too; the tender must not rely on them. */
static int block_range_ok(const struct runnc_hvt_block *b, uint64_t offset, uint64_t len)
{
    if (len == 0 || offset % b->block_size || len % b->block_size)
        return 0;
    return offset < b->capacity && len <= b->capacity - offset;
}

static int32_t block_io(const struct runnc_hvt *vm, bool write, uint64_t handle, uint64_t offset,
                        uint64_t data, uint64_t len)
{
    const struct runnc_hvt_block *b = find_block(vm, handle);
    if (b == NULL || !block_range_ok(b, offset, len))
        return SOLO5_R_EINVAL;
    uint8_t *buf = guest_ptr(vm, data, len, !write);
    if (buf == NULL)
        return SOLO5_R_EINVAL;
    /* One pread/pwrite per sector: the seccomp policy pins the count to block_size, so a
     * multi-sector request (solo5-hvt allows them) is split rather than refused. */
    for (uint64_t done = 0; done < len; done += b->block_size) {
        long n;
        do
            n = write ? sys_pwrite(b->fd, buf + done, b->block_size, (long)(offset + done))
                      : sys_pread(b->fd, buf + done, b->block_size, (long)(offset + done));
        while (n == -EINTR);
        if (n != (long)b->block_size)
            return SOLO5_R_EUNSPEC; /* host I/O error, or the image shrank under us */
    }
    return SOLO5_R_OK;
}

static int32_t net_write(const struct runnc_hvt *vm, const struct hvt_hc_net_write *a)
{
    const struct runnc_hvt_net *d = find_net(vm, a->handle);
    if (d == NULL)
        return SOLO5_R_EINVAL;
    const uint8_t *buf = guest_ptr(vm, a->data, a->len, false);
    if (buf == NULL || a->len == 0)
        return SOLO5_R_EINVAL;
    long n;
    do
        n = sys_write(d->fd, buf, a->len);
    while (n == -EINTR);
    /* A tap takes a frame whole or not at all. */
    return n == (long)a->len ? SOLO5_R_OK : SOLO5_R_EUNSPEC;
}

static int32_t net_read(const struct runnc_hvt *vm, struct hvt_hc_net_read *a)
{
    const struct runnc_hvt_net *d = find_net(vm, a->handle);
    if (d == NULL)
        return SOLO5_R_EINVAL;
    uint8_t *buf = guest_ptr(vm, a->data, a->len, true);
    if (buf == NULL)
        return SOLO5_R_EINVAL;
    long n;
    do
        n = sys_read(d->fd, buf, a->len);
    while (n == -EINTR);
    if (n == 0 || n == -EAGAIN)
        return SOLO5_R_AGAIN;
    if (n < 0)
        return SOLO5_R_EUNSPEC;
    a->len = (uint64_t)n;
    return SOLO5_R_OK;
}

static size_t arg_size(unsigned nr)
{
    switch (nr) {
    case HVT_HC_WALLTIME: return sizeof(struct hvt_hc_walltime);
    case HVT_HC_PUTS: return sizeof(struct hvt_hc_puts);
    case HVT_HC_POLL: return sizeof(struct hvt_hc_poll);
    case HVT_HC_BLOCK_WRITE: return sizeof(struct hvt_hc_block_write);
    case HVT_HC_BLOCK_READ: return sizeof(struct hvt_hc_block_read);
    case HVT_HC_NET_WRITE: return sizeof(struct hvt_hc_net_write);
    case HVT_HC_NET_READ: return sizeof(struct hvt_hc_net_read);
    default: return sizeof(struct hvt_hc_halt);
    }
}

int hvt_hypercall(struct runnc_hvt *vm, unsigned nr, uint64_t gpa, int *status, char *err,
                  size_t errlen)
{
    if (nr == 0 || nr >= HVT_HC_MAX) {
        loop_fail(err, errlen, "unknown hypercall %u", nr);
        return HVT_GUEST_FAULT;
    }
    /* Halt and puts only read their arguments; the others write results back. */
    bool out = nr != HVT_HC_HALT && nr != HVT_HC_PUTS;
    void *arg = guest_ptr(vm, gpa, arg_size(nr), out);
    if (arg == NULL) {
        loop_fail(err, errlen, "%s hypercall with its argument at %#llx outside %sguest memory",
                  hypercall_name(nr), (unsigned long long)gpa, out ? "writable " : "");
        return HVT_GUEST_FAULT;
    }
    switch (nr) {
    case HVT_HC_WALLTIME:
        hc_walltime(arg);
        return -1;
    case HVT_HC_PUTS: {
        const struct hvt_hc_puts *a = arg;
        const uint8_t *data = guest_ptr(vm, a->data, a->len, false);
        if (data == NULL) {
            loop_fail(err, errlen, "puts of %llu bytes at %#llx outside guest memory",
                      (unsigned long long)a->len, (unsigned long long)a->data);
            return HVT_GUEST_FAULT;
        }
        write_all(1, data, a->len);
        return -1;
    }
    case HVT_HC_POLL:
        return hc_poll(vm, arg, err, errlen) ? HVT_MONITOR_ERROR : -1;
    case HVT_HC_BLOCK_WRITE: {
        struct hvt_hc_block_write *a = arg;
        a->ret = block_io(vm, true, a->handle, a->offset, a->data, a->len);
        return -1;
    }
    case HVT_HC_BLOCK_READ: {
        struct hvt_hc_block_read *a = arg;
        a->ret = block_io(vm, false, a->handle, a->offset, a->data, a->len);
        return -1;
    }
    case HVT_HC_NET_WRITE: {
        struct hvt_hc_net_write *a = arg;
        a->ret = net_write(vm, a);
        return -1;
    }
    case HVT_HC_NET_READ: {
        struct hvt_hc_net_read *a = arg;
        a->ret = net_read(vm, a);
        return -1;
    }
    case HVT_HC_HALT:
        *status = ((const struct hvt_hc_halt *)arg)->exit_status;
        return HVT_HALTED;
    }
    return -1;
}
