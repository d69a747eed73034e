/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the benchmark loops (membench.c) need from the guest they run in:
 * the Linux guest (linux.c, /dev/mem) or the bare-metal one (metal.c,
 * identity-mapped, ring 3).
 */
#ifndef VFIO_CXL_BENCH_PLATFORM_H
#define VFIO_CXL_BENCH_PLATFORM_H

#include <stdint.h>

/* A pointer through which the guest reaches guest-physical [@addr, @addr +
 * @len) with ordinary (write-back) loads and stores; NULL on failure. */
volatile void *phys_map(uint64_t addr, uint64_t len);
/* Writes @s to the console. */
void put_str(const char *s);
/* The guest's command line (key=value words). */
const char *command_line(void);

/* Runs the benchmark as the command line says; 0 on success. */
int membench_main(void);

#endif
