/*
 * Entry point, the ABI1 note and boot-time sanity checks shared by every test guest.
 *
 * The tender jumps to _start with %rdi = boot info (0x11000) and %rsp = mem_size - 8. Like a
 * real Solo5 binding we then set the TLS base with arch_prctl(ARCH_SET_FS), so every guest
 * also exercises that rule of the spt allowlist before guest_main runs.
 */
#include "guest.h"

GUEST_ABI_NOTE(SPT_ABI_TARGET);

/* Defined by the guest through GUEST_MANIFEST(). */
extern const struct mft *const guest_static_mft;

/* A tiny TLS block: %fs:0 must point at itself on x86_64 (the TCB self pointer). */
static uint64_t guest_tls[4];

static const struct spt_boot_info *boot_info;

const struct spt_boot_info *guest_boot_info(void)
{
    return boot_info;
}

void guest_start(const struct spt_boot_info *bi);
void mft_init(const struct mft *mft);


static __attribute__((noreturn)) void bad_boot(const char *what)
{
    cprintf("guest: bad boot info: %s\n", what);
    sys_exit_group(GUEST_EXIT_BAD_BOOT);
}

/* The tender must hand over our own manifest: same entry count, names and types. */
static void check_manifest(const struct mft *mft)
{
    if (mft == NULL)
        bad_boot("no manifest");
    if (mft->version != MFT_VERSION)
        bad_boot("manifest version is not 1");
    if (mft->entries != guest_static_mft->entries)
        bad_boot("manifest entry count differs from the binary's note");
    for (unsigned i = 0; i < mft->entries; i++) {
        const struct mft_entry *got = &mft->e[i], *want = &guest_static_mft->e[i];
        if (got->type != want->type || !str_eq(got->name, want->name))
            bad_boot("manifest entry differs from the binary's note");
    }
}

__attribute__((noreturn, used)) void guest_start(const struct spt_boot_info *bi)
{
    guest_tls[0] = (uint64_t)(uintptr_t)guest_tls;
    if (sys_arch_prctl(ARCH_SET_FS, (unsigned long)(uintptr_t)guest_tls) != 0)
        bad_boot("arch_prctl(ARCH_SET_FS) failed");

    if ((uintptr_t)bi != SPT_BOOT_INFO_BASE)
        bad_boot("boot info is not at 0x11000");
    if (bi->mem_size <= SPT_GUEST_MIN_BASE || bi->kernel_end > bi->mem_size)
        bad_boot("mem_size/kernel_end out of range");
    if (bi->cmdline == NULL)
        bad_boot("no command line");
    check_manifest(bi->mft);

    boot_info = bi;
    cmdline_init(bi->cmdline);
    mft_init(bi->mft);
    sys_exit_group(guest_main(bi));
}
