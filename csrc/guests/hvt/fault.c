/*
 * fault (hvt): misbehaves in the way its one command-line word asks, so tests can check how
 * the monitor reports each kind of guest crash (exit status 139 and one line on stderr).
 *
 *   ud2        invalid opcode; no IDT, so it escalates to a triple fault
 *   wrtext     write to its own text segment (mapped read-only)
 *   outside    read beyond the end of guest memory
 *   port       write to an I/O port that is not a hypercall
 *   badarg     puts hypercall whose argument pointer lies outside guest memory
 *   badhandle  block read with a handle it does not own: must get SOLO5_R_EINVAL and go on
 *   hlt        stop the CPU without the halt hypercall
 * It prints "fault: <word>" first, so a test sees that it ran up to the fault.
 */
#include "hvt_guest.h"

GUEST_MANIFEST(0);

extern char _stext[];

int guest_main(const struct hvt_boot_info *bi)
{
    static const char *const words[] = {"ud2", "wrtext", "outside", "port", "badarg",
                                        "badhandle", "hlt"};
    const char *word = NULL;
    for (unsigned i = 0; i < sizeof words / sizeof words[0]; i++)
        if (cmdline_has(words[i]))
            word = words[i];
    if (word == NULL) {
        cprintf("fault: say which fault\n");
        return 1;
    }
    cprintf("fault: %s\n", word);
    if (str_eq(word, "ud2")) {
        __asm__ __volatile__("ud2");
    } else if (str_eq(word, "wrtext")) {
        *(volatile char *)_stext = 0;
    } else if (str_eq(word, "outside")) {
        /* Identity-mapped up to mem_size only: the page walk fails first (#PF, no IDT). */
        (void)*(volatile uint64_t *)(uintptr_t)(bi->mem_size + 0x1000);
    } else if (str_eq(word, "port")) {
        __asm__ __volatile__("outb %%al, $0x80" : : "a"(0));
    } else if (str_eq(word, "badarg")) {
        hvt_hypercall(HVT_HC_PUTS, (void *)(uintptr_t)0xfffffff0U);
    } else if (str_eq(word, "badhandle")) {
        static uint8_t buf[512];
        struct hvt_hc_block_read rd = { .handle = 7, .offset = 0, .data = buf, .len = 512 };
        hvt_hypercall(HVT_HC_BLOCK_READ, &rd);
        cprintf("fault: badhandle ret=%d\n", rd.ret);
        return rd.ret == SOLO5_R_EINVAL ? 0 : 1;
    } else if (str_eq(word, "hlt")) {
        __asm__ __volatile__("cli; hlt");
    }
    cprintf("fault: still running after %s\n", word);
    return 1;
}
