/*
 * net: tests the net device path (tap fd from the manifest, epoll data.u64 = manifest index,
 * read/write on the tap) by answering the neighbour protocols and pings for one address.
 *
 * Device: `service0` (net). Command line:
 *   --ipv4=ADDR[/LEN]   answer ARP requests for ADDR and ICMP echo requests to ADDR
 *   --ipv6=ADDR[/LEN]   answer neighbour solicitations for ADDR and ICMPv6 echo requests to it
 *   pings=N             exit 0 after sending N echo replies (v4 and v6 together)
 * At least one address is required. Replies use the MAC of the manifest entry. After setup it
 * prints `net: ready` and then serves until killed (or until pings=N is reached). Bad or
 * missing arguments: `net: FAIL ...`, exit 1. Malformed or foreign frames are ignored.
 */
#include "guest.h"

GUEST_MANIFEST(1, MFT_NET("service0"));

#define ETH_HLEN       14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP  0x0806
#define ETHERTYPE_IPV6 0x86dd
#define IPPROTO_ICMP   1
#define IPPROTO_ICMPV6 58
#define FRAME_MAX      65536

static uint8_t my_mac[6];
static uint8_t my_ip4[4], my_ip6[16];
static bool have_ip4, have_ip6;
static int tapfd;
static uint64_t replies, max_replies;
static uint8_t rx[FRAME_MAX], tx[FRAME_MAX];

/* ---- address parsing --------------------------------------------------------------------- */

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Split "ADDR/LEN" (LEN optional, default max_len) into the address length and the prefix. */
static bool split_prefix(const char *s, size_t len, size_t *addr_len, unsigned max_len,
                         unsigned *prefix)
{
    size_t slash = 0;
    while (slash < len && s[slash] != '/')
        slash++;
    *addr_len = slash;
    *prefix = max_len;
    if (slash == len)
        return true;
    if (slash + 1 == len || len - slash > 4)
        return false;
    unsigned p = 0;
    for (size_t i = slash + 1; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        p = p * 10 + (unsigned)(s[i] - '0');
    }
    *prefix = p;
    return p <= max_len;
}

static bool parse_ipv4(const char *s, size_t len, uint8_t out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        unsigned v = 0, digits = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 4) {
            v = v * 10 + (unsigned)(s[i++] - '0');
            digits++;
        }
        if (digits == 0 || digits > 3 || v > 255)
            return false;
        out[part] = (uint8_t)v;
        if (part < 3 && (i >= len || s[i++] != '.'))
            return false;
    }
    return i == len;
}

/* RFC 4291 text form with at most one "::"; no embedded dotted IPv4. */
static bool parse_ipv6(const char *s, size_t len, uint8_t out[16])
{
    uint16_t words[8];
    int n = 0, gap = -1; /* gap: number of words before "::" */
    size_t i = 0;

    if (len >= 2 && s[0] == ':' && s[1] == ':') {
        gap = 0;
        i = 2;
    } else if (len == 0 || s[0] == ':') {
        return false;
    }
    while (i < len) {
        unsigned v = 0, digits = 0;
        while (i < len && hex_digit(s[i]) >= 0 && digits <= 4) {
            v = v * 16 + (unsigned)hex_digit(s[i++]);
            digits++;
        }
        if (digits == 0 || digits > 4 || n == 8)
            return false;
        words[n++] = (uint16_t)v;
        if (i == len)
            break;
        if (s[i++] != ':' || i == len)
            return false; /* junk, or a trailing single ':' */
        if (s[i] == ':') {
            if (gap >= 0)
                return false; /* a second "::" */
            gap = n;
            i++;
        }
    }
    if (gap < 0 ? n != 8 : n > 7)
        return false;

    memset(out, 0, 16);
    int head = gap < 0 ? n : gap, tail = n - head;
    for (int k = 0; k < head; k++)
        put_be16(out + 2 * k, words[k]);
    for (int k = 0; k < tail; k++)
        put_be16(out + 16 - 2 * tail + 2 * k, words[head + k]);
    return true;
}

/* ---- replies ------------------------------------------------------------------------------- */

static void send_frame(size_t len)
{
    long rc = sys_write(tapfd, tx, len);
    if (rc < 0 && rc != -EAGAIN) /* EAGAIN: tap queue full, drop like a NIC would */
        cprintf("net: write to tap failed: %ld\n", rc);
}

static void eth_reply_header(const uint8_t *dst_mac, uint16_t ethertype)
{
    memcpy(tx, dst_mac, 6);
    memcpy(tx + 6, my_mac, 6);
    put_be16(tx + 12, ethertype);
}

static void count_reply(void)
{
    replies++;
    if (max_replies && replies >= max_replies) {
        cprintf("net: sent %lu echo replies, exiting\n", replies);
        sys_exit_group(0);
    }
}

static void handle_arp(const uint8_t *frame, size_t len)
{
    const uint8_t *a = frame + ETH_HLEN;
    if (!have_ip4 || len < ETH_HLEN + 28)
        return;
    /* Ethernet/IPv4 request (oper 1) whose target protocol address is ours. */
    if (get_be16(a) != 1 || get_be16(a + 2) != ETHERTYPE_IPV4 || a[4] != 6 || a[5] != 4 ||
        get_be16(a + 6) != 1 || memcmp(a + 24, my_ip4, 4) != 0)
        return;

    uint8_t *r = tx + ETH_HLEN;
    eth_reply_header(a + 8, ETHERTYPE_ARP);
    memcpy(r, a, 6);          /* htype, ptype, hlen, plen */
    put_be16(r + 6, 2);       /* reply */
    memcpy(r + 8, my_mac, 6); /* sender: us */
    memcpy(r + 14, my_ip4, 4);
    memcpy(r + 18, a + 8, 10); /* target: the requester's MAC and IPv4 */
    send_frame(ETH_HLEN + 28);
}

static void handle_ipv4(const uint8_t *frame, size_t len)
{
    const uint8_t *ip = frame + ETH_HLEN;
    if (!have_ip4 || len < ETH_HLEN + 20 || ip[0] >> 4 != 4)
        return;
    size_t ihl = (size_t)(ip[0] & 0xf) * 4, total = get_be16(ip + 2);
    if (ihl < 20 || total < ihl + 8 || total > len - ETH_HLEN)
        return;
    if (csum_fold(csum_add(0, ip, ihl)) != 0 || memcmp(ip + 16, my_ip4, 4) != 0)
        return;
    if ((get_be16(ip + 6) & 0x3fff) != 0 || ip[9] != IPPROTO_ICMP)
        return; /* fragments are not worth reassembling for a ping responder */
    const uint8_t *icmp = ip + ihl;
    size_t icmp_len = total - ihl;
    if (icmp[0] != 8 || icmp[1] != 0 || csum_fold(csum_add(0, icmp, icmp_len)) != 0)
        return;

    uint8_t *rip = tx + ETH_HLEN, *ricmp = rip + ihl;
    eth_reply_header(frame + 6, ETHERTYPE_IPV4);
    memcpy(rip, ip, total);
    memcpy(rip + 12, my_ip4, 4); /* from us ... */
    memcpy(rip + 16, ip + 12, 4); /* ... to the sender */
    rip[8] = 64;                  /* TTL */
    put_be16(rip + 10, 0);
    put_be16(rip + 10, csum_fold(csum_add(0, rip, ihl)));
    ricmp[0] = 0; /* echo reply; identifier, sequence and data stay */
    put_be16(ricmp + 2, 0);
    put_be16(ricmp + 2, csum_fold(csum_add(0, ricmp, icmp_len)));
    send_frame(ETH_HLEN + total);
    count_reply();
}

/* ICMPv6 checksum over the pseudo-header (RFC 8200 section 8.1) and the message. */
static uint16_t icmp6_csum(const uint8_t *src, const uint8_t *dst, const uint8_t *msg,
                           size_t len)
{
    uint8_t tail[8] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                        (uint8_t)len, 0, 0, 0, IPPROTO_ICMPV6 };
    uint32_t sum = csum_add(0, src, 16);
    sum = csum_add(sum, dst, 16);
    sum = csum_add(sum, tail, 8);
    return csum_fold(csum_add(sum, msg, len));
}

static void ipv6_reply_header(const uint8_t *dst, size_t payload_len, uint8_t hop_limit)
{
    uint8_t *ip = tx + ETH_HLEN;
    memset(ip, 0, 40);
    ip[0] = 0x60;
    put_be16(ip + 4, (uint16_t)payload_len);
    ip[6] = IPPROTO_ICMPV6;
    ip[7] = hop_limit;
    memcpy(ip + 8, my_ip6, 16);
    memcpy(ip + 24, dst, 16);
}

static void handle_ipv6(const uint8_t *frame, size_t len)
{
    static const uint8_t all_nodes[16] = { 0xff, 0x02, [15] = 0x01 };
    static const uint8_t all_nodes_mac[6] = { 0x33, 0x33, 0, 0, 0, 1 };
    static const uint8_t unspecified[16];
    const uint8_t *ip = frame + ETH_HLEN, *src = ip + 8, *dst = ip + 24, *icmp = ip + 40;

    if (!have_ip6 || len < ETH_HLEN + 40 + 8 || ip[0] >> 4 != 6 || ip[6] != IPPROTO_ICMPV6)
        return;
    size_t plen = get_be16(ip + 4);
    if (plen < 8 || plen > len - ETH_HLEN - 40 || icmp6_csum(src, dst, icmp, plen) != 0)
        return;

    uint8_t *reply = tx + ETH_HLEN + 40;
    if (icmp[0] == 135 && icmp[1] == 0 && ip[7] == 255 && plen >= 24 &&
        memcmp(icmp + 8, my_ip6, 16) == 0) {
        /* Neighbour solicitation for our address: advertise (RFC 4861 section 7.2.4). A
         * solicitation from :: is duplicate address detection: answer all nodes, unsolicited. */
        bool dad = memcmp(src, unspecified, 16) == 0;
        eth_reply_header(dad ? all_nodes_mac : frame + 6, ETHERTYPE_IPV6);
        ipv6_reply_header(dad ? all_nodes : src, 32, 255);
        memset(reply, 0, 32);
        reply[0] = 136;
        reply[4] = dad ? 0x20 : 0x60; /* flags: Solicited (unless DAD) | Override */
        memcpy(reply + 8, my_ip6, 16);
        reply[24] = 2; /* option: target link-layer address, length 1 (8 bytes) */
        reply[25] = 1;
        memcpy(reply + 26, my_mac, 6);
        put_be16(reply + 2, icmp6_csum(my_ip6, tx + ETH_HLEN + 24, reply, 32));
        send_frame(ETH_HLEN + 40 + 32);
    } else if (icmp[0] == 128 && icmp[1] == 0 && memcmp(dst, my_ip6, 16) == 0) {
        eth_reply_header(frame + 6, ETHERTYPE_IPV6);
        ipv6_reply_header(src, plen, 64);
        memcpy(reply, icmp, plen);
        reply[0] = 129; /* echo reply; identifier, sequence and data stay */
        put_be16(reply + 2, 0);
        put_be16(reply + 2, icmp6_csum(my_ip6, src, reply, plen));
        send_frame(ETH_HLEN + 40 + plen);
        count_reply();
    }
}

static void handle_frame(const uint8_t *frame, size_t len)
{
    if (len < ETH_HLEN)
        return;
    /* Ours, or a group address: broadcast (ARP) or multicast (IPv6 solicited-node). */
    if (memcmp(frame, my_mac, 6) != 0 && !(frame[0] & 1))
        return;
    switch (get_be16(frame + 12)) {
    case ETHERTYPE_ARP:
        handle_arp(frame, len);
        break;
    case ETHERTYPE_IPV4:
        handle_ipv4(frame, len);
        break;
    case ETHERTYPE_IPV6:
        handle_ipv6(frame, len);
        break;
    }
}

/* ---- main ---------------------------------------------------------------------------------- */

static bool parse_args(void)
{
    size_t len, addr_len;
    unsigned prefix;
    const char *v;

    if ((v = cmdline_value("--ipv4", &len)) != NULL) {
        if (!split_prefix(v, len, &addr_len, 32, &prefix) || !parse_ipv4(v, addr_len, my_ip4)) {
            cprintf("net: FAIL bad --ipv4 (want ADDR/LEN)\n");
            return false;
        }
        have_ip4 = true;
        cprintf("net: ipv4 %u.%u.%u.%u/%u\n", my_ip4[0], my_ip4[1], my_ip4[2], my_ip4[3],
                prefix);
    }
    if ((v = cmdline_value("--ipv6", &len)) != NULL) {
        if (!split_prefix(v, len, &addr_len, 128, &prefix) || !parse_ipv6(v, addr_len, my_ip6)) {
            cprintf("net: FAIL bad --ipv6 (want ADDR/LEN)\n");
            return false;
        }
        have_ip6 = true;
        cprintf("net: ipv6 ");
        for (int i = 0; i < 16; i += 2)
            cprintf("%x%s", get_be16(my_ip6 + i), i < 14 ? ":" : "");
        cprintf("/%u\n", prefix);
    }
    if (!have_ip4 && !have_ip6) {
        cprintf("net: FAIL need --ipv4=ADDR/LEN and/or --ipv6=ADDR/LEN\n");
        return false;
    }
    if (cmdline_value("pings", &len) && !cmdline_uint("pings", &max_replies)) {
        cprintf("net: FAIL pings= needs a number\n");
        return false;
    }
    return true;
}

int guest_main(const struct spt_boot_info *bi)
{
    (void)bi;
    unsigned index;
    const struct mft_entry *dev = mft_find("service0", MFT_DEV_NET_BASIC, &index);
    if (dev == NULL || !dev->attached) {
        cprintf("net: FAIL net device 'service0' not attached\n");
        return 1;
    }
    if (!parse_args())
        return 1;
    tapfd = dev->b.hostfd;
    memcpy(my_mac, dev->u.net.mac, 6);
    cprintf("net: service0 mac %02x:%02x:%02x:%02x:%02x:%02x mtu %u hostfd %d\n", my_mac[0],
            my_mac[1], my_mac[2], my_mac[3], my_mac[4], my_mac[5], dev->u.net.mtu, tapfd);
    cprintf("net: ready\n");

    for (;;) {
        struct epoll_event ev[8];
        int n = wait_events(ev, 8, -1);
        for (int i = 0; i < n; i++) {
            if (ev[i].data != index)
                continue; /* e.g. a stale timer expiry */
            /* Drain the tap (it is non-blocking), whether the set is edge- or level-triggered. */
            for (;;) {
                long r = sys_read(tapfd, rx, sizeof(rx));
                if (r == -EAGAIN || r == 0)
                    break;
                if (r == -EINTR)
                    continue;
                if (r < 0) {
                    cprintf("net: FAIL read from tap: %ld\n", r);
                    return 1;
                }
                handle_frame(rx, (size_t)r);
            }
        }
    }
}
