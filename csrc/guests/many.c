/*
 * many: tests the largest manifest a Solo5 binary can carry: 64 entries, i.e. the reserved
 * entry 0 plus 63 devices. They are 32 block devices `blk0`..`blk31` (entries 1..32) and
 * 31 net devices `net0`..`net30` (entries 33..63).
 *
 * Checks every device in the boot-info manifest is attached with a host fd (and block
 * devices have a usable geometry), prints `many: 63/63 attached` and exits 0; otherwise prints
 * `many: FAIL ...` (with the count) and exits 1. It does no I/O on the devices.
 * No tokens.
 */
#include "guest.h"

/* clang-format off */
GUEST_MANIFEST(63,
    MFT_BLOCK("blk0"), MFT_BLOCK("blk1"), MFT_BLOCK("blk2"), MFT_BLOCK("blk3"),
    MFT_BLOCK("blk4"), MFT_BLOCK("blk5"), MFT_BLOCK("blk6"), MFT_BLOCK("blk7"),
    MFT_BLOCK("blk8"), MFT_BLOCK("blk9"), MFT_BLOCK("blk10"), MFT_BLOCK("blk11"),
    MFT_BLOCK("blk12"), MFT_BLOCK("blk13"), MFT_BLOCK("blk14"), MFT_BLOCK("blk15"),
    MFT_BLOCK("blk16"), MFT_BLOCK("blk17"), MFT_BLOCK("blk18"), MFT_BLOCK("blk19"),
    MFT_BLOCK("blk20"), MFT_BLOCK("blk21"), MFT_BLOCK("blk22"), MFT_BLOCK("blk23"),
    MFT_BLOCK("blk24"), MFT_BLOCK("blk25"), MFT_BLOCK("blk26"), MFT_BLOCK("blk27"),
    MFT_BLOCK("blk28"), MFT_BLOCK("blk29"), MFT_BLOCK("blk30"), MFT_BLOCK("blk31"),
    MFT_NET("net0"), MFT_NET("net1"), MFT_NET("net2"), MFT_NET("net3"),
    MFT_NET("net4"), MFT_NET("net5"), MFT_NET("net6"), MFT_NET("net7"),
    MFT_NET("net8"), MFT_NET("net9"), MFT_NET("net10"), MFT_NET("net11"),
    MFT_NET("net12"), MFT_NET("net13"), MFT_NET("net14"), MFT_NET("net15"),
    MFT_NET("net16"), MFT_NET("net17"), MFT_NET("net18"), MFT_NET("net19"),
    MFT_NET("net20"), MFT_NET("net21"), MFT_NET("net22"), MFT_NET("net23"),
    MFT_NET("net24"), MFT_NET("net25"), MFT_NET("net26"), MFT_NET("net27"),
    MFT_NET("net28"), MFT_NET("net29"), MFT_NET("net30")
);
/* clang-format on */

#define DEVICES 63

int guest_main(const struct spt_boot_info *bi)
{
    (void)bi;
    const struct mft *mft = mft_get();
    unsigned attached = 0;
    bool ok = mft->entries == DEVICES + 1;

    for (unsigned i = 1; i < mft->entries; i++) {
        const struct mft_entry *e = &mft->e[i];
        if (!e->attached || e->b.hostfd < 0) {
            cprintf("many: %s (entry %u) not attached\n", e->name, i);
            ok = false;
            continue;
        }
        if (e->type == MFT_DEV_BLOCK_BASIC &&
            (e->u.block.block_size == 0 || e->u.block.capacity < e->u.block.block_size)) {
            cprintf("many: %s (entry %u) has no usable geometry\n", e->name, i);
            ok = false;
        }
        attached++;
    }
    cprintf("many: %s%u/%u attached\n", ok ? "" : "FAIL ", attached, DEVICES);
    return ok ? 0 : 1;
}
