/*
 * runnc_hvt_probe() and runnc_hvt_boot(): set the VM up, then run the vCPU until the guest
 * halts, and turn how it ended into this process's exit status.
 *
 * Exit statuses (documented in docs/hvt.md, chosen to match our spt launcher so engines and
 * scripts see one convention whatever the monitor):
 *   the guest's halt status & 0xff      guest called solo5_exit(status) / solo5_abort()
 *   139 (RUNNC_HVT_EXIT_FAULT)           guest crashed: triple fault, write to its own text,
 *                                        access outside its memory, bad hypercall, hlt
 *   1   (RUNNC_HVT_EXIT_MONITOR)         host side failed: KVM error, emulation failure
 *   128 + signal                         killed by a signal (default dispositions)
 * Every non-guest ending writes one line to stderr: "hvt: <what happened>".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "host.h"
#include "hvt_internal.h"

int runnc_hvt_probe(char *err, size_t errlen)
{
    struct runnc_hvt vm;
    int rc = hvt_vm_open(&vm, 0, err, errlen);
    hvt_vm_close(&vm);
    return rc;
}

static int install_filter(const uint8_t *bpf, uint32_t bpf_size, char *err, size_t errlen)
{
    struct {
        unsigned short len;
        const void *filter;
    } prog = {(unsigned short)(bpf_size / 8), bpf};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
        return hvt_fail(err, errlen, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    if (syscall(SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, 0, &prog) == -1)
        return hvt_fail(err, errlen, "installing the seccomp filter: %s", strerror(errno));
    return 0;
}

/* The guest's rip for a fault report: from the sync regs when KVM keeps them, else by ioctl
 * (only reached without a seccomp filter, see runnc_hvt_run). */
static unsigned long long guest_rip(const struct runnc_hvt *vm)
{
    if (vm->sync_regs)
        return vm->run->s.regs.regs.rip;
    struct kvm_regs regs;
    if (ioctl(vm->vcpufd, KVM_GET_REGS, &regs) == -1)
        return ~0ULL;
    return regs.rip;
}

/* Run the vCPU until the guest halts or something ends it. */
static enum hvt_outcome vcpu_loop(struct runnc_hvt *vm, int *status, char *err, size_t errlen)
{
    struct kvm_run *run = vm->run;
    for (;;) {
        if (ioctl(vm->vcpufd, KVM_RUN, 0) == -1) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            if (errno == EFAULT) {
                /* KVM could not map the page the guest touched with the access it wanted:
                 * in practice a write to a read-only segment (text, rodata). */
                hvt_fail(err, errlen, "guest fault: memory access denied, rip=%#llx",
                         guest_rip(vm));
                return HVT_GUEST_FAULT;
            }
            hvt_fail(err, errlen, "KVM_RUN: %s", strerror(errno));
            return HVT_MONITOR_ERROR;
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO: {
            unsigned port = run->io.port;
            if (run->io.direction != KVM_EXIT_IO_OUT || run->io.size != 4 ||
                run->io.count != 1 || port < HVT_PIO_BASE || port >= HVT_PIO_BASE + HVT_HC_MAX) {
                hvt_fail(err, errlen, "guest fault: %s of I/O port %#x, rip=%#llx",
                         run->io.direction == KVM_EXIT_IO_OUT ? "write" : "read", port,
                         guest_rip(vm));
                return HVT_GUEST_FAULT;
            }
            uint32_t gpa;
            memcpy(&gpa, (uint8_t *)run + run->io.data_offset, sizeof gpa);
            char why[200];
            int rc = hvt_hypercall(vm, port - HVT_PIO_BASE, gpa, status, why, sizeof why);
            if (rc == HVT_GUEST_FAULT)
                hvt_fail(err, errlen, "guest fault: %s, rip=%#llx", why, guest_rip(vm));
            else if (rc == HVT_MONITOR_ERROR)
                hvt_fail(err, errlen, "%s", why);
            if (rc >= 0)
                return (enum hvt_outcome)rc;
            continue;
        }
        case KVM_EXIT_SHUTDOWN:
            hvt_fail(err, errlen, "guest fault: triple fault (unhandled exception), rip=%#llx",
                     guest_rip(vm));
            return HVT_GUEST_FAULT;
        case KVM_EXIT_HLT:
            hvt_fail(err, errlen, "guest fault: hlt without the halt hypercall, rip=%#llx",
                     guest_rip(vm));
            return HVT_GUEST_FAULT;
        case KVM_EXIT_MMIO:
            /* Inside guest memory this is a write to a page the host maps read-only (KVM
             * reports it as MMIO, or as EFAULT above, depending on the kernel). */
            if (run->mmio.phys_addr < vm->mem_size)
                hvt_fail(err, errlen, "guest fault: write to read-only memory at %#llx, rip=%#llx",
                         (unsigned long long)run->mmio.phys_addr, guest_rip(vm));
            else
                hvt_fail(err, errlen, "guest fault: access to %#llx outside guest memory, rip=%#llx",
                         (unsigned long long)run->mmio.phys_addr, guest_rip(vm));
            return HVT_GUEST_FAULT;
        case KVM_EXIT_INTR:
            continue;
        case KVM_EXIT_FAIL_ENTRY:
            hvt_fail(err, errlen, "KVM entry failure, reason %#llx",
                     (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
            return HVT_MONITOR_ERROR;
        case KVM_EXIT_INTERNAL_ERROR:
            /* On paravirtual KVM this is typically an instruction the host cannot emulate
             * (SSE in a guest): a limit of this host, not a guest bug. */
            hvt_fail(err, errlen, "KVM internal error, suberror %u, at rip=%#llx",
                     run->internal.suberror, guest_rip(vm));
            return HVT_MONITOR_ERROR;
        default:
            hvt_fail(err, errlen, "unhandled KVM exit reason %u at rip=%#llx", run->exit_reason,
                     guest_rip(vm));
            return HVT_MONITOR_ERROR;
        }
    }
}

static __attribute__((noreturn)) void finish(enum hvt_outcome outcome, int status,
                                             const char *msg)
{
    if (outcome != HVT_HALTED) {
        char line[600];
        int n = snprintf(line, sizeof line, "hvt: %s\n", msg);
        if (n > 0)
            (void)!write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    }
    switch (outcome) {
    case HVT_HALTED:
        _exit(status & 0xff);
    case HVT_GUEST_FAULT:
        _exit(RUNNC_HVT_EXIT_FAULT);
    default:
        _exit(RUNNC_HVT_EXIT_MONITOR);
    }
}

struct runnc_hvt *runnc_hvt_create(const struct runnc_hvt_plan *p, char *err, size_t errlen)
{
    if (hvt_check_plan(p, err, errlen))
        return NULL;
    struct runnc_hvt *vm = malloc(sizeof *vm);
    if (vm == NULL) {
        hvt_fail(err, errlen, "out of memory");
        return NULL;
    }
    if (hvt_vm_open(vm, p->mem_size, err, errlen))
        goto fail;
    memcpy(vm->blocks, p->blocks, p->nblocks * sizeof *p->blocks);
    vm->nblocks = p->nblocks;
    memcpy(vm->nets, p->nets, p->nnets * sizeof *p->nets);
    vm->nnets = p->nnets;
    hvt_layout_pagetables(vm->mem, vm->mem_size);
    hvt_layout_gdt(vm->mem);
    if (hvt_vm_start_cpu(vm, p->entry, err, errlen))
        goto fail;
    if (hvt_layout_boot_info(vm->mem, vm->mem_size, p->kernel_end, vm->tsc_hz, p->mft,
                             p->mft_size, p->cmdline)) {
        hvt_fail(err, errlen, "boot info, manifest and command line do not fit low memory");
        goto fail;
    }
    if (hvt_load_segments(vm, p, err, errlen))
        goto fail;
    vm->epollfd = p->epollfd;
    vm->timerfd = p->timerfd;
    if (hvt_devices_setup(vm, err, errlen))
        goto fail;
    return vm;

fail:
    runnc_hvt_destroy(vm);
    return NULL;
}

int runnc_hvt_vcpufd(const struct runnc_hvt *vm)
{
    return vm->vcpufd;
}

void runnc_hvt_destroy(struct runnc_hvt *vm)
{
    vm->epollfd = vm->timerfd = -1; /* the caller's, closed by the caller */
    hvt_vm_close(vm);
    free(vm);
}

int runnc_hvt_run(struct runnc_hvt *vm, const uint8_t *bpf, uint32_t bpf_size, int close_fds,
                  char *err, size_t errlen)
{
    if (bpf_size % 8 || bpf_size / 8 > 0xffff || (bpf_size && bpf == NULL)) {
        hvt_fail(err, errlen, "seccomp program of %u bytes is malformed", bpf_size);
        goto fail;
    }
    /* A filter binds the calling thread only: another thread would run unconfined. */
    if (bpf_size && runnc_single_threaded() != 1) {
        hvt_fail(err, errlen, "a seccomp-filtered monitor must be single-threaded");
        goto fail;
    }

    /* Point of no return: from here on the process belongs to the guest. */
    if (close_fds) {
        int keep[5 + 2 * HVT_MAX_DEVICES];
        size_t nkeep = 0;
        int own[] = {vm->kvmfd, vm->vmfd, vm->vcpufd, vm->epollfd, vm->timerfd};
        for (size_t i = 0; i < 5; i++)
            keep[nkeep++] = own[i];
        for (uint32_t i = 0; i < vm->nblocks; i++)
            keep[nkeep++] = vm->blocks[i].fd;
        for (uint32_t i = 0; i < vm->nnets; i++)
            keep[nkeep++] = vm->nets[i].fd;
        runnc_close_fds_except(keep, nkeep);
    }
    runnc_reset_signals();
    char msg[512] = "";
    if (bpf_size && install_filter(bpf, bpf_size, msg, sizeof msg))
        finish(HVT_MONITOR_ERROR, 0, msg);
    int status = 0;
    enum hvt_outcome outcome = vcpu_loop(vm, &status, msg, sizeof msg);
    finish(outcome, status, msg);

fail:
    runnc_hvt_destroy(vm);
    return -1;
}
