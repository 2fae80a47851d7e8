/*
 * _start for every guest: the monitor enters with %rdi = boot info and %rsp = mem_size - 8.
 * Align the stack to 16 bytes whatever the monitor did, then call the target's C entry
 * guest_start(boot_info) with %rdi untouched. It never returns (ud2 if it does).
 */
__asm__(".text\n"
        ".globl _start\n"
        ".type _start, @function\n"
        "_start:\n"
        "    xorl %ebp, %ebp\n"
        "    andq $-16, %rsp\n"
        "    call guest_start\n"
        "    ud2\n"
        ".size _start, . - _start\n");
