/*
 * runnc_hvt_probe(), runnc_hvt_create() and runnc_hvt_run(): set the VM up, then hand the
 * process to the run loop (loop/), which runs the vCPU until the guest halts and turns how it
 * ended into this process's exit status.
 *
 * Why a region of its own: a running guest's monitor must not keep the Python interpreter
 * (~24 MB) mapped. KVM ties the VM to this address space, so the monitor cannot exec a small
 * program; instead runnc_hvt_run() copies the loop image (freestanding, position independent,
 * built by build.py) into fresh anonymous memory next to its arguments and a small stack,
 * switches to that stack and calls it. The loop unmaps everything else (interpreter, libc,
 * heap, old stack, vDSO) in a few munmap calls over the gaps between what it keeps: guest
 * memory, kvm_run and the region. Anything that can fail with a message Python can raise
 * happens before that switch.
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
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

/* ---- running: the loop image in a region of its own, everything else unmapped ---------- */

#define PAGE_SIZE 4096ULL
/* The loop's stack: its deepest path (poll: 65 epoll events, a report line) needs ~3 KiB, and
 * pages it never touches cost nothing. A guard page below it faults instead of overrunning. */
#define LOOP_STACK_SIZE (32 * 1024ULL)
/* The user address space ends here with 4-level paging (47-bit); munmap refuses lengths past
 * the task size, and nothing we run maps above it. */
#define USER_SPACE_END 0x7ffffffff000ULL

static uint64_t page_up(uint64_t x) { return (x + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1); }

/* [loop image, read+exec][hvt_loop_args, filter, fifo path][guard][stack]: the only host
 * memory the running monitor keeps, besides guest memory and kvm_run. */
struct loop_region {
    uint8_t *base;
    uint64_t size;
    struct hvt_loop_args *args;
    uint8_t *stack_top;
};

static int map_loop_region(const struct runnc_hvt *vm, const uint8_t *bpf, uint32_t bpf_size,
                           const struct runnc_hvt_gate *gate, struct loop_region *r, char *err,
                           size_t errlen)
{
    size_t path_size = gate ? strlen(gate->fifo_path) + 1 : 0;
    uint64_t code = page_up(runnc_hvt_loop_image_size);
    uint64_t data = page_up(sizeof(struct hvt_loop_args) + bpf_size + path_size);
    r->size = code + data + PAGE_SIZE + LOOP_STACK_SIZE;
    r->base = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r->base == MAP_FAILED)
        return hvt_fail(err, errlen, "mapping the monitor's run loop: %s", strerror(errno));
    memcpy(r->base, runnc_hvt_loop_image, runnc_hvt_loop_image_size);
    r->args = (struct hvt_loop_args *)(r->base + code);
    memcpy(&r->args->vm, vm, sizeof *vm);
    uint8_t *filter = (uint8_t *)(r->args + 1);
    if (bpf_size)
        memcpy(filter, bpf, bpf_size);
    r->args->filter = filter;
    r->args->filter_len = (uint16_t)(bpf_size / 8);
    r->args->fifo_fd = -1;
    if (gate) {
        char *path = (char *)filter + bpf_size;
        memcpy(path, gate->fifo_path, path_size);
        r->args->fifo_fd = gate->fifo_fd;
        r->args->fifo_path = path;
    }
    r->stack_top = r->base + r->size;
    if (mprotect(r->base, code, PROT_READ | PROT_EXEC) == -1 ||
        mprotect(r->base + code + data, PAGE_SIZE, PROT_NONE) == -1) {
        int e = errno;
        munmap(r->base, r->size);
        return hvt_fail(err, errlen, "protecting the monitor's run loop: %s", strerror(e));
    }
    return 0;
}

/* The host memory to unmap, as the complement of what the running monitor keeps: munmap over
 * holes is fine, so a few calls replace one per mapping (a Python process has ~200). */
static void plan_unmap(const struct runnc_hvt *vm, const struct loop_region *r,
                       struct hvt_loop_args *a)
{
    uint64_t keep[3][2] = {
        {(uint64_t)(uintptr_t)vm->mem, vm->mem_size},
        {(uint64_t)(uintptr_t)vm->run, page_up(vm->run_size)},
        {(uint64_t)(uintptr_t)r->base, r->size},
    };
    for (int i = 1; i < 3; i++) /* sort by start: three entries */
        for (int j = i; j > 0 && keep[j][0] < keep[j - 1][0]; j--) {
            uint64_t t0 = keep[j][0], t1 = keep[j][1];
            keep[j][0] = keep[j - 1][0];
            keep[j][1] = keep[j - 1][1];
            keep[j - 1][0] = t0;
            keep[j - 1][1] = t1;
        }
    uint64_t from = 0;
    a->nunmap = 0;
    for (int i = 0; i <= 3; i++) {
        uint64_t to = i < 3 ? keep[i][0] : USER_SPACE_END;
        if (to > from) {
            a->unmap[a->nunmap][0] = from;
            a->unmap[a->nunmap][1] = to - from;
            a->nunmap++;
        }
        if (i < 3)
            from = keep[i][0] + keep[i][1];
    }
}

/* Close every fd but the VM's, the devices' and the start fifo (and stdio). */
static void close_other_fds(const struct runnc_hvt *vm, int fifo_fd)
{
    int keep[6 + 2 * HVT_MAX_DEVICES];
    size_t nkeep = 0;
    if (fifo_fd >= 0)
        keep[nkeep++] = fifo_fd;
    int own[] = {vm->kvmfd, vm->vmfd, vm->vcpufd, vm->epollfd, vm->timerfd};
    for (size_t i = 0; i < 5; i++)
        keep[nkeep++] = own[i];
    for (uint32_t i = 0; i < vm->nblocks; i++)
        keep[nkeep++] = vm->blocks[i].fd;
    for (uint32_t i = 0; i < vm->nnets; i++)
        keep[nkeep++] = vm->nets[i].fd;
    runnc_close_fds_except(keep, nkeep);
}

/* Switch to the region's stack and call the loop image's entry (offset 0) with ARGS. */
static __attribute__((noreturn)) void enter_loop(const struct loop_region *r)
{
    __asm__ volatile("movq %0, %%rsp\n\t"
                     "callq *%1\n\t"
                     "ud2"
                     :
                     : "r"(r->stack_top), "r"(r->base), "D"(r->args)
                     : "memory");
    __builtin_unreachable();
}

int runnc_hvt_run(struct runnc_hvt *vm, const uint8_t *bpf, uint32_t bpf_size, int close_fds,
                  const struct runnc_hvt_gate *gate, char *err, size_t errlen)
{
    if (bpf_size % 8 || bpf_size / 8 > 0xffff || (bpf_size && bpf == NULL)) {
        hvt_fail(err, errlen, "seccomp program of %u bytes is malformed", bpf_size);
        goto fail;
    }
    /* A filter binds the calling thread only, and unmapping the host under another thread
     * would crash it. */
    if (runnc_single_threaded() != 1) {
        hvt_fail(err, errlen, bpf_size ? "a seccomp-filtered monitor must be single-threaded"
                                       : "the monitor must be single-threaded");
        goto fail;
    }
    struct loop_region region = {0};
    if (map_loop_region(vm, bpf, bpf_size, gate, &region, err, errlen))
        goto fail;
    plan_unmap(vm, &region, region.args);
    /* Nothing can fail any more: tell `create`. If it died or gave up, so does the init. */
    if (gate && runnc_handshake(gate->ready_fd, gate->go_fd) != 0)
        _exit(1);

    /* Point of no return: from here on the process belongs to the guest. */
    if (close_fds)
        close_other_fds(vm, region.args->fifo_fd);
    runnc_reset_signals();
    runnc_unregister_rseq();
    enter_loop(&region);

fail:
    runnc_hvt_destroy(vm);
    return -1;
}
