/*
 * Console formatting for every guest: cprintf formats into a buffer and hands it to the
 * target's console_write() in one piece, so a line printed in one call is never interleaved
 * with the monitor's own output.
 */
#include "runtime.h"

#define CONSOLE_BUF 512

struct out {
    char buf[CONSOLE_BUF];
    size_t len;
};

static void flush(struct out *o)
{
    if (o->len)
        console_write(o->buf, o->len);
    o->len = 0;
}

static void put_char(struct out *o, char c)
{
    if (o->len == sizeof(o->buf))
        flush(o);
    o->buf[o->len++] = c;
}

static void put_str(struct out *o, const char *s)
{
    while (*s)
        put_char(o, *s++);
}

static void put_uint(struct out *o, uint64_t v, unsigned base, int width, char pad)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    for (; width > n; width--)
        put_char(o, pad);
    while (n)
        put_char(o, digits[--n]);
}

static void vformat(struct out *o, const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put_char(o, *fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0, longs = 0;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') {
            longs++;
            fmt++;
        }
        switch (*fmt) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            put_str(o, s ? s : "(null)");
            break;
        }
        case 'c':
            put_char(o, (char)va_arg(ap, int));
            break;
        case 'd': {
            int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
            if (v < 0) {
                put_char(o, '-');
                put_uint(o, (uint64_t)0 - (uint64_t)v, 10, width > 0 ? width - 1 : 0, pad);
            } else {
                put_uint(o, (uint64_t)v, 10, width, pad);
            }
            break;
        }
        case 'u':
        case 'x': {
            uint64_t v = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            put_uint(o, v, *fmt == 'x' ? 16 : 10, width, pad);
            break;
        }
        case '%':
            put_char(o, '%');
            break;
        case '\0':
            return;
        default: /* unknown conversion: show it rather than guess at the argument */
            put_char(o, '%');
            put_char(o, *fmt);
        }
    }
}

void cprintf(const char *fmt, ...)
{
    struct out o;
    va_list ap;

    o.len = 0;
    va_start(ap, fmt);
    vformat(&o, fmt, ap);
    va_end(ap);
    flush(&o);
}

void cputs(const char *s)
{
    cprintf("%s", s);
}
