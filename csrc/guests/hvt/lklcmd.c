/*
 * lklcmd (hvt): a stand-in for a Nabla LKL image; tests what reaches an LKL guest's command line.
 *
 * Devices: `rootfs` (block) and `tap` (net), the manifest of the Nabla LKL images, so runnc-py
 * treats it as one (rootfs image attached, network handed over with the LKL JSON). It does not
 * parse its command line: it prints it raw, hex-encoded so that any byte survives the console,
 *     lklcmd: rootfs attached, tap attached
 *     lklcmd: cmdline N bytes
 *     lklcmd: hex <up to 64 bytes as hex>      (as many lines as needed)
 *     lklcmd: end
 * and exits 0. A manifest device that is not attached: `lklcmd: FAIL ...`, exit 1.
 */
#include "hvt_guest.h"

GUEST_MANIFEST(2, MFT_BLOCK("rootfs"), MFT_NET("tap"));

#define HEX_CHUNK 64

static bool attached(const char *name, uint32_t type)
{
    uint64_t handle;
    const struct mft_entry *e = mft_find(name, type, &handle);
    return e != NULL && e->attached;
}

static void print_hex(const char *line, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char buf[2 * HEX_CHUNK + 1];
    for (size_t at = 0; at < len; at += HEX_CHUNK) {
        size_t n = len - at < HEX_CHUNK ? len - at : HEX_CHUNK;
        for (size_t i = 0; i < n; i++) {
            uint8_t b = (uint8_t)line[at + i];
            buf[2 * i] = digits[b >> 4];
            buf[2 * i + 1] = digits[b & 0xf];
        }
        buf[2 * n] = '\0';
        cprintf("lklcmd: hex %s\n", buf);
    }
}

int guest_main(const struct hvt_boot_info *bi)
{
    if (!attached("rootfs", MFT_DEV_BLOCK_BASIC) || !attached("tap", MFT_DEV_NET_BASIC)) {
        cprintf("lklcmd: FAIL rootfs or tap not attached\n");
        return 1;
    }
    cprintf("lklcmd: rootfs attached, tap attached\n");
    size_t len = strlen(bi->cmdline);
    cprintf("lklcmd: cmdline %u bytes\n", (unsigned)len);
    print_hex(bi->cmdline, len);
    cprintf("lklcmd: end\n");
    return 0;
}
