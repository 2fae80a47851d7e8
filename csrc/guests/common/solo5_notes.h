/*
 * Solo5's manifest and ELF-note layout, shared by the spt and hvt test guests (Solo5 keeps
 * these target-independent too: include/solo5/{elf_abi,mft_abi}.h). Written from the facts in
 * /work/shared/DESIGN.md section 2; the layouts are pinned with _Static_assert so a drift
 * shows up at compile time instead of as a guest that cannot find its devices.
 */
#ifndef GUEST_SOLO5_NOTES_H
#define GUEST_SOLO5_NOTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- application manifest ("MFT1" note) ------------------------------------------------- */

#define MFT_VERSION         1
#define MFT_MAX_ENTRIES     64
#define MFT_NAME_SIZE       68 /* bytes, including the NUL */
#define MFT_DEV_BLOCK_BASIC 1U
#define MFT_DEV_NET_BASIC   2U
#define MFT_RESERVED_FIRST  (1U << 30)

struct mft_entry {
    char name[MFT_NAME_SIZE];
    uint32_t type;
    union {
        struct {
            uint64_t capacity; /* bytes */
            uint16_t block_size;
        } block;
        struct {
            uint8_t mac[6];
            uint16_t mtu;
        } net;
    } u;
    /* Solo5 makes this a union of `int hostfd` and `void *data`; the pointer is what gives
     * the entry (and so the manifest) 8-byte alignment, which decides the note padding. */
    union {
        int hostfd;
        void *data;
    } b;
    bool attached;
};

_Static_assert(offsetof(struct mft_entry, type) == 68, "mft_entry.type");
_Static_assert(offsetof(struct mft_entry, u) == 72, "mft_entry.u");
_Static_assert(offsetof(struct mft_entry, b) == 88, "mft_entry.b");
_Static_assert(offsetof(struct mft_entry, attached) == 96, "mft_entry.attached");
_Static_assert(sizeof(struct mft_entry) == 104, "mft_entry size");

struct mft {
    uint32_t version;
    uint32_t entries;
    struct mft_entry e[]; /* e[0] is the reserved entry */
};

/* ---- ELF notes --------------------------------------------------------------------------- */

#define SOLO5_NOTE_NAME "Solo5"
#define ABI1_NOTE_TYPE  0x31494241U /* "ABI1" */
#define MFT1_NOTE_TYPE  0x3154464dU /* "MFT1" */

/* Elf64_Nhdr plus the name padded to 4 bytes: 20 bytes. The descriptor follows, aligned to its
 * own type's alignment *inside n_descsz*: the ABI1 body (4-aligned) starts right at byte 20,
 * the MFT1 body (8-aligned) after 4 bytes of padding at byte 24. Solo5 tenders skip that
 * padding (their note_align argument), and so must every reader of these notes. */
struct solo5_nhdr {
    uint32_t n_namesz;
    uint32_t n_descsz;
    uint32_t n_type;
    char n_name[(sizeof(SOLO5_NOTE_NAME) + 3) & ~3U];
};

_Static_assert(sizeof(struct solo5_nhdr) == 20, "solo5_nhdr size");

struct abi1_info {
    uint32_t abi_target;
    uint32_t abi_version;
    uint32_t reserved0;
    uint32_t reserved1;
};

/* The manifest note of a guest with N entries (the reserved one included). */
#define MFT1_NOTE_TYPEDEF(N)                                                                   \
    struct {                                                                                   \
        struct solo5_nhdr h;                                                                   \
        struct {                                                                               \
            uint32_t version;                                                                  \
            uint32_t entries;                                                                  \
            struct mft_entry e[N];                                                             \
        } m;                                                                                   \
    }

/* Manifest entry initialisers for GUEST_MANIFEST(). */
#define MFT_BLOCK(dev_name) { .name = dev_name, .type = MFT_DEV_BLOCK_BASIC }
#define MFT_NET(dev_name)   { .name = dev_name, .type = MFT_DEV_NET_BASIC }

/*
 * GUEST_MANIFEST(n, entries...) declares the guest's MFT1 note with `n` devices after the
 * reserved entry 0, e.g. GUEST_MANIFEST(1, MFT_BLOCK("storage")). Every guest needs exactly one
 * (GUEST_MANIFEST(0) for none): tenders refuse binaries without a manifest. It also defines
 * `guest_static_mft`, the manifest as compiled in, which the runtime compares with the copy
 * the tender hands over in the boot info. aligned(8) is the body's natural alignment; saying
 * so explicitly stops gcc from raising a large object's alignment to 32 on x86_64, which would
 * give the PT_NOTE a p_align that readelf and other note readers reject (they expect 4 or 8).
 */
#define GUEST_MANIFEST(n, ...)                                                                 \
    __attribute__((used, section(".note.solo5.manifest"), aligned(8)))                         \
    const MFT1_NOTE_TYPEDEF((n) + 1) guest_mft1_note = {                                       \
            .h = {                                                                             \
                .n_namesz = sizeof(SOLO5_NOTE_NAME),                                           \
                .n_descsz = sizeof(guest_mft1_note) - sizeof(struct solo5_nhdr),               \
                .n_type = MFT1_NOTE_TYPE,                                                      \
                .n_name = SOLO5_NOTE_NAME,                                                     \
            },                                                                                 \
            .m = {                                                                             \
                .version = MFT_VERSION,                                                        \
                .entries = (n) + 1,                                                            \
                .e = { { .name = "", .type = MFT_RESERVED_FIRST }, __VA_ARGS__ },              \
            },                                                                                 \
        };                                                                                     \
    _Static_assert((n) + 1 <= MFT_MAX_ENTRIES, "too many manifest entries");                   \
    const struct mft *const guest_static_mft = (const struct mft *)&guest_mft1_note.m


/* GUEST_ABI_NOTE(target): the "ABI1" note for TARGET (1 hvt, 2 spt) with the ABI version of
 * the build (-DSOLO5_ABI_VERSION), and PT_INTERP as Solo5 toolchains write it, so the host
 * kernel refuses to exec the unikernel directly instead of running it as a broken program.
 * The note's 4-byte aligned body starts right after the 20-byte header: n_descsz is 16. */
#define GUEST_ABI_NOTE(target)                                                                 \
    __attribute__((used, section(".note.solo5.abi"), aligned(4))) const struct {              \
        struct solo5_nhdr h;                                                                   \
        struct abi1_info i;                                                                    \
    } guest_abi1_note = {                                                                      \
        .h = {                                                                                 \
            .n_namesz = sizeof(SOLO5_NOTE_NAME),                                               \
            .n_descsz = sizeof(struct abi1_info),                                              \
            .n_type = ABI1_NOTE_TYPE,                                                          \
            .n_name = SOLO5_NOTE_NAME,                                                         \
        },                                                                                     \
        .i = { .abi_target = (target), .abi_version = SOLO5_ABI_VERSION },                     \
    };                                                                                         \
    __attribute__((used, section(".interp"))) const char guest_interp[] = "/nonexistent/solo5/"

#endif
