/*
 * Removing a stopped container's cgroup (trust rule 5): the recorded mounts are never used;
 * the directories are rebuilt on the hierarchies mounted now (as runnc_py/oci/cgroups.py
 * CgroupLayout.detect finds them), from the recorded path only if it is absolute, normalised
 * and not "/", and a recorded `created` parent only if it is a detected mount joined with a
 * proper ancestor of the path. Which directories go is Cgroup.remove's rule: the container's
 * cgroup in each hierarchy, then the empty parents this cgroup created and our default parent
 * /runnc-py, deepest first; a busy parent stays.
 *
 * The plan also checks that removal will work (no sub-cgroups, no tasks left): anything else
 * is Python's to report, before anything is removed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "front.h"

#define CGROUP_ROOT "/sys/fs/cgroup"
#define DEFAULT_PARENT "/runnc-py"
#define MAX_MOUNTS 16
#define RMDIR_TIMEOUT_NS 1000000000LL /* killed tasks leave asynchronously: Cgroup._rmtree's 1 s */

/* v1 hierarchies a container joins (cgroup_plan.V1_JOIN). */
static const char *const v1_join[] = {"blkio",   "cpu",     "cpuacct", "cpuset", "devices",
                                      "freezer", "hugetlb", "memory",  "pids"};

struct layout {
    int version;
    char *mounts[MAX_MOUNTS]; /* distinct mount points */
    size_t nmounts;
};

static bool add_mount(struct layout *l, const char *mount)
{
    for (size_t i = 0; i < l->nmounts; i++)
        if (strcmp(l->mounts[i], mount) == 0)
            return true;
    if (l->nmounts == MAX_MOUNTS)
        return false;
    return (l->mounts[l->nmounts++] = strdup(mount)) != NULL;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
    char *out = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

/* One mountinfo line: a v1 cgroup mount holding a controller we join adds its mount point. */
static bool parse_mountinfo_line(char *line, struct layout *l)
{
    char *dash = strstr(line, " - ");
    if (dash == NULL)
        return true;
    *dash = '\0';
    char *fields[5], *save = NULL, *tok = strtok_r(line, " ", &save);
    int n = 0;
    for (; tok != NULL && n < 5; tok = strtok_r(NULL, " ", &save))
        fields[n++] = tok;
    char *fstype = strtok_r(dash + 3, " ", &save);
    char *source = strtok_r(NULL, " ", &save);
    char *options = strtok_r(NULL, " \n", &save);
    if (n < 5 || fstype == NULL || source == NULL || options == NULL ||
        strcmp(fstype, "cgroup") != 0)
        return true;
    unescape(fields[4]);
    char *opt_save = NULL;
    for (char *opt = strtok_r(options, ",", &opt_save); opt != NULL;
         opt = strtok_r(NULL, ",", &opt_save))
        for (size_t i = 0; i < sizeof(v1_join) / sizeof(v1_join[0]); i++)
            if (strcmp(opt, v1_join[i]) == 0 && !add_mount(l, fields[4]))
                return false;
    return true;
}

/* v2 when the root is a cgroup2 mount; else the v1 hierarchies (a hybrid host counts as v1). */
static bool detect_layout(struct layout *l)
{
    memset(l, 0, sizeof(*l));
    if (access(CGROUP_ROOT "/cgroup.controllers", F_OK) == 0) {
        l->version = 2;
        return add_mount(l, CGROUP_ROOT);
    }
    l->version = 1;
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return false;
    char *line = NULL;
    size_t cap = 0;
    bool ok = true;
    while (ok && getline(&line, &cap, f) > 0)
        ok = parse_mountinfo_line(line, l);
    free(line);
    fclose(f);
    return ok && l->nmounts > 0;
}

/* Absolute, not "/", no empty, "." or ".." component, no trailing slash. */
static bool normalised_path(const char *path)
{
    if (path[0] != '/' || path[1] == '\0')
        return false;
    for (const char *p = path; *p;) {
        const char *part = p + 1, *end = strchr(part, '/');
        size_t len = end ? (size_t)(end - part) : strlen(part);
        if (len == 0 || (len == 1 && part[0] == '.') || (len == 2 && strncmp(part, "..", 2) == 0))
            return false;
        p = part + len;
    }
    return true;
}

static char *join(const char *mount, const char *rel, size_t rel_len)
{
    char *out = NULL;
    if (asprintf(&out, "%s%.*s", mount, (int)rel_len, rel) < 0)
        return NULL;
    return out;
}

static bool listed(char **list, size_t n, const char *item)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], item) == 0)
            return true;
    return false;
}

/* Is ENTRY a detected mount joined with a proper ancestor of PATH? */
static bool proper_ancestor_dir(const struct layout *l, const char *path, const char *entry)
{
    for (size_t m = 0; m < l->nmounts; m++) {
        size_t mlen = strlen(l->mounts[m]);
        if (strncmp(entry, l->mounts[m], mlen) != 0 || entry[mlen] != '/')
            continue;
        const char *rel = entry + mlen;
        size_t rlen = strlen(rel);
        if (rlen < strlen(path) && strncmp(path, rel, rlen) == 0 && path[rlen] == '/')
            return true;
    }
    return false;
}

static bool add_parent(struct cgroup_removal *plan, char *dir)
{
    if (dir == NULL)
        return false;
    if (listed(plan->dirs, plan->ndirs, dir) || listed(plan->parents, plan->nparents, dir)) {
        free(dir);
        return true;
    }
    char **grown = realloc(plan->parents, (plan->nparents + 1) * sizeof(char *));
    if (grown == NULL)
        return false;
    plan->parents = grown;
    plan->parents[plan->nparents++] = dir;
    return true;
}

static size_t depth(const char *p)
{
    size_t n = 0;
    for (; *p; p++)
        n += *p == '/';
    return n;
}

static int deeper_first(const void *a, const void *b)
{
    size_t da = depth(*(char *const *)a), db = depth(*(char *const *)b);
    return da < db ? 1 : da > db ? -1 : 0;
}

/* A container cgroup directory that removal can take now: gone already, or a real directory
 * holding only files (no sub-cgroup) and no task in cgroup.procs. */
static bool removable(const char *dir)
{
    struct stat st;
    if (lstat(dir, &st) != 0)
        return errno == ENOENT;
    if (!S_ISDIR(st.st_mode))
        return false;
    DIR *d = opendir(dir);
    if (d == NULL)
        return false;
    bool ok = true;
    struct dirent *e;
    while (ok && (e = readdir(d)) != NULL)
        ok = e->d_type == DT_REG || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    if (!ok)
        return false;
    char *procs = NULL, buf[16];
    if (asprintf(&procs, "%s/cgroup.procs", dir) < 0)
        return false;
    int fd = open(procs, O_RDONLY | O_CLOEXEC);
    free(procs);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    return n == 0;
}

/* The recorded mounts are never used, but Python refuses a record whose mounts are not a
 * non-empty map of names to absolute paths (Cgroup.from_json): so do we. */
static bool well_formed_mounts(json_t *mounts)
{
    const char *key;
    json_t *mount;
    if (!json_is_object(mounts) || json_object_size(mounts) == 0)
        return false;
    json_object_foreach(mounts, key, mount) {
        if (!json_is_string(mount) || json_string_value(mount)[0] != '/')
            return false;
    }
    return true;
}

bool plan_cgroup_removal(const struct container *c, struct cgroup_removal *plan)
{
    struct layout l;
    memset(plan, 0, sizeof(*plan));
    json_t *version = json_object_get(c->cgroup, "version");
    json_t *created = json_object_get(c->cgroup, "created");
    const char *path = json_string_value(json_object_get(c->cgroup, "path"));
    if (!detect_layout(&l) || !json_is_integer(version) || json_integer_value(version) != l.version)
        return false;
    if (path == NULL || !normalised_path(path) || !json_is_array(created) ||
        !well_formed_mounts(json_object_get(c->cgroup, "mounts")))
        return false;
    plan->dirs = calloc(l.nmounts, sizeof(char *));
    if (plan->dirs == NULL)
        return false;
    for (size_t m = 0; m < l.nmounts; m++) {
        char *dir = join(l.mounts[m], path, strlen(path));
        if (dir == NULL || !removable(dir))
            return false;
        plan->dirs[plan->ndirs++] = dir;
    }
    size_t i;
    json_t *entry;
    json_array_foreach(created, i, entry) {
        const char *dir = json_string_value(entry);
        if (dir == NULL)
            return false;
        if (listed(plan->dirs, plan->ndirs, dir))
            continue;
        if (!proper_ancestor_dir(&l, path, dir) || !add_parent(plan, strdup(dir)))
            return false;
    }
    if (strncmp(path, DEFAULT_PARENT "/", strlen(DEFAULT_PARENT) + 1) == 0)
        for (size_t m = 0; m < l.nmounts; m++)
            if (!add_parent(plan, join(l.mounts[m], DEFAULT_PARENT, strlen(DEFAULT_PARENT))))
                return false;
    qsort(plan->parents, plan->nparents, sizeof(char *), deeper_first);
    return true;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int remove_cgroup(const struct cgroup_removal *plan)
{
    for (size_t i = 0; i < plan->ndirs; i++) {
        long long deadline = now_ns() + RMDIR_TIMEOUT_NS;
        while (rmdir(plan->dirs[i]) != 0 && errno != ENOENT) {
            if (errno != EBUSY || now_ns() > deadline)
                return -1;
            struct timespec pause = {0, 10 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
    for (size_t i = 0; i < plan->nparents; i++)
        if (rmdir(plan->parents[i]) != 0 && errno != ENOENT && errno != EBUSY &&
            errno != ENOTEMPTY)
            return -1;
    return 0;
}
