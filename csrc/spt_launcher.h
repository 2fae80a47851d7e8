/*
 * runnc-py spt launcher: the C side of one spt boot.
 *
 * Python does everything that can be checked or computed ahead (validated ELF facts from
 * pyelftools, the filled-in manifest, the guest command line, the BPF program from our policy,
 * the device fds). This code then, in the calling process:
 *   maps guest memory at 0x10000 .. mem_size, loads the PT_LOAD segments, registers the
 *   devices in the epoll set, writes boot info + manifest + command line exactly where
 *   solo5-spt puts them, closes every fd the guest must not have, resets signal handling,
 *   unmaps every host mapping (the Python interpreter included) but a one-page trampoline,
 *   and from that trampoline (for a created container: after `start`'s byte arrives on the
 *   exec fifo) sets NO_NEW_PRIVS, installs the filter and jumps to the guest.
 *
 * The block between CFFI-BEGIN and CFFI-END is also the cffi cdef (see build.py): keep it
 * plain declarations.
 */
#ifndef RUNNC_SPT_LAUNCHER_H
#define RUNNC_SPT_LAUNCHER_H

#include <stddef.h>
#include <stdint.h>

/* CFFI-BEGIN */
struct runnc_segment {
    uint64_t vaddr;   /* guest address; on spt guest and host addresses are the same */
    uint64_t offset;  /* file offset of the segment's bytes */
    uint64_t filesz;
    uint64_t memsz;
    uint32_t prot;    /* PROT_READ | PROT_WRITE | PROT_EXEC, from p_flags */
};

struct runnc_spt_plan {
    int elf_fd;                         /* the unikernel, open for reading */
    uint64_t mem_size;                  /* bytes; guest memory is 0x10000 .. mem_size */
    uint64_t entry;
    uint64_t kernel_end;                /* boot info's kernel_end */
    const struct runnc_segment *segments;
    uint32_t nsegments;
    const uint8_t *mft;                 /* manifest as the guest sees it (tender fields filled) */
    uint32_t mft_size;
    const char *cmdline;                /* NUL-terminated, at most 8192 bytes with the NUL */
    int epollfd;                        /* from runnc_spt_make_fds() */
    int timerfd;
    const int *watch_fds;               /* net devices: fds added to the epoll set ... */
    const uint64_t *watch_tokens;       /* ... with data.u64 = their manifest index */
    uint32_t nwatch;
    const uint8_t *bpf;                 /* struct sock_filter[] as libseccomp exports it */
    uint32_t bpf_size;                  /* bytes, a multiple of 8 */
    const int *keep_fds;                /* fds > 2 the guest keeps (devices, epoll, timer) */
    uint32_t nkeep;
    int exec_heap;                      /* --x-exec-heap: guest memory is also executable */
    int shed_host;                      /* 1: unmap all host memory before the jump */
    /* A created container (oci/init.py), else -1: once everything is in place, write "ok"
     * to ready_fd and wait for "go" on go_fd; after shedding the host, wait for one byte on
     * start_fifo_fd (reopening start_fifo_path when a writer leaves without writing), close
     * it, then install the filter and jump. */
    int ready_fd;
    int go_fd;
    int start_fifo_fd;
    const char *start_fifo_path;
};

/* Create the guest's epoll set and timerfd (registered with data.u64 = ~1U as solo5-spt
 * does). Returns 0, or -1 with errno set. */
int runnc_spt_make_fds(int *epollfd, int *timerfd);

/* Boot the guest in this process. Returns only on failure: -1 with a one-line reason in err.
 * Failures after host memory is shed cannot be reported and exit the process with status 1. */
int runnc_spt_boot(const struct runnc_spt_plan *plan, char *err, size_t errlen);
/* From csrc/common/host.h, exported to Python: race-free rootfs paths (oci/rootpath.py) and
 * the init's closing of inherited fds (oci/fds.py). */
int runnc_openat2(int dirfd, const char *path, unsigned long long flags,
                  unsigned long long resolve);
void runnc_close_fds_except(int *keep, size_t nkeep);
/* CFFI-END */

#endif
