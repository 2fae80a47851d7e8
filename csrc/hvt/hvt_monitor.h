/*
 * runnc-py hvt monitor: runs one Solo5 *hvt* unikernel in a KVM virtual machine, in the
 * calling process.
 *
 * Python (runnc_py/monitor/hvt.py) does everything that can be checked ahead: it reads the
 * ELF (pyelftools), fills in the manifest, opens the devices and builds the command line. This
 * code then creates the VM, lays out guest memory exactly as solo5-hvt does (page tables, GDT,
 * boot info, manifest, command line), loads the segments, optionally installs a seccomp
 * filter, and runs the vCPU loop, serving the guest's hypercalls until it halts.
 *
 * The block between CFFI-BEGIN and CFFI-END is also the cffi cdef (see build.py): keep it
 * plain declarations.
 */
#ifndef RUNNC_HVT_MONITOR_H
#define RUNNC_HVT_MONITOR_H

#include <stddef.h>
#include <stdint.h>

/* CFFI-BEGIN */
struct runnc_hvt_segment {
    uint64_t paddr;   /* guest-physical load address (hvt guests are identity-mapped) */
    uint64_t offset;  /* file offset of the segment's bytes */
    uint64_t filesz;
    uint64_t memsz;
    uint32_t prot;    /* PROT_READ | PROT_WRITE | PROT_EXEC, from p_flags */
};

struct runnc_hvt_block {
    uint32_t index;      /* manifest entry index: the guest's solo5_handle_t */
    int fd;              /* open read-write */
    uint64_t capacity;   /* bytes, a multiple of block_size */
    uint32_t block_size;
};

struct runnc_hvt_net {
    uint32_t index;      /* manifest entry index: the guest's solo5_handle_t */
    int fd;              /* tap, O_NONBLOCK */
};

struct runnc_hvt_plan {
    int elf_fd;                          /* the unikernel, open for reading */
    uint64_t mem_size;                   /* bytes, a multiple of 2 MiB, at most 4 GiB */
    uint64_t entry;
    uint64_t kernel_end;                 /* boot info's kernel_end */
    const struct runnc_hvt_segment *segments;
    uint32_t nsegments;
    const uint8_t *mft;                  /* manifest as the guest sees it (tender fields filled) */
    uint32_t mft_size;
    const char *cmdline;                 /* NUL-terminated, at most 8192 bytes with the NUL */
    const struct runnc_hvt_block *blocks;
    uint32_t nblocks;
    const struct runnc_hvt_net *nets;
    uint32_t nnets;
    int epollfd;                         /* from runnc_hvt_make_fds(): solo5_yield()'s wait set */
    int timerfd;                         /* ... and its timer (the monitor adds the taps) */
};

/* Hold a prepared guest until `start` (oci/init.py): once nothing can fail any more, write
 * "ok" to ready_fd and wait for "go" on go_fd; then, from the run loop with the host unmapped,
 * wait for one byte on the fifo fifo_fd (reopening fifo_path when a writer leaves without
 * writing) and close it before the filter goes on and the guest runs. */
struct runnc_hvt_gate {
    int ready_fd;
    int go_fd;
    int fifo_fd;
    const char *fifo_path;
};

/* A VM set up and ready to run (opaque). */
struct runnc_hvt;

/* Exit statuses of runnc_hvt_boot() besides the guest's own (its halt status & 0xff). */
#define RUNNC_HVT_EXIT_MONITOR 1    /* the monitor itself failed (host error) */
#define RUNNC_HVT_EXIT_FAULT 139    /* the guest crashed: triple fault, bad hypercall, ... */

/* Create the poll hypercall's epoll set and timerfd (registered with data.u64 = ~1U, as
 * solo5-hvt does), so a seccomp policy can name them. Returns 0, or -1 with errno set. */
int runnc_hvt_make_fds(int *epollfd, int *timerfd);

/* 0 if /dev/kvm can be opened, speaks API version 12 and creates a VM; else -1 with a
 * one-line reason in err. */
int runnc_hvt_probe(char *err, size_t errlen);

/* Create the VM and its vCPU, lay out guest memory and load the segments (read from
 * plan->elf_fd, which the caller may close afterwards). The plan's arrays are copied. Returns
 * NULL with a one-line reason in err on failure, leaving nothing behind. */
struct runnc_hvt *runnc_hvt_create(const struct runnc_hvt_plan *plan, char *err, size_t errlen);

/* The vCPU fd, for a seccomp policy that allows KVM_RUN on it alone. */
int runnc_hvt_vcpufd(const struct runnc_hvt *vm);

/* Release a VM that will not run (the caller's epoll/timer/device fds stay open). */
void runnc_hvt_destroy(struct runnc_hvt *vm);

/* Run the guest in this process. Never returns once the guest has started: the process exits
 * with the guest's halt status, RUNNC_HVT_EXIT_FAULT (after one line on stderr) if the guest
 * faults, RUNNC_HVT_EXIT_MONITOR if the host side fails, or dies of a signal's default action
 * (159 for SIGSYS from the filter). Before starting it closes every fd > 2 the VM does not use
 * if close_fds, resets signal handling, unmaps everything of the host but the run loop, waits
 * at gate (if not NULL), and installs the seccomp program bpf (struct sock_filter[], bpf_size
 * bytes; none if 0) after PR_SET_NO_NEW_PRIVS.
 * Returns -1 with a one-line reason in err if it cannot start (the VM is then destroyed). */
int runnc_hvt_run(struct runnc_hvt *vm, const uint8_t *bpf, uint32_t bpf_size, int close_fds,
                  const struct runnc_hvt_gate *gate, char *err, size_t errlen);
/* CFFI-END */

#endif
