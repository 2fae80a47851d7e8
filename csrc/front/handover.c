/*
 * Hand the whole call to the Python CLI: execv its entry script with the original argv.
 *
 * Every error and every case the front end does not do itself ends here, before anything was
 * changed, so the Python CLI sees the same command line and the same container and gives its
 * own messages, exit status and --log entries.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "front.h"

#ifndef RUNNC_PY_ENTRY
#error "build.py passes -DRUNNC_PY_ENTRY=\"/path/of/the/python/entry\""
#endif

static char **original_argv;
static struct sigaction engine_sigpipe; /* SIGPIPE as the engine gave it, while we ignore it */
static int sigpipe_saved;

void handover_init(int argc, char **argv)
{
    (void)argc;
    original_argv = argv;
}

/* With RUNNC_PY_FRONT_TRACE=FILE, append why each call was handed over (tests, debugging). */
static void trace(const char *why)
{
    const char *path = getenv("RUNNC_PY_FRONT_TRACE");
    if (path == NULL || *path == '\0')
        return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
        dprintf(fd, "%s\n", why);
        close(fd);
    }
}

void ignore_sigpipe(void)
{
    struct sigaction ignore = {.sa_handler = SIG_IGN};

    if (!sigpipe_saved && sigaction(SIGPIPE, &ignore, &engine_sigpipe) == 0)
        sigpipe_saved = 1;
}

void restore_sigpipe(void)
{
    if (sigpipe_saved) {
        sigaction(SIGPIPE, &engine_sigpipe, NULL);
        sigpipe_saved = 0;
    }
}

void handover(const char *why)
{
    /* An ignored disposition survives execve: Python starts from what the engine gave us. */
    restore_sigpipe();
    trace(why);
    execv(RUNNC_PY_ENTRY, original_argv);
    fprintf(stderr, "runnc-py: cannot run the Python front end %s: %s\n", RUNNC_PY_ENTRY,
            strerror(errno));
    exit(1);
}
