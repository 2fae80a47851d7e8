/*
 * Inside the hvt monitor's run loop image (see loop.c): what its files share.
 *
 * Everything in this directory is compiled freestanding and linked by build.py into one
 * position-independent image with no libc, no relocations and no writable static data; the
 * monitor copies that image into memory of its own before it unmaps the rest of the process.
 * So these files may call only each other and the raw syscalls of sys.h, and keep all state
 * in struct hvt_loop_args or on the stack.
 */
#ifndef RUNNC_HVT_LOOP_H
#define RUNNC_HVT_LOOP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "hvt_internal.h"

/* fmt.c: a tiny snprintf for the monitor's one-line reports: %s, %d, %u, %x, %llu, %llx and
 * the # flag, as printf formats them. Always returns -1 (the error convention of this code). */
int loop_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "WHAT: <strerror(errnum)>", with glibc's wording of the message. Returns -1. */
int loop_fail_errno(char *err, size_t errlen, const char *what, int errnum);
/* Format into buf (always NUL-terminated); returns the length written. */
size_t loop_vformat(char *buf, size_t size, const char *fmt, va_list ap);

/* The compiler may emit calls to these for struct copies and initialisers. */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);

/* hypercall.c: serve one hypercall; returns HVT_HALTED with *status set for halt, -1 to go
 * on, or an outcome with a one-line reason in err. */
int hvt_hypercall(struct runnc_hvt *vm, unsigned nr, uint64_t gpa, int *status, char *err,
                  size_t errlen);

#endif
