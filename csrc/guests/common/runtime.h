/*
 * The part of the test guests' runtime that does not depend on the target: memory and string
 * functions, console formatting, command-line tokens. spt (lib/) and hvt (hvt/lib/) guests
 * both link the files of common/; each target provides console_write() and calls
 * cmdline_init().
 */
#ifndef GUEST_RUNTIME_H
#define GUEST_RUNTIME_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- strings and memory (common/string.c; gcc may also call mem* for struct copies) ----- */

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
bool str_eq(const char *a, const char *b);

/* ---- console (common/console.c, over the target's console_write) ------------------------ */

/* printf subset: %s %c %d %u %x (with l/ll, width and 0 flag), %%. One console_write per
 * call (unless the line outgrows the buffer), so a line printed in one call stays whole. */
__attribute__((format(printf, 1, 2))) void cprintf(const char *fmt, ...);
void cputs(const char *s);
/* The target's way out: write(1, ...) on spt, the puts hypercall on hvt. */
void console_write(const char *buf, size_t len);

/* ---- command line (common/cmdline.c) ---------------------------------------------------- */

/* Set once by the target's start code from its boot info. */
void cmdline_init(const char *line);
/* Tokens are separated by spaces. For a token KEY=VALUE, cmdline_value("KEY") returns a
 * pointer to VALUE (ending at the next space or NUL) and its length in *len; NULL if absent. */
const char *cmdline_value(const char *key, size_t *len);
/* True if a token is exactly `word`. */
bool cmdline_has(const char *word);
/* Parse the unsigned decimal value of KEY=N; false if absent or not a number. */
bool cmdline_uint(const char *key, uint64_t *out);
/* The command line the guest was started with (for printing). */
const char *cmdline_raw(void);

#endif
