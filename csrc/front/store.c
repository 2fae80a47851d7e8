/*
 * The container's directory and state.json under the trust rules of docs/state.md: the root
 * and the container directory must be ours and closed to others, files are opened with
 * O_NOFOLLOW relative to the directory's fd, and state.json must be format 1 exactly.
 * Anything else is false, and the caller hands over (Python words the refusal).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "front.h"

#define STATE_FILE "state.json"
#define LOCK_FILE "lock"
#define MAX_STATE_SIZE (4 << 20) /* 4 MiB: rule 3 */
#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOFOLLOW)

/* ------------------------------------------------------------------ rules 1 and 2 */

/* Owned by the effective uid and not writable by group or others. */
static bool private_dir(const struct stat *st)
{
    return S_ISDIR(st->st_mode) && st->st_uid == geteuid() && (st->st_mode & 022) == 0;
}

/* Every ancestor of the resolved root: owned by root or us, and closed or sticky (/tmp). */
static bool trusted_ancestors(const char *path)
{
    char prefix[PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof(prefix) || path[0] != '/')
        return false;
    for (size_t i = 0; i < len; i++) { /* each '/' ends an ancestor; the root's own fd is
                                          checked by the caller */
        if (path[i] != '/')
            continue;
        size_t cut = i == 0 ? 1 : i;
        memcpy(prefix, path, cut);
        prefix[cut] = '\0';
        struct stat st;
        if (stat(prefix, &st) != 0)
            return false;
        if (st.st_uid != 0 && st.st_uid != geteuid())
            return false;
        if ((st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0)
            return false;
    }
    return true;
}

/* No <root>/<id> at all, and none in the delegate directory either (lifecycle.container_dir:
 * a delegated container is handed to --delegate, or refused with its own message). */
static enum opened missing(const struct container *c)
{
    char delegated[PATH_MAX];
    struct stat st;
    snprintf(delegated, sizeof(delegated), "%s/%s", DELEGATE_DIR, c->id);
    if (fstatat(c->root_fd, delegated, &st, 0) == 0)
        return S_ISDIR(st.st_mode) ? OPEN_REFUSED : OPEN_MISSING;
    return errno == ENOENT || errno == ENOTDIR ? OPEN_MISSING : OPEN_REFUSED;
}

enum opened open_container(const char *root, const char *id, struct container *c)
{
    struct stat st;
    memset(c, 0, sizeof(*c));
    c->root_fd = c->dir_fd = -1;
    c->id = id;
    c->root_path = realpath(root, NULL);
    if (c->root_path == NULL) /* no root yet: nothing in it to trust, no container either */
        return errno == ENOENT ? OPEN_MISSING : OPEN_REFUSED;
    if (!trusted_ancestors(c->root_path))
        return OPEN_REFUSED;
    c->root_fd = open(c->root_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (c->root_fd < 0 || fstat(c->root_fd, &st) != 0 || !private_dir(&st))
        return OPEN_REFUSED;
    /* O_NOFOLLOW: a symlink, even a dangling one, is ELOOP, so ENOENT means no entry at all. */
    c->dir_fd = openat(c->root_fd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (c->dir_fd < 0)
        return errno == ENOENT ? missing(c) : OPEN_REFUSED;
    return fstat(c->dir_fd, &st) == 0 && private_dir(&st) ? OPENED : OPEN_REFUSED;
}

bool lock_container(struct container *c)
{
    /* No O_CREAT: create makes it; re-creating it here would race with delete. The fd stays
     * open (O_CLOEXEC) until exit, or until a hand-over's exec drops it. */
    int fd = openat(c->dir_fd, LOCK_FILE, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false;
    int rc;
    do
        rc = flock(fd, LOCK_EX);
    while (rc != 0 && errno == EINTR);
    return rc == 0;
}

int entry_state(const struct container *c, const char *name, bool want_fifo)
{
    struct stat st;
    if (fstatat(c->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : -1;
    if (want_fifo && !S_ISFIFO(st.st_mode))
        return -1;
    return 1;
}

/* ------------------------------------------------------------------ rule 3: reading */

static char *read_state_file(const struct container *c, size_t *size)
{
    struct stat st;
    int fd = openat(c->dir_fd, STATE_FILE, OPEN_FLAGS);
    if (fd < 0)
        return NULL;
    char *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 022) != 0 || st.st_size > MAX_STATE_SIZE)
        goto out;
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL)
        goto out;
    size_t got = 0;
    while (got <= (size_t)st.st_size) { /* one byte more than expected: it must not grow */
        ssize_t n = read(fd, buf + got, (size_t)st.st_size + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            buf = NULL;
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got > (size_t)st.st_size) { /* replaced or grown under us: not a rename */
        free(buf);
        buf = NULL;
        goto out;
    }
    *size = got;
out:
    close(fd);
    return buf;
}

/* ------------------------------------------------------------------ format 1 */

/* Every key of format 1, in ContainerState.to_json's order: a key we do not know means a
 * newer format, which only Python may read and rewrite. */
static const char *const state_keys[] = {
    "runncPy", "id",      "bundle",  "rootfs",       "created", "owner",
    "annotations", "pid", "pidStart", "phase",       "creator", "creatorStart",
    "paused",  "cgroup",  "hooks",   "rootfsImage",
};
#define NKEYS (sizeof(state_keys) / sizeof(state_keys[0]))

static bool known_keys_only(json_t *doc)
{
    const char *key;
    json_t *value;
    json_object_foreach(doc, key, value) {
        bool known = false;
        for (size_t i = 0; i < NKEYS; i++)
            known = known || strcmp(key, state_keys[i]) == 0;
        if (!known)
            return false;
    }
    return true;
}

static const char *string_field(json_t *doc, const char *key)
{
    json_t *v = json_object_get(doc, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* An integer >= 0; NULLABLE lets JSON null through as -1. false otherwise. */
static bool count_field(json_t *doc, const char *key, bool nullable, long long *out)
{
    json_t *v = json_object_get(doc, key);
    if (nullable && json_is_null(v)) {
        *out = -1;
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = json_integer_value(v);
    return true;
}

static bool string_map(json_t *v)
{
    const char *key;
    json_t *value;
    if (!json_is_object(v))
        return false;
    json_object_foreach(v, key, value) {
        if (!json_is_string(value))
            return false;
    }
    return true;
}

/* poststart/poststop -> lists of hook objects, nothing else (state.py _state_problem). */
static bool valid_hooks(json_t *hooks)
{
    const char *kind;
    json_t *list;
    if (!json_is_object(hooks))
        return false;
    json_object_foreach(hooks, kind, list) {
        size_t i;
        json_t *hook;
        if ((strcmp(kind, "poststart") != 0 && strcmp(kind, "poststop") != 0) ||
            !json_is_array(list))
            return false;
        json_array_foreach(list, i, hook) {
            if (!json_is_object(hook))
                return false;
        }
    }
    return true;
}

static bool parse_phase(const char *text, enum phase *phase)
{
    static const char *const names[] = {"creating", "created", "running"};
    for (int i = 0; i < 3; i++) {
        if (text != NULL && strcmp(text, names[i]) == 0) {
            *phase = (enum phase)i;
            return true;
        }
    }
    return false;
}

static bool valid_state(struct container *c, json_t *doc)
{
    json_t *marker = json_object_get(doc, "runncPy");
    json_t *image = json_object_get(doc, "rootfsImage");
    const char *id = string_field(doc, "id");
    if (!json_is_object(doc) || json_object_size(doc) != NKEYS || !known_keys_only(doc))
        return false;
    if (!json_is_integer(marker) || json_integer_value(marker) != 1)
        return false;
    if (id == NULL || strcmp(id, c->id) != 0)
        return false;
    c->bundle = string_field(doc, "bundle");
    c->rootfs = string_field(doc, "rootfs");
    c->created = string_field(doc, "created");
    c->owner = string_field(doc, "owner");
    if (!c->bundle || !c->rootfs || !c->created || !c->owner)
        return false;
    c->annotations = json_object_get(doc, "annotations");
    if (!string_map(c->annotations))
        return false;
    if (!count_field(doc, "pid", false, &c->pid) ||
        !count_field(doc, "pidStart", true, &c->pid_start) ||
        !count_field(doc, "creator", false, &c->creator) ||
        !count_field(doc, "creatorStart", true, &c->creator_start))
        return false;
    /* A pid without its start time could be anyone's: rules 4 and 5 need both. */
    if ((c->pid > 0 && c->pid_start < 0) || (c->creator > 0 && c->creator_start < 0))
        return false;
    if (c->pid > INT32_MAX || c->creator > INT32_MAX)
        return false;
    if (!parse_phase(string_field(doc, "phase"), &c->phase))
        return false;
    if (!json_is_boolean(json_object_get(doc, "paused")))
        return false;
    c->paused = json_is_true(json_object_get(doc, "paused"));
    c->cgroup = json_object_get(doc, "cgroup");
    if (json_is_null(c->cgroup))
        c->cgroup = NULL;
    else if (!json_is_object(c->cgroup))
        return false;
    c->hooks = json_object_get(doc, "hooks");
    if (!valid_hooks(c->hooks))
        return false;
    /* Python checks a rootfs image path against the name create derives (a digest of root
     * and ID): containers with one are left to it. */
    return json_is_null(image);
}

bool load_state(struct container *c)
{
    size_t size = 0;
    char *text = read_state_file(c, &size);
    if (text == NULL)
        return false;
    /* Duplicate keys would make the two readers disagree on which one counts: Python's is
     * the last, but in the first one's place. NUL in strings is refused by default. */
    c->doc = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
    free(text);
    return c->doc != NULL && valid_state(c, c->doc);
}

/* ------------------------------------------------------------------ status */

enum status container_status(const struct container *c)
{
    if (c->phase == PHASE_CREATING)
        return c->creator > 0 && pid_matches((pid_t)c->creator, c->creator_start) ? ST_CREATING
                                                                                   : ST_STOPPED;
    if (c->pid <= 0 || !pid_matches((pid_t)c->pid, c->pid_start))
        return ST_STOPPED;
    if (c->phase == PHASE_CREATED) {
        /* Python asks os.path.exists, which follows a symlink: anything but a FIFO (or
         * nothing) there is not ours to interpret. */
        int fifo = entry_state(c, "exec.fifo", true);
        if (fifo < 0)
            handover("exec.fifo is not a FIFO");
        if (fifo == 1)
            return ST_CREATED;
    }
    return c->paused ? ST_PAUSED : ST_RUNNING;
}

const char *status_name(enum status s)
{
    static const char *const names[] = {"creating", "created", "running", "paused", "stopped"};
    return names[s];
}

bool has_hooks(const struct container *c, const char *kind)
{
    return json_array_size(json_object_get(c->hooks, kind)) > 0;
}

/* ------------------------------------------------------------------ writing */

static json_t *state_document(const struct container *c, enum phase phase)
{
    static const char *const phases[] = {"creating", "created", "running"};
    json_t *out = json_object();
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < NKEYS; i++) {
        json_t *value = strcmp(state_keys[i], "phase") == 0
                            ? json_string(phases[phase])
                            : json_incref(json_object_get(c->doc, state_keys[i]));
        if (json_object_set_new(out, state_keys[i], value) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

int save_phase(struct container *c, enum phase phase)
{
    char tmp[64];
    json_t *doc = state_document(c, phase);
    if (doc == NULL)
        return -1;
    /* What Python writes: ", " and ": " separators, no indent, ASCII only. */
    char *text = json_dumps(doc, JSON_ENSURE_ASCII);
    json_decref(doc);
    if (text == NULL)
        return -1;
    snprintf(tmp, sizeof(tmp), ".%s.%d", STATE_FILE, (int)getpid());
    int rc = -1;
    int fd = openat(c->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
        size_t len = strlen(text), done = 0;
        while (done < len) {
            ssize_t n = write(fd, text + done, len - done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            done += (size_t)n;
        }
        rc = close(fd) == 0 && done == len ? 0 : -1;
        if (rc == 0)
            rc = renameat(c->dir_fd, tmp, c->dir_fd, STATE_FILE);
        if (rc != 0)
            unlinkat(c->dir_fd, tmp, 0);
    }
    free(text);
    return rc;
}
