/*
 * The one container error the front end words itself: "container does not exist". Engines
 * provoke it on every container (containerd's shim deletes twice), and starting the
 * interpreter only to print it cost an engine ~10 ms a container. Stderr and the --log entry
 * are byte for byte what runnc_py/cli.py and runnc_py/oci/log.py write for RunncError(
 * "container does not exist", where=ID): the log entry first, then the line on stderr.
 * IDs are runc's characters only (valid_id), so nothing needs escaping in either log format.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "front.h"

#define MISSING "container does not exist"

/* RFC 3339 in UTC with nanoseconds, as runc (logrus) and log._timestamp write it. */
static void timestamp(char *out, size_t size)
{
    struct timespec now;
    struct tm utc;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &utc);
    size_t len = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(out + len, size - len, ".%09ldZ", now.tv_nsec);
}

/* Append the error entry to --log; -1 if the file cannot be opened or written. */
static int log_error(const struct command *cmd, const char *msg)
{
    char when[64], line[512];
    timestamp(when, sizeof(when));
    int len = cmd->log_json
                  ? snprintf(line, sizeof(line),
                             "{\"level\": \"error\", \"msg\": \"%s\", \"time\": \"%s\"}\n", msg,
                             when)
                  : snprintf(line, sizeof(line), "time=\"%s\" level=error msg=\"%s\"\n", when,
                             msg);
    if (len < 0 || (size_t)len >= sizeof(line))
        return -1;
    /* O_APPEND keeps concurrent writers (shim + several runtime calls) from tearing lines. */
    int fd = open(cmd->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, line, (size_t)len);
    close(fd);
    return n == len ? 0 : -1;
}

int report_missing(const struct command *cmd)
{
    char msg[300]; /* an ID is at most 255 bytes */
    snprintf(msg, sizeof(msg), "%s: " MISSING, cmd->id);
    if (cmd->log != NULL && cmd->log[0] != '\0' && log_error(cmd, msg) != 0)
        handover("cannot write the --log entry");
    fprintf(stderr, "runnc-py: %s\n", msg);
    return 1;
}
