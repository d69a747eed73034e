/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The benchmark as /init of a Linux guest: guest-physical memory through
 * /dev/mem (the RAM region is one the kernel was told to leave alone with
 * memmap=SIZE$ADDR, so /dev/mem may map it), then power off.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <unistd.h>

#include "platform.h"

static char cmdline[4096];
static int mem_fd = -1;

volatile void *phys_map(uint64_t addr, uint64_t len)
{
    uint64_t base = addr & ~4095ull;
    void *p = mmap(NULL, len + (addr - base), PROT_READ | PROT_WRITE, MAP_SHARED,
                   mem_fd, (off_t)base);
    return p == MAP_FAILED ? NULL : (volatile char *)p + (addr - base);
}

void put_str(const char *s)
{
    ssize_t unused = write(1, s, strlen(s));
    (void)unused;
}

const char *command_line(void)
{
    return cmdline;
}

int main(void)
{
    mount("proc", "/proc", "proc", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    int fd = open("/proc/cmdline", O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, cmdline, sizeof(cmdline) - 1);
        cmdline[n > 0 ? n : 0] = 0;
        close(fd);
    }
    for (char *c = cmdline; *c; c++) {
        if (*c == '\n') {
            *c = ' ';
        }
    }
    mem_fd = open("/dev/mem", O_RDWR);
    if (mem_fd < 0) {
        put_str("VB error cannot open /dev/mem\n");
    } else {
        membench_main();
    }
    sync();
    reboot(RB_POWER_OFF);
    put_str("VB error power off failed\n");
    return 1;
}
