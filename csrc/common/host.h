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

#endif
