/*
 * hello: the smallest useful guest; tests boot, the console and the command line.
 *
 * Prints exactly
 *     Hello, World
 *     Command line is: '<the command line>'
 * and exits 0. Token `exit=N` makes it exit with status N instead (exit-status tests).
 * No devices.
 */
#include "guest.h"

GUEST_MANIFEST(0);

int guest_main(const struct spt_boot_info *bi)
{
    cprintf("Hello, World\n");
    cprintf("Command line is: '%s'\n", bi->cmdline);

    uint64_t status = 0;
    if (cmdline_value("exit", &(size_t){ 0 }) && !cmdline_uint("exit", &status)) {
        cprintf("hello: exit= needs a number\n");
        return 1;
    }
    return (int)(status & 0xff);
}
