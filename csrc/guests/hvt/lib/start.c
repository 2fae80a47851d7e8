/*
 * Entry point, the ABI1 note and boot-time checks shared by every hvt test guest.
 *
 * The monitor starts the vCPU in long mode at _start with %rdi = boot info (0x10000) and
 * %rsp = mem_size - 8. No IDT is loaded: any exception becomes a triple fault, which is what
 * our fault tests rely on.
 */
#include "hvt_guest.h"

GUEST_ABI_NOTE(HVT_ABI_TARGET);

extern const struct mft *const guest_static_mft;
static const struct mft *boot_mft;


void guest_halt(int status)
{
    struct hvt_hc_halt halt = { .cookie = NULL, .exit_status = status };
    hvt_hypercall(HVT_HC_HALT, &halt);
    for (;;)
        __asm__ __volatile__("cli; hlt"); /* not reached: the monitor never resumes us */
}

static __attribute__((noreturn)) void bad_boot(const char *what)
{
    cprintf("guest: bad boot info: %s\n", what);
    guest_halt(GUEST_EXIT_BAD_BOOT);
}

static void check_manifest(const struct mft *mft)
{
    if (mft->version != MFT_VERSION || mft->entries != guest_static_mft->entries)
        bad_boot("manifest differs from the binary's note");
    for (unsigned i = 0; i < mft->entries; i++) {
        const struct mft_entry *got = &mft->e[i], *want = &guest_static_mft->e[i];
        if (got->type != want->type || !str_eq(got->name, want->name))
            bad_boot("manifest entry differs from the binary's note");
    }
}

const struct mft *mft_get(void)
{
    return boot_mft;
}

const struct mft_entry *mft_find(const char *name, uint32_t type, uint64_t *handle)
{
    for (unsigned i = 1; i < boot_mft->entries; i++) {
        const struct mft_entry *e = &boot_mft->e[i];
        if (e->type == type && str_eq(e->name, name)) {
            if (handle)
                *handle = i;
            return e;
        }
    }
    return NULL;
}

__attribute__((noreturn, used)) void guest_start(const struct hvt_boot_info *bi)
{
    if ((uintptr_t)bi != HVT_BOOT_INFO_BASE)
        bad_boot("boot info is not at 0x10000");
    if (bi->mem_size <= HVT_GUEST_MIN_BASE || bi->kernel_end > bi->mem_size)
        bad_boot("mem_size/kernel_end out of range");
    if (bi->cpu_cycle_freq == 0)
        bad_boot("no TSC frequency");
    if ((uintptr_t)bi->cmdline <= HVT_BOOT_INFO_BASE || (uintptr_t)bi->cmdline >= HVT_GUEST_MIN_BASE ||
        (uintptr_t)bi->mft <= HVT_BOOT_INFO_BASE || (uintptr_t)bi->mft >= HVT_GUEST_MIN_BASE)
        bad_boot("command line or manifest not in low memory");
    check_manifest(bi->mft);
    boot_mft = bi->mft;
    cmdline_init(bi->cmdline);
    guest_halt(guest_main(bi));
}
