/*
 * net (hvt): tests the net hypercalls (poll's ready set, net_read, net_write) by answering ARP
 * and ICMP echo for one IPv4 address.
 *
 * Device: `service0` (net). Command line:
 *   --ipv4=ADDR[/LEN]   answer ARP requests for ADDR and ICMP echo requests to ADDR
 *   pings=N             halt with status 0 after sending N echo replies (default: serve forever)
 * Replies use the MAC of the manifest entry. After setup it prints `net: ready mac=MAC`. Bad or
 * missing arguments: `net: FAIL ...`, status 1. Malformed or foreign frames are ignored.
 */
#include "hvt_guest.h"

GUEST_MANIFEST(1, MFT_NET("service0"));

#define ETH_HLEN       14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP  0x0806
#define IPPROTO_ICMP   1
#define FRAME_MAX      9216

static uint8_t my_mac[6], my_ip[4];
static uint64_t handle;
static uint8_t frame[FRAME_MAX];

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

/* Internet checksum of len bytes (RFC 1071). */
static uint16_t csum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;
    for (; len > 1; p += 2, len -= 2)
        sum += be16(p);
    if (len)
        sum += (uint32_t)p[0] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static bool parse_ipv4(const char *s, size_t len, uint8_t out[4])
{
    unsigned part = 0, value = 0, digits = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? s[i] : '.';
        if (c == '/' && part == 3) {
            c = '.';
            len = i; /* the prefix length is ours to ignore */
        }
        if (c >= '0' && c <= '9' && digits < 3) {
            value = value * 10 + (unsigned)(c - '0');
            digits++;
        } else if (c == '.' && digits && value < 256 && part < 4) {
            out[part++] = (uint8_t)value;
            value = digits = 0;
            if (i == len)
                break;
        } else {
            return false;
        }
    }
    return part == 4;
}

static void send(const uint8_t *data, size_t len)
{
    struct hvt_hc_net_write wr = { .handle = handle, .data = data, .len = len, .ret = -1 };
    hvt_hypercall(HVT_HC_NET_WRITE, &wr);
    if (wr.ret != SOLO5_R_OK)
        cprintf("net: write failed: %d\n", wr.ret);
}

/* An ARP request for our address: turn it into the reply in place. */
static void arp(uint8_t *f, size_t len)
{
    uint8_t *a = f + ETH_HLEN;
    if (len < ETH_HLEN + 28 || be16(a) != 1 || be16(a + 2) != ETHERTYPE_IPV4 || a[4] != 6 ||
        a[5] != 4 || be16(a + 6) != 1 || memcmp(a + 24, my_ip, 4) != 0)
        return;
    memcpy(f, a + 8, 6);           /* to the sender */
    memcpy(f + 6, my_mac, 6);
    put16(a + 6, 2);               /* reply */
    memcpy(a + 18, a + 8, 10);     /* target = the sender's MAC + IP */
    memcpy(a + 8, my_mac, 6);      /* sender = us */
    memcpy(a + 14, my_ip, 4);
    send(f, ETH_HLEN + 28);
}

/* An ICMP echo request to our address: answer it; true if we did. */
static bool icmp(uint8_t *f, size_t len)
{
    uint8_t *ip = f + ETH_HLEN;
    if (len < ETH_HLEN + 20 || (ip[0] >> 4) != 4)
        return false;
    size_t ihl = (size_t)(ip[0] & 0xf) * 4, total = be16(ip + 2);
    if (ihl < 20 || total < ihl + 8 || ETH_HLEN + total > len || ip[9] != IPPROTO_ICMP ||
        memcmp(ip + 16, my_ip, 4) != 0 || csum(ip, ihl) != 0)
        return false;
    uint8_t *ic = ip + ihl;
    if (ic[0] != 8 || csum(ic, total - ihl) != 0)
        return false;
    memcpy(f, f + 6, 6);
    memcpy(f + 6, my_mac, 6);
    memcpy(ip + 16, ip + 12, 4);
    memcpy(ip + 12, my_ip, 4);
    ip[8] = 64;                    /* fresh TTL */
    put16(ip + 10, 0);
    put16(ip + 10, csum(ip, ihl));
    ic[0] = 0;                     /* echo reply */
    put16(ic + 2, 0);
    put16(ic + 2, csum(ic, total - ihl));
    send(f, ETH_HLEN + total);
    return true;
}

int guest_main(const struct hvt_boot_info *bi)
{
    (void)bi;
    size_t len;
    const char *v = cmdline_value("--ipv4", &len);
    if (v == NULL || !parse_ipv4(v, len, my_ip)) {
        cprintf("net: FAIL need --ipv4=A.B.C.D\n");
        return 1;
    }
    uint64_t max = 0;
    if (cmdline_value("pings", &len) && !cmdline_uint("pings", &max)) {
        cprintf("net: FAIL pings= needs a number\n");
        return 1;
    }
    const struct mft_entry *e = mft_find("service0", MFT_DEV_NET_BASIC, &handle);
    if (e == NULL || !e->attached) {
        cprintf("net: FAIL service0 not attached\n");
        return 1;
    }
    memcpy(my_mac, e->u.net.mac, 6);
    cprintf("net: ready mac=%02x:%02x:%02x:%02x:%02x:%02x\n", my_mac[0], my_mac[1], my_mac[2],
            my_mac[3], my_mac[4], my_mac[5]);

    uint64_t replies = 0;
    for (;;) {
        struct hvt_hc_poll p = { .timeout_nsecs = 1000000000ULL, .ret = -1 };
        hvt_hypercall(HVT_HC_POLL, &p);
        if (p.ret < 0) {
            cprintf("net: FAIL poll returned %d\n", p.ret);
            return 1;
        }
        if (!(p.ready_set & (1ULL << handle)))
            continue;
        for (;;) {
            struct hvt_hc_net_read rd = { .handle = handle, .data = frame, .len = sizeof frame,
                                          .ret = -1 };
            hvt_hypercall(HVT_HC_NET_READ, &rd);
            if (rd.ret == SOLO5_R_AGAIN)
                break;
            if (rd.ret != SOLO5_R_OK) {
                cprintf("net: FAIL read returned %d\n", rd.ret);
                return 1;
            }
            if (rd.len < ETH_HLEN)
                continue;
            uint16_t type = be16(frame + 12);
            if (type == ETHERTYPE_ARP)
                arp(frame, rd.len);
            else if (type == ETHERTYPE_IPV4 && icmp(frame, rd.len) && max && ++replies == max)
                return 0;
        }
    }
}
