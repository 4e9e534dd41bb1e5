/*
 * RISC-V (rv32, machine mode) start-up for QEMU `-M virt -bios none`: the ELF entry point.
 * Sets gp/sp, enables the FPU (mstatus.FS) before any compiled code runs, installs the trap
 * vector and calls mt_board_c_start(). CSR instructions are enabled with `.option arch, +zicsr`
 * rather than -march=..._zicsr, which would break multilib selection (see docs/boards.md).
 */
    .option arch, +zicsr

    .section .text.start, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    la sp, __stack_top
    /* Only hart 0 runs; any other hart parks. */
    csrr t0, mhartid
    bnez t0, 2f
    li t0, (1 << 13)          /* mstatus.FS = Initial */
    csrs mstatus, t0
    csrw fcsr, zero
    la t0, mt_trap_entry
    csrw mtvec, t0
    call mt_board_c_start
2:
    wfi
    j 2b
    .size _start, . - _start

    /* Traps are fatal here: report on a fresh stack and exit with MT_BOARD_EXIT_FAULT. */
    .text
    .balign 4
    .globl mt_trap_entry
    .type mt_trap_entry, @function
mt_trap_entry:
    la sp, __stack_top
    csrr a0, mcause
    csrr a1, mepc
    csrr a2, mtval
    call mt_trap_c
1:
    j 1b
    .size mt_trap_entry, . - mt_trap_entry
