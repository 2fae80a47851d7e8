/*
 * Device lookup in the manifest copy the tender wrote (boot info `mft`): that copy, unlike the
 * note compiled into the binary, carries hostfd, capacity/block_size or mac/mtu, attached.
 */
#include "guest.h"

static const struct mft *boot_mft;

void mft_init(const struct mft *mft)
{
    boot_mft = mft;
}

const struct mft *mft_get(void)
{
    return boot_mft;
}

const struct mft_entry *mft_find(const char *name, uint32_t type, unsigned *index)
{
    for (unsigned i = 0; i < boot_mft->entries; i++) {
        const struct mft_entry *e = &boot_mft->e[i];
        if (e->type == type && str_eq(e->name, name)) {
            if (index)
                *index = i;
            return e;
        }
    }
    return NULL;
}
