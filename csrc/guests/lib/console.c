/*
 * spt console: write(1, ...) is the only output the spt allowlist permits.
 */
#include "guest.h"

void console_write(const char *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        long n = sys_write(1, buf + done, len - done);
        if (n == -EINTR)
            continue;
        if (n <= 0)
            return; /* nowhere to report it: drop the rest */
        done += (size_t)n;
    }
}
