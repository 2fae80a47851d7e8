/*
 * blk (hvt): block device round trip through the block hypercalls.
 *
 * Writes a distinct pattern to the first and the last sector of device "storage", reads both
 * back and compares, does the same with one two-sector request, checks that out-of-range and misaligned requests get SOLO5_R_EINVAL, and
 * prints "blk: ok". Any mismatch prints what differed and exits 1.
 */
#include "hvt_guest.h"

GUEST_MANIFEST(1, MFT_BLOCK("storage"));

static uint8_t wbuf[4096], rbuf[4096];

static int block_io(int nr, uint64_t handle, uint64_t offset, void *buf, size_t len)
{
    /* Both argument structs share one layout up to ret. */
    struct hvt_hc_block_read a = { .handle = handle, .offset = offset, .data = buf, .len = len };
    a.ret = -1;
    hvt_hypercall(nr, &a);
    return a.ret;
}

int guest_main(const struct hvt_boot_info *bi)
{
    (void)bi;
    uint64_t h;
    const struct mft_entry *e = mft_find("storage", MFT_DEV_BLOCK_BASIC, &h);
    if (e == NULL || !e->attached) {
        cprintf("blk: device storage not attached\n");
        return 1;
    }
    uint64_t cap = e->u.block.capacity, bs = e->u.block.block_size;
    cprintf("blk: capacity=%lu block_size=%lu\n", cap, bs);
    if (bs == 0 || bs > sizeof wbuf || cap < 2 * bs) {
        cprintf("blk: unusable geometry\n");
        return 1;
    }
    uint64_t last = cap - bs;
    for (uint64_t off = 0; off <= last; off += last) {
        for (uint64_t i = 0; i < bs; i++)
            wbuf[i] = (uint8_t)(i * 7 + off / bs + 1);
        int w = block_io(HVT_HC_BLOCK_WRITE, h, off, wbuf, bs);
        memset(rbuf, 0, bs);
        int r = block_io(HVT_HC_BLOCK_READ, h, off, rbuf, bs);
        if (w != SOLO5_R_OK || r != SOLO5_R_OK || memcmp(wbuf, rbuf, bs) != 0) {
            cprintf("blk: round trip at %lu failed (write %d, read %d)\n", off, w, r);
            return 1;
        }
    }
    /* Two sectors in one request (solo5-hvt accepts those; our monitor splits them). */
    if (2 * bs <= sizeof wbuf && cap >= 3 * bs) {
        for (uint64_t i = 0; i < 2 * bs; i++)
            wbuf[i] = (uint8_t)(i * 13 + 5);
        int w = block_io(HVT_HC_BLOCK_WRITE, h, bs, wbuf, 2 * bs);
        memset(rbuf, 0, 2 * bs);
        int r = block_io(HVT_HC_BLOCK_READ, h, bs, rbuf, 2 * bs);
        if (w != SOLO5_R_OK || r != SOLO5_R_OK || memcmp(wbuf, rbuf, 2 * bs) != 0) {
            cprintf("blk: two-sector round trip failed (write %d, read %d)\n", w, r);
            return 1;
        }
    }
    struct { const char *what; uint64_t off, len; } bad[] = {
        { "past the end", cap, bs },
        { "across the end", last, 2 * bs },
        { "misaligned offset", 1, bs },
        { "partial sector", 0, bs - 1 },
    };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int r = block_io(HVT_HC_BLOCK_READ, h, bad[i].off, rbuf, bad[i].len);
        if (r != SOLO5_R_EINVAL) {
            cprintf("blk: read %s returned %d, not EINVAL\n", bad[i].what, r);
            return 1;
        }
    }
    cprintf("blk: ok\n");
    return 0;
}
