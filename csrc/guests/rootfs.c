/*
 * rootfs: an LKL-shaped guest for the engine tests. Its manifest declares the block device
 * `rootfs` (what LKL mounts as `/`), so runnc-py gives it the container's own ext4 image of
 * the bundle's rootfs, with the files the engine manages (/etc/resolv.conf, /etc/hosts,
 * /etc/hostname) written in.
 *
 * Device: `rootfs` (block). Default: reads the ext4 superblock (byte 1024 of the device) and
 * checks its magic 0xEF53; prints `rootfs: ext4 ok` and exits 0, or `rootfs: FAIL <why>` and
 * exits 1. Token `sleep=SECONDS`: after the check, prints `sleeping` and sleeps that long
 * (so a test can read the image while the container runs; SIGTERM -> 143).
 */
#include "guest.h"

GUEST_MANIFEST(1, MFT_BLOCK("rootfs"));

#define SUPERBLOCK_OFFSET 1024
#define MAGIC_OFFSET      56 /* s_magic, within the superblock */
#define EXT4_MAGIC        0xEF53
#define MAX_BLOCK         65536

static uint8_t buf[MAX_BLOCK];

int guest_main(const struct spt_boot_info *bi)
{
    (void)bi;
    const struct mft_entry *dev = mft_find("rootfs", MFT_DEV_BLOCK_BASIC, NULL);
    if (dev == NULL || !dev->attached) {
        cprintf("rootfs: FAIL block device 'rootfs' not attached\n");
        return 1;
    }
    uint64_t bs = dev->u.block.block_size;
    if (bs == 0 || bs > MAX_BLOCK || dev->u.block.capacity < SUPERBLOCK_OFFSET + bs) {
        cprintf("rootfs: FAIL unusable geometry\n");
        return 1;
    }
    /* One whole, aligned block holding the magic (the filter allows nothing else). */
    uint64_t at = (SUPERBLOCK_OFFSET + MAGIC_OFFSET) / bs * bs;
    if (sys_pread64(dev->b.hostfd, buf, bs, at) != (long)bs) {
        cprintf("rootfs: FAIL cannot read the superblock\n");
        return 1;
    }
    const uint8_t *magic = buf + (SUPERBLOCK_OFFSET + MAGIC_OFFSET - at);
    if ((magic[0] | magic[1] << 8) != EXT4_MAGIC) {
        cprintf("rootfs: FAIL no ext4 superblock (magic %x)\n", magic[0] | magic[1] << 8);
        return 1;
    }
    cprintf("rootfs: ext4 ok\n");
    uint64_t seconds;
    if (cmdline_uint("sleep", &seconds)) {
        cprintf("sleeping\n");
        sleep_ns(seconds * NSEC_PER_SEC);
    }
    return 0;
}
