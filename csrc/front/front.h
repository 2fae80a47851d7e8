/*
 * runnc-py's C front end: the hot verbs engines call per container (`state`, `start`, `kill`,
 * `delete`) done without an interpreter, from the state `create` wrote (docs/state.md).
 *
 * The rule every module here follows: decide everything before acting, and whenever anything
 * is unusual or wrong, hand the whole call to the Python CLI unchanged (handover()), so every
 * message, exit status and --log entry is the Python one. Two errors are worded here: a
 * Python entry that cannot be run, and "container does not exist", which engines provoke on
 * every container (the shim's second `delete`) and which report.c writes byte for byte as
 * the Python CLI does (tests/integration/test_front.py compares them).
 *
 * Memory is never freed: every call is one short process that exits or execs.
 */
#ifndef RUNNC_FRONT_H
#define RUNNC_FRONT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* ------------------------------------------------------------------ hand-over (handover.c) */

/* Remember the original command line, so a hand-over passes it on unchanged. */
void handover_init(int argc, char **argv);

/* execv the Python entry with the original argv and environment; WHY is appended to the
 * file $RUNNC_PY_FRONT_TRACE names, if set. Never returns. */
__attribute__((noreturn)) void handover(const char *why);

/* Ignore SIGPIPE while writing to exec.fifo (EPIPE instead of death), then put back the
 * engine's disposition (handover() does it too). */
void ignore_sigpipe(void);
void restore_sigpipe(void);

/* ------------------------------------------------------------------ command line (cli.c) */

#define DELEGATE_DIR ".delegate" /* <root>/.delegate: containers handed to --delegate */

enum verb { VERB_STATE, VERB_START, VERB_KILL, VERB_DELETE };

struct command {
    const char *root;   /* --root as given (default /run/runnc-py) */
    const char *log;    /* --log as given, NULL or "" for none */
    bool log_json;      /* --log-format json (else text) */
    enum verb verb;
    const char *id;
    const char *signal; /* kill's optional operand, NULL for the default SIGTERM */
};

/* Parse runc's global flags and the simple forms of the four verbs, as runnc_py/cli.py's fast
 * path does; false for anything else (the caller hands over). */
bool parse_command(int argc, char **argv, struct command *cmd);

/* runc's rule for container IDs, at most NAME_MAX long, not ".delegate"
 * (runnc_py/oci/state.py check_id). */
bool valid_id(const char *id);

/* ------------------------------------------------------------------ signals (signals.c) */

/* The signal number for TEXT as runnc_py/oci/signals.py parse_signal reads it; 0 if that
 * would be an error. */
int parse_signal(const char *text);

/* ------------------------------------------------------------------ processes (proc.c) */

/* Field 22 of /proc/PID/stat (start time in clock ticks); -1 if gone, a zombie or pid <= 0. */
long long proc_start_time(pid_t pid);

/* True while PID is the very process recorded with START. */
bool pid_matches(pid_t pid, long long start);

/* Signal PID only if it is still the process recorded with START (trust rule 4): open a
 * pidfd, then compare the start time, then pidfd_send_signal. 0 sent (or ESRCH at send: the
 * process died, which is what the signal was for), -1 if PID could not be verified or the
 * send failed otherwise (nothing was sent). */
int signal_verified(pid_t pid, long long start, int signum);

/* ------------------------------------------------------------------ state (store.c) */

enum phase { PHASE_CREATING, PHASE_CREATED, PHASE_RUNNING };
enum status { ST_CREATING, ST_CREATED, ST_RUNNING, ST_PAUSED, ST_STOPPED };

struct container {
    int root_fd; /* the resolved --root, trusted (rule 1) */
    int dir_fd;  /* <root>/<id>, trusted (rule 2) */
    const char *id;
    char *root_path; /* realpath of --root */
    json_t *doc;     /* state.json as read (owns every string below) */
    /* state.json, validated (format 1) */
    const char *bundle, *rootfs, *created, *owner;
    json_t *annotations; /* object of string -> string */
    long long pid, pid_start, creator, creator_start; /* -1: null */
    enum phase phase;
    bool paused;
    json_t *cgroup; /* NULL for JSON null */
    json_t *hooks;  /* object: poststart/poststop -> lists of hooks */
};

enum opened { OPENED, OPEN_MISSING, OPEN_REFUSED };

/* Open <root>/<id> under the trust rules 1 and 2. OPEN_MISSING: the root is trusted and has no
 * entry named <id>, here or in its delegate directory (Python's "container does not exist");
 * OPEN_REFUSED: anything else that is off. */
enum opened open_container(const char *root, const char *id, struct container *c);

/* flock(LOCK_EX) on <dir>/lock (kept until exit or exec); false if it cannot be taken. */
bool lock_container(struct container *c);

/* Read and validate state.json (rule 3, format 1); false if missing, corrupt or foreign, or
 * if it records a rootfs image (its name is Python's to check). */
bool load_state(struct container *c);

/* The status derived from what is recorded and observed now (runnc_py/oci/state.py); hands
 * over if exec.fifo is there but is no FIFO. */
enum status container_status(const struct container *c);
const char *status_name(enum status s);

/* Does <dir>/NAME exist? 1 yes, 0 no, -1 if it is not what we expect (not a FIFO for
 * exec.fifo, or lstat failed otherwise). */
int entry_state(const struct container *c, const char *name, bool want_fifo);

/* True if hooks[KIND] holds at least one hook. */
bool has_hooks(const struct container *c, const char *kind);

/* Write state.json with PHASE, atomically (tmp + rename), in ContainerState.to_json's key
 * order. 0 or -1. */
int save_phase(struct container *c, enum phase phase);

/* ------------------------------------------------------------------ output (oci_json.c) */

/* `state`'s output, byte for byte what runnc_py/oci/fastjson.dumps(state.oci(status),
 * indent=2) gives, plus the newline; malloc'd, NULL if out of memory. */
char *oci_state_json(const struct container *c, enum status status);

/* ------------------------------------------------------------------ cgroups (cgroup.c) */

/* The container's cgroup directories to remove, rebuilt on the mounts detected now (rule 5). */
struct cgroup_removal {
    char **dirs; /* the container's cgroup in each hierarchy */
    size_t ndirs;
    char **parents; /* empty parents that are ours, deepest first */
    size_t nparents;
};

/* Plan the removal of the recorded cgroup (C->cgroup non-NULL) and check that it can go now
 * (no sub-cgroups, no tasks); false if anything is off. */
bool plan_cgroup_removal(const struct container *c, struct cgroup_removal *plan);

/* Remove what PLAN lists; 0, or -1 if the kernel refused (idempotent: a retry redoes what
 * is left). */
int remove_cgroup(const struct cgroup_removal *plan);

/* ------------------------------------------------------------------ errors (report.c) */

/* "ID: container does not exist" on stderr and as a --log error entry, as the Python CLI
 * writes them (runnc_py/oci/log.py); returns the exit status, 1. Hands over if the log file
 * cannot be opened, so Python meets (and words) that failure. */
int report_missing(const struct command *cmd);

/* ------------------------------------------------------------------ verbs (verbs.c) */

int verb_state(const struct command *cmd);
int verb_start(const struct command *cmd);
int verb_kill(const struct command *cmd);
int verb_delete(const struct command *cmd);

#endif
