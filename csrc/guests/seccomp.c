/*
 * seccomp: tests that the filter kills a guest which leaves the spt allowlist.
 *
 * Prints `seccomp: calling <what>` (so a test can see it started), then makes one forbidden
 * system call, which must kill it with SIGSYS: exit status 159. If the call returns, prints
 * `seccomp: FAIL ...` and exits 1.
 *
 * Tokens (default: getpid):
 *   write2   write(2, ...): write is allowed, but only to fd 1
 *   nr=N     system call number N with all-zero arguments (probe any rule of the policy)
 * No devices.
 */
#include "guest.h"

GUEST_MANIFEST(0);

int guest_main(const struct spt_boot_info *bi)
{
    (void)bi;
    static const char msg[] = "seccomp: this must not reach stderr\n";
    uint64_t nr;
    long rc;

    if (cmdline_has("write2")) {
        cprintf("seccomp: calling write(2)\n");
        rc = sys_write(2, msg, sizeof(msg) - 1);
    } else if (cmdline_uint("nr", &nr)) {
        cprintf("seccomp: calling syscall %lu\n", nr);
        rc = sys_call6((long)nr, 0, 0, 0, 0, 0, 0);
    } else {
        cprintf("seccomp: calling getpid\n");
        rc = sys_call6(SYS_getpid, 0, 0, 0, 0, 0, 0);
    }
    cprintf("seccomp: FAIL the filter allowed it (returned %ld)\n", rc);
    return 1;
}
