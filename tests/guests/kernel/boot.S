/* PVH entry, static identity page tables, GDT, long-mode switch and the interrupt stubs.
 * Everything here runs at CPL0, which the target host emulates at ~1M instructions/s,
 * so the page tables are built by the assembler instead of by a loop at boot. */

#define KERNEL_CS 0x08
#define KERNEL_DS 0x10

/* PVH: XEN_ELFNOTE_PHYS32_ENTRY (18) gives the 32-bit physical entry point. */
        .section .note.Xen, "a", @note
        .p2align 2
        .long 4, 4, 18
        .asciz "Xen"
        .long pvh_entry32
        .p2align 2

        .section .text.boot, "ax"
        .code32
        .globl pvh_entry32
pvh_entry32:
        /* Entered with paging off, flat 32-bit CS/DS, EBX = struct hvm_start_info. */
        cli
        cld
        movl %ebx, boot_start_info
        movl $boot_pml4, %eax
        movl %eax, %cr3
        movl %cr4, %eax
        orl $0x20, %eax                 /* CR4.PAE */
        movl %eax, %cr4
        movl $0xc0000080, %ecx          /* EFER */
        rdmsr
        orl $0x100, %eax                /* EFER.LME */
        wrmsr
        movl %cr0, %eax
        andl $0x9ffffffb, %eax          /* clear CD, NW, EM */
        orl $0x80010002, %eax           /* PG, WP, MP (PE is already set) */
        movl %eax, %cr0
        lgdt gdt_pointer
        ljmp $KERNEL_CS, $long_mode_entry

        .code64
long_mode_entry:
        movl $KERNEL_DS, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        xorl %eax, %eax
        movl %eax, %fs
        movl %eax, %gs
        movq $boot_stack_top, %rsp
        movl boot_start_info, %edi
        call kernel_main
1:      cli
        hlt
        jmp 1b

/* Interrupt stubs: push a uniform struct rr_trap_frame, call trap_dispatch(frame), which
 * returns the frame to resume (possibly another task's, on its own kernel stack). */
        .text
        .altmacro
        .macro TRAP_STUB n
trap_stub_\n:
        .if (\n == 8) || (\n == 10) || (\n == 11) || (\n == 12) || (\n == 13) || (\n == 14) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
        .else
        pushq $0
        .endif
        pushq $\n
        jmp trap_common
        .endm

        .set vec, 0
        .rept 48
        TRAP_STUB %vec
        .set vec, vec + 1
        .endr

trap_common:
        pushq %rax
        pushq %rbx
        pushq %rcx
        pushq %rdx
        pushq %rsi
        pushq %rdi
        pushq %rbp
        pushq %r8
        pushq %r9
        pushq %r10
        pushq %r11
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        movq %rsp, %rdi
        call trap_dispatch
        movq %rax, %rsp
        .globl trap_return
trap_return:
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rbp
        popq %rdi
        popq %rsi
        popq %rdx
        popq %rcx
        popq %rbx
        popq %rax
        addq $16, %rsp
        iretq

/* void enter_frame(struct rr_trap_frame *frame): start running a saved frame. */
        .globl enter_frame
enter_frame:
        movq %rdi, %rsp
        jmp trap_return

/* The idle task: CPL0, interrupts on, halts until the next interrupt. */
        .globl idle_loop
idle_loop:
        sti
        hlt
        jmp idle_loop

        .section .rodata
        .p2align 3
        .globl trap_stub_table
        .macro TRAP_STUB_ADDR n
        .quad trap_stub_\n
        .endm
trap_stub_table:
        .set vec, 0
        .rept 48
        TRAP_STUB_ADDR %vec
        .set vec, vec + 1
        .endr

        .data
        .p2align 3
        .globl gdt
gdt:
        .quad 0                         /* 0x00 null */
        .quad 0x00af9a000000ffff        /* 0x08 kernel code, 64-bit */
        .quad 0x00cf92000000ffff        /* 0x10 kernel data */
        .quad 0x00cff2000000ffff        /* 0x18 user data (selector 0x1b) */
        .quad 0x00affa000000ffff        /* 0x20 user code, 64-bit (selector 0x23) */
        .quad 0, 0                      /* 0x28 TSS, filled in by C */
gdt_end:
gdt_pointer:
        .word gdt_end - gdt - 1
        .quad gdt

boot_start_info:
        .long 0

/* Identity map of the low 4 GiB with 2 MiB pages. Only 2 MiB..6 MiB (the user
 * region, see guest.ld) carries the U/S bit, so CPL3 cannot touch the kernel. */
        .section .data.pagetables, "aw"
        .p2align 12
        .globl boot_pml4
boot_pml4:
        .quad boot_pdpt + 0x7
        .fill 511, 8, 0
boot_pdpt:
        .quad boot_pd + 0x7, boot_pd + 0x1000 + 0x7, boot_pd + 0x2000 + 0x7, boot_pd + 0x3000 + 0x7
        .fill 508, 8, 0
boot_pd:
        .set page, 0
        .rept 2048
        .quad (page << 21) | 0x83 | (((page >= 1) & (page < 3)) & 0x4)
        .set page, page + 1
        .endr

        .section .bss
        .p2align 4
boot_stack:
        .skip 8192
boot_stack_top:

        .section .note.GNU-stack, "", @progbits
