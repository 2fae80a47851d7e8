/*
 * Small host-side helpers both C extensions use (the spt launcher and the hvt monitor).
 */
#ifndef RUNNC_HOST_H
#define RUNNC_HOST_H

#include <stddef.h>

/* Format a one-line reason into err (keeping errno) and return -1. */
int runnc_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 1 if the calling process has exactly one thread, 0 if more, -1 if /proc cannot tell. A
 * seccomp filter installed without TSYNC covers only the calling thread, and unmapping memory
 * under other threads would crash them, so both extensions refuse to go on otherwise. */
int runnc_single_threaded(void);

/* Close every fd above 2 except KEEP (sorted in place), in one close_range per gap: the guest
 * must hold nothing of the host's but stdio and its own devices. */
void runnc_close_fds_except(int *keep, size_t nkeep);

/* Default dispositions for every signal, nothing blocked, no alternate stack: what a
 * solo5-spt/solo5-hvt process has. Python's handlers would never run again (spt: their code is
 * about to be unmapped; hvt: they only set a flag nobody reads while we sit in KVM_RUN), and
 * Python ignores SIGPIPE. */
void runnc_reset_signals(void);

/* glibc registers an rseq area in the thread's TLS: once a process unmaps its TLS (the spt
 * trampoline, the hvt run loop), the kernel would SIGSEGV it at the next preemption. Call this
 * while libc is still mapped. */
void runnc_unregister_rseq(void);

/* create's lock-step with its init (oci/init.py), once nothing can fail any more: write "ok"
 * to READY_FD and wait for "go" on GO_FD (the state says "created" by then). Returns 0, or -1
 * when anything else happens: `create` died or gave up, and the init should too. */
int runnc_handshake(int ready_fd, int go_fd);

/* openat2(DIRFD, PATH, {FLAGS, 0, RESOLVE}): Python has no wrapper. Retries the EAGAIN that
 * RESOLVE_IN_ROOT returns when a rename raced the walk. Returns the fd, or -1 with errno set
 * (ENOSYS before Linux 5.6). */
int runnc_openat2(int dirfd, const char *path, unsigned long long flags,
                  unsigned long long resolve);

#endif
