/*
 * Signal names as `kill` takes them: TERM, SIGTERM, sigterm, 15, RTMIN+3, RTMAX-2.
 * The same table and rules as runnc_py/oci/signals.py (Linux numbering); anything that would
 * be an error there is 0 here, and the caller hands over so Python words the error.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "front.h"

#define SIGRTMIN_LINUX 34
#define SIGRTMAX_LINUX 64
#define MAX_NAME 32

static const struct {
    const char *name;
    int number;
} signals[] = {
    {"HUP", 1},     {"INT", 2},     {"QUIT", 3},    {"ILL", 4},    {"TRAP", 5},
    {"ABRT", 6},    {"IOT", 6},     {"BUS", 7},     {"FPE", 8},    {"KILL", 9},
    {"USR1", 10},   {"SEGV", 11},   {"USR2", 12},   {"PIPE", 13},  {"ALRM", 14},
    {"TERM", 15},   {"STKFLT", 16}, {"CHLD", 17},   {"CLD", 17},   {"CONT", 18},
    {"STOP", 19},   {"TSTP", 20},   {"TTIN", 21},   {"TTOU", 22},  {"URG", 23},
    {"XCPU", 24},   {"XFSZ", 25},   {"VTALRM", 26}, {"PROF", 27},  {"WINCH", 28},
    {"IO", 29},     {"POLL", 29},   {"PWR", 30},    {"SYS", 31},
};

/* A non-empty run of ASCII digits as a number, -1 if not one (or too large to matter). */
static int digits(const char *s)
{
    if (*s == '\0' || strlen(s) > 9 || strspn(s, "0123456789") != strlen(s))
        return -1;
    return atoi(s);
}

/* RTMIN, RTMIN+n, RTMAX, RTMAX-n within [RTMIN, RTMAX]; 0 otherwise. */
static int realtime(const char *name)
{
    static const struct {
        const char *base;
        int number, sign;
    } bases[] = {{"RTMIN", SIGRTMIN_LINUX, 1}, {"RTMAX", SIGRTMAX_LINUX, -1}};
    for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
        size_t len = strlen(bases[i].base);
        if (strncmp(name, bases[i].base, len) != 0)
            continue;
        if (name[len] == '\0')
            return bases[i].number;
        if (name[len] != (bases[i].sign > 0 ? '+' : '-'))
            continue;
        int offset = digits(name + len + 1);
        if (offset < 0)
            continue;
        int value = bases[i].number + bases[i].sign * offset;
        if (value >= SIGRTMIN_LINUX && value <= SIGRTMAX_LINUX)
            return value;
    }
    return 0;
}

int parse_signal(const char *text)
{
    char name[MAX_NAME + 1];
    /* Python strips Unicode whitespace and upper-cases Unicode: ASCII only here, and any
     * other byte hands over. */
    while (*text == ' ' || (*text >= '\t' && *text <= '\r'))
        text++;
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == ' ' || (text[len - 1] >= '\t' && text[len - 1] <= '\r')))
        len--;
    if (len == 0 || len > MAX_NAME)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch >= 0x80 || ch < 0x20)
            return 0;
        name[i] = (char)toupper(ch);
    }
    name[len] = '\0';
    int number = digits(name);
    if (number >= 0)
        return number >= 1 && number <= SIGRTMAX_LINUX ? number : 0;
    const char *bare = strncmp(name, "SIG", 3) == 0 ? name + 3 : name;
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
        if (strcmp(bare, signals[i].name) == 0)
            return signals[i].number;
    return realtime(bare);
}
