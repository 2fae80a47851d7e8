/*
 * Formatting for the run loop's one-line reports, without libc (see loop.h). The messages
 * are the ones the monitor always wrote with snprintf, so the formats supported are exactly
 * those they use.
 */
#include <linux/errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "loop.h"

struct out {
    char *p, *end; /* end: the last byte, kept for the NUL */
};

static void put_char(struct out *o, char c)
{
    if (o->p < o->end)
        *o->p++ = c;
}

static void put_str(struct out *o, const char *s)
{
    while (*s)
        put_char(o, *s++);
}

static void put_number(struct out *o, unsigned long long v, unsigned base, bool alt)
{
    char digits[24];
    int n = 0;
    /* printf's # adds 0x to a non-zero hexadecimal number only. */
    if (alt && base == 16 && v != 0)
        put_str(o, "0x");
    do {
        digits[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n)
        put_char(o, digits[--n]);
}

size_t loop_vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
    if (size == 0)
        return 0;
    struct out o = {buf, buf + size - 1};
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            put_char(&o, *f);
            continue;
        }
        f++;
        bool alt = false;
        int longs = 0;
        if (*f == '#') {
            alt = true;
            f++;
        }
        while (*f == 'l') {
            longs++;
            f++;
        }
        switch (*f) {
        case 's':
            put_str(&o, va_arg(ap, const char *));
            break;
        case 'd': {
            long long v = longs ? va_arg(ap, long long) : va_arg(ap, int);
            unsigned long long magnitude = (unsigned long long)v;
            if (v < 0) {
                put_char(&o, '-');
                magnitude = 0 - magnitude; /* also right for the most negative value */
            }
            put_number(&o, magnitude, 10, false);
            break;
        }
        case 'u':
        case 'x': {
            unsigned long long v =
                longs ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned);
            put_number(&o, v, *f == 'x' ? 16 : 10, alt);
            break;
        }
        case '%':
            put_char(&o, '%');
            break;
        default: /* not a format this code uses: show it rather than guess */
            put_char(&o, '%');
            if (*f == '\0')
                f--;
            else
                put_char(&o, *f);
        }
    }
    *o.p = '\0';
    return (size_t)(o.p - buf);
}

int loop_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    loop_vformat(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* glibc's strerror() text for the errors the loop's calls can return. */
static const char *error_text(int errnum)
{
    switch (errnum) {
    case EPERM: return "Operation not permitted";
    case ENOENT: return "No such file or directory";
    case EINTR: return "Interrupted system call";
    case EIO: return "Input/output error";
    case ENXIO: return "No such device or address";
    case E2BIG: return "Argument list too long";
    case ENOEXEC: return "Exec format error";
    case EBADF: return "Bad file descriptor";
    case EAGAIN: return "Resource temporarily unavailable";
    case ENOMEM: return "Cannot allocate memory";
    case EACCES: return "Permission denied";
    case EFAULT: return "Bad address";
    case EBUSY: return "Device or resource busy";
    case ENODEV: return "No such device";
    case EINVAL: return "Invalid argument";
    case ENOSPC: return "No space left on device";
    case ERANGE: return "Numerical result out of range";
    case ENOSYS: return "Function not implemented";
    case EOPNOTSUPP: return "Operation not supported";
    case EHWPOISON: return "Memory page has hardware error";
    default: return NULL;
    }
}

int loop_fail_errno(char *err, size_t errlen, const char *what, int errnum)
{
    const char *text = error_text(errnum);
    if (text == NULL)
        return loop_fail(err, errlen, "%s: Unknown error %d", what, errnum);
    return loop_fail(err, errlen, "%s: %s", what, text);
}

/* Plain loops: -fno-tree-loop-distribute-patterns keeps gcc from turning them back into
 * calls to themselves. */
void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}
