/*
 * The hvt monitor's run loop: what a running hvt guest's process holds of host code.
 *
 * runnc_hvt_run() (../hvt_main.c) copies this image into a region of its own, next to the
 * loop's arguments and a small stack, switches to that stack and calls hvt_loop_entry(). From
 * here on nothing of libc or the interpreter is needed: the entry unmaps every other host
 * mapping (interpreter, libc, heap, old stack, vDSO), keeping only guest memory, the vCPU's
 * kvm_run area and this region, waits for `start` if the container was only created, installs
 * the seccomp filter and runs the vCPU until the guest halts. The process then exits with the guest's status (see ../hvt_main.c and docs/hvt.md).
 */
#include <linux/errno.h>
#include <linux/fcntl.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/poll.h>
#include <linux/prctl.h>
#include <linux/seccomp.h>
#include <stdbool.h>

#include "loop.h"
#include "sys.h"

#define MSG_MAX 512

/* The guest's rip for a fault report: from the sync regs when KVM keeps them, else by ioctl
 * (only reached without a seccomp filter: KVM_GET_REGS is not in the hvt policy). */
static unsigned long long guest_rip(const struct runnc_hvt *vm)
{
    if (vm->sync_regs)
        return vm->run->s.regs.regs.rip;
    struct kvm_regs regs;
    if (sys_ioctl(vm->vcpufd, KVM_GET_REGS, (long)&regs) < 0)
        return ~0ULL;
    return regs.rip;
}

/* A port write: a hypercall. -1 to go on, or how the run ended. */
static int io_exit(struct runnc_hvt *vm, int *status, char *err, size_t errlen)
{
    struct kvm_run *run = vm->run;
    unsigned port = run->io.port;
    if (run->io.direction != KVM_EXIT_IO_OUT || run->io.size != 4 || run->io.count != 1 ||
        port < HVT_PIO_BASE || port >= HVT_PIO_BASE + HVT_HC_MAX) {
        loop_fail(err, errlen, "guest fault: %s of I/O port %#x, rip=%#llx",
                  run->io.direction == KVM_EXIT_IO_OUT ? "write" : "read", port, guest_rip(vm));
        return HVT_GUEST_FAULT;
    }
    uint32_t gpa;
    __builtin_memcpy(&gpa, (uint8_t *)run + run->io.data_offset, sizeof gpa);
    char why[200];
    int rc = hvt_hypercall(vm, port - HVT_PIO_BASE, gpa, status, why, sizeof why);
    if (rc == HVT_GUEST_FAULT)
        loop_fail(err, errlen, "guest fault: %s, rip=%#llx", why, guest_rip(vm));
    else if (rc == HVT_MONITOR_ERROR)
        loop_fail(err, errlen, "%s", why);
    return rc;
}

/* Run the vCPU until the guest halts or something ends it. */
static enum hvt_outcome vcpu_loop(struct runnc_hvt *vm, int *status, char *err, size_t errlen)
{
    struct kvm_run *run = vm->run;
    for (;;) {
        long rc = sys_ioctl(vm->vcpufd, KVM_RUN, 0);
        if (rc < 0) {
            if (rc == -EINTR || rc == -EAGAIN)
                continue;
            if (rc == -EFAULT) {
                /* KVM could not map the page the guest touched with the access it wanted:
                 * in practice a write to a read-only segment (text, rodata). */
                loop_fail(err, errlen, "guest fault: memory access denied, rip=%#llx",
                          guest_rip(vm));
                return HVT_GUEST_FAULT;
            }
            loop_fail_errno(err, errlen, "KVM_RUN", (int)-rc);
            return HVT_MONITOR_ERROR;
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO: {
            int outcome = io_exit(vm, status, err, errlen);
            if (outcome >= 0)
                return (enum hvt_outcome)outcome;
            continue;
        }
        case KVM_EXIT_SHUTDOWN:
            loop_fail(err, errlen, "guest fault: triple fault (unhandled exception), rip=%#llx",
                      guest_rip(vm));
            return HVT_GUEST_FAULT;
        case KVM_EXIT_HLT:
            loop_fail(err, errlen, "guest fault: hlt without the halt hypercall, rip=%#llx",
                      guest_rip(vm));
            return HVT_GUEST_FAULT;
        case KVM_EXIT_MMIO:
            /* Inside guest memory this is a write to a page the host maps read-only (KVM
             * reports it as MMIO, or as EFAULT above, depending on the kernel). */
            if (run->mmio.phys_addr < vm->mem_size)
                loop_fail(err, errlen, "guest fault: write to read-only memory at %#llx, rip=%#llx",
                          (unsigned long long)run->mmio.phys_addr, guest_rip(vm));
            else
                loop_fail(err, errlen, "guest fault: access to %#llx outside guest memory, rip=%#llx",
                          (unsigned long long)run->mmio.phys_addr, guest_rip(vm));
            return HVT_GUEST_FAULT;
        case KVM_EXIT_INTR:
            continue;
        case KVM_EXIT_FAIL_ENTRY:
            loop_fail(err, errlen, "KVM entry failure, reason %#llx",
                      (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
            return HVT_MONITOR_ERROR;
        case KVM_EXIT_INTERNAL_ERROR:
            /* On paravirtual KVM this is typically an instruction the host cannot emulate
             * (SSE in a guest): a limit of this host, not a guest bug. */
            loop_fail(err, errlen, "KVM internal error, suberror %u, at rip=%#llx",
                      run->internal.suberror, guest_rip(vm));
            return HVT_MONITOR_ERROR;
        default:
            loop_fail(err, errlen, "unhandled KVM exit reason %u at rip=%#llx", run->exit_reason,
                      guest_rip(vm));
            return HVT_MONITOR_ERROR;
        }
    }
}

/* Exit with OUTCOME's status, after "hvt: MSG" on stderr for anything but a halt. */
static __attribute__((noreturn)) void finish(enum hvt_outcome outcome, int status,
                                             const char *msg)
{
    if (outcome != HVT_HALTED) {
        char line[MSG_MAX + 8];
        char *p = line;
        for (const char *s = "hvt: "; *s;)
            *p++ = *s++;
        for (const char *s = msg; *s && p < line + sizeof line - 1;)
            *p++ = *s++;
        *p++ = '\n';
        sys_write(2, line, (unsigned long)(p - line));
    }
    switch (outcome) {
    case HVT_HALTED:
        sys_exit_group(status & 0xff);
    case HVT_GUEST_FAULT:
        sys_exit_group(RUNNC_HVT_EXIT_FAULT);
    default:
        sys_exit_group(RUNNC_HVT_EXIT_MONITOR);
    }
}

/* A created container's monitor waits here for `start` (oci/init.py), with nothing of the host
 * mapped: one byte on exec.fifo, then close it (`start` waits for that). Linux reports no
 * POLLHUP on a fifo that never had a writer, so poll blocks until `start` writes; a writer
 * that leaves without writing makes the fifo report EOF from then on, so it is reopened.
 * 0, or -1 with the reason in err. */
static int wait_for_start(const struct hvt_loop_args *a, char *err, size_t errlen)
{
    long fd = a->fifo_fd;
    for (;;) {
        struct pollfd pfd = {.fd = (int)fd, .events = POLLIN};
        long rc = sys_poll(&pfd, 1, -1);
        if (rc == -EINTR)
            continue;
        if (rc < 0)
            return loop_fail_errno(err, errlen, "waiting for start", (int)-rc);
        char byte;
        long n = sys_read((int)fd, &byte, 1);
        if (n == 1)
            break;
        if (n == -EAGAIN || n == -EINTR)
            continue;
        if (n < 0)
            return loop_fail_errno(err, errlen, "reading the start fifo", (int)-n);
        sys_close((int)fd);
        fd = sys_open(a->fifo_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            return loop_fail_errno(err, errlen, "reopening the start fifo", (int)-fd);
    }
    sys_close((int)fd);
    return 0;
}

/* PR_SET_NO_NEW_PRIVS and the filter; 0, or -1 with the reason in err. */
static int install_filter(const struct hvt_loop_args *a, char *err, size_t errlen)
{
    long rc = sys_prctl(PR_SET_NO_NEW_PRIVS, 1);
    if (rc < 0)
        return loop_fail_errno(err, errlen, "PR_SET_NO_NEW_PRIVS", (int)-rc);
    struct sock_fprog prog = {
        .len = a->filter_len,
        .filter = (struct sock_filter *)(uintptr_t)a->filter,
    };
    rc = sys_seccomp(SECCOMP_SET_MODE_FILTER, 0, &prog);
    if (rc < 0)
        return loop_fail_errno(err, errlen, "installing the seccomp filter", (int)-rc);
    return 0;
}

/* The image's first byte (build.py's linker script puts .text.entry there). Runs on the
 * region's stack; never returns. */
__attribute__((section(".text.entry"), noreturn, used)) void
hvt_loop_entry(struct hvt_loop_args *a)
{
    char msg[MSG_MAX];
    for (uint32_t i = 0; i < a->nunmap; i++) {
        long rc = sys_munmap(a->unmap[i][0], a->unmap[i][1]);
        if (rc < 0) {
            loop_fail_errno(msg, sizeof msg, "unmapping the host process", (int)-rc);
            finish(HVT_MONITOR_ERROR, 0, msg);
        }
    }
    if (a->fifo_fd >= 0 && wait_for_start(a, msg, sizeof msg))
        finish(HVT_MONITOR_ERROR, 0, msg);
    if (a->filter_len && install_filter(a, msg, sizeof msg))
        finish(HVT_MONITOR_ERROR, 0, msg);
    int status = 0;
    enum hvt_outcome outcome = vcpu_loop(&a->vm, &status, msg, sizeof msg);
    finish(outcome, status, msg);
}
