/*
 * Entry point, the ABI1 note and boot-time checks shared by every hvt test guest.
 *
 * The monitor starts the vCPU in long mode at _start with %rdi = boot info (0x10000) and
 * %rsp = mem_size - 8. No IDT is loaded: any exception becomes a triple fault, which is what
 * our fault tests rely on.
 */
#include "hvt_guest.h"

/* "ABI1" note: hvt target, ABI version from the build (-DSOLO5_ABI_VERSION). */
__attribute__((used, section(".note.solo5.abi"), aligned(4))) const struct {
    struct solo5_nhdr h;
    struct {
        uint32_t abi_target, abi_version, reserved0, reserved1;
    } i;
} guest_abi1_note = {
    .h = {
        .n_namesz = sizeof(SOLO5_NOTE_NAME),
        .n_descsz = 16,
        .n_type = ABI1_NOTE_TYPE,
        .n_name = SOLO5_NOTE_NAME,
    },
    .i = { .abi_target = HVT_ABI_TARGET, .abi_version = SOLO5_ABI_VERSION },
};

/* PT_INTERP as Solo5 toolchains write it, so the host kernel refuses to exec the file. */
__attribute__((used, section(".interp"))) const char guest_interp[] = "/nonexistent/solo5/";

extern const struct mft *const guest_static_mft;
static const struct mft *boot_mft;
void cmdline_init(const char *cmdline);

__asm__(".text\n"
        ".globl _start\n"
        ".type _start, @function\n"
        "_start:\n"
        "    xorl %ebp, %ebp\n"
        "    andq $-16, %rsp\n"
        "    call guest_start\n"
        "    ud2\n"
        ".size _start, . - _start\n");

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
