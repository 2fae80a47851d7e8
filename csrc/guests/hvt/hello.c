/*
 * hello (hvt): the smallest useful guest; tests boot, the puts hypercall and the command line.
 *
 * Prints exactly
 *     Hello, World
 *     Command line is: '<the command line>'
 * and halts with status 0. Token `exit=N` halts with status N instead (exit-status tests).
 * No devices.
 */
#include "hvt_guest.h"

GUEST_MANIFEST(0);

int guest_main(const struct hvt_boot_info *bi)
{
    cprintf("Hello, World\n");
    cprintf("Command line is: '%s'\n", bi->cmdline);

    uint64_t status = 0;
    size_t len;
    if (cmdline_value("exit", &len) && !cmdline_uint("exit", &status)) {
        cprintf("hello: exit= needs a number\n");
        return 1;
    }
    return (int)(status & 0xff);
}
