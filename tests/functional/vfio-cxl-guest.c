/*
 * vfio-cxl-guest: runs inside the functional test's Linux guest and
 * reports, as key=value lines between VFIO-CXL-REPORT-BEGIN and
 * VFIO-CXL-REPORT-END on stdout, what the guest sees of the passed-through
 * CXL Type-2 accelerator:
 *
 *   - the PCI device (vendor 0x1234 device 0xc202, or class 0x12 with a
 *     CXL Device DVSEC) and its CXL Device DVSEC, read from sysfs config;
 *   - whether config writes to the locked DVSEC Control/Lock stick;
 *   - HDM decoder 0 in the component register block (BAR from the
 *     Register Locator DVSEC, mapped through sysfs resourceN);
 *   - the guest CXL core's view in /sys/bus/cxl/devices;
 *   - what our CXL Type-2 driver (tests/functional/cxl-type2-driver) got
 *     from the CXL core, when it is bound;
 *   - device memory through that driver's mapping, else through /dev/mem
 *     (needs iomem=relaxed): a pattern written at several offsets, and a
 *     pattern the host wrote;
 *   - all of that again after an FLR through sysfs "reset", and after a
 *     CXL Reset through the DVSEC (keys prefixed "flr." and "cxlr.").
 *
 * With several such devices, each is reported under its own prefix
 * ("dev0.", "dev1."... in PCI address order, with "devices=N" first) and
 * writes its pages with its own pattern seed ("mem.seed"), so that a test
 * can tell whose data it finds where; the CXL core, /proc/iomem and the
 * kernel log are reported once, unprefixed, and no device is reset.
 *
 * Every failure is a "key=error: ..." line; the program never stops early.
 * Built by mk/guest-image.sh with gcc -static -O2.
 *
 * Options (argv or kernel command line, which the program reads from
 * /proc/cmdline):
 *   vfio_cxl_host=OFF,LEN     host-written bytes to read back (hex ok)
 *   vfio_cxl_pause=SECONDS    pause after "reset.pending" and
 *                             "cxl_reset.pending" (default 2)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define PCI_DEVICES         "/sys/bus/pci/devices"
#define CXL_DEVICES         "/sys/bus/cxl/devices"
#define SIM_VENDOR          0x1234
#define SIM_DEVICE          0xc202
#define CFG_SIZE            4096
#define PAGE                4096

#define CFG_COMMAND         0x04
#define CMD_MEMORY          0x2
#define EXT_CAP_START       0x100
#define EXT_CAP_DVSEC       0x23
#define CXL_VENDOR          0x1e98
#define DVSEC_DEVICE        0
#define DVSEC_REGLOC        8
#define DVSEC_CONTROL       0x0c
#define DVSEC_MEM_ENABLE    (1u << 2)
#define DVSEC_LOCK          0x14
#define DVSEC_LOCKED        (1u << 0)
#define DVSEC_R1_SIZE_HI    0x18
#define DVSEC_R1_SIZE_LO    0x1c
#define DVSEC_R1_BASE_HI    0x20
#define DVSEC_R1_BASE_LO    0x24
#define REGLOC_ENTRIES      0x0c
#define REGLOC_COMPONENT    1

#define CACHEMEM_OFFSET     0x1000
#define CAP_ID_CXL          1
#define CAP_ID_HDM          5
#define HDM_CAP             0x00
#define HDM_GLOBAL          0x04
#define HDM_D0              0x10
#define HDM_DECODER_STRIDE  0x20
#define HDM_BASE_LO         0x00
#define HDM_BASE_HI         0x04
#define HDM_SIZE_LO         0x08
#define HDM_SIZE_HI         0x0c
#define HDM_CTRL            0x10
#define HDM_TARGET_LO       0x14    /* DPA Skip Low in an endpoint */
#define HDM_LOCK_ON_COMMIT  (1u << 8)
#define HDM_COMMIT          (1u << 9)
#define HDM_COMMITTED       (1u << 10)
#define ADDR_LO_MASK        0xf0000000u

#define MAX_PAGES           8

static int errors;
/*
 * Prefix of every key of the device being reported: "" for a single
 * device, "dev<N>." for each of several.
 */
static char dev_prefix[16];

/* ------------------------------------------------------------------ */
/* Output                                                               */
/* ------------------------------------------------------------------ */

static void put(const char *prefix, const char *key, const char *fmt, ...)
{
    va_list ap;

    printf("%s%s%s=", dev_prefix, prefix, key);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void fail(const char *prefix, const char *key, const char *fmt, ...)
{
    va_list ap;

    errors++;
    printf("%s%s%s=error: ", dev_prefix, prefix, key);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* Small file helpers                                                   */
/* ------------------------------------------------------------------ */

/* Reads a small text file, strips the trailing newline; -1 on error. */
static int read_text(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    ssize_t n;

    if (fd < 0) {
        return -1;
    }
    n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0) {
        return -1;
    }
    buf[n] = 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) {
        buf[--n] = 0;
    }
    return 0;
}

static int read_hex(const char *path, unsigned long *v)
{
    char buf[64];

    *v = 0;
    if (read_text(path, buf, sizeof(buf)) < 0 || sscanf(buf, "%lx", v) != 1) {
        return -1;
    }
    return 0;
}

static int write_text(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY);
    ssize_t n;

    if (fd < 0) {
        return -1;
    }
    n = write(fd, s, strlen(s));
    close(fd);
    return n == (ssize_t)strlen(s) ? 0 : -1;
}

static uint32_t le32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
    return p[0] | p[1] << 8;
}

/* ------------------------------------------------------------------ */
/* Config space                                                         */
/* ------------------------------------------------------------------ */

static char dev_path[512];
static char dev_name[256];

static int read_config(uint8_t *cfg, const char *prefix)
{
    char path[600];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "%s/config", dev_path);
    fd = open(path, O_RDONLY);
    if (fd < 0) {
        fail(prefix, "config", "open %s: %s", path, strerror(errno));
        return -1;
    }
    memset(cfg, 0xff, CFG_SIZE);
    n = pread(fd, cfg, CFG_SIZE, 0);
    close(fd);
    if (n < CFG_SIZE) {
        fail(prefix, "config", "read %zd of %d bytes: %s", n, CFG_SIZE,
             n < 0 ? strerror(errno) : "short read (no extended config?)");
        return n > 0x100 ? 0 : -1;
    }
    return 0;
}

/* Offset of the CXL DVSEC with @id in @cfg, 0 if absent. */
static unsigned find_dvsec(const uint8_t *cfg, unsigned id)
{
    unsigned off = EXT_CAP_START;
    int steps;

    for (steps = 0; off >= EXT_CAP_START && off < CFG_SIZE - 12 &&
         steps < 128; steps++) {
        uint32_t hdr = le32(cfg + off);

        if (hdr == 0 || hdr == 0xffffffff) {
            return 0;
        }
        if ((hdr & 0xffff) == EXT_CAP_DVSEC &&
            le16(cfg + off + 4) == CXL_VENDOR &&
            le16(cfg + off + 8) == id) {
            return off;
        }
        off = (hdr >> 20) & 0xffc;
    }
    return 0;
}

static uint64_t addr_of(uint32_t hi, uint32_t lo)
{
    return (uint64_t)hi << 32 | (lo & ADDR_LO_MASK);
}

typedef struct Dvsec {
    unsigned off;
    uint16_t control, lock;
    uint64_t size, base;
} Dvsec;

static int report_dvsec(const uint8_t *cfg, const char *prefix, Dvsec *d)
{
    memset(d, 0, sizeof(*d));
    d->off = find_dvsec(cfg, DVSEC_DEVICE);
    if (!d->off) {
        fail(prefix, "dvsec", "no CXL Device DVSEC in extended config");
        return -1;
    }
    d->control = le16(cfg + d->off + DVSEC_CONTROL);
    d->lock = le16(cfg + d->off + DVSEC_LOCK);
    d->size = addr_of(le32(cfg + d->off + DVSEC_R1_SIZE_HI),
                      le32(cfg + d->off + DVSEC_R1_SIZE_LO));
    d->base = addr_of(le32(cfg + d->off + DVSEC_R1_BASE_HI),
                      le32(cfg + d->off + DVSEC_R1_BASE_LO));
    put(prefix, "dvsec.offset", "0x%x", d->off);
    put(prefix, "dvsec.control", "0x%04x", d->control);
    put(prefix, "dvsec.mem_enable", "%d", !!(d->control & DVSEC_MEM_ENABLE));
    put(prefix, "dvsec.lock", "0x%04x", d->lock);
    put(prefix, "dvsec.locked", "%d", !!(d->lock & DVSEC_LOCKED));
    put(prefix, "dvsec.range1_size", "0x%" PRIx64, d->size);
    put(prefix, "dvsec.range1_size_lo", "0x%08x",
        le32(cfg + d->off + DVSEC_R1_SIZE_LO));
    put(prefix, "dvsec.range1_base", "0x%" PRIx64, d->base);
    return 0;
}

/*
 * Tries to clear Mem_Enable and Lock through the config file and reports
 * whether either write stuck; puts the old value back if it did.
 */
static void try_dvsec_writes(const Dvsec *d)
{
    struct { const char *name; unsigned reg; uint16_t old, val; } w[] = {
        { "control", DVSEC_CONTROL, d->control,
          (uint16_t)(d->control & ~DVSEC_MEM_ENABLE) },
        { "lock", DVSEC_LOCK, d->lock, (uint16_t)(d->lock & ~DVSEC_LOCKED) },
    };
    char path[600], key[64];
    size_t i;
    int fd;

    snprintf(path, sizeof(path), "%s/config", dev_path);
    fd = open(path, O_RDWR);
    if (fd < 0) {
        fail("", "dvsec_write", "open %s: %s", path, strerror(errno));
        return;
    }
    for (i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        uint8_t b[2] = { w[i].val & 0xff, w[i].val >> 8 };
        off_t at = d->off + w[i].reg;
        ssize_t n = pwrite(fd, b, 2, at);

        snprintf(key, sizeof(key), "dvsec_write.%s.wrote", w[i].name);
        if (n != 2) {
            fail("", key, "pwrite 0x%04x at 0x%lx: %s", w[i].val, (long)at,
                 n < 0 ? strerror(errno) : "short write");
            continue;
        }
        put("", key, "0x%04x", w[i].val);
        snprintf(key, sizeof(key), "dvsec_write.%s.read", w[i].name);
        if (pread(fd, b, 2, at) != 2) {
            fail("", key, "pread at 0x%lx: %s", (long)at, strerror(errno));
            continue;
        }
        put("", key, "0x%04x", le16(b));
        snprintf(key, sizeof(key), "dvsec_write.%s.stuck", w[i].name);
        put("", key, "%d", le16(b) != w[i].old);
        if (le16(b) != w[i].old) {
            b[0] = w[i].old & 0xff;
            b[1] = w[i].old >> 8;
            if (pwrite(fd, b, 2, at) != 2) {
                fail("", "dvsec_write.restore", "%s", strerror(errno));
            }
        }
    }
    close(fd);
}

/* ------------------------------------------------------------------ */
/* Finding the device                                                   */
/* ------------------------------------------------------------------ */

#define MAX_DEVICES         8

/*
 * Whether PCI device @name is ours: the simulator's IDs, or class 0x12
 * with a CXL Device DVSEC; reports its IDs.
 */
static int is_accelerator(const char *name)
{
    static uint8_t cfg[CFG_SIZE];
    unsigned long vendor = 0, device = 0, class = 0;
    char path[600];

    snprintf(path, sizeof(path), PCI_DEVICES "/%s/vendor", name);
    read_hex(path, &vendor);
    snprintf(path, sizeof(path), PCI_DEVICES "/%s/device", name);
    read_hex(path, &device);
    snprintf(path, sizeof(path), PCI_DEVICES "/%s/class", name);
    read_hex(path, &class);
    put("", "pci", "%s %04lx:%04lx class %06lx", name, vendor, device, class);
    if (vendor == SIM_VENDOR && device == SIM_DEVICE) {
        return 1;
    }
    if ((class >> 16) != 0x12) {
        return 0;
    }
    snprintf(dev_path, sizeof(dev_path), PCI_DEVICES "/%s", name);
    return read_config(cfg, "probe.") == 0 && find_dvsec(cfg, DVSEC_DEVICE);
}

/*
 * The accelerators' PCI names, in address order; how many (0 after a
 * fail()).
 */
static int find_devices(char names[][256])
{
    struct dirent **e;
    int n = scandir(PCI_DEVICES, &e, NULL, alphasort), found = 0, i;

    if (n < 0) {
        fail("", "device", "scandir %s: %s", PCI_DEVICES, strerror(errno));
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (e[i]->d_name[0] != '.' && is_accelerator(e[i]->d_name)) {
            if (found == MAX_DEVICES) {
                fail("", "device", "more than %d devices", MAX_DEVICES);
            } else {
                snprintf(names[found++], 256, "%s", e[i]->d_name);
            }
        }
        free(e[i]);
    }
    free(e);
    if (!found) {
        fail("", "device", "no device %04x:%04x nor class 0x12 with a CXL "
             "Device DVSEC in %s", SIM_VENDOR, SIM_DEVICE, PCI_DEVICES);
    }
    return found;
}

static void report_device(void)
{
    const char *attrs[] = { "vendor", "device", "class", "resource",
                            "reset_method", "current_link_speed" };
    char path[600], buf[PATH_MAX + 1];
    ssize_t n;
    size_t i;

    for (i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dev_path, attrs[i]);
        if (read_text(path, buf, sizeof(buf)) == 0) {
            char *p;

            if (!strcmp(attrs[i], "resource")) {
                /* First line only: BAR 0. */
                p = strchr(buf, '\n');
                if (p) {
                    *p = 0;
                }
            }
            snprintf(path, sizeof(path), "device.%s", attrs[i]);
            put("", path, "%s", buf);
        }
    }
    if (realpath(dev_path, buf)) {
        /* Its parent is the port above it: the CXL core's dport. */
        put("", "device.sysfs", "%s", buf);
    } else {
        fail("", "device.sysfs", "realpath %s: %s", dev_path, strerror(errno));
    }
    snprintf(path, sizeof(path), "%s/driver", dev_path);
    n = readlink(path, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = 0;
    put("", "device.driver", "%s",
        n <= 0 ? "none" : strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf);
}

/* ------------------------------------------------------------------ */
/* Component registers                                                  */
/* ------------------------------------------------------------------ */

static volatile uint8_t *bar; /* MMIO */
static size_t bar_len;
static uint64_t block_off;
/*
 * The component block rd() and wr() access: the device's or the host
 * bridge's.
 */
static volatile uint8_t *regs;

static uint32_t rd(uint64_t off)
{
    return *(volatile uint32_t *)(regs + off); /* MMIO */
}

static void wr(uint64_t off, uint32_t v)
{
    *(volatile uint32_t *)(regs + off) = v; /* MMIO */
}

/* Maps the BAR that holds the component block; -1 on error. */
static int map_component_block(const uint8_t *cfg)
{
    unsigned regloc = find_dvsec(cfg, DVSEC_REGLOC);
    unsigned len, i, bir = 0;
    char path[600];
    struct stat st;
    int fd;

    if (!regloc) {
        fail("", "regloc", "no Register Locator DVSEC");
        return -1;
    }
    len = le32(cfg + regloc + 4) >> 20;
    block_off = UINT64_MAX;
    for (i = REGLOC_ENTRIES; i + 8 <= len; i += 8) {
        uint32_t lo = le32(cfg + regloc + i);
        uint32_t hi = le32(cfg + regloc + i + 4);

        if (((lo >> 8) & 0xff) == REGLOC_COMPONENT) {
            bir = lo & 7;
            block_off = (uint64_t)hi << 32 | (lo & 0xffff0000u);
            break;
        }
    }
    if (block_off == UINT64_MAX) {
        fail("", "regloc", "no component register block entry");
        return -1;
    }
    put("", "regloc.bar", "%u", bir);
    put("", "regloc.offset", "0x%" PRIx64, block_off);

    /*
     * The BAR must decode: enable the device if firmware did not (what
     * the guest did, reported apart from the pci.* state that the resets
     * must keep).
     */
    if (!(le16(cfg + CFG_COMMAND) & CMD_MEMORY)) {
        snprintf(path, sizeof(path), "%s/enable", dev_path);
        if (write_text(path, "1") < 0) {
            fail("", "bar.enable", "%s: %s", path, strerror(errno));
        } else {
            put("", "bar.enable", "done");
        }
    }

    snprintf(path, sizeof(path), "%s/resource%u", dev_path, bir);
    fd = open(path, O_RDWR | O_SYNC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        fail("", "bar", "open %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    bar_len = st.st_size;
    put("", "bar.size", "0x%zx", bar_len);
    if (block_off + 0x10000 > bar_len) {
        fail("", "bar", "component block 0x%" PRIx64 "+64K beyond BAR of "
             "0x%zx bytes", block_off, bar_len);
        close(fd);
        return -1;
    }
    bar = mmap(NULL, bar_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (bar == MAP_FAILED) {
        bar = NULL;
        fail("", "bar", "mmap %s: %s", path, strerror(errno));
        return -1;
    }
    regs = bar + block_off;
    return 0;
}

/* Offset of the HDM decoder capability in the block, 0 if absent. */
static uint64_t find_hdm(const char *prefix)
{
    uint32_t hdr = rd(CACHEMEM_OFFSET);
    unsigned n = hdr >> 24, i;
    char ids[256] = "";
    uint64_t hdm = 0;

    put(prefix, "component.header", "0x%08x", hdr);
    if ((hdr & 0xffff) != CAP_ID_CXL) {
        fail(prefix, "component", "capability array header 0x%08x has ID %u, "
             "not %u", hdr, hdr & 0xffff, CAP_ID_CXL);
        return 0;
    }
    for (i = 1; i <= n && i < 64; i++) {
        uint32_t e = rd(CACHEMEM_OFFSET + 4 * i);
        size_t l = strlen(ids);

        snprintf(ids + l, sizeof(ids) - l, "%s%u@0x%x", l ? "," : "",
                 e & 0xffff, e >> 20);
        if ((e & 0xffff) == CAP_ID_HDM && !hdm) {
            hdm = CACHEMEM_OFFSET + (e >> 20);
        }
    }
    put(prefix, "component.caps", "%s", ids);
    return hdm;
}

typedef struct Decoder {
    uint32_t cap, global, ctrl, dword5;
    uint64_t base, size;
} Decoder;

/* Decoder @which of the HDM decoder capability at @hdm. */
static void read_decoder(uint64_t hdm, unsigned which, Decoder *d)
{
    uint64_t at = hdm + HDM_D0 + HDM_DECODER_STRIDE * which;

    d->cap = rd(hdm + HDM_CAP);
    d->global = rd(hdm + HDM_GLOBAL);
    d->base = addr_of(rd(at + HDM_BASE_HI), rd(at + HDM_BASE_LO));
    d->size = addr_of(rd(at + HDM_SIZE_HI), rd(at + HDM_SIZE_LO));
    d->ctrl = rd(at + HDM_CTRL);
    d->dword5 = rd(at + HDM_TARGET_LO);
}

/*
 * The capability's header, and decoder 0 (an endpoint's) or every decoder
 * (a host bridge's) as hdm.d<n>.*; @d: decoder 0.
 */
static void report_decoder(uint64_t hdm, const char *prefix, Decoder *d,
                           int host_bridge)
{
    unsigned count, n;
    char key[64];
    Decoder e;

    read_decoder(hdm, 0, d);
    count = d->cap & 0xf ? (d->cap & 0xf) * 2 : 1;
    put(prefix, "hdm.offset", "0x%" PRIx64, hdm);
    put(prefix, "hdm.cap", "0x%08x", d->cap);
    put(prefix, "hdm.decoder_count", "%u", count);
    put(prefix, "hdm.global_ctrl", "0x%08x", d->global);
    for (n = 0; n < (host_bridge ? count : 1); n++) {
        read_decoder(hdm, n, &e);
#define DECODER_KEY(name) (snprintf(key, sizeof(key), "hdm.d%u.%s", n, name), key)
        put(prefix, DECODER_KEY("base"), "0x%" PRIx64, e.base);
        put(prefix, DECODER_KEY("size"), "0x%" PRIx64, e.size);
        put(prefix, DECODER_KEY("ctrl"), "0x%08x", e.ctrl);
        put(prefix, DECODER_KEY("committed"), "%d", !!(e.ctrl & HDM_COMMITTED));
        put(prefix, DECODER_KEY("lock_on_commit"), "%d",
            !!(e.ctrl & HDM_LOCK_ON_COMMIT));
        put(prefix, DECODER_KEY(host_bridge ? "target_list_lo" : "dpa_skip_lo"),
            "0x%08x", e.dword5);
#undef DECODER_KEY
    }
}

/* A locked decoder ignores writes; report whether any stuck. */
static void try_decoder_writes(uint64_t hdm, const Decoder *d)
{
    struct { const char *name; unsigned reg; uint32_t val; } w[] = {
        { "base_lo", HDM_D0 + HDM_BASE_LO,
          rd(hdm + HDM_D0 + HDM_BASE_LO) ^ 0x10000000u },
        { "size_lo", HDM_D0 + HDM_SIZE_LO,
          rd(hdm + HDM_D0 + HDM_SIZE_LO) ^ 0x10000000u },
        { "ctrl", HDM_D0 + HDM_CTRL, d->ctrl & ~HDM_COMMIT },
    };
    char key[64];
    size_t i;

    for (i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        uint32_t old = rd(hdm + w[i].reg), now;

        wr(hdm + w[i].reg, w[i].val);
        now = rd(hdm + w[i].reg);
        snprintf(key, sizeof(key), "hdm_write.%s.stuck", w[i].name);
        put("", key, "%d (wrote 0x%08x, reads 0x%08x)", now != old,
            w[i].val, now);
        if (now != old) {
            wr(hdm + w[i].reg, old);
        }
    }
}

/* ------------------------------------------------------------------ */
/* The guest CXL core                                                   */
/* ------------------------------------------------------------------ */

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strverscmp((*a)->d_name, (*b)->d_name);
}

static void report_cxl_core(const char *prefix)
{
    static const char *attrs[] = {
        "devtype", "start", "size", "target_list", "target_type",
        "interleave_ways", "interleave_granularity", "locked", "mode",
        "cap_type2", "cap_type3", "cap_ram", "cap_pmem", "region",
        "dpa_resource", "dpa_size", "resource", "commit", "target0",
        "decoders_committed",
    };
    struct dirent **names;
    char path[1024], buf[512], list[2048];
    int n, i;

    n = scandir(CXL_DEVICES, &names, NULL, by_name);
    if (n < 0) {
        fail(prefix, "cxl", "%s: %s", CXL_DEVICES, strerror(errno));
        return;
    }
    list[0] = 0;
    for (i = 0; i < n; i++) {
        const char *dev = names[i]->d_name;
        struct dirent **sub;
        size_t a;
        int m, j;

        if (dev[0] == '.') {
            continue;
        }
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                 list[0] ? "," : "", dev);
        for (a = 0; a < sizeof(attrs) / sizeof(attrs[0]); a++) {
            snprintf(path, sizeof(path), CXL_DEVICES "/%s/%s", dev, attrs[a]);
            if (read_text(path, buf, sizeof(buf)) == 0) {
                snprintf(path, sizeof(path), "cxl.%s.%s", dev, attrs[a]);
                put(prefix, path, "%s", buf);
            }
        }
        /* Links: uport, dportN, the driver. */
        snprintf(path, sizeof(path), CXL_DEVICES "/%s", dev);
        m = scandir(path, &sub, NULL, by_name);
        for (j = 0; j < m; j++) {
            const char *l = sub[j]->d_name;
            ssize_t k;

            if (!strcmp(l, "uport") || !strncmp(l, "dport", 5) ||
                !strcmp(l, "driver")) {
                snprintf(path, sizeof(path), CXL_DEVICES "/%s/%s", dev, l);
                k = readlink(path, buf, sizeof(buf) - 1);
                if (k > 0) {
                    buf[k] = 0;
                    snprintf(path, sizeof(path), "cxl.%s.%s", dev, l);
                    put(prefix, path, "%s",
                        strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf);
                }
            }
            free(sub[j]);
        }
        if (m >= 0) {
            free(sub);
        }
        free(names[i]);
    }
    free(names);
    put(prefix, "cxl.devices", "%s", list);
    fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* Device memory through /dev/mem                                       */
/* ------------------------------------------------------------------ */

/*
 * The guest's pattern: word i of the page at device offset @off is
 * pattern_word(seed, off + 8 * i).  The host computes the same.
 */
static uint64_t pattern_word(uint64_t seed, uint64_t at)
{
    uint64_t x = (at + seed) * 0x9e3779b97f4a7c15ull;

    return x ^ (x >> 29) ^ 0x5a5a0000c3c30000ull;
}

/* FNV-1a, 64-bit, over @len bytes. */
static uint64_t fnv1a(const volatile uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/*
 * Device memory is reached through the CXL Type-2 driver's mapping when
 * that driver is bound (its cxl_mem file, offsets from the start of the
 * region the CXL core gave it), else through /dev/mem at @base.
 */
static char driver_mem[600];

/* Reads (or writes) the page at device offset @off; -1 after a fail(). */
static int mem_io(uint64_t base, uint64_t off, uint8_t *buf, int write,
                  const char *prefix, const char *key)
{
    const char *what = driver_mem[0] ? driver_mem : "/dev/mem";
    uint64_t at = driver_mem[0] ? off : base + off;
    int fd = open(what, O_RDWR | O_SYNC);
    volatile uint8_t *p; /* device memory: no access elided or merged */
    ssize_t n;
    unsigned i;

    if (fd < 0) {
        fail(prefix, key, "open %s: %s", what, strerror(errno));
        return -1;
    }
    if (driver_mem[0]) {
        n = write ? pwrite(fd, buf, PAGE, at) : pread(fd, buf, PAGE, at);
        close(fd);
        if (n != PAGE) {
            fail(prefix, key, "%s %s at 0x%" PRIx64 ": %s", write ? "pwrite"
                 : "pread", what, at, n < 0 ? strerror(errno) : "short");
            return -1;
        }
        return 0;
    }
    p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, at);
    close(fd);
    if (p == MAP_FAILED) {
        fail(prefix, key, "mmap /dev/mem at 0x%" PRIx64 ": %s", at,
             strerror(errno));
        return -1;
    }
    for (i = 0; i < PAGE; i += 8) {
        if (write) {
            *(volatile uint64_t *)(p + i) = *(uint64_t *)(buf + i); /* MMIO */
        } else {
            *(uint64_t *)(buf + i) = *(volatile uint64_t *)(p + i); /* MMIO */
        }
    }
    munmap((void *)p, PAGE);
    return 0;
}

/* Writes the pattern into one page (if @write) and reports its checksum. */
static void mem_page(uint64_t base, uint64_t off, uint64_t seed, int write,
                     const char *prefix, const char *name)
{
    static uint64_t w[PAGE / 8];
    char key[64];
    unsigned i, bad = 0;

    snprintf(key, sizeof(key), "%s.offset", name);
    put(prefix, key, "0x%" PRIx64, off);
    snprintf(key, sizeof(key), "%s.checksum", name);
    if (write) {
        for (i = 0; i < PAGE / 8; i++) {
            w[i] = pattern_word(seed, off + 8 * i);
        }
        if (mem_io(base, off, (uint8_t *)w, 1, prefix, key) < 0) {
            return;
        }
    }
    if (mem_io(base, off, (uint8_t *)w, 0, prefix, key) < 0) {
        return;
    }
    for (i = 0; i < PAGE / 8; i++) {
        bad += w[i] != pattern_word(seed, off + 8 * i);
    }
    put(prefix, key, "0x%016" PRIx64, fnv1a((const uint8_t *)w, PAGE));
    snprintf(key, sizeof(key), "%s.mismatched_words", name);
    put(prefix, key, "%u", bad);
}

static void read_host_pattern(uint64_t base, uint64_t off, unsigned len,
                              const char *prefix)
{
    uint64_t page = off & ~(uint64_t)(PAGE - 1);
    static uint8_t p[PAGE];
    char hex[2 * 256 + 1];
    unsigned i;

    put(prefix, "host_pattern.offset", "0x%" PRIx64, off);
    if (len > 256 || (off - page) + len > PAGE) {
        fail(prefix, "host_pattern.hex", "length %u at 0x%" PRIx64
             " crosses a page or exceeds 256", len, off);
        return;
    }
    if (mem_io(base, page, p, 0, prefix, "host_pattern.hex") < 0) {
        return;
    }
    for (i = 0; i < len; i++) {
        sprintf(hex + 2 * i, "%02x", p[off - page + i]);
    }
    put(prefix, "host_pattern.hex", "%s", hex);
}

/*
 * The Type-2 driver (tests/functional/cxl-type2-driver), if bound: what
 * the CXL core gave it.  Its mapping then carries the memory checks.
 */
static void report_driver(const char *prefix)
{
    char path[700], buf[128];

    snprintf(path, sizeof(path), "%s/cxl_memdev", dev_path);
    if (read_text(path, buf, sizeof(buf)) < 0) {
        return;
    }
    put(prefix, "type2.memdev", "%s", buf);
    snprintf(path, sizeof(path), "%s/cxl_hpa", dev_path);
    if (read_text(path, buf, sizeof(buf)) == 0) {
        char *size = strchr(buf, ' ');

        if (size) {
            *size++ = 0;
            put(prefix, "type2.hpa_start", "%s", buf);
            put(prefix, "type2.hpa_size", "%s", size);
        }
    } else {
        fail(prefix, "type2.hpa_start", "%s: %s", path, strerror(errno));
    }
    snprintf(driver_mem, sizeof(driver_mem), "%s/cxl_mem", dev_path);
    put(prefix, "mem.via", "driver");
}

/* ------------------------------------------------------------------ */
/* The host bridge, from ACPI CEDT (kernel 6.1 does not show its HDM)    */
/* ------------------------------------------------------------------ */

#define CEDT_PATH           "/sys/firmware/acpi/tables/CEDT"
#define CEDT_HEADER         36
#define CEDT_CHBS           0
#define CEDT_CFMWS          1
#define CHBCR_SIZE          0x10000

static uint64_t le64(const uint8_t *p)
{
    return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static volatile uint8_t *hb_regs; /* MMIO */
static uint64_t hb_hdm;

/*
 * Reports the CEDT's host bridges (CHBS) and fixed memory windows (CFMWS),
 * then maps the component registers of the host bridge that is the
 * target of the window holding @base.
 */
static void report_host_bridge(uint64_t base)
{
    static uint8_t t[8192];
    uint32_t target = UINT32_MAX, len;
    uint64_t chbcr = 0;
    int fd = open(CEDT_PATH, O_RDONLY), nchbs = 0, nwin = 0;
    ssize_t n;
    unsigned off;
    char key[64];

    if (fd < 0) {
        fail("", "cedt", "open %s: %s", CEDT_PATH, strerror(errno));
        return;
    }
    n = read(fd, t, sizeof(t));
    close(fd);
    if (n < CEDT_HEADER || memcmp(t, "CEDT", 4)) {
        fail("", "cedt", "%s: not a CEDT table (%zd bytes)", CEDT_PATH, n);
        return;
    }
    len = le32(t + 4) < (uint32_t)n ? le32(t + 4) : (uint32_t)n;
    for (off = CEDT_HEADER; off + 4 <= len;) {
        unsigned type = t[off], rlen = le16(t + off + 2);

        if (rlen < 4 || off + rlen > len) {
            fail("", "cedt", "bad record length %u at 0x%x", rlen, off);
            return;
        }
        if (type == CEDT_CHBS && rlen >= 32) {
            uint32_t uid = le32(t + off + 4);

            snprintf(key, sizeof(key), "cedt.chbs.%d", nchbs++);
            put("", key, "uid %u version %u base 0x%" PRIx64 " length 0x%"
                PRIx64, uid, le32(t + off + 8), le64(t + off + 16),
                le64(t + off + 24));
        } else if (type == CEDT_CFMWS && rlen >= 36) {
            uint64_t wbase = le64(t + off + 8), wsize = le64(t + off + 16);
            unsigned eniw = t[off + 24], ways, i;
            char list[128] = "";

            ways = eniw < 8 ? 1u << eniw : 3u << (eniw - 8);
            for (i = 0; i < ways && 36 + 4 * i + 4 <= rlen; i++) {
                snprintf(list + strlen(list), sizeof(list) - strlen(list),
                         "%s%u", i ? "," : "", le32(t + off + 36 + 4 * i));
            }
            snprintf(key, sizeof(key), "cedt.cfmws.%d", nwin++);
            put("", key, "base 0x%" PRIx64 " size 0x%" PRIx64 " ways %u "
                "restrictions 0x%04x targets %s", wbase, wsize, ways,
                le16(t + off + 32), list);
            if (base >= wbase && base - wbase < wsize && ways == 1) {
                target = le32(t + off + 36);
            }
        }
        off += rlen;
    }
    if (target == UINT32_MAX) {
        fail("", "hb", "no single-target CFMWS holds 0x%" PRIx64, base);
        return;
    }
    /* Second pass: the target's CHBS. */
    for (off = CEDT_HEADER; off + 4 <= len; off += le16(t + off + 2)) {
        if (t[off] == CEDT_CHBS && le32(t + off + 4) == target) {
            chbcr = le64(t + off + 16);
        }
    }
    put("", "hb.uid", "%u", target);
    if (!chbcr) {
        fail("", "hb.chbcr", "no CHBS for host bridge %u", target);
        return;
    }
    put("", "hb.chbcr", "0x%" PRIx64, chbcr);
    fd = open("/dev/mem", O_RDWR | O_SYNC);
    if (fd < 0) {
        fail("", "hb.component", "open /dev/mem: %s", strerror(errno));
        return;
    }
    hb_regs = mmap(NULL, CHBCR_SIZE, PROT_READ, MAP_SHARED, fd, chbcr);
    close(fd);
    if (hb_regs == MAP_FAILED) {
        hb_regs = NULL;
        fail("", "hb.component", "mmap /dev/mem at 0x%" PRIx64 ": %s", chbcr,
             strerror(errno));
    }
}

/* The host bridge's HDM decoders, if it has any (else: passthrough). */
static void report_host_bridge_decoder(const char *prefix)
{
    volatile uint8_t *saved = regs; /* MMIO */
    char p[32];
    Decoder d;

    if (!hb_regs) {
        return;
    }
    snprintf(p, sizeof(p), "%shb.", prefix);
    regs = hb_regs;
    if (!hb_hdm) {
        hb_hdm = find_hdm(p);
    }
    if (hb_hdm) {
        report_decoder(hb_hdm, p, &d, 1);
    } else {
        put(p, "hdm", "none (the host bridge decodes in passthrough)");
    }
    regs = saved;
}

/* The PCIe Port Number of the device's upstream port (the root port). */
static void report_root_port(void)
{
    char path[600];
    uint8_t cfg[256];
    unsigned off, steps;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "%s/../config", dev_path);
    fd = open(path, O_RDONLY);
    if (fd < 0) {
        fail("", "root_port", "open %s: %s", path, strerror(errno));
        return;
    }
    n = pread(fd, cfg, sizeof(cfg), 0);
    close(fd);
    if (n != sizeof(cfg)) {
        fail("", "root_port", "short read of %s", path);
        return;
    }
    for (off = cfg[0x34] & 0xfc, steps = 0; off && off < 0xfc && steps < 48;
         off = cfg[off + 1] & 0xfc, steps++) {
        if (cfg[off] == 0x10 && off + 0x10 <= sizeof(cfg)) {
            /* Link Capabilities, bits 31:24. */
            put("", "root_port.port_number", "%u", cfg[off + 0x0c + 3]);
            return;
        }
    }
    fail("", "root_port", "no PCI Express capability");
}

/* ------------------------------------------------------------------ */
/* Kernel log and /proc/iomem lines about CXL                            */
/* ------------------------------------------------------------------ */

static void report_iomem(void)
{
    FILE *f = fopen("/proc/iomem", "r");
    char line[256];
    int n = 0;

    if (!f) {
        fail("", "iomem", "%s", strerror(errno));
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        if (strcasestr(line, "cxl")) {
            line[strcspn(line, "\n")] = 0;
            printf("iomem.%d=%s\n", n++, line);
        }
    }
    fclose(f);
}

static void report_dmesg(void)
{
    int len = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
    char *buf, *line, *save;
    int n = 0;

    buf = len > 0 ? malloc(len + 1) : NULL;
    if (!buf) {
        fail("", "dmesg", "klogctl: %s", strerror(errno));
        return;
    }
    len = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, len);
    if (len < 0) {
        fail("", "dmesg", "klogctl: %s", strerror(errno));
        free(buf);
        return;
    }
    buf[len] = 0;
    for (line = strtok_r(buf, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (strcasestr(line, "cxl") || (dev_name[0] && strstr(line, dev_name))) {
            printf("dmesg.%d=%s\n", n++, line);
        }
    }
    free(buf);
}

/* ------------------------------------------------------------------ */
/* Options                                                              */
/* ------------------------------------------------------------------ */

static uint64_t host_off = 0x2000;
static unsigned host_len;
static unsigned pause_s = 2;

static void parse_option(const char *arg)
{
    if (!strncmp(arg, "vfio_cxl_host=", 14)) {
        long long off = 0;
        int len = 64;

        sscanf(arg + 14, "%lli,%i", &off, &len);
        host_off = off;
        host_len = len;
    } else if (!strncmp(arg, "vfio_cxl_pause=", 15)) {
        sscanf(arg + 15, "%u", &pause_s);
    }
}

static void parse_options(int argc, char **argv)
{
    char cmdline[4096], *tok, *save;
    int i;

    if (read_text("/proc/cmdline", cmdline, sizeof(cmdline)) == 0) {
        put("", "cmdline", "%s", cmdline);
        for (tok = strtok_r(cmdline, " ", &save); tok;
             tok = strtok_r(NULL, " ", &save)) {
            parse_option(tok);
        }
    }
    for (i = 1; i < argc; i++) {
        parse_option(argv[i]);
    }
}

/* ------------------------------------------------------------------ */
/* Main                                                                 */
/* ------------------------------------------------------------------ */

typedef struct Page {
    char name[16];
    uint64_t off;
} Page;

/*
 * After a reset (@prefix "flr." or "cxlr."): the DVSEC, decoder 0, the CXL
 * core's view, the host bridge decoder and every page again, and a fresh
 * page written with @seed.
 */
static void after_reset(const char *prefix, uint64_t seed, uint64_t hdm,
                        uint64_t base, uint64_t size, const Page *pages,
                        int npages)
{
    static uint8_t cfg[CFG_SIZE];
    char name[32];
    Decoder dec;
    Dvsec dv;
    int i;

    if (read_config(cfg, prefix) == 0) {
        report_dvsec(cfg, prefix, &dv);
        put(prefix, "pci.command", "0x%04x", le16(cfg + CFG_COMMAND));
    }
    if (hdm) {
        report_decoder(hdm, prefix, &dec, 0);
    }
    report_cxl_core(prefix);
    report_driver(prefix);
    report_host_bridge_decoder(prefix);
    for (i = 0; i < npages; i++) {
        mem_page(base, pages[i].off, 1, 0, prefix, pages[i].name);
    }
    if (npages && host_len) {
        read_host_pattern(base, host_off, host_len, prefix);
    }
    if (npages) {
        /* A fresh write after the reset must reach device memory too. */
        snprintf(name, sizeof(name), "mem.new");
        mem_page(base, (seed * size / 16) & ~(uint64_t)(PAGE - 1), seed, 1,
                 prefix, name);
    }
}

#define DVSEC_CAP           0x0a
#define DVSEC_CAP_RESET     (1u << 7)
#define DVSEC_CONTROL2      0x10
#define DVSEC_INIT_RESET    (1u << 2)
#define DVSEC_STATUS2       0x12
#define DVSEC_RESET_DONE    (1u << 1)
#define DVSEC_RESET_ERROR   (1u << 2)

/*
 * CXL Reset: Initiate CXL Reset in DVSEC Control2, then wait (at most
 * 10 s) for CXL Reset Complete or Error in Status2.
 */
static void cxl_reset(unsigned dvsec)
{
    char path[600];
    uint16_t v = 0;
    uint8_t b[2];
    int fd, i;

    snprintf(path, sizeof(path), "%s/config", dev_path);
    fd = open(path, O_RDWR);
    if (fd < 0) {
        fail("", "cxl_reset.result", "open %s: %s", path, strerror(errno));
        return;
    }
    if (pread(fd, b, 2, dvsec + DVSEC_CAP) != 2 ||
        !(le16(b) & DVSEC_CAP_RESET)) {
        fail("", "cxl_reset.result", "the DVSEC does not offer CXL Reset");
        close(fd);
        return;
    }
    b[0] = DVSEC_INIT_RESET;
    b[1] = 0;
    if (pwrite(fd, b, 2, dvsec + DVSEC_CONTROL2) != 2) {
        fail("", "cxl_reset.result", "write Control2: %s", strerror(errno));
        close(fd);
        return;
    }
    for (i = 0; i < 1000; i++) {
        if (pread(fd, b, 2, dvsec + DVSEC_STATUS2) == 2) {
            v = le16(b);
            if (v & (DVSEC_RESET_DONE | DVSEC_RESET_ERROR)) {
                break;
            }
        }
        usleep(10000);
    }
    close(fd);
    put("", "cxl_reset.status2", "0x%04x", v);
    if (v & DVSEC_RESET_ERROR) {
        fail("", "cxl_reset.result", "CXL Reset Error (Status2 0x%04x)", v);
    } else if (!(v & DVSEC_RESET_DONE)) {
        fail("", "cxl_reset.result", "no CXL Reset Complete in 10 s");
    } else {
        put("", "cxl_reset.result", "ok");
    }
}

/* What the reports of one device found, for its resets. */
typedef struct Accelerator {
    uint64_t hdm, base, size;
    int have_dvsec;
    Dvsec dv;
    Page pages[MAX_PAGES];
    int npages;
} Accelerator;

/* Makes PCI device @name the one reported (dev_path and its state). */
static void select_device(const char *name)
{
    snprintf(dev_path, sizeof(dev_path), PCI_DEVICES "/%s", name);
    snprintf(dev_name, sizeof(dev_name), "%s", name);
    driver_mem[0] = 0;
    hb_hdm = 0;
    put("", "device", "%s", name);
}

/* Lets go of the mappings of the device reported last. */
static void release_device(void)
{
    if (bar) {
        munmap((void *)bar, bar_len);
        bar = NULL;
    }
    if (hb_regs) {
        munmap((void *)hb_regs, CHBCR_SIZE);
        hb_regs = NULL;
    }
    regs = NULL;
}

/*
 * The selected device: its PCI function, DVSEC, decoder 0, root port, host
 * bridge, and its memory (the pages written with @seed, the host's
 * pattern read back).
 */
static void report_accelerator(uint64_t seed, Accelerator *a)
{
    static uint8_t cfg[CFG_SIZE];
    Decoder dec;
    int i, have_hdm = 0;

    memset(a, 0, sizeof(*a));
    report_device();
    report_driver("");

    /* Config space and the DVSEC. */
    if (read_config(cfg, "") == 0 && report_dvsec(cfg, "", &a->dv) == 0) {
        a->have_dvsec = 1;
        try_dvsec_writes(&a->dv);
    }

    /* Component block and HDM decoder 0. */
    if (a->have_dvsec && map_component_block(cfg) == 0) {
        a->hdm = find_hdm("");
        if (!a->hdm) {
            fail("", "hdm", "no HDM decoder capability (ID %u)", CAP_ID_HDM);
        }
    }
    if (a->hdm) {
        have_hdm = 1;
        report_decoder(a->hdm, "", &dec, 0);
        try_decoder_writes(a->hdm, &dec);
    }
    /*
     * The Command register once the BAR decodes, which the resets must
     * keep: q35's SeaBIOS enables the device, virt's UEFI firmware leaves
     * that to the OS, so map_component_block() may have enabled it.
     */
    if (a->have_dvsec && read_config(cfg, "") == 0) {
        put("", "pci.command", "0x%04x", le16(cfg + CFG_COMMAND));
    }
    report_root_port();

    /* Device memory: at decoder 0's base, else DVSEC range 1's. */
    if (have_hdm && (dec.ctrl & HDM_COMMITTED)) {
        a->base = dec.base;
        a->size = dec.size;
    } else if (a->have_dvsec) {
        a->base = a->dv.base;
        a->size = a->dv.size;
    }
    put("", "mem.base", "0x%" PRIx64, a->base);
    put("", "mem.size", "0x%" PRIx64, a->size);
    report_host_bridge(a->base);
    report_host_bridge_decoder("");
    if (!a->base || a->size < 16 * PAGE) {
        fail("", "mem", "no usable window (base 0x%" PRIx64 " size 0x%"
             PRIx64 ")", a->base, a->size);
        return;
    }
    {
        uint64_t offs[] = { 0, a->size / 4, a->size / 2, 3 * a->size / 4,
                            a->size - PAGE };

        put("", "mem.seed", "%" PRIu64, seed);
        for (i = 0; i < 5; i++) {
            Page *p = &a->pages[a->npages++];

            snprintf(p->name, sizeof(p->name), "mem.%d", i);
            p->off = offs[i] & ~(uint64_t)(PAGE - 1);
            mem_page(a->base, p->off, seed, 1, "", p->name);
        }
    }
    if (host_len) {
        read_host_pattern(a->base, host_off, host_len, "");
    }
}

/*
 * An FLR and a CXL Reset of the selected device, each followed by
 * everything again.
 */
static void reset_accelerator(const Accelerator *a)
{
    char path[600];

    /* FLR through sysfs. */
    snprintf(path, sizeof(path), "%s/reset", dev_path);
    put("", "reset.pending", "%us", pause_s);
    sleep(pause_s);
    if (write_text(path, "1") < 0) {
        fail("", "reset.result", "write 1 to %s: %s", path, strerror(errno));
    } else {
        put("", "reset.result", "ok");
    }
    after_reset("flr.", 2, a->hdm, a->base, a->size, a->pages, a->npages);

    /* A CXL Reset through the DVSEC. */
    if (a->have_dvsec) {
        put("", "cxl_reset.pending", "%us", pause_s);
        sleep(pause_s);
        cxl_reset(a->dv.off);
        after_reset("cxlr.", 3, a->hdm, a->base, a->size, a->pages,
                    a->npages);
    }
}

/* The pattern seed of device @n of several (one device writes seed 1). */
#define SEVERAL_SEED(n)     (16 + (n))

int main(int argc, char **argv)
{
    static char names[MAX_DEVICES][256];
    static Accelerator acc;
    int n, i;

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("VFIO-CXL-REPORT-BEGIN\n");
    parse_options(argc, argv);

    n = find_devices(names);
    if (n == 1) {
        select_device(names[0]);
        report_accelerator(1, &acc);
        report_iomem();
        report_cxl_core("");
        reset_accelerator(&acc);
    } else {
        if (n) {
            put("", "devices", "%d", n);
        }
        for (i = 0; i < n; i++) {
            snprintf(dev_prefix, sizeof(dev_prefix), "dev%d.", i);
            select_device(names[i]);
            report_accelerator(SEVERAL_SEED(i), &acc);
            release_device();
        }
        dev_prefix[0] = 0;
        dev_name[0] = 0;
        report_iomem();
        report_cxl_core("");
    }

    report_dmesg();
    printf("errors=%d\n", errors);
    printf("VFIO-CXL-REPORT-END\n");
    fflush(stdout);
    /* All of it on the wire before /init powers the machine off. */
    tcdrain(STDOUT_FILENO);
    return errors ? 1 : 0;
}
