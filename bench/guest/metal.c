/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The bare-metal guest's platform (see metal-entry.S): runs in ring 3,
 * addresses are guest-physical (identity map), the console is COM1 and
 * the end is a write to QEMU's isa-debug-exit port.
 */
#include "platform.h"

#define COM1 0x3f8
#define EXIT_PORT 0xf4

extern uint32_t mb_info;

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

volatile void *phys_map(uint64_t addr, uint64_t len)
{
    return addr + len <= (512ull << 30) ? (volatile void *)addr : 0;
}

void put_str(const char *s)
{
    for (; *s; s++) {
        while (!(inb(COM1 + 5) & 0x20)) {
        }
        outb(COM1, (uint8_t)*s);
    }
}

const char *command_line(void)
{
    /* Multiboot information: flags bit 2 says the command line is there. */
    const uint32_t *mbi = (const uint32_t *)(uintptr_t)mb_info;
    return mbi && (mbi[0] & 4) ? (const char *)(uintptr_t)mbi[4] : "";
}

void metal_main(void)
{
    int rc = membench_main();
    __asm__ volatile("outl %0, %1" :: "a"((uint32_t)rc), "Nd"((uint16_t)EXIT_PORT));
    for (;;) {
    }
}
