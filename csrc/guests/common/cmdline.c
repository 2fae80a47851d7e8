/*
 * Command-line tokens. The tender joins the guest's arguments with single spaces; our guests
 * take `KEY=VALUE` and bare-word tokens in any order, and ignore tokens they do not know.
 */
#include "runtime.h"

static const char *cmdline = "";

void cmdline_init(const char *line)
{
    cmdline = line;
}

const char *cmdline_raw(void)
{
    return cmdline;
}

/* Walk the tokens: call `match` on each until it returns true. */
static const char *find_token(bool (*match)(const char *tok, size_t len, const char *arg),
                              const char *arg, size_t *tok_len)
{
    const char *p = cmdline;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *start = p;
        while (*p && *p != ' ')
            p++;
        size_t len = (size_t)(p - start);
        if (len && match(start, len, arg)) {
            *tok_len = len;
            return start;
        }
    }
    return NULL;
}

static bool is_key(const char *tok, size_t len, const char *key)
{
    size_t klen = strlen(key);
    return len > klen && tok[klen] == '=' && memcmp(tok, key, klen) == 0;
}

static bool is_word(const char *tok, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(tok, word, len) == 0;
}

const char *cmdline_value(const char *key, size_t *len)
{
    size_t tok_len;
    const char *tok = find_token(is_key, key, &tok_len);
    if (tok == NULL)
        return NULL;
    size_t klen = strlen(key) + 1;
    *len = tok_len - klen;
    return tok + klen;
}

bool cmdline_has(const char *word)
{
    size_t tok_len;
    return find_token(is_word, word, &tok_len) != NULL;
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
