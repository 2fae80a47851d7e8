#include <errno.h>
#include <stdio.h>
#include "spt_launcher.h"

int runnc_spt_make_fds(int *epollfd, int *timerfd) { (void)epollfd; (void)timerfd; errno = ENOSYS; return -1; }
int runnc_spt_boot(const struct runnc_spt_plan *plan, char *err, size_t errlen)
{ (void)plan; snprintf(err, errlen, "launcher not built yet"); return -1; }
