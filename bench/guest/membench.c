/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The guest side of `make bench` (bench/run.py): streaming loops over
 * guest RAM, the vfio-cxl window and a cxl-type3 window, and register read
 * round trips, timed with the TSC.  The same code runs in the Linux guest
 * (TCG) and in the bare-metal guest (KVM, ring 3); only platform.h differs.
 *
 * Command line (hex or decimal):
 *   vb_ram=ADDR vb_ram_size=N   guest RAM the guest's OS leaves untouched
 *   vb_cxl=ADDR vb_cxl_size=N   the vfio-cxl window (device memory)
 *   vb_t3=ADDR  vb_t3_size=N    the cxl-type3 window (0: none)
 *   vb_t3_window=N              the size its decoder 0 covers
 *   vb_reps=N                   steady-state passes per region and access
 *   vb_regs=N                   register reads per batch (P2)
 *   vb_rot=N                    rotates the order of the regions
 *   vb_ecam=ADDR                PCIe ECAM base (q35: 0xb0000000)
 *
 * Output: one line per measurement,
 *   VB <what> <bytes or reads> <TSC cycles>
 * then "VB done" (or "VB error <why>").  First touch is one pass over
 * fresh memory: loads over one half of a region, stores over the other;
 * steady state passes run after every byte was written once.  Nothing is
 * computed here: the host turns cycles into ratios.
 */
#include "platform.h"

#define MiB (1ull << 20)

static uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
    return ((uint64_t)hi << 32) | lo;
}

/* ---- output, without libc (the bare-metal guest has none) ---- */

static void put_u64(uint64_t v)
{
    char buf[24];
    int i = sizeof(buf) - 1;
    buf[i] = 0;
    do {
        buf[--i] = '0' + v % 10;
        v /= 10;
    } while (v);
    put_str(buf + i);
}

static void report(const char *what, uint64_t amount, uint64_t cycles)
{
    put_str("VB ");
    put_str(what);
    put_str(" ");
    put_u64(amount);
    put_str(" ");
    put_u64(cycles);
    put_str("\n");
}

static int fail(const char *why)
{
    put_str("VB error ");
    put_str(why);
    put_str("\n");
    return 1;
}

/* ---- the command line ---- */

static uint64_t parse_num(const char *s)
{
    uint64_t v = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        for (s += 2;; s++) {
            char c = *s;
            if (c >= '0' && c <= '9') {
                v = v * 16 + (c - '0');
            } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
                v = v * 16 + ((c | 0x20) - 'a' + 10);
            } else {
                return v;
            }
        }
    }
    for (; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (*s - '0');
    }
    return v;
}

static uint64_t arg(const char *key, uint64_t dflt)
{
    const char *p = command_line();
    while (*p) {
        const char *k = key;
        const char *w = p;
        while (*k && *w == *k) {
            k++;
            w++;
        }
        if (!*k && *w == '=' && (p == command_line() || p[-1] == ' ')) {
            return parse_num(w + 1);
        }
        p++;
    }
    return dflt;
}

/* ---- streaming passes: 8-byte loads and stores ---- */

static uint64_t sink;

static uint64_t load_pass(volatile uint64_t *p, uint64_t bytes)
{
    uint64_t n = bytes / 8, sum = 0, t0 = rdtsc();
    for (uint64_t i = 0; i < n; i += 4) {
        sum += p[i] + p[i + 1] + p[i + 2] + p[i + 3];
    }
    uint64_t t = rdtsc() - t0;
    sink += sum;
    return t;
}

static uint64_t store_pass(volatile uint64_t *p, uint64_t bytes, uint64_t seed)
{
    uint64_t n = bytes / 8, t0 = rdtsc();
    for (uint64_t i = 0; i < n; i += 4) {
        p[i] = seed + i;
        p[i + 1] = seed;
        p[i + 2] = i;
        p[i + 3] = seed ^ i;
    }
    return rdtsc() - t0;
}

struct region {
    const char *name;
    const char *load_first, *store_first, *load, *store;
    volatile uint64_t *p;
    uint64_t size;
};

#define REGION(n) { n, n ".load.first", n ".store.first", n ".load", n ".store", 0, 0 }

/* ---- PCI: find a function by class, its register block, its decoder ---- */

#define CXL_VENDOR 0x1e98
#define DVSEC_REGLOC 8
#define REGLOC_COMPONENT 1
#define CAP_HDM 5

struct pcifn {
    volatile uint32_t *cfg;
    volatile uint32_t *hdm;     /* HDM decoder capability, in the BAR */
};

static uint32_t cfg_rd(const struct pcifn *f, unsigned off)
{
    return f->cfg[off / 4];
}

static uint64_t bar_addr(const struct pcifn *f, unsigned bir)
{
    uint32_t lo = cfg_rd(f, 0x10 + 4 * bir);
    uint64_t a = lo & ~0xfull;
    if ((lo & 6) == 4) {
        a |= (uint64_t)cfg_rd(f, 0x14 + 4 * bir) << 32;
    }
    return a;
}

/* The HDM decoder capability of @f's component register block, found
 * through the Register Locator DVSEC and the CXL.cachemem capability
 * array; NULL if absent.  Sets Memory Space Enable (an OS without a
 * driver for the function leaves it clear). */
static const char *hdm_why = "no Register Locator DVSEC";

static volatile uint32_t *find_hdm(struct pcifn *f)
{
    for (unsigned off = 0x100; off && off < 0x1000;) {
        uint32_t hdr = cfg_rd(f, off);
        if ((hdr & 0xffff) == 0x23 && (cfg_rd(f, off + 4) & 0xffff) == CXL_VENDOR &&
            (cfg_rd(f, off + 8) & 0xffff) == DVSEC_REGLOC) {
            unsigned len = (cfg_rd(f, off + 4) >> 20) & 0xfff;
            for (unsigned e = off + 0xc; e + 8 <= off + len; e += 8) {
                uint32_t lo = cfg_rd(f, e), hi = cfg_rd(f, e + 4);
                if (((lo >> 8) & 0xff) != REGLOC_COMPONENT) {
                    continue;
                }
                uint64_t block = bar_addr(f, lo & 7) + (lo & 0xffff0000u) +
                                 ((uint64_t)hi << 32);
                if (block < 0x100000) {
                    hdm_why = "the register block's BAR is not assigned";
                    return 0;
                }
                f->cfg[1] |= 2;
                volatile uint32_t *cm = phys_map(block + 0x1000, 0x1000);
                if (!cm) {
                    hdm_why = "cannot map the register block";
                    return 0;
                }
                unsigned caps = cm[0] >> 24;
                for (unsigned i = 1; i <= caps; i++) {
                    if ((cm[i] & 0xffff) == CAP_HDM) {
                        return cm + (cm[i] >> 20) / 4;
                    }
                }
                hdm_why = "no HDM decoder capability";
                return 0;
            }
        }
        off = hdr >> 20;
    }
    return 0;
}

/* The first function on buses 0..255 whose class code masked by @mask is
 * @class. */
static int find_fn(uint64_t ecam, uint32_t class, uint32_t mask, struct pcifn *f)
{
    for (unsigned bus = 0; bus < 256; bus++) {
        volatile uint32_t *b = phys_map(ecam + ((uint64_t)bus << 20), 1 << 20);
        if (!b) {
            return 0;
        }
        for (unsigned df = 0; df < 256; df++) {
            volatile uint32_t *c = b + df * 1024;
            if ((c[0] & 0xffff) == 0xffff) {
                continue;
            }
            if (((c[2] >> 8) & mask) == class) {
                f->cfg = c;
                return 1;
            }
        }
    }
    return 0;
}

/* Decoder 0 of a cxl-type3 function: commit [base, base + size). */
static int commit_type3(volatile uint32_t *hdm, uint64_t base, uint64_t size)
{
    hdm[1] |= 2;                              /* HDM Decoder Enable */
    hdm[0x10 / 4] = (uint32_t)base;
    hdm[0x14 / 4] = (uint32_t)(base >> 32);
    hdm[0x18 / 4] = (uint32_t)size;
    hdm[0x1c / 4] = (uint32_t)(size >> 32);
    hdm[0x20 / 4] = 1u << 9;                  /* Commit, IW 1, IG 256 */
    for (int i = 0; i < 1000; i++) {
        if (hdm[0x20 / 4] & (1u << 10)) {
            return 1;
        }
    }
    return 0;
}

/* P2: @n reads of decoder 0 Control (trapped, emulated by the device) and
 * @n reads of the BAR 0 register in config space (emulated by vfio-pci),
 * in alternating batches. */
static void register_reads(const struct pcifn *f, uint64_t n, uint64_t reps)
{
    volatile uint32_t *ctrl = f->hdm + 0x20 / 4;
    volatile uint32_t *bar0 = f->cfg + 0x10 / 4;
    uint32_t s = 0;
    for (uint64_t r = 0; r < reps; r++) {
        uint64_t t0 = rdtsc();
        for (uint64_t i = 0; i < n; i++) {
            s += *ctrl;
        }
        uint64_t t1 = rdtsc();
        for (uint64_t i = 0; i < n; i++) {
            s += *bar0;
        }
        uint64_t t2 = rdtsc();
        report("p2.hdm", n, t1 - t0);
        report("p2.cfg", n, t2 - t1);
    }
    sink += s;
}

int membench_main(void)
{
    struct region rg[3] = { REGION("ram"), REGION("cxl"), REGION("t3") };
    const char *keys[3][2] = {
        { "vb_ram", "vb_ram_size" }, { "vb_cxl", "vb_cxl_size" }, { "vb_t3", "vb_t3_size" },
    };
    uint64_t reps = arg("vb_reps", 5), rot = arg("vb_rot", 0);
    uint64_t ecam = arg("vb_ecam", 0xb0000000);
    int n = 0;
    struct region *order[3];

    put_str("VB start\n");
    for (int i = 0; i < 3; i++) {
        uint64_t a = arg(keys[i][0], 0), size = arg(keys[i][1], 0) & ~0x3full;
        if (!a || !size) {
            continue;
        }
        rg[i].p = phys_map(a, size);
        rg[i].size = size;
        if (!rg[i].p) {
            return fail("cannot map a region");
        }
    }
    if (rg[2].p) {
        struct pcifn t3;
        if (!find_fn(ecam, 0x050210, 0xffffff, &t3)) {
            return fail("no cxl-type3 function");
        }
        if (!(t3.hdm = find_hdm(&t3))) {
            return fail(hdm_why);
        }
        if (!commit_type3(t3.hdm, arg("vb_t3", 0), arg("vb_t3_window", 256 * MiB))) {
            return fail("cxl-type3 decoder 0 did not commit");
        }
    }
    for (int i = 0; i < 3; i++) {
        struct region *r = &rg[(i + rot) % 3];
        if (r->p) {
            order[n++] = r;
        }
    }

    /* First touch: nothing has accessed these pages since they were made. */
    for (int i = 0; i < n; i++) {
        uint64_t half = order[i]->size / 2;
        report(order[i]->load_first, half, load_pass(order[i]->p, half));
        report(order[i]->store_first, half,
               store_pass(order[i]->p + half / 8, half, 1));
    }
    /* Every page written once, then steady state, interleaved. */
    for (int i = 0; i < n; i++) {
        store_pass(order[i]->p, order[i]->size, 2);
        load_pass(order[i]->p, order[i]->size);
    }
    for (uint64_t r = 0; r < reps; r++) {
        for (int i = 0; i < n; i++) {
            struct region *g = order[(i + r) % n];
            report(g->load, g->size, load_pass(g->p, g->size));
            report(g->store, g->size, store_pass(g->p, g->size, r));
        }
    }

    uint64_t regs = arg("vb_regs", 0);
    if (regs) {
        struct pcifn acc;
        if (!find_fn(ecam, 0x120000, 0xff0000, &acc)) {
            return fail("no accelerator function");
        }
        if (!(acc.hdm = find_hdm(&acc))) {
            return fail(hdm_why);
        }
        register_reads(&acc, regs, reps);
    }
    put_str("VB done\n");
    return 0;
}
