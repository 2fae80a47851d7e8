/*
 * The command line: runc's global flags and the simple forms of state/start/kill/delete, as
 * runnc_py/cli.py's fast path (split_globals, FastVerb.parse) reads them. Anything else --
 * another verb, --help, kill --all, delete --force, an unknown or odd flag -- is not ours.
 */
#include <string.h>

#include "front.h"

#define DEFAULT_ROOT "/run/runnc-py"
#define MAX_ID_LEN 255 /* NAME_MAX: the ID is one directory name */

static const char *const value_opts[] = {"--root", "--log", "--log-format", "--delegate"};
static const char *const flag_opts[] = {"--debug", "--systemd-cgroup"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool one_of(const char *arg, const char *const *set, size_t n, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(set[i]) == len && strncmp(arg, set[i], len) == 0)
            return true;
    return false;
}

static bool is_key(const char *key, size_t keylen, const char *name)
{
    return keylen == strlen(name) && strncmp(key, name, keylen) == 0;
}

/* A global option's value into CMD (--delegate matters only for containers that are not
 * ours, which Python handles); false for a value the fast path leaves to click. */
static bool take_value(const char *key, size_t keylen, const char *value, struct command *cmd)
{
    if (is_key(key, keylen, "--root"))
        cmd->root = value;
    if (is_key(key, keylen, "--log"))
        cmd->log = value;
    if (is_key(key, keylen, "--log-format")) {
        cmd->log_json = strcmp(value, "json") == 0;
        return cmd->log_json || strcmp(value, "text") == 0;
    }
    return true;
}

/* Index of the verb after the global options, or -1 for a form the fast path leaves to click. */
static int split_globals(int argc, char **argv, struct command *cmd)
{
    int i = 1;
    while (i < argc) {
        const char *arg = argv[i];
        const char *eq = strchr(arg, '=');
        if (one_of(arg, flag_opts, COUNT(flag_opts), strlen(arg))) {
            i += 1;
        } else if (one_of(arg, value_opts, COUNT(value_opts), strlen(arg))) {
            if (i + 1 >= argc || !take_value(arg, strlen(arg), argv[i + 1], cmd))
                return -1;
            i += 2;
        } else if (strncmp(arg, "--", 2) == 0 && eq != NULL &&
                   one_of(arg, value_opts, COUNT(value_opts), (size_t)(eq - arg))) {
            if (!take_value(arg, (size_t)(eq - arg), eq + 1, cmd))
                return -1;
            i += 1;
        } else if (arg[0] == '-') {
            return -1;
        } else {
            return i;
        }
    }
    return -1;
}

bool valid_id(const char *id)
{
    size_t len = strlen(id);
    if (len == 0 || len > MAX_ID_LEN || strcmp(id, ".") == 0 || strcmp(id, "..") == 0 ||
        strcmp(id, DELEGATE_DIR) == 0)
        return false;
    return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.") ==
           len;
}

bool parse_command(int argc, char **argv, struct command *cmd)
{
    static const struct {
        const char *name;
        enum verb verb;
        int max_operands;
    } verbs[] = {
        {"state", VERB_STATE, 1},
        {"start", VERB_START, 1},
        {"kill", VERB_KILL, 2},
        {"delete", VERB_DELETE, 1},
    };
    *cmd = (struct command){.root = DEFAULT_ROOT};
    int at = split_globals(argc, argv, cmd);
    if (at < 0)
        return false;
    int max_operands = -1;
    for (size_t v = 0; v < COUNT(verbs); v++) {
        if (strcmp(argv[at], verbs[v].name) == 0) {
            cmd->verb = verbs[v].verb;
            max_operands = verbs[v].max_operands;
        }
    }
    if (max_operands < 0 || cmd->root[0] == '\0')
        return false;
    /* `delete --force` of a stopped container is a plain delete (lifecycle.delete), and the
     * shim's second delete passes it: the verb checks the status. Every other flag (kill
     * --all, --help) and every operand that looks like one goes to Python: either click
     * handles it or the fast path reports it. */
    const char *operand[2];
    int operands = 0;
    for (int i = at + 1; i < argc; i++) {
        if (cmd->verb == VERB_DELETE && (strcmp(argv[i], "--force") == 0 ||
                                         strcmp(argv[i], "-f") == 0))
            continue;
        if (argv[i][0] == '-' || operands == max_operands)
            return false;
        operand[operands++] = argv[i];
    }
    if (operands == 0)
        return false;
    cmd->id = operand[0];
    cmd->signal = operands == 2 ? operand[1] : NULL;
    return valid_id(cmd->id);
}
