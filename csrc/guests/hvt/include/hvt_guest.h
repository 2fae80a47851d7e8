/*
 * The small runtime of our freestanding hvt test guests (csrc/guests/hvt/lib/).
 *
 * An hvt guest runs in ring 0 of its own KVM virtual machine: no system calls, only
 * hypercalls (`outl` of an argument struct's guest-physical address to port 0x500 + nr).
 * Layouts follow Solo5's include/hvt_abi.h, elf_abi.h and mft_abi.h and are pinned with
 * _Static_assert. Build with -mgeneral-regs-only: on paravirtual KVM hosts guest SSE/FPU
 * instructions may not be emulated.
 *
 * A guest defines HVT_MANIFEST(...) and `int guest_main(const struct hvt_boot_info *bi)`;
 * lib/start.c enters it and halts with its return value as the exit status.
 */
#ifndef HVT_GUEST_H
#define HVT_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef SOLO5_ABI_VERSION
#error "build with -DSOLO5_ABI_VERSION=1 (Solo5 <= 0.7) or 2 (Solo5 >= 0.8)"
#endif

/* ---- memory map and boot info ------------------------------------------------------------ */

#define HVT_BOOT_INFO_BASE 0x10000UL
#define HVT_GUEST_MIN_BASE 0x100000UL
#define HVT_CMDLINE_SIZE   8192

struct hvt_boot_info {
    uint64_t mem_size;       /* guest memory is 0 .. mem_size */
    uint64_t kernel_end;     /* first address after the loaded ELF */
    uint64_t cpu_cycle_freq; /* TSC frequency in Hz */
    const char *cmdline;     /* NUL-terminated, arguments joined by single spaces */
    const void *mft;         /* struct mft, tender fields filled in */
};
_Static_assert(sizeof(struct hvt_boot_info) == 40, "hvt_boot_info size");

/* Exit status of a guest whose boot info fails the runtime's checks (lib/start.c). */
#define GUEST_EXIT_BAD_BOOT 2

int guest_main(const struct hvt_boot_info *bi);

/* ---- hypercalls ---------------------------------------------------------------------------- */

#define HVT_PIO_BASE 0x500
enum {
    HVT_HC_WALLTIME = 1,
    HVT_HC_PUTS,
    HVT_HC_POLL,
    HVT_HC_BLOCK_WRITE,
    HVT_HC_BLOCK_READ,
    HVT_HC_NET_WRITE,
    HVT_HC_NET_READ,
    HVT_HC_HALT,
};

enum { SOLO5_R_OK = 0, SOLO5_R_AGAIN, SOLO5_R_EINVAL, SOLO5_R_EUNSPEC };

struct hvt_hc_walltime { uint64_t nsecs; };
struct hvt_hc_puts { const char *data; size_t len; };
struct hvt_hc_poll { uint64_t timeout_nsecs; uint64_t ready_set; int ret; };
struct hvt_hc_block_write { uint64_t handle; uint64_t offset; const void *data; size_t len; int ret; };
struct hvt_hc_block_read { uint64_t handle; uint64_t offset; void *data; size_t len; int ret; };
struct hvt_hc_net_write { uint64_t handle; const void *data; size_t len; int ret; };
struct hvt_hc_net_read { uint64_t handle; void *data; size_t len; int ret; };
struct hvt_hc_halt { void *cookie; int exit_status; };

/* Guest memory is identity-mapped and at most 4 GiB, so a pointer is its 32-bit port value. */
static inline void hvt_hypercall(int nr, volatile void *arg)
{
    __asm__ __volatile__("outl %0, %1"
                         :
                         : "a"((uint32_t)(uintptr_t)arg), "d"((uint16_t)(HVT_PIO_BASE + nr))
                         : "memory");
}

__attribute__((noreturn)) void guest_halt(int status);

/* ---- strings, console, command line (lib/) ------------------------------------------------ */

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
bool str_eq(const char *a, const char *b);

/* printf subset: %s %c %d %u %x (l/ll, width, 0 flag), %%. One puts hypercall per call. */
__attribute__((format(printf, 1, 2))) void cprintf(const char *fmt, ...);

/* Tokens separated by spaces: KEY=VALUE and bare words. */
const char *cmdline_value(const char *key, size_t *len);
bool cmdline_has(const char *word);
bool cmdline_uint(const char *key, uint64_t *out);

/* ---- manifest ("MFT1" note) and ABI note ("ABI1") ------------------------------------------ */

#define MFT_VERSION         1
#define MFT_MAX_ENTRIES     64
#define MFT_NAME_SIZE       68
#define MFT_DEV_BLOCK_BASIC 1U
#define MFT_DEV_NET_BASIC   2U
#define MFT_RESERVED_FIRST  (1U << 30)

struct mft_entry {
    char name[MFT_NAME_SIZE];
    uint32_t type;
    union {
        struct { uint64_t capacity; uint16_t block_size; } block;
        struct { uint8_t mac[6]; uint16_t mtu; } net;
    } u;
    union { int hostfd; void *data; } b; /* the pointer gives the entry 8-byte alignment */
    bool attached;
};
_Static_assert(offsetof(struct mft_entry, u) == 72, "mft_entry.u");
_Static_assert(offsetof(struct mft_entry, attached) == 96, "mft_entry.attached");
_Static_assert(sizeof(struct mft_entry) == 104, "mft_entry size");

struct mft {
    uint32_t version;
    uint32_t entries;
    struct mft_entry e[]; /* e[0] is the reserved entry */
};

/* The manifest the tender handed over, after start; and a device (with its handle). */
const struct mft *mft_get(void);
const struct mft_entry *mft_find(const char *name, uint32_t type, uint64_t *handle);

#define SOLO5_NOTE_NAME "Solo5"
#define ABI1_NOTE_TYPE  0x31494241U /* "ABI1" */
#define MFT1_NOTE_TYPE  0x3154464dU /* "MFT1" */
#define HVT_ABI_TARGET  1U          /* enum abi_target: 1 hvt, 2 spt */

struct solo5_nhdr {
    uint32_t n_namesz;
    uint32_t n_descsz;
    uint32_t n_type;
    char n_name[(sizeof(SOLO5_NOTE_NAME) + 3) & ~3U];
};
_Static_assert(sizeof(struct solo5_nhdr) == 20, "solo5_nhdr size");

#define MFT_BLOCK(dev_name) { .name = dev_name, .type = MFT_DEV_BLOCK_BASIC }
#define MFT_NET(dev_name)   { .name = dev_name, .type = MFT_DEV_NET_BASIC }

/* HVT_MANIFEST(n, entries...): the guest's MFT1 note with n devices after the reserved entry
 * 0 (HVT_MANIFEST(0) for none; tenders refuse binaries without one). It also defines
 * guest_static_mft, which the runtime compares with the tender's copy at boot. */
#define HVT_MANIFEST(n, ...)                                                                   \
    __attribute__((used, section(".note.solo5.manifest"), aligned(8))) const struct {         \
        struct solo5_nhdr h;                                                                   \
        struct {                                                                               \
            uint32_t version;                                                                  \
            uint32_t entries;                                                                  \
            struct mft_entry e[(n) + 1];                                                       \
        } m;                                                                                   \
    } guest_mft1_note = {                                                                      \
        .h = {                                                                                 \
            .n_namesz = sizeof(SOLO5_NOTE_NAME),                                               \
            .n_descsz = sizeof(guest_mft1_note) - sizeof(struct solo5_nhdr),                   \
            .n_type = MFT1_NOTE_TYPE,                                                          \
            .n_name = SOLO5_NOTE_NAME,                                                         \
        },                                                                                     \
        .m = {                                                                                 \
            .version = MFT_VERSION,                                                            \
            .entries = (n) + 1,                                                                \
            .e = { { .name = "", .type = MFT_RESERVED_FIRST }, __VA_ARGS__ },                  \
        },                                                                                     \
    };                                                                                         \
    _Static_assert((n) + 1 <= MFT_MAX_ENTRIES, "too many manifest entries");                   \
    const struct mft *const guest_static_mft = (const struct mft *)&guest_mft1_note.m

#endif
