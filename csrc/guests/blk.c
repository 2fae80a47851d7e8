/*
 * blk: tests the block device path (manifest lookup, pread64/pwrite64 on the host fd) and the
 * block rules of the seccomp filter.
 *
 * Device: `storage` (block). Default: writes a distinct pattern to the first, a middle and the
 * last sector, reads all three back and compares; prints `blk: ok` and exits 0, or
 * `blk: FAIL <why>` and exits 1.
 *
 * Tokens (each must be killed by the filter with SIGSYS, exit status 159; if the call returns
 * the guest prints `blk: FAIL ...` and exits 1):
 *   oob=read    pread64 of one sector at offset = capacity (past the end)
 *   oob=write   pwrite64 of one sector at offset = capacity
 *   oob=count   pread64 of half a sector at offset 0 (count != block_size)
 */
#include "guest.h"

GUEST_MANIFEST(1, MFT_BLOCK("storage"));

#define MAX_BLOCK 65536

static uint8_t wbuf[MAX_BLOCK], rbuf[MAX_BLOCK];

static void fill(uint8_t *buf, size_t n, uint64_t sector)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(sector * 131 + i * 7 + (i >> 8) + 1);
}

static bool is_mode(const char *mode, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(mode, want, len) == 0;
}

static int out_of_bounds(const struct mft_entry *dev, const char *mode, size_t mode_len)
{
    int fd = dev->b.hostfd;
    size_t bs = dev->u.block.block_size;
    uint64_t cap = dev->u.block.capacity;
    long rc;

    if (is_mode(mode, mode_len, "read")) {
        cprintf("blk: trying pread64 at offset %lu (capacity)\n", cap);
        rc = sys_pread64(fd, rbuf, bs, cap);
    } else if (is_mode(mode, mode_len, "write")) {
        cprintf("blk: trying pwrite64 at offset %lu (capacity)\n", cap);
        rc = sys_pwrite64(fd, wbuf, bs, cap);
    } else if (is_mode(mode, mode_len, "count")) {
        cprintf("blk: trying pread64 of %lu bytes (half a block)\n", (uint64_t)bs / 2);
        rc = sys_pread64(fd, rbuf, bs / 2, 0);
    } else {
        cprintf("blk: FAIL unknown oob= mode (read, write or count)\n");
        return 1;
    }
    cprintf("blk: FAIL the filter allowed it (returned %ld)\n", rc);
    return 1;
}

static bool check_sector(const struct mft_entry *dev, uint64_t sector)
{
    int fd = dev->b.hostfd;
    size_t bs = dev->u.block.block_size;
    uint64_t offset = sector * bs;

    fill(wbuf, bs, sector);
    long rc = sys_pwrite64(fd, wbuf, bs, offset);
    if (rc != (long)bs) {
        cprintf("blk: FAIL pwrite64 sector %lu returned %ld\n", sector, rc);
        return false;
    }
    memset(rbuf, 0, bs);
    rc = sys_pread64(fd, rbuf, bs, offset);
    if (rc != (long)bs) {
        cprintf("blk: FAIL pread64 sector %lu returned %ld\n", sector, rc);
        return false;
    }
    if (memcmp(wbuf, rbuf, bs) != 0) {
        cprintf("blk: FAIL sector %lu read back differs\n", sector);
        return false;
    }
    return true;
}

int guest_main(const struct spt_boot_info *bi)
{
    (void)bi;
    const struct mft_entry *dev = mft_find("storage", MFT_DEV_BLOCK_BASIC, NULL);
    if (dev == NULL || !dev->attached) {
        cprintf("blk: FAIL block device 'storage' not attached\n");
        return 1;
    }
    uint64_t bs = dev->u.block.block_size, cap = dev->u.block.capacity;
    cprintf("blk: storage capacity %lu block_size %lu hostfd %d\n", cap, bs, dev->b.hostfd);
    if (bs == 0 || bs > MAX_BLOCK || cap < bs || cap % bs != 0) {
        cprintf("blk: FAIL unusable geometry\n");
        return 1;
    }

    size_t mode_len;
    const char *mode = cmdline_value("oob", &mode_len);
    if (mode != NULL)
        return out_of_bounds(dev, mode, mode_len);

    uint64_t sectors = cap / bs;
    uint64_t which[3] = { 0, sectors / 2, sectors - 1 };
    for (int i = 0; i < 3; i++) {
        if (!check_sector(dev, which[i]))
            return 1;
    }
    /* Read the first sector again: a later write must not have clobbered it. */
    fill(wbuf, bs, 0);
    if (sys_pread64(dev->b.hostfd, rbuf, bs, 0) != (long)bs || memcmp(wbuf, rbuf, bs) != 0) {
        cprintf("blk: FAIL sector 0 changed after writing the others\n");
        return 1;
    }
    cprintf("blk: ok\n");
    return 0;
}
