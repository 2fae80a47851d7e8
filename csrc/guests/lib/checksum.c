/*
 * The Internet checksum (RFC 1071): one's-complement sum of 16-bit big-endian words.
 */
#include "guest.h"

uint32_t csum_add(uint32_t sum, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t s = sum;
    for (; len >= 2; len -= 2, p += 2)
        s += get_be16(p);
    if (len)
        s += (uint32_t)p[0] << 8; /* odd length: pad with a zero byte */
    while (s >> 32)
        s = (s & 0xffffffffU) + (s >> 32);
    return (uint32_t)s;
}

uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffffU) + (sum >> 16);
    return (uint16_t)~sum;
}
