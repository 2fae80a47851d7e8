/*
 * The four verbs, each as runnc_py/oci/lifecycle.py does it for a container it can handle
 * without Python: open (trust rules) -> lock -> load -> derive the status -> decide -> act ->
 * save. Every refusal hands over before acting, so Python words it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "front.h"

#define FIFO_FILE "exec.fifo"
#define NET_JSON "net.json"
#define LOCK_FILE "lock"
#define STATE_FILE "state.json"

/* Open, (lock,) load: the steps every verb starts with. */
static void open_locked(const struct command *cmd, struct container *c, bool lock)
{
    switch (open_container(cmd->root, cmd->id, c)) {
    case OPENED:
        break;
    case OPEN_MISSING:
        exit(report_missing(cmd));
    case OPEN_REFUSED:
        handover("container directory untrusted, or delegated");
    }
    if (lock && !lock_container(c))
        handover("cannot lock the container");
    if (!load_state(c))
        handover("state.json missing, untrusted or not format 1");
}

static int write_all(int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        text += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ------------------------------------------------------------------ state */

int verb_state(const struct command *cmd)
{
    struct container c;
    open_locked(cmd, &c, false); /* like Python: state.json is replaced atomically */
    char *out = oci_state_json(&c, container_status(&c));
    if (out == NULL)
        handover("out of memory");
    return write_all(STDOUT_FILENO, out, strlen(out)) == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------ start */

/* Return once the init has closed exec.fifo (lifecycle._wait_reader_gone): a pipe writer
 * learns that the last reader left from POLLERR, but POLLOUT hides it while there is room, so
 * fill the pipe first (the init reads one byte only), then poll. */
static void wait_reader_gone(int fd, const struct container *c)
{
    static const char chunk[65536];
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    for (;;) {
        ssize_t n;
        do
            n = write(fd, chunk, sizeof(chunk));
        while (n > 0 || (n < 0 && errno == EINTR));
        if (n < 0 && errno == EPIPE)
            return;
        if (poll(&p, 1, 100) > 0 && (p.revents & (POLLERR | POLLHUP)))
            return;
        if (!pid_matches((pid_t)c->pid, c->pid_start))
            return;
    }
}

int verb_start(const struct command *cmd)
{
    struct container c;
    open_locked(cmd, &c, true);
    if (container_status(&c) != ST_CREATED)
        handover("not created");
    if (has_hooks(&c, "poststart"))
        handover("poststart hooks");
    if (entry_state(&c, FIFO_FILE, true) != 1)
        handover("exec.fifo is not a FIFO");
    int fd = openat(c.dir_fd, FIFO_FILE, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        handover("the init is not waiting on exec.fifo"); /* ENXIO: no reader */
    ignore_sigpipe();
    if (write(fd, "0", 1) != 1)
        handover("the init left exec.fifo"); /* nothing changed yet: Python retries */
    /* From here on the container is started: no hand-over. */
    unlinkat(c.dir_fd, FIFO_FILE, 0);
    wait_reader_gone(fd, &c);
    close(fd);
    restore_sigpipe();
    if (save_phase(&c, PHASE_RUNNING) != 0) {
        fprintf(stderr, "runnc-py: %s: started, but cannot save state.json: %s\n", c.id,
                strerror(errno));
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ kill */

int verb_kill(const struct command *cmd)
{
    int signum = parse_signal(cmd->signal ? cmd->signal : "SIGTERM");
    if (signum == 0)
        handover("signal Python would refuse");
    struct container c;
    open_locked(cmd, &c, true);
    enum status status = container_status(&c);
    if (status == ST_STOPPED || status == ST_CREATING)
        handover("not running");
    if (status == ST_PAUSED && signum == 9)
        handover("SIGKILL to a paused container thaws its cgroup");
    if (signal_verified((pid_t)c.pid, c.pid_start, signum) != 0)
        handover("init not verified or signal refused"); /* nothing was sent */
    return 0;
}

/* ------------------------------------------------------------------ delete */

/* A fresh stream over the container directory (not a dup of dir_fd: that would share one
 * offset, and a second listing would start where the first one ended). */
static DIR *list_container_dir(const struct container *c)
{
    int fd = openat(c->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL && fd >= 0)
        close(fd);
    return d;
}

/* The container directory holds files only (Store.remove refuses a subdirectory). */
static bool files_only(const struct container *c)
{
    DIR *d = list_container_dir(c);
    if (d == NULL)
        return false;
    bool ok = true;
    struct dirent *e;
    while (ok && (e = readdir(d)) != NULL)
        ok = e->d_type == DT_REG || e->d_type == DT_FIFO ||
             strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return ok;
}

/* Unlink every file, then state.json, then the lock, then the directory (Store.remove). While
 * state.json is there a retry by Python sees the same container. */
static int remove_container_dir(const struct container *c)
{
    static const char *const last[] = {STATE_FILE, LOCK_FILE};
    DIR *d = list_container_dir(c);
    if (d == NULL)
        return -1;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            strcmp(e->d_name, STATE_FILE) == 0 || strcmp(e->d_name, LOCK_FILE) == 0)
            continue;
        if (unlinkat(c->dir_fd, e->d_name, 0) != 0 && errno != ENOENT)
            rc = -1;
    }
    closedir(d);
    for (size_t i = 0; rc == 0 && i < 2; i++)
        if (unlinkat(c->dir_fd, last[i], 0) != 0 && errno != ENOENT)
            rc = -1;
    if (rc != 0)
        return -1;
    return unlinkat(c->root_fd, c->id, AT_REMOVEDIR) != 0 && errno != ENOENT ? -1 : 0;
}

int verb_delete(const struct command *cmd)
{
    struct container c;
    struct cgroup_removal cgroup = {0};
    open_locked(cmd, &c, true);
    /* A "creating" container may have a live init (its creator died): Python kills it, as it
     * does what --force asks for a container that is not stopped. */
    if (c.phase == PHASE_CREATING || container_status(&c) != ST_STOPPED)
        handover("not stopped, or an interrupted create");
    if (has_hooks(&c, "poststop"))
        handover("poststop hooks");
    if (entry_state(&c, NET_JSON, false) != 0)
        handover("network wiring to undo");
    if (c.cgroup != NULL && !plan_cgroup_removal(&c, &cgroup))
        handover("cgroup not removable as recorded");
    if (!files_only(&c))
        handover("unexpected entry in the container directory");
    /* Both removals are idempotent: if the kernel refuses one half-way (a task that joined
     * the cgroup since the check), Python redoes what is left from the same state.json
     * (removed after everything but the lock) and words the failure. */
    if (c.cgroup != NULL && remove_cgroup(&cgroup) != 0)
        handover("cgroup removal refused");
    if (remove_container_dir(&c) != 0)
        handover("container directory removal refused");
    return 0;
}
