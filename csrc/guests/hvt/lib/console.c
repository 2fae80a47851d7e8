/*
 * hvt console: the puts hypercall; the monitor writes the bytes to its stdout.
 */
#include "hvt_guest.h"

void console_write(const char *buf, size_t len)
{
    struct hvt_hc_puts puts = {.data = buf, .len = len};
    hvt_hypercall(HVT_HC_PUTS, &puts);
}
