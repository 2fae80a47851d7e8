/*
 * Memory and string helpers (gcc may call mem* for struct copies even when freestanding) and
 * command-line tokens: the monitor joins the guest's arguments with single spaces.
 */
#include "hvt_guest.h"

void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    while (n--)
        *d++ = (uint8_t)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x < *y ? -1 : 1;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

bool str_eq(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

static const char *cmdline = "";

void cmdline_init(const char *line)
{
    cmdline = line;
}

/* The next token at or after *p: its start, with its length in *len; NULL at the end. */
static const char *next_token(const char **p, size_t *len)
{
    const char *s = *p;
    while (*s == ' ')
        s++;
    if (!*s)
        return NULL;
    const char *start = s;
    while (*s && *s != ' ')
        s++;
    *len = (size_t)(s - start);
    *p = s;
    return start;
}

const char *cmdline_value(const char *key, size_t *len)
{
    size_t klen = strlen(key), tlen;
    const char *p = cmdline, *tok;
    while ((tok = next_token(&p, &tlen)) != NULL)
        if (tlen > klen && tok[klen] == '=' && memcmp(tok, key, klen) == 0) {
            *len = tlen - klen - 1;
            return tok + klen + 1;
        }
    return NULL;
}

bool cmdline_has(const char *word)
{
    size_t wlen = strlen(word), tlen;
    const char *p = cmdline, *tok;
    while ((tok = next_token(&p, &tlen)) != NULL)
        if (tlen == wlen && memcmp(tok, word, wlen) == 0)
            return true;
    return false;
}

bool cmdline_uint(const char *key, uint64_t *out)
{
    size_t len;
    const char *v = cmdline_value(key, &len);
    if (v == NULL || len == 0 || len > 19)
        return false;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    *out = n;
    return true;
}
