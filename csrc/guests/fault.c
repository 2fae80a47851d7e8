/*
 * fault: tests that a guest memory fault kills the guest with SIGSEGV (exit status 139) and
 * that the loader applied the ELF segment permissions.
 *
 * Prints `fault: <what>` (so a test can see it started), then faults. If it survives, prints
 * `fault: FAIL ...` and exits 1.
 *
 * Tokens (default: low):
 *   fault=low      write to 0x8, below guest memory (nothing is mapped there)
 *   fault=rodata   write to this guest's read-only data (R segment must not be writable)
 *   fault=text     write to this guest's code (R+X segment must not be writable)
 *   fault=exec     call into this guest's writable data (RW segment must not be executable,
 *                  --x-exec-heap or not)
 *   fault=heapexec call into the heap (at kernel_end): must fault, except under --x-exec-heap,
 *                  where it returns and the guest prints `fault: heap is executable`, exit 0
 * No devices.
 */
#include "guest.h"

GUEST_MANIFEST(0);

static const uint32_t read_only_word = 0x600df00d;
static uint8_t writable_code[16] = { 0xc3 }; /* `ret`: returns if data is executable */

static bool is(const char *mode, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(mode, want, len) == 0;
}

int guest_main(const struct spt_boot_info *bi)
{
    size_t len;
    const char *mode = cmdline_value("fault", &len);
    if (mode == NULL) {
        mode = "low";
        len = strlen(mode);
    }

    if (is(mode, len, "low")) {
        cprintf("fault: writing to 0x8\n");
        volatile uintptr_t low = 0x8; /* opaque, so gcc cannot flag the store */
        *(volatile uint32_t *)low = 1;
    } else if (is(mode, len, "rodata")) {
        cprintf("fault: writing to read-only data at 0x%lx\n", (uint64_t)(uintptr_t)&read_only_word);
        *(volatile uint32_t *)(uintptr_t)&read_only_word = 1;
    } else if (is(mode, len, "text")) {
        cprintf("fault: writing to code at 0x%lx\n", (uint64_t)(uintptr_t)&guest_main);
        *(volatile uint8_t *)(uintptr_t)&guest_main = 0xcc;
    } else if (is(mode, len, "exec")) {
        cprintf("fault: executing writable data at 0x%lx\n", (uint64_t)(uintptr_t)writable_code);
        /* Make sure the compiler cannot see through the call. */
        void (*volatile fn)(void) = (void (*)(void))(uintptr_t)writable_code;
        fn();
    } else if (is(mode, len, "heapexec")) {
        uint8_t *heap = (uint8_t *)(uintptr_t)bi->kernel_end;
        cprintf("fault: executing the heap at 0x%lx\n", (uint64_t)(uintptr_t)heap);
        heap[0] = 0xc3; /* ret */
        void (*volatile fn)(void) = (void (*)(void))(uintptr_t)heap;
        fn();
        cprintf("fault: heap is executable\n");
        return 0;
    } else {
        cprintf("fault: FAIL unknown fault= mode (low, rodata, text, exec or heapexec)\n");
        return 1;
    }
    cprintf("fault: FAIL survived\n");
    return 1;
}
