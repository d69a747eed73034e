/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Entry of the bare-metal benchmark guest, booted by QEMU's -kernel as a
 * multiboot image (flat binary, load addresses in the header): from 32-bit
 * protected mode to long mode with every guest-physical address below
 * 512 GiB identity-mapped by 2 MiB user pages, then to ring 3 with IOPL 3
 * (the console and the exit port are I/O ports) and interrupts off.
 * metal_main (metal.c) never returns; a fault triple-faults, which
 * -no-reboot turns into QEMU's exit.
 */
#define MB_MAGIC 0x1badb002
#define MB_FLAGS 0x00010000     /* load addresses given here */

    .section .multiboot, "a"
    .balign 4
mb_header:
    .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
    .long mb_header, _load_start, _load_end, _bss_end, entry32

    .section .text
    .code32
    .globl entry32
entry32:
    mov %ebx, mb_info
    /* PML4[0] -> pdpt; pdpt[i] -> pd + 4 KiB * i; pd[j] = j * 2 MiB,
     * present, writable, user, large.  (2 MiB pages: not every CPU model
     * a nested KVM offers has 1 GiB ones.) */
    mov $pd, %edi
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x87, %eax
    mov %eax, (%edi,%ecx,8)
    mov %ecx, %eax
    shr $11, %eax
    mov %eax, 4(%edi,%ecx,8)
    inc %ecx
    cmp $(512 * 512), %ecx
    jne 1b
    mov $pdpt, %edi
    xor %ecx, %ecx
2:  mov %ecx, %eax
    shl $12, %eax
    add $pd, %eax
    or $7, %eax
    mov %eax, (%edi,%ecx,8)
    inc %ecx
    cmp $512, %ecx
    jne 2b
    mov $pdpt, %eax
    or $7, %eax
    mov %eax, pml4
    mov $pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax              /* PAE */
    mov %eax, %cr4
    mov $0xc0000080, %ecx       /* EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax        /* PG, PE */
    mov %eax, %cr0
    lgdt gdt_ptr
    ljmp $0x08, $entry64

    .code64
entry64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    /* To ring 3: SS, RSP, RFLAGS (IOPL 3, IF 0), CS, RIP. */
    pushq $0x23
    pushq $stack_top
    pushq $0x3002
    pushq $0x1b
    pushq $metal_main
    mov $0x23, %ax
    mov %ax, %ds
    mov %ax, %es
    iretq

    .section .data
    .balign 8
gdt:
    .quad 0                     /* null */
    .quad 0x00209a0000000000    /* 0x08 kernel code, 64-bit */
    .quad 0x0000920000000000    /* 0x10 kernel data */
    .quad 0x0020fa0000000000    /* 0x18 user code, 64-bit, DPL 3 */
    .quad 0x0000f20000000000    /* 0x20 user data, DPL 3 */
gdt_ptr:
    .word gdt_ptr - gdt - 1
    .long gdt
    .globl mb_info
mb_info:
    .long 0

    .section .bss
    .balign 4096
pml4:
    .skip 4096
pdpt:
    .skip 4096
pd:
    .skip 512 * 4096
    .skip 65536
stack_top:

    .section .note.GNU-stack, "", @progbits
