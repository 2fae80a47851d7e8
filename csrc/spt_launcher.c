/*
 * runnc-py spt launcher (see spt_launcher.h for the contract).
 *
 * Why a trampoline: the guest must not run with the Python interpreter's memory mapped in its
 * address space (it would cost ~20 MB of RSS per guest and hand the guest a large, writable
 * host address space). So after everything is in place, we copy a ~150-byte piece of position
 * independent code to a page of its own, switch to the guest stack, and from there munmap every
 * host mapping (interpreter, libc, heap, old stack, vDSO), set NO_NEW_PRIVS, install the filter
 * and jump. What stays mapped: guest memory and that one trampoline page (plus its data page,
 * which holds the filter program).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "host.h"
#include "spt_launcher.h"

/* Solo5 spt ABI constants (include/spt_abi.h). */
#define SPT_HOST_MEM_BASE 0x10000ULL
#define SPT_BOOT_INFO_BASE (SPT_HOST_MEM_BASE + 0x1000ULL)
#define SPT_GUEST_MIN_BASE 0x100000ULL
#define SPT_CMDLINE_SIZE 8192U
#define SPT_INTERNAL_TIMERFD (~1U)
#define PAGE_SIZE 4096ULL

/* The layout solo5-spt writes at SPT_BOOT_INFO_BASE; the guest reads it through rdi. */
struct spt_boot_info {
    uint64_t mem_size;
    uint64_t kernel_end;
    uint64_t cmdline;
    uint64_t mft;
    int32_t epollfd;
    int32_t timerfd;
};
_Static_assert(sizeof(struct spt_boot_info) == 40, "boot info must match Solo5's layout");

/* What the trampoline reads, at fixed offsets used by the assembly below. */
struct tramp_args {
    uint64_t nranges; /*  0 */
    uint64_t ranges;  /*  8: array of {start, length} to munmap */
    uint64_t fprog;   /* 16: struct sock_fprog * */
    uint64_t entry;   /* 24 */
    uint64_t sp;      /* 32 */
    uint64_t bootinfo;/* 40 */
    int64_t fifo_fd;  /* 48: -1, or wait for one byte on this fifo before the filter */
    uint64_t fifo_path;/* 56: NUL-terminated, to reopen it after a writer left empty-handed */
    int32_t poll_fd;  /* 64: struct pollfd {fd, events, revents} for poll(2) */
    int16_t poll_events;  /* 68 */
    int16_t poll_revents; /* 70 */
    uint64_t byte;    /* 72: read(2) buffer */
};
_Static_assert(sizeof(struct tramp_args) == 80, "the trampoline's offsets");

struct sock_fprog_k {
    unsigned short len;
    const void *filter;
};

/*
 * The trampoline. Only register-relative loads and local jumps, so it runs from wherever it
 * is copied. It never touches the stack: rsp is the guest's initial stack from its first
 * instruction, so the host stack can be unmapped like everything else.
 */
extern const char runnc_tramp_start[] __attribute__((visibility("hidden")));
extern const char runnc_tramp_end[] __attribute__((visibility("hidden")));
__asm__(
    ".pushsection .text.runnc_tramp,\"ax\",@progbits\n"
    ".hidden runnc_tramp_start\n"
    ".hidden runnc_tramp_end\n"
    "runnc_tramp_start:\n"
    "    movq %rdi, %rbx\n"
    "    movq 32(%rbx), %rsp\n"
    "    movq 0(%rbx), %r12\n"
    "    movq 8(%rbx), %r13\n"
    "1:  testq %r12, %r12\n"
    "    jz 2f\n"
    "    movl $11, %eax\n"           /* munmap(start, length) */
    "    movq 0(%r13), %rdi\n"
    "    movq 8(%r13), %rsi\n"
    "    syscall\n"
    "    addq $16, %r13\n"
    "    decq %r12\n"
    "    jmp 1b\n"
    /* The created container waits here for `start` (oci/init.py): nothing of the host is
     * mapped any more, so the waiting init holds only guest memory. Linux reports no POLLHUP
     * on a fifo that never had a writer, so poll blocks until `start` writes its byte. */
    "2:  movq 48(%rbx), %r14\n"
    "    testq %r14, %r14\n"
    "    js 6f\n"                     /* no fifo: boot at once */
    "4:  movl %r14d, 64(%rbx)\n"
    "    movw $1, 68(%rbx)\n"        /* POLLIN */
    "    movw $0, 70(%rbx)\n"
    "    movl $7, %eax\n"            /* poll(&pfd, 1, -1) */
    "    leaq 64(%rbx), %rdi\n"
    "    movl $1, %esi\n"
    "    movq $-1, %rdx\n"
    "    syscall\n"
    "    cmpq $-4, %rax\n"           /* EINTR: again */
    "    je 4b\n"
    "    testq %rax, %rax\n"
    "    js 3f\n"
    "    xorl %eax, %eax\n"          /* read(fd, &byte, 1) */
    "    movq %r14, %rdi\n"
    "    leaq 72(%rbx), %rsi\n"
    "    movl $1, %edx\n"
    "    syscall\n"
    "    cmpq $1, %rax\n"
    "    je 5f\n"
    "    cmpq $-11, %rax\n"          /* EAGAIN: woken without data, wait again */
    "    je 4b\n"
    "    cmpq $-4, %rax\n"
    "    je 4b\n"
    "    testq %rax, %rax\n"
    "    jnz 3f\n"
    /* EOF: a writer came and left without writing; the fifo would report POLLHUP from now
     * on, so reopen it to block again (what oci/init.py's wait_fifo does). */
    "    movl $3, %eax\n"            /* close(fd) */
    "    movq %r14, %rdi\n"
    "    syscall\n"
    "    movl $2, %eax\n"            /* open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) */
    "    movq 56(%rbx), %rdi\n"
    "    movl $0x80800, %esi\n"
    "    xorl %edx, %edx\n"
    "    syscall\n"
    "    testq %rax, %rax\n"
    "    js 3f\n"
    "    movq %rax, %r14\n"
    "    jmp 4b\n"
    "5:  movl $3, %eax\n"            /* close(fd): tells `start` the guest is booting */
    "    movq %r14, %rdi\n"
    "    syscall\n"
    "6:  movl $157, %eax\n"          /* prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) */
    "    movl $38, %edi\n"
    "    movl $1, %esi\n"
    "    xorl %edx, %edx\n"
    "    xorl %r10d, %r10d\n"
    "    xorl %r8d, %r8d\n"
    "    syscall\n"
    "    testq %rax, %rax\n"
    "    jnz 3f\n"
    "    movl $317, %eax\n"          /* seccomp(SECCOMP_SET_MODE_FILTER, 0, fprog) */
    "    movl $1, %edi\n"
    "    xorl %esi, %esi\n"
    "    movq 16(%rbx), %rdx\n"
    "    syscall\n"
    "    testq %rax, %rax\n"
    "    jnz 3f\n"
    "    movq 40(%rbx), %rdi\n"      /* guest entry(boot_info) */
    "    movq 24(%rbx), %rax\n"
    "    xorl %ebx, %ebx\n"
    "    xorl %r12d, %r12d\n"
    "    xorl %r13d, %r13d\n"
    "    xorl %r14d, %r14d\n"
    "    jmp *%rax\n"
    "3:  movl $231, %eax\n"          /* exit_group(1): nothing left to report an error with */
    "    movl $1, %edi\n"
    "    syscall\n"
    "    hlt\n"
    "runnc_tramp_end:\n"
    ".popsection\n");

#define fail runnc_fail

int runnc_spt_make_fds(int *epollfd, int *timerfd)
{
    int ep = epoll_create1(0);
    if (ep == -1)
        return -1;
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    if (tfd == -1) {
        int saved = errno;
        close(ep);
        errno = saved;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = SPT_INTERNAL_TIMERFD};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) == -1) {
        int saved = errno;
        close(ep);
        close(tfd);
        errno = saved;
        return -1;
    }
    *epollfd = ep;
    *timerfd = tfd;
    return 0;
}

static uint64_t page_down(uint64_t x) { return x & ~(PAGE_SIZE - 1); }
static uint64_t page_up(uint64_t x) { return (x + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1); }

/* The plan comes from our own Python, which validated the ELF; these checks keep a bad plan
 * from turning into a write outside guest memory. */
static int check_plan(const struct runnc_spt_plan *p, char *err, size_t errlen)
{
    if (p->mem_size % PAGE_SIZE || p->mem_size <= SPT_GUEST_MIN_BASE)
        return fail(err, errlen, "guest memory size %#llx is not a page multiple above 1 MiB",
                    (unsigned long long)p->mem_size);
    if (p->kernel_end > p->mem_size)
        return fail(err, errlen, "unikernel needs %llu bytes, guest memory is %llu",
                    (unsigned long long)p->kernel_end, (unsigned long long)p->mem_size);
    for (uint32_t i = 0; i < p->nsegments; i++) {
        const struct runnc_segment *s = &p->segments[i];
        if (s->vaddr < SPT_GUEST_MIN_BASE || s->filesz > s->memsz ||
            s->memsz > p->mem_size || s->vaddr > p->mem_size - s->memsz)
            return fail(err, errlen, "segment %u at %#llx does not fit guest memory", i,
                        (unsigned long long)s->vaddr);
    }
    if (p->entry < SPT_GUEST_MIN_BASE || p->entry >= p->mem_size)
        return fail(err, errlen, "entry point %#llx outside guest memory",
                    (unsigned long long)p->entry);
    size_t cmdlen = strnlen(p->cmdline, SPT_CMDLINE_SIZE);
    if (cmdlen >= SPT_CMDLINE_SIZE)
        return fail(err, errlen, "guest command line longer than %u bytes", SPT_CMDLINE_SIZE - 1);
    uint64_t low_end = SPT_BOOT_INFO_BASE + sizeof(struct spt_boot_info) + p->mft_size +
                       SPT_CMDLINE_SIZE;
    if (low_end > SPT_GUEST_MIN_BASE)
        return fail(err, errlen, "manifest of %u bytes does not fit low memory", p->mft_size);
    if (p->bpf_size == 0 || p->bpf_size % 8 || p->bpf_size / 8 > 0xffff)
        return fail(err, errlen, "seccomp program of %u bytes is malformed", p->bpf_size);
    return 0;
}

static int load_segments(const struct runnc_spt_plan *p, char *err, size_t errlen)
{
    for (uint32_t i = 0; i < p->nsegments; i++) {
        const struct runnc_segment *s = &p->segments[i];
        uint8_t *dst = (uint8_t *)(uintptr_t)s->vaddr;
        uint64_t done = 0;
        while (done < s->filesz) {
            ssize_t n = pread(p->elf_fd, dst + done, s->filesz - done, s->offset + done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return fail(err, errlen, "reading segment %u: %s", i,
                            n == 0 ? "file truncated" : strerror(errno));
            done += (uint64_t)n;
        }
    }
    /* Protections last: a read-only segment sharing no page with a writable one (the ELF
     * checks guarantee 4 KiB alignment) gets exactly its own flags, as solo5-spt does. */
    for (uint32_t i = 0; i < p->nsegments; i++) {
        const struct runnc_segment *s = &p->segments[i];
        uint64_t start = page_down(s->vaddr), end = page_up(s->vaddr + s->memsz);
        if (end > start && mprotect((void *)(uintptr_t)start, end - start, (int)s->prot) == -1)
            return fail(err, errlen, "mprotect of segment %u: %s", i, strerror(errno));
    }
    return 0;
}

static void write_boot_info(const struct runnc_spt_plan *p)
{
    uint8_t *low = (uint8_t *)(uintptr_t)SPT_BOOT_INFO_BASE;
    struct spt_boot_info *bi = (struct spt_boot_info *)low;
    uint64_t mft_at = SPT_BOOT_INFO_BASE + sizeof *bi;
    uint64_t cmdline_at = mft_at + p->mft_size;
    memcpy((void *)(uintptr_t)mft_at, p->mft, p->mft_size);
    size_t cmdlen = strnlen(p->cmdline, SPT_CMDLINE_SIZE - 1);
    memcpy((void *)(uintptr_t)cmdline_at, p->cmdline, cmdlen);
    ((char *)(uintptr_t)cmdline_at)[cmdlen] = '\0';
    bi->mem_size = p->mem_size;
    bi->kernel_end = p->kernel_end;
    bi->cmdline = cmdline_at;
    bi->mft = mft_at;
    bi->epollfd = p->epollfd;
    bi->timerfd = p->timerfd;
}

/* Everything but stdio, the guest's own fds and the start fifo, which the trampoline closes
 * itself (the helper sorts, so it gets a copy). */
static void close_guest_fds(const struct runnc_spt_plan *p)
{
    int keep[p->nkeep + 1];
    memcpy(keep, p->keep_fds, p->nkeep * sizeof *keep);
    size_t nkeep = p->nkeep;
    if (p->start_fifo_fd >= 0)
        keep[nkeep++] = p->start_fifo_fd;
    runnc_close_fds_except(keep, nkeep);
}

/* create's lock-step with its init (runnc_handshake): when `create` died or gave up, so does
 * the init: there is nobody left to report to. */
static void sync_with_creator(const struct runnc_spt_plan *p)
{
    if (p->ready_fd >= 0 && runnc_handshake(p->ready_fd, p->go_fd) != 0)
        _exit(1);
}

/* The user address space ends here with 4-level paging (47-bit); munmap refuses lengths past
 * the task size, and nothing we run maps above it (5-level paging only hands out such
 * addresses to callers that ask for them). */
#define USER_SPACE_END 0x7ffffffff000ULL

/* The host memory to unmap, as the complement of what the guest keeps: everything from the end
 * of guest memory to the trampoline, and from the trampoline to the end of user space. munmap
 * over holes is fine, so two calls replace one per mapping (185 for a Python process), which
 * made shedding cost as much as the whole boot. Below guest memory is only mmap_min_addr's
 * unmappable page range. */
static uint64_t host_ranges(uint64_t guest_end, uint64_t tramp_lo, uint64_t tramp_hi,
                            uint64_t (*ranges)[2])
{
    uint64_t n = 0;
    if (tramp_lo > guest_end) {
        ranges[n][0] = guest_end;
        ranges[n][1] = tramp_lo - guest_end;
        n++;
    }
    if (USER_SPACE_END > tramp_hi) {
        ranges[n][0] = tramp_hi;
        ranges[n][1] = USER_SPACE_END - tramp_hi;
        n++;
    }
    return n;
}

#define MAX_RANGES 2ULL

int runnc_spt_boot(const struct runnc_spt_plan *p, char *err, size_t errlen)
{
    if (check_plan(p, err, errlen))
        return -1;
    if (runnc_single_threaded() != 1)
        return fail(err, errlen, "the launching process must be single-threaded");
    int persona = personality(0xffffffff);
    if (persona >= 0 && (persona & READ_IMPLIES_EXEC))
        return fail(err, errlen, "refusing to run with the READ_IMPLIES_EXEC personality");

    int prot = PROT_READ | PROT_WRITE | (p->exec_heap ? PROT_EXEC : 0);
    void *mem = mmap((void *)SPT_HOST_MEM_BASE, p->mem_size - SPT_HOST_MEM_BASE, prot,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
        return fail(err, errlen, "mapping %llu MiB of guest memory at %#llx: %s",
                    (unsigned long long)(p->mem_size >> 20), SPT_HOST_MEM_BASE,
                    errno == EEXIST ? "address range used by the host process" : strerror(errno));
    if (mem != (void *)SPT_HOST_MEM_BASE) {
        munmap(mem, p->mem_size - SPT_HOST_MEM_BASE);
        return fail(err, errlen, "kernel placed guest memory at %p, not %#llx (kernel < 4.17?)",
                    mem, SPT_HOST_MEM_BASE);
    }
    if (load_segments(p, err, errlen))
        goto unmap_guest;
    for (uint32_t i = 0; i < p->nwatch; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = p->watch_tokens[i]};
        if (epoll_ctl(p->epollfd, EPOLL_CTL_ADD, p->watch_fds[i], &ev) == -1) {
            fail(err, errlen, "adding fd %d to the epoll set: %s", p->watch_fds[i],
                 strerror(errno));
            goto unmap_guest;
        }
    }
    write_boot_info(p);

    /* Trampoline region: one code page, then args, filter program, the two ranges to unmap
     * and the start fifo's path. */
    size_t fifo_path_size = p->start_fifo_fd >= 0 ? strlen(p->start_fifo_path) + 1 : 0;
    uint64_t data_size = page_up(sizeof(struct tramp_args) + sizeof(struct sock_fprog_k) +
                                 p->bpf_size + 15 + MAX_RANGES * 16 + fifo_path_size);
    uint64_t region_size = PAGE_SIZE + data_size;
    uint8_t *region = mmap(NULL, region_size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) {
        fail(err, errlen, "mapping the trampoline: %s", strerror(errno));
        goto unmap_guest;
    }
    size_t code_size = (size_t)(runnc_tramp_end - runnc_tramp_start);
    memcpy(region, runnc_tramp_start, code_size);
    struct tramp_args *args = (struct tramp_args *)(region + PAGE_SIZE);
    struct sock_fprog_k *fprog = (struct sock_fprog_k *)(args + 1);
    uint8_t *filter = (uint8_t *)(fprog + 1);
    memcpy(filter, p->bpf, p->bpf_size);
    fprog->len = (unsigned short)(p->bpf_size / 8);
    fprog->filter = filter;
    uint64_t (*ranges)[2] =
        (uint64_t (*)[2])(((uint64_t)(uintptr_t)(filter + p->bpf_size) + 15) & ~15ULL);
    uint64_t nranges = 0;
    if (p->shed_host) {
        uint64_t lo = (uint64_t)(uintptr_t)region;
        if (lo < p->mem_size) {
            fail(err, errlen, "trampoline mapped inside guest memory at %#llx",
                 (unsigned long long)lo);
            goto unmap_region;
        }
        nranges = host_ranges(p->mem_size, lo, lo + region_size, ranges);
    }
    args->nranges = nranges;
    args->ranges = (uint64_t)(uintptr_t)ranges;
    args->fprog = (uint64_t)(uintptr_t)fprog;
    args->entry = p->entry;
    /* x86_64: the guest starts as if called, with rsp 8 below a 16-byte boundary. */
    args->sp = p->mem_size - 8;
    args->bootinfo = SPT_BOOT_INFO_BASE;
    args->fifo_fd = p->start_fifo_fd >= 0 ? p->start_fifo_fd : -1;
    if (fifo_path_size) {
        char *path = (char *)(ranges + MAX_RANGES);
        memcpy(path, p->start_fifo_path, fifo_path_size);
        args->fifo_path = (uint64_t)(uintptr_t)path;
    }
    if (mprotect(region, PAGE_SIZE, PROT_READ | PROT_EXEC) == -1) {
        fail(err, errlen, "protecting the trampoline: %s", strerror(errno));
        goto unmap_region;
    }

    sync_with_creator(p);
    /* Point of no return: from here on failures cannot be reported to Python. */
    close(p->elf_fd);
    close_guest_fds(p);
    runnc_reset_signals();
    runnc_unregister_rseq();
    ((void (*)(struct tramp_args *))(void *)region)(args);
    __builtin_unreachable();

unmap_region:
    munmap(region, region_size);
unmap_guest:
    munmap((void *)SPT_HOST_MEM_BASE, p->mem_size - SPT_HOST_MEM_BASE);
    return -1;
}
