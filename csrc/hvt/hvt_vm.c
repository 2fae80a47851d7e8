/*
 * KVM plumbing: create the VM and its one vCPU, and put the vCPU in the state an hvt guest
 * starts in (64-bit long mode, paging on, flat segments, rip = entry, rdi = boot info,
 * rsp = mem_size - 8) -- the same state solo5-hvt's hvt_vcpu_init() sets up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hvt_internal.h"

#define X86_CR0_PE (1ULL << 0)
#define X86_CR0_NE (1ULL << 5)
#define X86_CR0_PG (1ULL << 31)
#define X86_CR4_PAE (1ULL << 5)
#define X86_CR4_OSFXSR (1ULL << 9)
#define X86_CR4_OSXMMEXCPT (1ULL << 10)
#define X86_EFER_LME (1ULL << 8)
#define X86_EFER_LMA (1ULL << 10)
#define X86_RFLAGS_INIT 0x2ULL /* bit 1 is reserved and must be set */

int hvt_vm_open(struct runnc_hvt *vm, uint64_t mem_size, char *err, size_t errlen)
{
    memset(vm, 0, sizeof *vm);
    vm->kvmfd = vm->vmfd = vm->vcpufd = vm->epollfd = vm->timerfd = -1;
    vm->mem = MAP_FAILED;
    vm->run = MAP_FAILED;

    vm->kvmfd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm->kvmfd == -1)
        return hvt_fail(err, errlen, "cannot open /dev/kvm: %s", strerror(errno));
    int version = ioctl(vm->kvmfd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION)
        return hvt_fail(err, errlen, "/dev/kvm speaks API version %d, need %d", version,
                        KVM_API_VERSION);
    vm->vmfd = ioctl(vm->kvmfd, KVM_CREATE_VM, 0);
    if (vm->vmfd == -1)
        return hvt_fail(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
    if (mem_size == 0)
        return 0; /* a probe: the VM exists, that is all we wanted to know */

    /* MAP_NORESERVE: like any VMM, only the pages the guest touches cost memory. */
    vm->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (vm->mem == MAP_FAILED)
        return hvt_fail(err, errlen, "cannot map %llu MiB of guest memory: %s",
                        (unsigned long long)(mem_size >> 20), strerror(errno));
    vm->mem_size = mem_size;
    struct kvm_userspace_memory_region region = {
        .slot = 0,
        .guest_phys_addr = 0,
        .memory_size = mem_size,
        .userspace_addr = (uint64_t)(uintptr_t)vm->mem,
    };
    if (ioctl(vm->vmfd, KVM_SET_USER_MEMORY_REGION, &region) == -1)
        return hvt_fail(err, errlen, "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));

    vm->vcpufd = ioctl(vm->vmfd, KVM_CREATE_VCPU, 0);
    if (vm->vcpufd == -1)
        return hvt_fail(err, errlen, "KVM_CREATE_VCPU: %s", strerror(errno));
    int run_size = ioctl(vm->kvmfd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < (int)sizeof(struct kvm_run))
        return hvt_fail(err, errlen, "KVM_GET_VCPU_MMAP_SIZE returned %d", run_size);
    vm->run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpufd, 0);
    if (vm->run == MAP_FAILED)
        return hvt_fail(err, errlen, "mapping the vCPU run area: %s", strerror(errno));
    vm->run_size = (size_t)run_size;
    /* With sync regs KVM leaves the guest's registers in the run area at every exit, so a
     * fault report needs no KVM_GET_REGS -- an ioctl the seccomp policy does not allow. */
    int sync = ioctl(vm->kvmfd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
    if (sync > 0 && (sync & KVM_SYNC_X86_REGS)) {
        vm->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
        vm->sync_regs = true;
    }
    return 0;
}

/* Hand the guest the host's supported CPUID leaves, as solo5-hvt does: Solo5's bindings
 * check CPU features (e.g. an invariant TSC) before using them. */
static int setup_cpuid(struct runnc_hvt *vm, char *err, size_t errlen)
{
    int nent = 128;
    for (;;) {
        struct kvm_cpuid2 *cpuid =
            calloc(1, sizeof *cpuid + (size_t)nent * sizeof(struct kvm_cpuid_entry2));
        if (cpuid == NULL)
            return hvt_fail(err, errlen, "out of memory for CPUID entries");
        cpuid->nent = (uint32_t)nent;
        if (ioctl(vm->kvmfd, KVM_GET_SUPPORTED_CPUID, cpuid) == -1) {
            int e = errno;
            free(cpuid);
            if (e == E2BIG && nent < 4096) {
                nent *= 2;
                continue;
            }
            return hvt_fail(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(e));
        }
        int rc = ioctl(vm->vcpufd, KVM_SET_CPUID2, cpuid);
        int e = errno;
        free(cpuid);
        if (rc == -1)
            return hvt_fail(err, errlen, "KVM_SET_CPUID2: %s", strerror(e));
        return 0;
    }
}

static struct kvm_segment flat_segment(uint16_t gdt_index, uint8_t type, bool code)
{
    struct kvm_segment s = {
        .base = 0,
        .limit = 0xffffffff,
        .selector = (uint16_t)(gdt_index * 8),
        .type = type,
        .present = 1,
        .dpl = 0,
        .db = code ? 0 : 1, /* a 64-bit code segment must have D clear */
        .s = 1,
        .l = code ? 1 : 0,
        .g = 1,
    };
    return s;
}

int hvt_vm_start_cpu(struct runnc_hvt *vm, uint64_t entry, char *err, size_t errlen)
{
    if (setup_cpuid(vm, err, errlen))
        return -1;

    struct kvm_sregs sregs;
    if (ioctl(vm->vcpufd, KVM_GET_SREGS, &sregs) == -1)
        return hvt_fail(err, errlen, "KVM_GET_SREGS: %s", strerror(errno));
    sregs.cr0 = X86_CR0_PE | X86_CR0_PG | X86_CR0_NE;
    sregs.cr3 = HVT_PML4_BASE;
    sregs.cr4 = X86_CR4_PAE | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT;
    sregs.efer = X86_EFER_LME | X86_EFER_LMA;
    sregs.cs = flat_segment(1, 9 /* execute-only, accessed */, true);
    sregs.ss = sregs.ds = sregs.es = sregs.fs = sregs.gs =
        flat_segment(2, 3 /* read-write, accessed */, false);
    sregs.gdt.base = HVT_GDT_BASE;
    sregs.gdt.limit = 3 * 8 - 1;
    /* No IDT: an exception the guest does not handle escalates to a triple fault, which KVM
     * reports as KVM_EXIT_SHUTDOWN and we report as a guest fault. */
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    memset(&sregs.tr, 0, sizeof sregs.tr);
    sregs.tr.type = 11; /* 64-bit TSS, busy: VM entry insists on a usable TR */
    sregs.tr.present = 1;
    memset(&sregs.ldt, 0, sizeof sregs.ldt);
    sregs.ldt.unusable = 1;
    if (ioctl(vm->vcpufd, KVM_SET_SREGS, &sregs) == -1)
        return hvt_fail(err, errlen, "KVM_SET_SREGS: %s", strerror(errno));

    /* The guest's clock runs on the TSC; it needs the frequency in the boot info. */
    int khz = ioctl(vm->vcpufd, KVM_GET_TSC_KHZ, 0);
    if (khz <= 0)
        return hvt_fail(err, errlen, "KVM_GET_TSC_KHZ: %s",
                        khz == 0 ? "zero" : errno == EIO ? "host TSC is unstable"
                                                         : strerror(errno));
    vm->tsc_hz = (uint64_t)khz * 1000ULL;

    /* x86_64 ABI: at function entry (rsp + 8) is 16-byte aligned; rdi is the only argument. */
    struct kvm_regs regs = {
        .rip = entry,
        .rflags = X86_RFLAGS_INIT,
        .rsp = vm->mem_size - 8,
        .rdi = HVT_BOOT_INFO_BASE,
    };
    if (ioctl(vm->vcpufd, KVM_SET_REGS, &regs) == -1)
        return hvt_fail(err, errlen, "KVM_SET_REGS: %s", strerror(errno));
    return 0;
}

void hvt_vm_close(struct runnc_hvt *vm)
{
    if (vm->run != MAP_FAILED)
        munmap(vm->run, vm->run_size);
    if (vm->mem != MAP_FAILED)
        munmap(vm->mem, vm->mem_size);
    int fds[] = {vm->timerfd, vm->epollfd, vm->vcpufd, vm->vmfd, vm->kvmfd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    vm->run = MAP_FAILED;
    vm->mem = MAP_FAILED;
    vm->kvmfd = vm->vmfd = vm->vcpufd = vm->epollfd = vm->timerfd = -1;
}
