/*
 * QTest for vfio-user-cxl, the CXL Type-2 passthrough device, against the
 * vfio-user-cxl-sim simulated accelerator.
 *
 * Set VFIO_CXL_SIM to the simulator binary; without it every test is
 * skipped, or fails if VFIO_CXL_REQUIRE_SIM=1.
 *
 * No firmware runs under qtest, so the test plays the guest's part: it
 * finds the machine's ECAM window (placing it first on q35), numbers the
 * buses below the CXL root port, places BAR 0 of the device and reads the
 * CXL registers the way a guest driver would.
 *
 * It runs on x86_64 (q35) and aarch64 (virt): see Platform.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include "libqtest.h"
#include "qapi/error.h"
#include "qemu/bswap.h"
#include "qobject/qdict.h"
#include "qobject/qjson.h"
#include "qobject/qlist.h"
#include "qobject/qstring.h"
#ifdef CONFIG_LINUX
#include <sys/prctl.h>
#endif

/*
 * Fails the test with a formatted message.  Unlike g_error() this aborts,
 * so that the abort hooks stop QEMU and the simulator.
 */
#define fail_test(...) do {                                             \
        g_autofree char *fail_msg_ = g_strdup_printf(__VA_ARGS__);      \
        g_assertion_message(G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC, \
                            fail_msg_);                                 \
        abort();                                                        \
    } while (0)

/* Where the test puts q35's ECAM window (MCH PCIEXBAR). */
#define Q35_ECAM_BASE       0xb0000000ULL
#define MCH_PCIEXBAR        0x60

/* Bus of the pxb-cxl root bus (its bus_nr) and of the root port's link. */
#define RP_BUS              12
#define DEV_BUS             13

/*
 * Guest addresses the test assigns, at the start of a range the machine
 * routes to PCI: the root port's memory window, the device's BAR 0 at its
 * start and the root port's own BAR above it.
 */
#define RP_WINDOW_BASE      (platform->pci_mmio_base)
#define RP_WINDOW_LIMIT     (platform->pci_mmio_base + 0xfffff)
#define DEV_BAR0_ADDR       (platform->pci_mmio_base)
#define RP_BAR0_ADDR        (platform->pci_mmio_base + 0x100000)

/* Simulated device identity. */
#define SIM_VENDOR_ID       0x1234u
#define SIM_DEVICE_ID       0xc202u

/* PCI config space. */
#define CFG_COMMAND         0x04
#define CFG_CMD_MEM         0x0002
#define CFG_CMD_MASTER      0x0004
#define CFG_CAP_PTR         0x34
#define CFG_BAR0            0x10
#define CFG_BAR1            0x14
#define CFG_BUS_NUMBERS     0x18
#define CFG_MEM_BASE        0x20
#define CFG_PREF_BASE       0x24
#define CFG_PREF_BASE_HI    0x28
#define CFG_PREF_LIMIT_HI   0x2c
#define CFG_BRIDGE_CONTROL  0x3e
#define BRIDGE_CTL_SEC_BUS_RESET (1u << 6)
#define BAR_MEM_TYPE_64     0x4
#define BAR_PREFETCH        0x8
#define CAP_ID_EXP          0x10
#define EXP_DEVCAP          0x04
#define EXP_DEVCAP_FLR      (1u << 28)
#define EXP_DEVCTL          0x08
#define EXP_DEVCTL_FLR      (1u << 15)
#define EXP_SLTCAP          0x14
#define EXP_SLTCAP_HPC      (1u << 6)
#define EXP_SLTCTL          0x18
#define EXP_SLTCTL_PIC_MASK (3u << 8)
#define EXP_SLTCTL_PIC_ON   (1u << 8)
#define EXP_SLTCTL_PIC_OFF  (3u << 8)
#define EXP_SLTCTL_PCC      (1u << 10)
#define EXT_CAP_START       0x100
#define EXT_CAP_ID_DVSEC    0x23

/* CXL DVSECs. */
#define CXL_VENDOR_ID       0x1e98
#define DVSEC_ID_DEVICE     0
#define DVSEC_ID_REGLOC     8
#define DVSEC_CAPABILITY    0x0a
#define DVSEC_CAP_CXL_RESET (1u << 7)
#define DVSEC_CONTROL       0x0c
#define DVSEC_CTRL_MEM_EN   (1u << 2)
#define DVSEC_CONTROL2      0x10
#define DVSEC_CTRL2_CXL_RESET (1u << 2)
#define DVSEC_STATUS2       0x12
#define DVSEC_ST2_RESET_DONE  (1u << 1)
#define DVSEC_ST2_RESET_ERROR (1u << 2)
#define DVSEC_LOCK          0x14
#define DVSEC_LOCK_CONFIG   (1u << 0)
#define DVSEC_R1_SIZE_HI    0x18
#define DVSEC_R1_SIZE_LO    0x1c
#define DVSEC_R1_INFO_VALID (1u << 0)
#define DVSEC_R1_ACTIVE     (1u << 1)
#define DVSEC_R1_BASE_HI    0x20
#define DVSEC_R1_BASE_LO    0x24
#define REGLOC_ENTRIES      0x0c
#define REGLOC_BLOCK_COMP   1

/* Component register block. */
#define COMP_BLOCK_SIZE     0x10000
#define CAP_ARRAY_OFFSET    0x1000
#define CXL_CAP_ID_CXL      1
#define CXL_CAP_ID_HDM      5
#define HDM_CAP             0x00
#define HDM_GLOBAL_CTRL     0x04
#define HDM_GLOBAL_ENABLE   (1u << 1)
#define HDM_D0_BASE_LO      0x10
#define HDM_D0_BASE_HI      0x14
#define HDM_D0_SIZE_LO      0x18
#define HDM_D0_SIZE_HI      0x1c
#define HDM_D0_CTRL         0x20
#define HDM_CTRL_LOCK       (1u << 8)
#define HDM_CTRL_COMMIT     (1u << 9)
#define HDM_CTRL_COMMITTED  (1u << 10)
#define HDM_CTRL_ERR        (1u << 11)
#define ADDR_LO_MASK        0xf0000000u

/*
 * Decoder 0 of the simulator's COMP_REGS shadow, as an offset in the
 * component block (capability array 0x1000, HDM structure at 0x100 from
 * it, decoder 0 at 0x10 from that).  The v3 region starts at block offset
 * 0, the v2 region at the capability array, the v4 region at the HDM
 * structure.
 */
#define HOST_HDM_BLOCK      0x1100
#define HOST_D0_BLOCK       (HOST_HDM_BLOCK + 0x10)
#define HOST_D0_BASE_LO     (HOST_D0_BLOCK + 0x0)
#define HOST_D0_BASE_HI     (HOST_D0_BLOCK + 0x4)
#define HOST_D0_CTRL        (HOST_D0_BLOCK + 0x10)

#define MiB                 (1024ULL * 1024)
#define GiB                 (1024 * MiB)

/* -------------------------------------------------------------------- */
/* Machines                                                              */
/* -------------------------------------------------------------------- */

/*
 * What differs between the machines the test runs on.  Addresses the
 * machine chooses (its ECAM window, its CXL host bridge registers, its
 * fixed memory windows) are read from its memory map at run time; only
 * the range the test hands out to BARs is stated here, because the guest
 * (here the test) picks it.
 */
typedef struct Platform {
    const char *arch;
    /* The machine with CXL on, starting a QEMU command line. */
    const char *machine;
    /* q35 has no ECAM until firmware enables it (MCH PCIEXBAR). */
    bool enable_ecam;
    /* Start of 32-bit memory the machine routes to PCI. */
    uint64_t pci_mmio_base;
    /*
     * Machine options and window cxl-fmw.0 (to cxl.1) for which the
     * machine finds no room in guest physical address space but starts
     * anyway, with the window at 0.  NULL where the machine refuses such a
     * window itself (q35: "Address space limit ... phys-bits too low").
     */
    const char *unplaced_window;
    /*
     * Guest accesses per uAPI version in the storm, unless
     * VFIO_CXL_STORM_ACCESSES says otherwise.  Both targets link the same
     * device code; the second target's storm is shorter, to keep
     * make check within its budget.
     */
    uint64_t storm_accesses;
} Platform;

static const Platform platforms[] = {
    {
        .arch = "x86_64",
        .machine = "-nodefaults -machine q35,cxl=on ",
        .enable_ecam = true,
        .pci_mmio_base = 0xc0000000ULL,
        .storm_accesses = 1000000,
    },
    {
        /* The 64-bit CPU gives virt its high memory map (ECAM, CXL). */
        .arch = "aarch64",
        .machine = "-nodefaults -machine virt,cxl=on -cpu max ",
        .enable_ecam = false,
        .pci_mmio_base = 0x10000000ULL,
        /* Without its high memory map virt places no window at all. */
        .unplaced_window = "-M highmem=off "
                           "-M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G ",
        .storm_accesses = 250000,
    },
};

/* The machine of the QEMU under test (QTEST_QEMU_BINARY), set in main. */
static const Platform *platform;

/*
 * The guest address of the memory region @name (or of an alias of it) in
 * QEMU's system address space, from "info mtree"; fails if it is absent.
 */
static uint64_t memory_map_find(QTestState *qts, const char *name)
{
    g_autofree char *mtree = qtest_hmp(qts, "info mtree");
    g_auto(GStrv) lines = g_strsplit(mtree, "\n", -1);
    bool in_system = false;
    char **l;

    for (l = lines; *l; l++) {
        /* "START-END (prio P, KIND): NAME" or "...: alias NAME @TARGET ..." */
        const char *what = strstr(g_strchomp(*l), "): ");
        g_auto(GStrv) words = NULL;
        uint64_t start;

        if (g_str_has_prefix(*l, "address-space: ")) {
            in_system = !strcmp(*l, "address-space: memory");
            continue;
        }
        if (!in_system || !what ||
            sscanf(*l, " %" SCNx64 "-", &start) != 1) {
            continue;
        }
        words = g_strsplit(what + 3, " ", 4);
        if (!strcmp(words[0], name) ||
            (!strcmp(words[0], "alias") && words[1] && words[2] &&
             words[2][0] == '@' && !strcmp(words[2] + 1, name))) {
            return start;
        }
    }
    fail_test("no memory region '%s' in the system address space", name);
    return 0;
}

#define SIM_START_TIMEOUT_MS    20000
#define QEMU_EXIT_TIMEOUT_MS    60000
#define CTL_TIMEOUT_S           20

typedef struct Sim {
    char *dir;
    char *sock;
    char *ctl;
    char *mem;
    uint64_t mem_size;
    /*
     * Component block offset of COMP_REGS region offset 0: 0 (v3), the
     * capability array (v2), the HDM decoder block (v4).
     */
    uint64_t comp_regs_at;
    GPid pid;
    int out_fd;
    bool running;
} Sim;

/* -------------------------------------------------------------------- */
/* Simulator process                                                     */
/* -------------------------------------------------------------------- */

/*
 * The simulator binary, or NULL after marking the test skipped.  With
 * VFIO_CXL_REQUIRE_SIM=1 a missing simulator is an error.
 */
static const char *sim_binary(void)
{
    const char *bin = getenv("VFIO_CXL_SIM");
    const char *require = getenv("VFIO_CXL_REQUIRE_SIM");

    if (bin && *bin) {
        if (!g_file_test(bin, G_FILE_TEST_IS_EXECUTABLE)) {
            g_error("VFIO_CXL_SIM=%s is not an executable file", bin);
        }
        return bin;
    }
    if (require && !strcmp(require, "1")) {
        g_error("VFIO_CXL_REQUIRE_SIM=1 but VFIO_CXL_SIM is not set: "
                "point it at the vfio-user-cxl-sim binary");
    }
    g_test_skip("VFIO_CXL_SIM not set: "
                "point it at the vfio-user-cxl-sim binary");
    return NULL;
}

static void sim_stop(Sim *sim)
{
    int status;
    int i;

    if (!sim->running) {
        return;
    }
    kill(sim->pid, SIGTERM);
    for (i = 0; i < 500; i++) {
        if (waitpid(sim->pid, &status, WNOHANG) == sim->pid) {
            break;
        }
        g_usleep(10 * 1000);
    }
    if (i == 500) {
        kill(sim->pid, SIGKILL);
        waitpid(sim->pid, &status, 0);
    }
    g_spawn_close_pid(sim->pid);
    sim->running = false;
    if (sim->out_fd >= 0) {
        close(sim->out_fd);
        sim->out_fd = -1;
    }
}

/* Abort hook: do not leave the simulator behind a failed assertion. */
static void sim_abort_hook(void *opaque)
{
    Sim *sim = opaque;

    if (sim->running) {
        kill(sim->pid, SIGKILL);
        waitpid(sim->pid, NULL, 0);
        sim->running = false;
    }
    unlink(sim->sock);
    unlink(sim->ctl);
    unlink(sim->mem);
    rmdir(sim->dir);
}

/* The simulator goes when the test does, however the test ends. */
static void sim_child_setup(void *opaque)
{
#ifdef CONFIG_LINUX
    prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
}

static void sim_free(Sim *sim)
{
    GDir *d;
    const char *name;

    if (!sim) {
        return;
    }
    qtest_remove_abrt_handler(sim);
    sim_stop(sim);
    d = g_dir_open(sim->dir, 0, NULL);
    if (d) {
        while ((name = g_dir_read_name(d))) {
            g_autofree char *path = g_build_filename(sim->dir, name, NULL);
            unlink(path);
        }
        g_dir_close(d);
    }
    rmdir(sim->dir);
    g_free(sim->dir);
    g_free(sim->sock);
    g_free(sim->ctl);
    g_free(sim->mem);
    g_free(sim);
}

/*
 * Starts the simulator with @mem_mib MiB of memory (kept in a file in a
 * fresh temporary directory) and the NULL-terminated @extra options, and
 * waits for its "listening on" line.
 */
static Sim *sim_start(const char *bin, uint64_t mem_mib,
                      const char *const *extra)
{
    Sim *sim = g_new0(Sim, 1);
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GError) err = NULL;
    g_autoptr(GString) out = g_string_new("");
    gint64 deadline;

    sim->dir = g_dir_make_tmp("vfio-cxl-test-XXXXXX", &err);
    g_assert_no_error(err);
    sim->sock = g_build_filename(sim->dir, "sock", NULL);
    sim->ctl = g_build_filename(sim->dir, "ctl", NULL);
    sim->mem = g_build_filename(sim->dir, "mem", NULL);
    sim->mem_size = mem_mib * MiB;
    sim->out_fd = -1;

    g_ptr_array_add(argv, g_strdup(bin));
    g_ptr_array_add(argv, g_strdup("--socket"));
    g_ptr_array_add(argv, g_strdup(sim->sock));
    g_ptr_array_add(argv, g_strdup("--control"));
    g_ptr_array_add(argv, g_strdup(sim->ctl));
    g_ptr_array_add(argv, g_strdup("--memory-file"));
    g_ptr_array_add(argv, g_strdup(sim->mem));
    g_ptr_array_add(argv, g_strdup("--memory-size"));
    g_ptr_array_add(argv, g_strdup_printf("%" PRIu64 "M", mem_mib));
    for (; extra && *extra; extra++) {
        if (!strcmp(*extra, "--uapi") && extra[1]) {
            sim->comp_regs_at = !strcmp(extra[1], "v2") ? 0x1000 :
                                !strcmp(extra[1], "v4") ? HOST_HDM_BLOCK : 0;
        }
        g_ptr_array_add(argv, g_strdup(*extra));
    }
    g_ptr_array_add(argv, NULL);

    if (!g_spawn_async_with_pipes(NULL, (char **)argv->pdata, NULL,
                                  G_SPAWN_DO_NOT_REAP_CHILD, sim_child_setup,
                                  NULL, &sim->pid, NULL, &sim->out_fd, NULL,
                                  &err)) {
        fail_test("cannot start %s: %s", bin, err->message);
    }
    sim->running = true;
    qtest_add_abrt_handler(sim_abort_hook, sim);

    deadline = g_get_monotonic_time() + SIM_START_TIMEOUT_MS * 1000;
    while (!strstr(out->str, "listening on")) {
        struct pollfd pfd = { .fd = sim->out_fd, .events = POLLIN };
        char buf[256];
        int left = (deadline - g_get_monotonic_time()) / 1000;
        ssize_t n;

        if (left <= 0) {
            fail_test("simulator did not report 'listening on' in %d ms "
                    "(output so far: '%s')", SIM_START_TIMEOUT_MS, out->str);
        }
        if (poll(&pfd, 1, left) <= 0) {
            continue;
        }
        n = read(sim->out_fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            fail_test("simulator exited before listening (output: '%s')",
                    out->str);
        }
        g_string_append_len(out, buf, n);
    }
    return sim;
}

/* -------------------------------------------------------------------- */
/* Simulator control socket                                              */
/* -------------------------------------------------------------------- */

static int unix_connect(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    struct timeval tv = { .tv_sec = CTL_TIMEOUT_S };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpuint(strlen(path), <, sizeof(addr.sun_path));
    strcpy(addr.sun_path, path);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        fail_test("cannot connect to %s: %s", path, strerror(errno));
    }
    return fd;
}

/* Runs one control command; returns its reply, which must say "ok". */
static G_GNUC_PRINTF(2, 3) QDict *sim_ctl(Sim *sim, const char *fmt, ...)
{
    g_autoptr(GString) reply = g_string_new("");
    g_autofree char *cmd = NULL;
    va_list ap;
    QObject *obj;
    QDict *dict;
    int fd;

    va_start(ap, fmt);
    cmd = g_strdup_vprintf(fmt, ap);
    va_end(ap);

    fd = unix_connect(sim->ctl);
    g_assert_cmpint(qemu_write_full(fd, cmd, strlen(cmd)), ==, strlen(cmd));
    g_assert_cmpint(qemu_write_full(fd, "\n", 1), ==, 1);
    while (!strchr(reply->str, '\n')) {
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof(buf));

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            fail_test("control command '%s': no reply (%s)", cmd,
                    n < 0 ? strerror(errno) : "connection closed");
        }
        g_string_append_len(reply, buf, n);
    }
    close(fd);

    obj = qobject_from_json(reply->str, &error_abort);
    dict = qobject_to(QDict, obj);
    g_assert(dict);
    if (!qdict_get_try_bool(dict, "ok", false)) {
        fail_test("control command '%s' failed: %s", cmd, reply->str);
    }
    return dict;
}

static uint64_t sim_stat(Sim *sim, const char *counter)
{
    QDict *d = sim_ctl(sim, "stats");
    uint64_t v;

    g_assert(qdict_haskey(d, counter));
    v = qdict_get_int(d, counter);
    qobject_unref(d);
    return v;
}

static void hex_decode(const char *hex, uint8_t *buf, size_t len)
{
    size_t i;

    g_assert_cmpuint(strlen(hex), ==, 2 * len);
    for (i = 0; i < len; i++) {
        g_assert(g_ascii_isxdigit(hex[2 * i]) &&
                 g_ascii_isxdigit(hex[2 * i + 1]));
        buf[i] = g_ascii_xdigit_value(hex[2 * i]) << 4 |
                 g_ascii_xdigit_value(hex[2 * i + 1]);
    }
}

/* @len bytes of the host's config space at @off, as a hex string. */
static char *sim_config_hex(Sim *sim, uint32_t off, uint32_t len)
{
    QDict *d = sim_ctl(sim, "config-read 0x%x %u", off, len);
    char *hex = g_strdup(qdict_get_str(d, "hex"));

    qobject_unref(d);
    g_assert_cmpuint(strlen(hex), ==, 2 * len);
    return hex;
}

static uint32_t sim_config_readl(void *opaque, uint32_t off)
{
    g_autofree char *hex = sim_config_hex(opaque, off, 4);
    uint8_t b[4];

    hex_decode(hex, b, 4);
    return ldl_le_p(b);
}

/* The host's COMP_REGS dword at component block offset @off. */
static uint32_t sim_comp_regs_readl(Sim *sim, uint64_t off)
{
    QDict *d = sim_ctl(sim, "comp-regs-read 0x%" PRIx64,
                       off - sim->comp_regs_at);
    uint32_t v = qdict_get_int(d, "value");

    qobject_unref(d);
    return v;
}

static void sim_mem_read(Sim *sim, uint64_t off, void *buf, size_t len)
{
    QDict *d = sim_ctl(sim, "mem-read 0x%" PRIx64 " %zu", off, len);

    hex_decode(qdict_get_str(d, "hex"), buf, len);
    qobject_unref(d);
}

static void sim_mem_write(Sim *sim, uint64_t off, const void *buf,
                          size_t len)
{
    g_autoptr(GString) hex = g_string_new("");
    const uint8_t *p = buf;
    size_t i;

    for (i = 0; i < len; i++) {
        g_string_append_printf(hex, "%02x", p[i]);
    }
    qobject_unref(sim_ctl(sim, "mem-write 0x%" PRIx64 " %s", off, hex->str));
}

/* -------------------------------------------------------------------- */
/* QEMU command lines                                                    */
/* -------------------------------------------------------------------- */

#define TOPO_FMW_4G \
    "-M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G "
#define TOPO_BRIDGES \
    "-device pxb-cxl,id=cxl.1,bus=pcie.0,bus_nr=12 " \
    "-device cxl-rp,id=rp0,bus=cxl.1,chassis=0,slot=0,port=0 "

/* The vfio-user-cxl device with id "acc" on @bus, served at @sock. */
static char *device_arg(const char *bus, const char *sock)
{
    return g_strdup_printf("-device '{\"driver\":\"vfio-user-cxl\","
                           "\"id\":\"acc\",\"bus\":\"%s\","
                           "\"socket\":{\"type\":\"unix\","
                           "\"path\":\"%s\"}}'", bus, sock);
}

/* The standard topology with the device below rp0. */
static char *std_args(Sim *sim)
{
    g_autofree char *dev = device_arg("rp0", sim->sock);

    return g_strconcat(platform->machine, TOPO_FMW_4G TOPO_BRIDGES, dev,
                       NULL);
}

static QTestState *start_qemu(Sim *sim)
{
    g_autofree char *args = std_args(sim);

    return qtest_init(args);
}

/* The same, with QEMU's stderr going to the file @log. */
static QTestState *start_qemu_logging(Sim *sim, const char *log)
{
    g_autofree char *std = std_args(sim);
    g_autofree char *args = g_strdup_printf("%s 2>%s", std, log);

    return qtest_init(args);
}

/*
 * Runs QEMU with @args, expecting it to refuse to start.  A monitor on
 * stdin is told to quit, so that a QEMU that does start ends anyway.
 * Returns its stderr; fails unless it exited with a non-zero status.
 */
static char *qemu_expect_failure(const char *args)
{
    const char *qemu = qtest_qemu_binary(NULL);
    g_autofree char *cmd = g_strdup_printf(
        "exec %s %s -display none -accel qtest -monitor stdio "
        "-run-with exit-with-parent=on", qemu, args);
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    g_autoptr(GError) err = NULL;
    GString *errout = g_string_new("");
    gint64 deadline;
    GPid pid;
    int in_fd, err_fd;
    int status;
    bool done = false;

    g_test_message("running: %s", cmd);
    if (!g_spawn_async_with_pipes(NULL, (char **)argv, NULL,
                                  G_SPAWN_DO_NOT_REAP_CHILD |
                                  G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                                  &pid, &in_fd, NULL, &err_fd, &err)) {
        fail_test("cannot run %s: %s", qemu, err->message);
    }
    /* SIGPIPE is ignored (see main), so an early exit only fails this. */
    if (qemu_write_full(in_fd, "quit\n", 5) != 5) {
        g_test_message("could not send 'quit' to QEMU: %s", strerror(errno));
    }
    close(in_fd);

    deadline = g_get_monotonic_time() + QEMU_EXIT_TIMEOUT_MS * 1000;
    while (!done) {
        struct pollfd pfd = { .fd = err_fd, .events = POLLIN };
        char buf[1024];
        int left = (deadline - g_get_monotonic_time()) / 1000;
        ssize_t n;

        if (left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_test("QEMU neither failed nor quit in %d ms (stderr: '%s')",
                    QEMU_EXIT_TIMEOUT_MS, errout->str);
        }
        if (poll(&pfd, 1, left) <= 0) {
            continue;
        }
        n = read(err_fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            done = true;
        } else {
            g_string_append_len(errout, buf, n);
        }
    }
    close(err_fd);
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_spawn_close_pid(pid);

    g_test_message("QEMU stderr: %s", errout->str);
    if (WIFSIGNALED(status)) {
        fail_test("QEMU crashed with signal %d instead of refusing the device "
                "(stderr: '%s')", WTERMSIG(status), errout->str);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 0) {
        fail_test("QEMU did not fail to start (wait status 0x%x; stderr: '%s')",
                status, errout->str);
    }
    return g_string_free(errout, false);
}

/* -------------------------------------------------------------------- */
/* Guest-side config and MMIO access                                     */
/* -------------------------------------------------------------------- */

/*
 * Where the machine's ECAM window is, as ecam_enable() last found it.  The
 * test drives one QEMU at a time.
 */
static uint64_t ecam_base;

static uint64_t ecam(int bus, uint32_t off)
{
    g_assert(ecam_base);
    return ecam_base + ((uint64_t)bus << 20) + off;
}

static uint32_t cfg_readl(QTestState *qts, int bus, uint32_t off)
{
    return qtest_readl(qts, ecam(bus, off));
}

static uint16_t cfg_readw(QTestState *qts, int bus, uint32_t off)
{
    return qtest_readw(qts, ecam(bus, off));
}

static void cfg_writel(QTestState *qts, int bus, uint32_t off, uint32_t v)
{
    qtest_writel(qts, ecam(bus, off), v);
}

static void cfg_writew(QTestState *qts, int bus, uint32_t off, uint16_t v)
{
    qtest_writew(qts, ecam(bus, off), v);
}

typedef struct GuestCfg {
    QTestState *qts;
    int bus;
} GuestCfg;

static uint32_t guest_config_readl(void *opaque, uint32_t off)
{
    GuestCfg *g = opaque;

    return cfg_readl(g->qts, g->bus, off);
}

/*
 * Finds the machine's ECAM window (256 buses), first enabling q35's at
 * Q35_ECAM_BASE: a system reset disables it again.
 */
static void ecam_enable(QTestState *qts)
{
    if (platform->enable_ecam) {
        qtest_outl(qts, 0xcf8, 0x80000000 | (MCH_PCIEXBAR + 4));
        qtest_outl(qts, 0xcfc, 0);
        qtest_outl(qts, 0xcf8, 0x80000000 | MCH_PCIEXBAR);
        qtest_outl(qts, 0xcfc, Q35_ECAM_BASE | 1);
    }
    ecam_base = memory_map_find(qts, "pcie-mmcfg-mmio");
}

/*
 * Numbers the root port's link (13), gives it a non-prefetchable window
 * for the device's BAR, parks its own component BAR, and enables it.
 */
static void setup_root_port(QTestState *qts)
{
    uint32_t id = cfg_readl(qts, RP_BUS, 0);

    g_assert_cmphex(id & 0xffff, !=, 0xffff);
    cfg_writel(qts, RP_BUS, CFG_BUS_NUMBERS,
               RP_BUS | DEV_BUS << 8 | DEV_BUS << 16);
    cfg_writel(qts, RP_BUS, CFG_MEM_BASE,
               (RP_WINDOW_BASE >> 16 & 0xfff0) |
               (RP_WINDOW_LIMIT >> 16 & 0xfff0) << 16);
    /* Prefetchable window off: base above limit. */
    cfg_writel(qts, RP_BUS, CFG_PREF_BASE, 0x0000fff0);
    cfg_writel(qts, RP_BUS, CFG_PREF_BASE_HI, 0);
    cfg_writel(qts, RP_BUS, CFG_PREF_LIMIT_HI, 0);
    /* cxl-rp has a 64-bit component BAR of its own. */
    cfg_writel(qts, RP_BUS, CFG_BAR0, RP_BAR0_ADDR);
    cfg_writel(qts, RP_BUS, CFG_BAR1, 0);
    cfg_writew(qts, RP_BUS, CFG_COMMAND, CFG_CMD_MEM | CFG_CMD_MASTER);
}

/* Checks the device is at 13:00.0, places BAR 0 and enables memory. */
static uint64_t setup_device(QTestState *qts)
{
    uint32_t id = cfg_readl(qts, DEV_BUS, 0);
    uint32_t bar;

    g_assert_cmphex(id, ==, SIM_DEVICE_ID << 16 | SIM_VENDOR_ID);
    bar = cfg_readl(qts, DEV_BUS, CFG_BAR0);
    g_assert_cmphex(bar & 1, ==, 0);
    g_assert_cmphex(bar & 6, ==, BAR_MEM_TYPE_64);
    if (bar & BAR_PREFETCH) {
        /* Route the same range through the prefetchable window instead. */
        cfg_writel(qts, RP_BUS, CFG_PREF_BASE,
                   (RP_WINDOW_BASE >> 16 & 0xfff0) |
                   (RP_WINDOW_LIMIT >> 16 & 0xfff0) << 16);
    }
    cfg_writel(qts, DEV_BUS, CFG_BAR0, DEV_BAR0_ADDR);
    cfg_writel(qts, DEV_BUS, CFG_BAR1, DEV_BAR0_ADDR >> 32);
    g_assert_cmphex(cfg_readl(qts, DEV_BUS, CFG_BAR0) & ~0xfu, ==,
                    (uint32_t)DEV_BAR0_ADDR);
    cfg_writew(qts, DEV_BUS, CFG_COMMAND,
               cfg_readw(qts, DEV_BUS, CFG_COMMAND) |
               CFG_CMD_MEM | CFG_CMD_MASTER);
    return DEV_BAR0_ADDR;
}

/*
 * Walks the extended capability list from 0x100 for the CXL DVSEC with
 * DVSEC ID @id; returns its offset (0 if absent) and its length in @len.
 */
static uint32_t find_dvsec(uint32_t (*readl)(void *, uint32_t),
                           void *opaque, uint16_t id, uint32_t *len)
{
    uint32_t off = EXT_CAP_START;
    int steps;

    for (steps = 0; off && steps < 128; steps++) {
        uint32_t hdr;

        g_assert_cmphex(off & 3, ==, 0);
        g_assert_cmphex(off, >=, EXT_CAP_START);
        g_assert_cmphex(off, <, 0x1000);
        hdr = readl(opaque, off);
        if (hdr == 0 || hdr == 0xffffffff) {
            return 0;
        }
        if ((hdr & 0xffff) == EXT_CAP_ID_DVSEC) {
            uint32_t h1 = readl(opaque, off + 4);
            uint32_t h2 = readl(opaque, off + 8);

            if ((h1 & 0xffff) == CXL_VENDOR_ID && (h2 & 0xffff) == id) {
                *len = h1 >> 20;
                return off;
            }
        }
        off = hdr >> 20;
    }
    g_assert_cmpint(steps, <, 128);
    return 0;
}

static uint32_t guest_find_dvsec(QTestState *qts, uint16_t id,
                                 uint32_t *len)
{
    GuestCfg g = { .qts = qts, .bus = DEV_BUS };

    return find_dvsec(guest_config_readl, &g, id, len);
}

/* Finds the PCI Express capability in the standard list. */
static uint32_t find_exp_cap(QTestState *qts, int bus)
{
    uint32_t off = cfg_readl(qts, bus, CFG_CAP_PTR) & 0xfc;
    int steps;

    for (steps = 0; off && steps < 48; steps++) {
        uint32_t hdr = cfg_readl(qts, bus, off);

        if ((hdr & 0xff) == CAP_ID_EXP) {
            return off;
        }
        off = (hdr >> 8) & 0xfc;
    }
    return 0;
}

static uint64_t addr_of(uint32_t hi, uint32_t lo)
{
    return (uint64_t)hi << 32 | (lo & ADDR_LO_MASK);
}

/*
 * The acceptance reads of the CXL Device DVSEC: locked, memory enabled,
 * range 1 valid and active, of the device memory's size, at a plausible
 * window base, which it returns.
 */
static uint64_t check_dvsec_reads(QTestState *qts, uint32_t dvsec,
                                  uint64_t mem_size)
{
    uint16_t ctrl = cfg_readw(qts, DEV_BUS, dvsec + DVSEC_CONTROL);
    uint16_t lock = cfg_readw(qts, DEV_BUS, dvsec + DVSEC_LOCK);
    uint32_t size_hi = cfg_readl(qts, DEV_BUS, dvsec + DVSEC_R1_SIZE_HI);
    uint32_t size_lo = cfg_readl(qts, DEV_BUS, dvsec + DVSEC_R1_SIZE_LO);
    uint32_t base_hi = cfg_readl(qts, DEV_BUS, dvsec + DVSEC_R1_BASE_HI);
    uint32_t base_lo = cfg_readl(qts, DEV_BUS, dvsec + DVSEC_R1_BASE_LO);
    uint64_t base = addr_of(base_hi, base_lo);

    g_test_message("DVSEC at 0x%x: control 0x%04x lock 0x%04x size 0x%08x"
                   "_%08x base 0x%08x_%08x", dvsec, ctrl, lock, size_hi,
                   size_lo, base_hi, base_lo);
    g_assert_cmphex(lock & DVSEC_LOCK_CONFIG, ==, DVSEC_LOCK_CONFIG);
    g_assert_cmphex(ctrl & DVSEC_CTRL_MEM_EN, ==, DVSEC_CTRL_MEM_EN);
    g_assert_cmphex(addr_of(size_hi, size_lo), ==, mem_size);
    g_assert_cmphex(size_lo & DVSEC_R1_INFO_VALID, ==, DVSEC_R1_INFO_VALID);
    g_assert_cmphex(size_lo & DVSEC_R1_ACTIVE, ==, DVSEC_R1_ACTIVE);
    g_assert_cmphex(base, !=, 0);
    g_assert_cmphex(base & (256 * MiB - 1), ==, 0);
    g_assert_cmphex(base, >=, 4 * GiB);
    return base;
}

/* The guest's view of the window base, from the DVSEC. */
static uint64_t guest_window_base(QTestState *qts, uint64_t mem_size)
{
    uint32_t len;
    uint32_t dvsec = guest_find_dvsec(qts, DVSEC_ID_DEVICE, &len);

    g_assert_cmphex(dvsec, !=, 0);
    return check_dvsec_reads(qts, dvsec, mem_size);
}

/*
 * The guest address of the component register block, from the Register
 * Locator DVSEC (which must name BAR 0).
 */
static uint64_t guest_component_block(QTestState *qts, uint64_t bar0)
{
    uint32_t len, off;
    uint32_t regloc = guest_find_dvsec(qts, DVSEC_ID_REGLOC, &len);

    g_assert_cmphex(regloc, !=, 0);
    g_assert_cmpuint(len, >=, REGLOC_ENTRIES + 8);
    for (off = REGLOC_ENTRIES; off + 8 <= len; off += 8) {
        uint32_t lo = cfg_readl(qts, DEV_BUS, regloc + off);
        uint32_t hi = cfg_readl(qts, DEV_BUS, regloc + off + 4);

        if (((lo >> 8) & 0xff) == REGLOC_BLOCK_COMP) {
            uint64_t block = (uint64_t)hi << 32 | (lo & 0xffff0000);

            g_test_message("component block: BIR %u offset 0x%" PRIx64,
                           lo & 7, block);
            g_assert_cmpuint(lo & 7, ==, 0);
            g_assert_cmphex(block + COMP_BLOCK_SIZE, <=, 256 * 1024);
            return bar0 + block;
        }
    }
    fail_test("Register Locator DVSEC lists no component register block");
    return 0;
}

/* The guest address of the HDM decoder capability structure. */
static uint64_t guest_hdm(QTestState *qts, uint64_t block)
{
    uint64_t array = block + CAP_ARRAY_OFFSET;
    uint32_t hdr = qtest_readl(qts, array);
    uint32_t count = hdr >> 24;
    uint32_t i;

    g_test_message("capability array header 0x%08x", hdr);
    g_assert_cmphex(hdr & 0xffff, ==, CXL_CAP_ID_CXL);
    g_assert_cmpuint(count, >=, 1);
    for (i = 1; i <= count; i++) {
        uint32_t e = qtest_readl(qts, array + 4 * i);

        g_test_message("capability entry %u: 0x%08x", i, e);
        if ((e & 0xffff) == CXL_CAP_ID_HDM) {
            g_assert_cmphex(e >> 20, !=, 0);
            return array + (e >> 20);
        }
    }
    fail_test("capability array has no HDM decoder capability");
    return 0;
}

/* -------------------------------------------------------------------- */
/* Tests                                                                 */
/* -------------------------------------------------------------------- */

typedef struct DvsecWrite {
    const char *what;
    uint32_t reg;
    int width;
} DvsecWrite;

static void assert_dvsec_views(QTestState *qts, Sim *sim, uint32_t dvsec,
                               uint32_t len, const uint32_t *guest,
                               uint32_t host_dvsec, const char *host,
                               const char *after)
{
    g_autofree char *host_now = sim_config_hex(sim, host_dvsec, len);
    uint32_t i;

    for (i = 0; i < len / 4; i++) {
        uint32_t v = cfg_readl(qts, DEV_BUS, dvsec + 4 * i);

        if (v != guest[i]) {
            fail_test("after %s: guest DVSEC dword +0x%x changed from 0x%08x "
                    "to 0x%08x", after, 4 * i, guest[i], v);
        }
    }
    if (strcmp(host, host_now)) {
        fail_test("after %s: host DVSEC changed\n  before %s\n  after  %s",
                after, host, host_now);
    }
}

static void test_dvsec(const void *data)
{
    const char *uapi_args[] = { "--uapi", data, NULL };
    static const DvsecWrite writes[] = {
        { "Control write (Mem_Enable cleared)", DVSEC_CONTROL, 2 },
        { "Range 1 Base Low write", DVSEC_R1_BASE_LO, 4 },
        { "Range 1 Base High write", DVSEC_R1_BASE_HI, 4 },
        { "Lock write (CONFIG_LOCK cleared)", DVSEC_LOCK, 2 },
        { "Range 1 Size Low write", DVSEC_R1_SIZE_LO, 4 },
    };
    const char *bin = sim_binary();
    g_autofree uint32_t *guest = NULL;
    g_autofree char *host = NULL;
    QTestState *qts;
    Sim *sim;
    uint32_t dvsec, len, host_dvsec, host_len;
    uint64_t writes_before;
    size_t i;

    if (!bin) {
        return;
    }
    sim = sim_start(bin, 256, uapi_args);
    qts = start_qemu(sim);
    ecam_enable(qts);
    setup_root_port(qts);

    dvsec = guest_find_dvsec(qts, DVSEC_ID_DEVICE, &len);
    g_assert_cmphex(dvsec, !=, 0);
    g_assert_cmpuint(len, >=, DVSEC_R1_BASE_LO + 4);
    check_dvsec_reads(qts, dvsec, sim->mem_size);

    host_dvsec = find_dvsec(sim_config_readl, sim, DVSEC_ID_DEVICE,
                            &host_len);
    g_assert_cmphex(host_dvsec, !=, 0);
    g_assert_cmpuint(host_len, ==, len);

    guest = g_new(uint32_t, len / 4);
    for (i = 0; i < len / 4; i++) {
        guest[i] = cfg_readl(qts, DEV_BUS, dvsec + 4 * i);
    }
    host = sim_config_hex(sim, host_dvsec, len);
    writes_before = sim_stat(sim, "config_writes");

    for (i = 0; i < ARRAY_SIZE(writes); i++) {
        uint32_t reg = dvsec + writes[i].reg;
        uint32_t old = guest[writes[i].reg / 4];
        uint32_t v;

        if (writes[i].width == 2) {
            old = (old >> (8 * (writes[i].reg & 2))) & 0xffff;
        }
        switch (writes[i].reg) {
        case DVSEC_CONTROL:
            v = old & ~DVSEC_CTRL_MEM_EN;
            break;
        case DVSEC_LOCK:
            v = old & ~DVSEC_LOCK_CONFIG;
            break;
        case DVSEC_R1_BASE_HI:
            v = old ^ 0x1;
            break;
        default:
            /* Another 256 MiB-aligned address or size. */
            v = old ^ 0x10000000;
            break;
        }
        g_test_message("%s: 0x%x <- 0x%x (was 0x%x)", writes[i].what, reg,
                       v, old);
        if (writes[i].width == 2) {
            cfg_writew(qts, DEV_BUS, reg, v);
        } else {
            cfg_writel(qts, DEV_BUS, reg, v);
        }
        assert_dvsec_views(qts, sim, dvsec, len, guest, host_dvsec, host,
                           writes[i].what);
    }
    g_assert_cmpuint(sim_stat(sim, "config_writes"), ==, writes_before);

    qtest_quit(qts);
    sim_free(sim);
}

typedef struct HdmRegs {
    uint32_t cap, global, base_lo, base_hi, size_lo, size_hi, ctrl;
} HdmRegs;

static void read_hdm(QTestState *qts, uint64_t hdm, HdmRegs *r)
{
    r->cap = qtest_readl(qts, hdm + HDM_CAP);
    r->global = qtest_readl(qts, hdm + HDM_GLOBAL_CTRL);
    r->base_lo = qtest_readl(qts, hdm + HDM_D0_BASE_LO);
    r->base_hi = qtest_readl(qts, hdm + HDM_D0_BASE_HI);
    r->size_lo = qtest_readl(qts, hdm + HDM_D0_SIZE_LO);
    r->size_hi = qtest_readl(qts, hdm + HDM_D0_SIZE_HI);
    r->ctrl = qtest_readl(qts, hdm + HDM_D0_CTRL);
}

static void assert_hdm_equal(const HdmRegs *a, const HdmRegs *b,
                             const char *after)
{
    if (memcmp(a, b, sizeof(*a))) {
        fail_test("after %s: HDM registers changed: cap 0x%x->0x%x "
                "global 0x%x->0x%x base 0x%x_%x->0x%x_%x "
                "size 0x%x_%x->0x%x_%x ctrl 0x%x->0x%x", after,
                a->cap, b->cap, a->global, b->global, a->base_hi, a->base_lo,
                b->base_hi, b->base_lo, a->size_hi, a->size_lo, b->size_hi,
                b->size_lo, a->ctrl, b->ctrl);
    }
}

typedef struct HostD0 {
    uint32_t base_lo, base_hi, ctrl;
} HostD0;

static void read_host_d0(Sim *sim, HostD0 *h)
{
    h->base_lo = sim_comp_regs_readl(sim, HOST_D0_BASE_LO);
    h->base_hi = sim_comp_regs_readl(sim, HOST_D0_BASE_HI);
    h->ctrl = sim_comp_regs_readl(sim, HOST_D0_CTRL);
}

typedef struct RegWrite {
    const char *what;
    uint32_t reg;
    uint32_t value;
} RegWrite;

/*
 * Makes each guest write of @writes to the HDM structure at @hdm and
 * checks that neither the guest's registers (@r) nor the host's decoder 0
 * change, and that the host's COMP_REGS saw no write at all.
 */
static void check_hdm_writes(QTestState *qts, Sim *sim, uint64_t hdm,
                             const HdmRegs *r, const RegWrite *writes,
                             size_t n)
{
    HdmRegs now;
    HostD0 host, host_now;
    uint64_t comp_writes;
    size_t i;

    read_host_d0(sim, &host);
    g_test_message("host decoder 0: base 0x%08x_%08x ctrl 0x%08x",
                   host.base_hi, host.base_lo, host.ctrl);
    comp_writes = sim_stat(sim, "comp_regs_writes");

    for (i = 0; i < n; i++) {
        g_test_message("%s: 0x%" PRIx64 " <- 0x%08x", writes[i].what,
                       hdm + writes[i].reg, writes[i].value);
        qtest_writel(qts, hdm + writes[i].reg, writes[i].value);
        read_hdm(qts, hdm, &now);
        assert_hdm_equal(r, &now, writes[i].what);
        read_host_d0(sim, &host_now);
        if (memcmp(&host, &host_now, sizeof(host))) {
            fail_test("after %s: host decoder 0 changed: base 0x%08x_%08x -> "
                    "0x%08x_%08x, ctrl 0x%08x -> 0x%08x", writes[i].what,
                    host.base_hi, host.base_lo, host_now.base_hi,
                    host_now.base_lo, host.ctrl, host_now.ctrl);
        }
    }
    g_assert_cmpuint(sim_stat(sim, "comp_regs_writes"), ==, comp_writes);
}

static void test_component(const void *data)
{
    const char *uapi_args[] = { "--uapi", data, NULL };
    const char *bin = sim_binary();
    QTestState *qts;
    Sim *sim;
    uint64_t bar0, base, block, hdm;
    HdmRegs r;

    if (!bin) {
        return;
    }
    sim = sim_start(bin, 256, uapi_args);
    qts = start_qemu(sim);
    ecam_enable(qts);
    setup_root_port(qts);
    bar0 = setup_device(qts);
    base = guest_window_base(qts, sim->mem_size);

    block = guest_component_block(qts, bar0);
    hdm = guest_hdm(qts, block);
    read_hdm(qts, hdm, &r);
    g_test_message("HDM: cap 0x%08x global 0x%08x base 0x%08x_%08x "
                   "size 0x%08x_%08x ctrl 0x%08x", r.cap, r.global,
                   r.base_hi, r.base_lo, r.size_hi, r.size_lo, r.ctrl);
    g_assert_cmphex(r.cap & 0xf, ==, 0);
    g_assert_cmphex(r.global & HDM_GLOBAL_ENABLE, ==, HDM_GLOBAL_ENABLE);
    g_assert_cmphex(r.ctrl & HDM_CTRL_COMMIT, ==, HDM_CTRL_COMMIT);
    g_assert_cmphex(r.ctrl & HDM_CTRL_COMMITTED, ==, HDM_CTRL_COMMITTED);
    g_assert_cmphex(r.ctrl & HDM_CTRL_LOCK, ==, HDM_CTRL_LOCK);
    g_assert_cmphex(r.ctrl & HDM_CTRL_ERR, ==, 0);
    g_assert_cmphex(addr_of(r.base_hi, r.base_lo), ==, base);
    g_assert_cmphex(addr_of(r.size_hi, r.size_lo), ==, sim->mem_size);

    {
        RegWrite writes[] = {
            { "BASE_LO write", HDM_D0_BASE_LO, r.base_lo ^ 0x10000000 },
            { "BASE_HI write", HDM_D0_BASE_HI, r.base_hi ^ 0x1 },
            { "SIZE_LO write", HDM_D0_SIZE_LO, r.size_lo ^ 0x10000000 },
            { "SIZE_HI write", HDM_D0_SIZE_HI, r.size_hi ^ 0x1 },
            { "CTRL write (COMMIT cleared)", HDM_D0_CTRL,
              r.ctrl & ~HDM_CTRL_COMMIT },
            { "CTRL write (COMMIT and LOCK_ON_COMMIT cleared)", HDM_D0_CTRL,
              r.ctrl & ~(HDM_CTRL_COMMIT | HDM_CTRL_LOCK) },
            /* Global control is read-only while decoder 0 is locked. */
            { "global control write of 0 (enable cleared)", HDM_GLOBAL_CTRL,
              0 },
        };

        check_hdm_writes(qts, sim, hdm, &r, writes, ARRAY_SIZE(writes));
    }

    qtest_quit(qts);
    sim_free(sim);
}

static void test_memory(const void *data)
{
    const char *uapi_args[] = { "--uapi", data, NULL };
    const char *bin = sim_binary();
    QTestState *qts;
    Sim *sim;
    uint64_t base, size, v;
    uint8_t buf[8];
    int fd;

    if (!bin) {
        return;
    }
    sim = sim_start(bin, 512, uapi_args);
    qts = start_qemu(sim);
    ecam_enable(qts);
    setup_root_port(qts);
    setup_device(qts);
    base = guest_window_base(qts, sim->mem_size);
    size = sim->mem_size;
    g_test_message("window base 0x%" PRIx64 ", size 0x%" PRIx64, base, size);

    /* Guest writes land in device memory. */
    qtest_writeq(qts, base + 0x1000, 0x0123456789abcdefULL);
    qtest_writeq(qts, base + size - 8, 0xfedcba9876543210ULL);
    sim_mem_read(sim, 0x1000, buf, 8);
    g_assert_cmphex(ldq_le_p(buf), ==, 0x0123456789abcdefULL);
    sim_mem_read(sim, size - 8, buf, 8);
    g_assert_cmphex(ldq_le_p(buf), ==, 0xfedcba9876543210ULL);

    /* ... and in the --memory-file itself. */
    fd = open(sim->mem, O_RDONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pread(fd, buf, 8, 0x1000), ==, 8);
    g_assert_cmphex(ldq_le_p(buf), ==, 0x0123456789abcdefULL);
    g_assert_cmpint(pread(fd, buf, 8, size - 8), ==, 8);
    g_assert_cmphex(ldq_le_p(buf), ==, 0xfedcba9876543210ULL);
    close(fd);

    /* Host writes are seen by the guest. */
    stq_le_p(buf, 0xa5a5c3c35a5a3c3cULL);
    sim_mem_write(sim, 0x2000, buf, 8);
    g_assert_cmphex(qtest_readq(qts, base + 0x2000), ==,
                    0xa5a5c3c35a5a3c3cULL);
    stq_le_p(buf, 0x1122334455667788ULL);
    sim_mem_write(sim, size - 16, buf, 8);
    g_assert_cmphex(qtest_readq(qts, base + size - 16), ==,
                    0x1122334455667788ULL);

    /* The very last byte, both ways. */
    qtest_writeb(qts, base + size - 1, 0x5e);
    sim_mem_read(sim, size - 1, buf, 1);
    g_assert_cmphex(buf[0], ==, 0x5e);
    buf[0] = 0xe5;
    sim_mem_write(sim, size - 1, buf, 1);
    g_assert_cmphex(qtest_readb(qts, base + size - 1), ==, 0xe5);
    v = qtest_readq(qts, base + size - 8);
    g_assert_cmphex(v, ==, 0xe5dcba9876543210ULL);

    qtest_quit(qts);
    sim_free(sim);
}

static void test_uapi(const void *data)
{
    const char *uapi = data;
    const char *extra[] = { "--uapi", uapi, NULL };
    const char *bin = sim_binary();
    QTestState *qts;
    Sim *sim;

    if (!bin) {
        return;
    }
    sim = sim_start(bin, 256, extra);
    qts = start_qemu(sim);
    ecam_enable(qts);
    setup_root_port(qts);
    setup_device(qts);
    guest_window_base(qts, sim->mem_size);
    qtest_quit(qts);
    sim_free(sim);
}

typedef enum RefusedTopo {
    TOPO_STD,
    TOPO_ON_PCIE0,
    TOPO_WINDOW_256M,
    TOPO_WINDOW_OTHER_HB,
    TOPO_WINDOW_UNPLACED,
} RefusedTopo;

typedef struct RefusedCase {
    const char *name;
    const char *sim_args[6];
    uint64_t mem_mib;
    RefusedTopo topo;
    /* All must appear in stderr; '|' separates accepted alternatives. */
    const char *needles[4];
} RefusedCase;

static const RefusedCase refused_cases[] = {
    { "no-comp-regs", { "--fault", "no-comp-regs" }, 256, TOPO_STD,
      { "no COMP_REGS region|COMP_REGS region is missing", "subtype 2" } },
    { "no-memory", { "--fault", "no-memory" }, 256, TOPO_STD,
      { "no CXL memory region|memory region is missing", "subtype 1" } },
    { "comp-regs-size-mismatch", { "--fault", "comp-regs-size-mismatch" },
      256, TOPO_STD, { "COMP_REGS", "0x11000|neither a v3 block" } },
    { "cap-chain-loop", { "--fault", "cap-chain-loop" }, 256, TOPO_STD,
      { "chain loops" } },
    { "memory-smaller-than-decoder",
      { "--fault", "memory-smaller-than-decoder" }, 256, TOPO_STD,
      { "smaller than HDM decoder 0", "128 MiB", "256 MiB" } },
    { "decoder-uncommitted", { "--decoder", "uncommitted" }, 256, TOPO_STD,
      { "HDM decoder 0 is not committed|not committed" } },
    { "not-below-cxl-rp", { NULL }, 256, TOPO_ON_PCIE0,
      { "CXL root port" } },
    { "window-too-small", { NULL }, 512, TOPO_WINDOW_256M,
      { "fixed memory window", "256 MiB", "512 MiB" } },
    { "no-window-for-host-bridge", { NULL }, 256, TOPO_WINDOW_OTHER_HB,
      { "no CXL fixed memory window" } },
    { "window-not-placed", { NULL }, 256, TOPO_WINDOW_UNPLACED,
      { "window 0 of", "has no guest address" } },
    { "v2-comp-regs-size-mismatch",
      { "--uapi", "v2", "--fault", "comp-regs-size-mismatch" }, 256, TOPO_STD,
      { "COMP_REGS", "uAPI v2 sizes it to them" } },
    { "v4-no-comp-regs", { "--uapi", "v4", "--fault", "no-comp-regs" }, 256,
      TOPO_STD, { "COMP_REGS region is missing|no COMP_REGS region",
                  "subtype 2" } },
    { "v4-no-memory", { "--uapi", "v4", "--fault", "no-memory" }, 256,
      TOPO_STD, { "memory region is missing|no CXL memory region",
                  "subtype 1" } },
    { "v4-memory-smaller-than-decoder",
      { "--uapi", "v4", "--fault", "memory-smaller-than-decoder" }, 256,
      TOPO_STD, { "smaller than HDM decoder 0", "128 MiB", "256 MiB" } },
    { "v4-decoder-uncommitted", { "--uapi", "v4", "--decoder", "uncommitted" },
      256, TOPO_STD, { "not committed" } },
    { "v4-comp-regs-size-mismatch",
      { "--uapi", "v4", "--fault", "comp-regs-size-mismatch" }, 256,
      TOPO_STD, { "COMP_REGS", "no CXL capability array header" } },
};

static bool stderr_has(const char *err, const char *needle)
{
    g_auto(GStrv) alts = g_strsplit(needle, "|", -1);
    char **a;

    for (a = alts; *a; a++) {
        if (strstr(err, *a)) {
            return true;
        }
    }
    return false;
}

static void test_refused(const void *data)
{
    const RefusedCase *c = data;
    const char *bin = sim_binary();
    g_autofree char *dev = NULL;
    g_autofree char *args = NULL;
    g_autofree char *err = NULL;
    Sim *sim;
    int i;

    if (!bin) {
        return;
    }
    sim = sim_start(bin, c->mem_mib, c->sim_args);
    switch (c->topo) {
    case TOPO_STD:
        args = std_args(sim);
        break;
    case TOPO_ON_PCIE0:
        dev = device_arg("pcie.0", sim->sock);
        args = g_strconcat(platform->machine, TOPO_FMW_4G TOPO_BRIDGES, dev,
                           NULL);
        break;
    case TOPO_WINDOW_256M:
        dev = device_arg("rp0", sim->sock);
        args = g_strconcat(platform->machine,
                           "-M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=256M "
                           TOPO_BRIDGES, dev, NULL);
        break;
    case TOPO_WINDOW_OTHER_HB:
        dev = device_arg("rp0", sim->sock);
        args = g_strconcat(platform->machine,
                           "-M cxl-fmw.0.targets.0=cxl.2,cxl-fmw.0.size=4G "
                           TOPO_BRIDGES
                           "-device pxb-cxl,id=cxl.2,bus=pcie.0,bus_nr=20 ",
                           dev, NULL);
        break;
    case TOPO_WINDOW_UNPLACED:
        dev = device_arg("rp0", sim->sock);
        args = g_strconcat(platform->machine, platform->unplaced_window,
                           TOPO_BRIDGES, dev, NULL);
        break;
    default:
        g_assert_not_reached();
    }

    err = qemu_expect_failure(args);
    /* QEMU names the -device option that failed, hence the device. */
    if (!strstr(err, "vfio-user-cxl") && !strstr(err, "acc")) {
        fail_test("%s: the error does not name the device: '%s'", c->name,
                err);
    }
    for (i = 0; i < ARRAY_SIZE(c->needles) && c->needles[i]; i++) {
        if (!stderr_has(err, c->needles[i])) {
            fail_test("%s: expected '%s' in QEMU's error, got: '%s'", c->name,
                    c->needles[i], err);
        }
    }
    sim_free(sim);
}

static bool qmp_running(QTestState *qts)
{
    QDict *rsp = qtest_qmp(qts, "{'execute': 'query-status'}");
    QDict *ret;
    bool running;

    g_assert(qdict_haskey(rsp, "return"));
    ret = qdict_get_qdict(rsp, "return");
    running = qdict_get_bool(ret, "running") &&
              !strcmp(qdict_get_str(ret, "status"), "running");
    qobject_unref(rsp);
    return running;
}

/*
 * What a guest's hotplug driver does to the root port's slot: power
 * indicator and slot power both on or both off.  An empty slot comes out
 * of reset powered off, and powering a populated slot off ejects it.
 */
static void slot_power(QTestState *qts, uint32_t exp, bool on)
{
    uint16_t sltctl = cfg_readw(qts, RP_BUS, exp + EXP_SLTCTL);

    sltctl &= ~(EXP_SLTCTL_PIC_MASK | EXP_SLTCTL_PCC);
    sltctl |= on ? EXP_SLTCTL_PIC_ON : EXP_SLTCTL_PIC_OFF | EXP_SLTCTL_PCC;
    cfg_writew(qts, RP_BUS, exp + EXP_SLTCTL, sltctl);
}

static QDict *qmp_device_add(QTestState *qts, Sim *sim)
{
    return qtest_qmp(qts, "{'execute': 'device_add', 'arguments': {"
                     "'driver': 'vfio-user-cxl', 'id': 'acc', 'bus': 'rp0', "
                     "'socket': {'type': 'unix', 'path': %s}}}", sim->sock);
}

/*
 * Waits up to 10 s for DEVICE_DELETED of @id, pumping QMP so that
 * events get read; returns false on timeout.
 */
static bool wait_id_deleted(QTestState *qts, const char *id)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    while (g_get_monotonic_time() < deadline) {
        QDict *ev = qtest_qmp_event_ref(qts, "DEVICE_DELETED");

        if (ev) {
            QDict *data = qdict_get_qdict(ev, "data");
            bool ours = data && qdict_haskey(data, "device") &&
                        !strcmp(qdict_get_str(data, "device"), id);

            qobject_unref(ev);
            if (ours) {
                return true;
            }
            continue;
        }
        qobject_unref(qtest_qmp(qts, "{'execute': 'query-status'}"));
        g_usleep(20 * 1000);
    }
    return false;
}

/*
 * Waits until the simulator accepts a new client: it serves one at a
 * time, so this shows the previous client (QEMU) has gone.
 */
static void assert_sim_free_for_new_client(Sim *sim)
{
    uint64_t before = sim_stat(sim, "connections");
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    int fd = unix_connect(sim->sock);

    while (sim_stat(sim, "connections") == before) {
        if (g_get_monotonic_time() > deadline) {
            fail_test("the simulator did not accept a new client within 10 s: "
                    "QEMU still holds its vfio-user connection");
        }
        g_usleep(20 * 1000);
    }
    close(fd);
}

/*
 * device_add of a device served by @sim fails with @needle in its error,
 * the VM keeps running and nothing is plugged at 13:00.0.
 */
static void assert_device_add_refused(QTestState *qts, Sim *sim,
                                      const char *needle)
{
    QDict *rsp = qmp_device_add(qts, sim);
    const char *desc;

    if (!qdict_haskey(rsp, "error")) {
        fail_test("device_add succeeded; expected a refusal naming '%s'",
                  needle);
    }
    desc = qdict_get_str(qdict_get_qdict(rsp, "error"), "desc");
    g_test_message("device_add refused: %s", desc);
    if (!strstr(desc, needle)) {
        fail_test("device_add was refused without '%s': '%s'", needle, desc);
    }
    qobject_unref(rsp);
    g_assert(qmp_running(qts));
    g_assert_cmphex(cfg_readl(qts, DEV_BUS, 0) & 0xffff, ==, 0xffff);
}

static void test_hotplug(const void *data)
{
    const char *no_memory[] = { "--uapi", data, "--fault", "no-memory",
                                NULL };
    const char *uapi_args[] = { "--uapi", data, NULL };
    const char *reset_fails[] = { "--uapi", data, "--fault", "reset-fails",
                                  NULL };
    const char *bin = sim_binary();
    const uint64_t pattern = 0x5aa5c33c0ff0e11eULL;
    QTestState *qts;
    Sim *bad, *good, *failing;
    QDict *rsp;
    uint32_t exp;
    uint64_t base;
    uint8_t buf[8];

    if (!bin) {
        return;
    }
    bad = sim_start(bin, 256, no_memory);
    good = sim_start(bin, 256, uapi_args);
    failing = sim_start(bin, 256, reset_fails);
    qts = qtest_initf("%s" TOPO_FMW_4G TOPO_BRIDGES, platform->machine);
    ecam_enable(qts);
    setup_root_port(qts);

    /* The root port's slot takes native hotplug. */
    exp = find_exp_cap(qts, RP_BUS);
    g_assert_cmphex(exp, !=, 0);
    g_assert_cmphex(cfg_readl(qts, RP_BUS, exp + EXP_SLTCAP) &
                    EXP_SLTCAP_HPC, ==, EXP_SLTCAP_HPC);
    g_assert(qmp_running(qts));

    /* A broken host is refused and the VM keeps running. */
    assert_device_add_refused(qts, bad, "memory region");
    /* A host whose reset fails fails the device_add, saying why. */
    assert_device_add_refused(qts, failing, "the host reset failed");

    /* A good one is taken. */
    rsp = qmp_device_add(qts, good);
    if (qdict_haskey(rsp, "error")) {
        fail_test("device_add failed: %s",
                qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"));
    }
    qobject_unref(rsp);
    g_assert(qmp_running(qts));
    /* Reset once by device_add, and once more when the slot powers on. */
    g_assert_cmpuint(sim_stat(good, "resets"), ==, 1);
    slot_power(qts, exp, true);
    g_assert_cmpuint(sim_stat(good, "resets"), ==, 2);
    setup_device(qts);
    base = guest_window_base(qts, good->mem_size);
    stq_le_p(buf, pattern);
    sim_mem_write(good, 0, buf, 8);
    g_assert_cmphex(qtest_readq(qts, base), ==, pattern);

    /*
     * Unplug: device_del presses the attention button; the guest answers
     * by turning the power indicator and the slot power off.
     */
    qtest_qmp_device_del_send(qts, "acc");
    slot_power(qts, exp, false);
    if (!wait_id_deleted(qts, "acc")) {
        fail_test("no DEVICE_DELETED within 10 s of device_del and slot "
                  "power-off (13:00.0 ID now 0x%08x, window base reads "
                  "0x%016" PRIx64 ", simulator connections %" PRIu64 ")",
                  cfg_readl(qts, DEV_BUS, 0), qtest_readq(qts, base),
                  sim_stat(good, "connections"));
    }
    g_assert(qmp_running(qts));

    g_assert_cmphex(cfg_readl(qts, DEV_BUS, 0) & 0xffff, ==, 0xffff);
    g_assert_cmphex(qtest_readq(qts, base), !=, pattern);
    assert_sim_free_for_new_client(good);

    qtest_quit(qts);
    sim_free(failing);
    sim_free(good);
    sim_free(bad);
}

/* -------------------------------------------------------------------- */
/* Resets                                                                */
/* -------------------------------------------------------------------- */

/* Where the reset tests leave a pattern in device memory. */
#define RESET_PATTERN_OFF   0x3000

/* What the guest found while setting the device up. */
typedef struct GuestCxl {
    uint64_t base;
    uint64_t block;
    uint64_t hdm;
    uint32_t dvsec;
    uint32_t dvsec_len;
} GuestCxl;

/* The CXL state a reset may or may not keep. */
typedef struct CxlRegs {
    HdmRegs hdm;
    uint16_t dvsec_ctrl;
    uint16_t dvsec_lock;
    uint32_t range1[4];
} CxlRegs;

/*
 * Everything a guest does before it uses the device: ECAM, the root
 * port's bus numbers and window, BAR 0, then the DVSEC and the HDM
 * decoder capability.  The DVSEC must show the boot state.
 */
static void guest_cxl_setup(QTestState *qts, Sim *sim, GuestCxl *g)
{
    uint64_t bar0;

    ecam_enable(qts);
    setup_root_port(qts);
    bar0 = setup_device(qts);
    g->base = guest_window_base(qts, sim->mem_size);
    g->dvsec = guest_find_dvsec(qts, DVSEC_ID_DEVICE, &g->dvsec_len);
    g_assert_cmpuint(g->dvsec_len, >=, DVSEC_STATUS2 + 2);
    g->block = guest_component_block(qts, bar0);
    g->hdm = guest_hdm(qts, g->block);
}

static void read_cxl_regs(QTestState *qts, const GuestCxl *g, CxlRegs *r)
{
    int i;

    read_hdm(qts, g->hdm, &r->hdm);
    r->dvsec_ctrl = cfg_readw(qts, DEV_BUS, g->dvsec + DVSEC_CONTROL);
    r->dvsec_lock = cfg_readw(qts, DEV_BUS, g->dvsec + DVSEC_LOCK);
    for (i = 0; i < ARRAY_SIZE(r->range1); i++) {
        r->range1[i] = cfg_readl(qts, DEV_BUS,
                                 g->dvsec + DVSEC_R1_SIZE_HI + 4 * i);
    }
}

/* Decoder 0 committed and locked at the window base, of the memory size. */
static void assert_decoder_boot_state(const HdmRegs *r, uint64_t base,
                                      uint64_t size, const char *after)
{
    uint32_t want = HDM_CTRL_COMMIT | HDM_CTRL_COMMITTED | HDM_CTRL_LOCK;

    if ((r->ctrl & (want | HDM_CTRL_ERR)) != want ||
        !(r->global & HDM_GLOBAL_ENABLE) ||
        addr_of(r->base_hi, r->base_lo) != base ||
        addr_of(r->size_hi, r->size_lo) != size) {
        fail_test("after %s: decoder 0 is not committed and locked at the "
                  "window: global 0x%08x ctrl 0x%08x base 0x%08x_%08x "
                  "size 0x%08x_%08x (window 0x%" PRIx64 ", size 0x%" PRIx64
                  ")", after, r->global, r->ctrl, r->base_hi, r->base_lo,
                  r->size_hi, r->size_lo, base, size);
    }
}

/*
 * The guest's decoder 0 and DVSEC (Control, Lock, Range 1) read exactly
 * as @before, which is the boot state.
 */
static void assert_cxl_regs_kept(QTestState *qts, Sim *sim,
                                 const GuestCxl *g, const CxlRegs *before,
                                 const char *after)
{
    CxlRegs now;

    read_cxl_regs(qts, g, &now);
    assert_hdm_equal(&before->hdm, &now.hdm, after);
    assert_decoder_boot_state(&now.hdm, g->base, sim->mem_size, after);
    if (now.dvsec_ctrl != before->dvsec_ctrl ||
        now.dvsec_lock != before->dvsec_lock ||
        memcmp(now.range1, before->range1, sizeof(now.range1))) {
        fail_test("after %s: DVSEC changed: control 0x%04x->0x%04x lock "
                  "0x%04x->0x%04x range 1 size 0x%08x_%08x->0x%08x_%08x "
                  "base 0x%08x_%08x->0x%08x_%08x", after, before->dvsec_ctrl,
                  now.dvsec_ctrl, before->dvsec_lock, now.dvsec_lock,
                  before->range1[0], before->range1[1], now.range1[0],
                  now.range1[1], before->range1[2], before->range1[3],
                  now.range1[2], now.range1[3]);
    }
    g_assert_cmphex(check_dvsec_reads(qts, g->dvsec, sim->mem_size), ==,
                    g->base);
}

/* Writes @pattern through the window and checks it is in device memory. */
static void put_pattern(QTestState *qts, Sim *sim, uint64_t base,
                        uint64_t pattern)
{
    uint8_t buf[8];

    qtest_writeq(qts, base + RESET_PATTERN_OFF, pattern);
    sim_mem_read(sim, RESET_PATTERN_OFF, buf, 8);
    g_assert_cmphex(ldq_le_p(buf), ==, pattern);
}

/*
 * The pattern written before the reset reads back through the window, and
 * the window is device memory again: a new write lands in it.
 */
static void assert_memory_after_reset(QTestState *qts, Sim *sim,
                                      uint64_t base, uint64_t pattern,
                                      bool cleared, const char *after)
{
    uint64_t v = qtest_readq(qts, base + RESET_PATTERN_OFF);
    uint8_t buf[8];

    /* A v4 host's CXL reset clears device memory: the window shows that. */
    if (cleared) {
        pattern = 0;
    }
    if (v != pattern) {
        sim_mem_read(sim, RESET_PATTERN_OFF, buf, 8);
        fail_test("after %s: window base + 0x%x reads 0x%016" PRIx64
                  ", expected 0x%016" PRIx64 " (device memory holds 0x%016"
                  PRIx64 ")", after, RESET_PATTERN_OFF, v, pattern,
                  ldq_le_p(buf));
    }
    qtest_writeq(qts, base + RESET_PATTERN_OFF + 8, ~pattern);
    sim_mem_read(sim, RESET_PATTERN_OFF + 8, buf, 8);
    if (ldq_le_p(buf) != ~pattern) {
        fail_test("after %s: a guest write at window base + 0x%x did not "
                  "reach device memory (it holds 0x%016" PRIx64 ")", after,
                  RESET_PATTERN_OFF + 8, ldq_le_p(buf));
    }
}

static void assert_one_reset(Sim *sim, uint64_t before, const char *after)
{
    uint64_t now = sim_stat(sim, "resets");

    if (now != before + 1) {
        fail_test("after %s: the host saw %" PRId64 " resets, expected "
                  "exactly 1", after, (int64_t)(now - before));
    }
}

/* The config registers a guest kernel saves around a reset. */
typedef struct SavedConfig {
    uint32_t bar_lo, bar_hi;
    uint16_t cmd;
} SavedConfig;

static void guest_save_config(QTestState *qts, SavedConfig *c)
{
    c->bar_lo = cfg_readl(qts, DEV_BUS, CFG_BAR0);
    c->bar_hi = cfg_readl(qts, DEV_BUS, CFG_BAR1);
    c->cmd = cfg_readw(qts, DEV_BUS, CFG_COMMAND);
}

/*
 * What pci_reset_function() does after any reset method: put the saved
 * config back.  The command register the reset left is logged.
 */
static void guest_restore_config(QTestState *qts, const SavedConfig *c,
                                 const char *after)
{
    g_test_message("after %s: command 0x%04x (was 0x%04x), BAR 0 "
                   "0x%08x_%08x (was 0x%08x_%08x)", after,
                   cfg_readw(qts, DEV_BUS, CFG_COMMAND), c->cmd,
                   cfg_readl(qts, DEV_BUS, CFG_BAR1),
                   cfg_readl(qts, DEV_BUS, CFG_BAR0), c->bar_hi, c->bar_lo);
    cfg_writel(qts, DEV_BUS, CFG_BAR0, c->bar_lo);
    cfg_writel(qts, DEV_BUS, CFG_BAR1, c->bar_hi);
    cfg_writew(qts, DEV_BUS, CFG_COMMAND, c->cmd);
}

/*
 * The guest's Function Level Reset: Initiate FLR in Device Control, then
 * the saved config back.  Returns Device Control as read after the FLR.
 */
static uint16_t guest_flr(QTestState *qts)
{
    uint32_t exp = find_exp_cap(qts, DEV_BUS);
    SavedConfig saved;
    uint16_t devctl;

    g_assert_cmphex(exp, !=, 0);
    g_assert_cmphex(cfg_readl(qts, DEV_BUS, exp + EXP_DEVCAP) &
                    EXP_DEVCAP_FLR, ==, EXP_DEVCAP_FLR);
    guest_save_config(qts, &saved);
    devctl = cfg_readw(qts, DEV_BUS, exp + EXP_DEVCTL);
    g_assert_cmphex(devctl & EXP_DEVCTL_FLR, ==, 0);
    cfg_writew(qts, DEV_BUS, exp + EXP_DEVCTL, devctl | EXP_DEVCTL_FLR);
    devctl = cfg_readw(qts, DEV_BUS, exp + EXP_DEVCTL);
    guest_restore_config(qts, &saved, "FLR");
    return devctl;
}

/* Secondary Bus Reset of the root port: set, then clear. */
static void guest_secondary_bus_reset(QTestState *qts)
{
    uint16_t bctl = cfg_readw(qts, RP_BUS, CFG_BRIDGE_CONTROL);

    cfg_writew(qts, RP_BUS, CFG_BRIDGE_CONTROL,
               bctl | BRIDGE_CTL_SEC_BUS_RESET);
    cfg_writew(qts, RP_BUS, CFG_BRIDGE_CONTROL,
               bctl & ~BRIDGE_CTL_SEC_BUS_RESET);
}

typedef enum ResetPath {
    RESET_FLR,
    RESET_SBR,
    RESET_CXL,
    RESET_SYSTEM,
} ResetPath;

typedef struct ResetCase {
    const char *name;
    ResetPath path;
    const char *uapi;
} ResetCase;

static const ResetCase reset_cases[] = {
    { "flr", RESET_FLR, "v3" },
    { "flr", RESET_FLR, "v2" },
    { "sbr", RESET_SBR, "v3" },
    { "sbr", RESET_SBR, "v2" },
    { "cxl", RESET_CXL, "v3" },
    { "cxl", RESET_CXL, "v2" },
    { "system", RESET_SYSTEM, "v3" },
    { "system", RESET_SYSTEM, "v2" },
    { "flr", RESET_FLR, "v4" },
    { "sbr", RESET_SBR, "v4" },
    { "cxl", RESET_CXL, "v4" },
    { "system", RESET_SYSTEM, "v4" },
};

/*
 * CXL Reset through DVSEC Control2.  The device performs it: the write
 * must not reach the host, whose DVSEC (and CXL Reset count) stay as
 * they are; Status2 reports completion without error.  Returns the
 * number of host config writes it caused.
 */
static uint64_t guest_cxl_reset(QTestState *qts, Sim *sim, const GuestCxl *g)
{
    uint16_t cap = cfg_readw(qts, DEV_BUS, g->dvsec + DVSEC_CAPABILITY);
    uint16_t ctrl2 = cfg_readw(qts, DEV_BUS, g->dvsec + DVSEC_CONTROL2);
    uint32_t host_dvsec, host_len;
    g_autofree char *host = NULL;
    g_autofree char *host_now = NULL;
    uint64_t writes, cxl_resets;
    SavedConfig saved;
    uint16_t status2;

    g_assert_cmphex(cap & DVSEC_CAP_CXL_RESET, ==, DVSEC_CAP_CXL_RESET);
    g_assert_cmphex(ctrl2 & DVSEC_CTRL2_CXL_RESET, ==, 0);
    host_dvsec = find_dvsec(sim_config_readl, sim, DVSEC_ID_DEVICE,
                            &host_len);
    g_assert_cmphex(host_dvsec, !=, 0);
    host = sim_config_hex(sim, host_dvsec, host_len);
    guest_save_config(qts, &saved);
    writes = sim_stat(sim, "config_writes");
    cxl_resets = sim_stat(sim, "cxl_resets");

    cfg_writew(qts, DEV_BUS, g->dvsec + DVSEC_CONTROL2,
               ctrl2 | DVSEC_CTRL2_CXL_RESET);

    writes = sim_stat(sim, "config_writes") - writes;
    guest_restore_config(qts, &saved, "CXL Reset");
    status2 = cfg_readw(qts, DEV_BUS, g->dvsec + DVSEC_STATUS2);
    g_test_message("after CXL Reset: status2 0x%04x, control2 0x%04x, "
                   "%" PRIu64 " host config writes", status2,
                   cfg_readw(qts, DEV_BUS, g->dvsec + DVSEC_CONTROL2),
                   writes);
    g_assert_cmphex(status2 & DVSEC_ST2_RESET_DONE, ==, DVSEC_ST2_RESET_DONE);
    g_assert_cmphex(status2 & DVSEC_ST2_RESET_ERROR, ==, 0);
    g_assert_cmphex(cfg_readw(qts, DEV_BUS, g->dvsec + DVSEC_CONTROL2) &
                    DVSEC_CTRL2_CXL_RESET, ==, 0);
    host_now = sim_config_hex(sim, host_dvsec, host_len);
    if (strcmp(host, host_now)) {
        fail_test("after CXL Reset: host DVSEC changed\n  before %s\n"
                  "  after  %s", host, host_now);
    }
    g_assert_cmpuint(sim_stat(sim, "cxl_resets"), ==, cxl_resets);
    return writes;
}

static void test_reset(const void *data)
{
    const ResetCase *c = data;
    const char *extra[] = { "--uapi", c->uapi, NULL };
    const char *bin = sim_binary();
    const uint64_t pattern = 0x0f1e2d3c4b5a6978ULL;
    g_autofree char *what = NULL;
    uint64_t resets, cxl_writes = 0;
    QTestState *qts;
    GuestCxl g, again;
    CxlRegs boot;
    Sim *sim;

    if (!bin) {
        return;
    }
    what = g_strdup_printf("%s reset (uAPI %s)", c->name, c->uapi);
    sim = sim_start(bin, 256, extra);
    qts = start_qemu(sim);
    guest_cxl_setup(qts, sim, &g);
    read_cxl_regs(qts, &g, &boot);
    assert_decoder_boot_state(&boot.hdm, g.base, sim->mem_size, "boot");
    put_pattern(qts, sim, g.base, pattern);
    resets = sim_stat(sim, "resets");

    switch (c->path) {
    case RESET_FLR:
        g_assert_cmphex(guest_flr(qts) & EXP_DEVCTL_FLR, ==, 0);
        break;
    case RESET_SBR:
        guest_secondary_bus_reset(qts);
        g_test_message("after SBR: BAR 0 0x%08x, command 0x%04x",
                       cfg_readl(qts, DEV_BUS, CFG_BAR0),
                       cfg_readw(qts, DEV_BUS, CFG_COMMAND));
        /* The bus reset reset the device's config space. */
        setup_device(qts);
        break;
    case RESET_CXL:
        cxl_writes = guest_cxl_reset(qts, sim, &g);
        break;
    case RESET_SYSTEM:
        qobject_unref(qtest_qmp(qts, "{'execute': 'system_reset'}"));
        qtest_qmp_eventwait(qts, "RESET");
        /* Firmware's PCI setup is gone: do it again. */
        guest_cxl_setup(qts, sim, &again);
        g_assert_cmphex(again.base, ==, g.base);
        g_assert_cmphex(again.hdm, ==, g.hdm);
        g_assert_cmphex(again.dvsec, ==, g.dvsec);
        break;
    default:
        g_assert_not_reached();
    }

    g_assert(qmp_running(qts));
    assert_one_reset(sim, resets, what);
    assert_cxl_regs_kept(qts, sim, &g, &boot, what);
    assert_memory_after_reset(qts, sim, g.base, pattern,
                              !strcmp(c->uapi, "v4"), what);

    /*
     * A CXL Reset writes nothing into the host's config space: the DVSEC
     * write stays in the device, and the host reset (a function reset,
     * without vfio-pci's quiesce steps) leaves PCI configuration alone.
     */
    if (c->path == RESET_CXL && cxl_writes != 0) {
        fail_test("CXL Reset caused %" PRIu64 " host config writes, none "
                  "expected: the DVSEC write or a quiesce step reached the "
                  "host", cxl_writes);
    }

    qtest_quit(qts);
    sim_free(sim);
}

/* Bytes of the file at @path from @from on ("" if it is shorter). */
static char *file_tail(const char *path, size_t from)
{
    g_autofree char *all = NULL;
    g_autoptr(GError) err = NULL;
    size_t len;

    if (!g_file_get_contents(path, &all, &len, &err)) {
        fail_test("cannot read %s: %s", path, err->message);
    }
    return g_strdup(from < len ? all + from : "");
}

static size_t file_size(const char *path)
{
    struct stat st;

    g_assert_cmpint(stat(path, &st), ==, 0);
    return st.st_size;
}

/*
 * A host whose reset fails: after the guest's FLR the VM keeps running,
 * QEMU says the device memory stays unmapped, and the window no longer
 * reaches device memory.  QEMU's stderr goes to a file (sh redirection in
 * the command line qtest_init runs).
 */
static void test_reset_failure(const void *data)
{
    const char *uapi = data;
    const char *extra[] = { "--uapi", uapi, "--fault", "reset-fails", NULL };
    const char *bin = sim_binary();
    const uint64_t pattern = 0x3c3c5a5aa5a5c3c3ULL;
    g_autofree char *log = NULL;
    g_autofree char *err = NULL;
    g_autofree char *boot_err = NULL;
    uint64_t failures;
    size_t log_at;
    QTestState *qts;
    QDict *status;
    uint8_t buf[8];
    GuestCxl g;
    Sim *sim;

    if (!bin) {
        return;
    }
    sim = sim_start(bin, 256, extra);
    log = g_build_filename(sim->dir, "qemu-stderr", NULL);
    qts = start_qemu_logging(sim, log);
    guest_cxl_setup(qts, sim, &g);

    /*
     * QEMU resets every device once at machine start; the host reset fails
     * already then, so the memory must be hidden from the guest from the
     * start, said so on stderr and in the cxl-status property.
     */
    stq_le_p(buf, pattern);
    sim_mem_write(sim, 0, buf, 8);
    boot_err = file_tail(log, 0);
    g_test_message("after machine start: stderr '%s'", boot_err);
    if (!strstr(boot_err, "device memory stays unmapped from the guest")) {
        fail_test("the failed reset at machine start was not reported: '%s'",
                  boot_err);
    }
    if (qtest_readq(qts, g.base) == pattern) {
        fail_test("after a failed reset at machine start the window still "
                  "reads device memory");
    }
    status = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments': "
                       "{'path': '/machine/peripheral/acc', "
                       "'property': 'cxl-status'}}");
    g_assert(g_str_has_prefix(qdict_get_str(status, "return"), "unmapped:"));
    qobject_unref(status);

    /*
     * Guest FLRs fail again, ten times: memory still hidden, VM running,
     * cxl-status says why, and stderr is not written again (the failure
     * was reported when the memory went away; a guest must not be able to
     * flood it).
     */
    failures = sim_stat(sim, "reset_failures");
    log_at = file_size(log);
    for (int i = 0; i < 10; i++) {
        guest_flr(qts);
    }
    g_assert_cmpuint(sim_stat(sim, "reset_failures"), ==, failures + 10);
    g_assert(qmp_running(qts));
    err = file_tail(log, log_at);
    g_test_message("QEMU stderr after the FLRs: '%s'", err);
    if (strstr(err, "device memory stays unmapped")) {
        fail_test("guest FLRs against a failing host wrote to stderr again: "
                  "'%s'", err);
    }
    status = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments': "
                       "{'path': '/machine/peripheral/acc', "
                       "'property': 'cxl-status'}}");
    if (!strstr(qdict_get_str(status, "return"), "after FLR reset, device "
                "memory stays unmapped from the guest")) {
        fail_test("cxl-status does not name the failed FLR: '%s'",
                  qdict_get_str(status, "return"));
    }
    qobject_unref(status);

    /* Neither reads nor writes reach device memory. */
    if (qtest_readq(qts, g.base) == pattern) {
        fail_test("after a failed FLR the window reads device memory");
    }
    qtest_writeq(qts, g.base + 8, ~pattern);
    sim_mem_read(sim, 8, buf, 8);
    g_assert_cmphex(ldq_le_p(buf), !=, ~pattern);

    qtest_quit(qts);
    sim_free(sim);
}

/*
 * The host bridge's HDM decoder 0, when it has one (hdm_for_passthrough=on
 * on a single-root-port pxb-cxl), must route the window to the root port:
 * committed at the window base with the device's size, HDM Decoder Enable
 * set.  A system reset clears the host bridge's registers, so this must
 * hold after machine start (the first reset) and again after a later one.
 */

/*
 * The HDM decoder capability of the one host bridge that has one.  The
 * machine maps the host bridges' component register blocks one after the
 * other, every 64 KiB from the start of its "cxl_host_reg" region, most
 * recently created first; CXL.cachemem is at 0x1000 in each.
 */
static uint64_t host_bridge_hdm(QTestState *qts)
{
    uint64_t host_regs = memory_map_find(qts, "cxl_host_reg");
    int hb;

    for (hb = 0; hb < 8; hb++) {
        uint64_t cm = host_regs + hb * 0x10000ULL + 0x1000;
        uint32_t header = qtest_readl(qts, cm);
        uint32_t i;

        if ((header & 0xffff) != 1) {
            break;
        }
        for (i = 1; i <= header >> 24; i++) {
            uint32_t entry = qtest_readl(qts, cm + 4 * i);

            if ((entry & 0xffff) == 5) {
                return cm + (entry >> 20);
            }
        }
    }
    fail_test("no host bridge has an HDM decoder capability");
    return 0;
}

static void assert_host_bridge_decoder(QTestState *qts, uint64_t base,
                                       uint64_t size, const char *when)
{
    uint64_t hdm = host_bridge_hdm(qts);
    uint64_t hb_base = (uint64_t)qtest_readl(qts, hdm + 0x14) << 32 |
                       qtest_readl(qts, hdm + 0x10);
    uint64_t hb_size = (uint64_t)qtest_readl(qts, hdm + 0x1c) << 32 |
                       qtest_readl(qts, hdm + 0x18);
    uint32_t ctrl = qtest_readl(qts, hdm + 0x20);
    uint32_t global = qtest_readl(qts, hdm + 0x04);

    g_test_message("%s: host bridge HDM global 0x%x base 0x%" PRIx64
                   " size 0x%" PRIx64 " ctrl 0x%x target 0x%x", when, global,
                   hb_base, hb_size, ctrl, qtest_readl(qts, hdm + 0x24));
    g_assert_cmphex(global & 0x2, ==, 0x2);
    g_assert_cmphex(hb_base, ==, base);
    g_assert_cmphex(hb_size, ==, size);
    g_assert_cmphex(ctrl & 0x700, ==, 0x700);
    g_assert_cmphex(qtest_readl(qts, hdm + 0x24) & 0xff, ==, 0);
}

static void test_host_bridge_decoder(void)
{
    const char *bin = sim_binary();
    g_autofree char *dev = NULL;
    g_autofree char *args = NULL;
    QTestState *qts;
    uint64_t window;
    Sim *sim;

    if (!bin) {
        return;
    }
    sim = sim_start(bin, 512, NULL);
    dev = device_arg("rp0", sim->sock);
    args = g_strconcat(platform->machine, TOPO_FMW_4G
                       "-device pxb-cxl,id=cxl.1,bus=pcie.0,bus_nr=12,"
                       "hdm_for_passthrough=on "
                       "-device cxl-rp,id=rp0,bus=cxl.1,chassis=0,slot=0,"
                       "port=0 ", dev, NULL);
    qts = qtest_init(args);

    /* The machine's one window, cxl-fmw.0. */
    window = memory_map_find(qts, "cxl-fixed-memory-region");
    assert_host_bridge_decoder(qts, window, 512 * MiB,
                               "after machine start");
    qobject_unref(qtest_qmp(qts, "{'execute': 'system_reset'}"));
    qtest_qmp_eventwait(qts, "RESET");
    assert_host_bridge_decoder(qts, window, 512 * MiB,
                               "after system_reset");

    qtest_quit(qts);
    sim_free(sim);
}

/* The earlier v4-era tree's region type (4) is found as well. */
static void test_uapi_v4_early(const void *data)
{
    const char *extra[] = { "--uapi", "v4", "--v4-region-type", data, NULL };
    const char *bin = sim_binary();
    QTestState *qts;
    GuestCxl g;
    Sim *sim;

    if (!bin) {
        return;
    }
    sim = sim_start(bin, 256, extra);
    qts = start_qemu(sim);
    guest_cxl_setup(qts, sim, &g);
    g_assert_cmphex(g.base, !=, 0);
    qtest_quit(qts);
    sim_free(sim);
}

/*
 * The host address a v4 host shows in its live decoder reads: distinct
 * from every value the guest may legitimately see (window base, sizes).
 */
#define V4_HPA              UINT64_C(0x3a50000000)

/*
 * Fails if any dword the guest can read of the component block or the
 * CXL Device DVSEC holds the host address (its low or its high dword).
 */
static void assert_no_host_address(QTestState *qts, const GuestCxl *g,
                                   const char *after)
{
    uint32_t lo = (uint32_t)V4_HPA, hi = V4_HPA >> 32;
    uint32_t off, v;

    for (off = 0; off < 0x10000; off += 4) {
        v = qtest_readl(qts, g->block + off);
        if (v == lo || (v == hi && off >= 0x1000)) {
            fail_test("after %s: component block offset 0x%x reads 0x%08x: "
                      "the host address 0x%" PRIx64 " reached the guest",
                      after, off, v, V4_HPA);
        }
    }
    for (off = 0; off < g->dvsec_len; off += 4) {
        v = cfg_readl(qts, DEV_BUS, g->dvsec + off);
        if (v == lo) {
            fail_test("after %s: DVSEC offset 0x%x reads 0x%08x: the host "
                      "address reached the guest", after, off, v);
        }
    }
}

/*
 * A v4 host reads its decoder live, with the host address in BASE: the
 * guest never sees it, after realize or after any reset.
 */
static void test_v4_hpa_hidden(void)
{
    g_autofree char *hpa = g_strdup_printf("0x%" PRIx64, V4_HPA);
    const char *extra[] = { "--uapi", "v4", "--hpa", hpa, NULL };
    const char *bin = sim_binary();
    QTestState *qts;
    GuestCxl g, again;
    Sim *sim;

    if (!bin) {
        return;
    }
    sim = sim_start(bin, 256, extra);
    qts = start_qemu(sim);
    guest_cxl_setup(qts, sim, &g);
    assert_no_host_address(qts, &g, "realize");
    guest_flr(qts);
    assert_no_host_address(qts, &g, "FLR");
    guest_cxl_reset(qts, sim, &g);
    assert_no_host_address(qts, &g, "CXL Reset");
    guest_secondary_bus_reset(qts);
    setup_device(qts);
    assert_no_host_address(qts, &g, "secondary bus reset");
    qobject_unref(qtest_qmp(qts, "{'execute': 'system_reset'}"));
    qtest_qmp_eventwait(qts, "RESET");
    guest_cxl_setup(qts, sim, &again);
    assert_no_host_address(qts, &again, "system reset");
    qtest_quit(qts);
    sim_free(sim);
}

/*
 * A v4 host faults the memory mapping while the function's Memory Space
 * Enable is clear (the simulator truncates its memory file, so a stray
 * access through QEMU's mapping would kill QEMU with SIGBUS).  The guest
 * toggles the bit the way firmware and Linux do while sizing BARs, and
 * the test keeps touching the window in between, through QEMU's own
 * accesses to the mapping: QEMU survives, the data stays, and no access
 * was refused on the host.
 */
static void test_v4_memory_enable(void)
{
    const char *extra[] = { "--uapi", "v4", NULL };
    const char *bin = sim_binary();
    uint16_t cmd;
    QTestState *qts;
    uint8_t buf[8];
    GuestCxl g;
    Sim *sim;
    int i;

    if (!bin) {
        return;
    }
    sim = sim_start(bin, 256, extra);
    qts = start_qemu(sim);
    guest_cxl_setup(qts, sim, &g);
    cmd = cfg_readw(qts, DEV_BUS, CFG_COMMAND);
    for (i = 0; i < 20; i++) {
        uint64_t v = 0x5a5a000000000000ULL | i;

        cfg_writew(qts, DEV_BUS, CFG_COMMAND, cmd & ~CFG_CMD_MEM);
        qtest_writeq(qts, g.base + 8 * i, v);
        g_assert_cmphex(qtest_readq(qts, g.base + 8 * i), ==, v);
        cfg_writew(qts, DEV_BUS, CFG_COMMAND, cmd | CFG_CMD_MEM);
        sim_mem_read(sim, 8 * i, buf, 8);
        g_assert_cmphex(ldq_le_p(buf), ==, v);
    }
    g_assert(qmp_running(qts));
    g_assert_cmpuint(sim_stat(sim, "gated_accesses"), ==, 0);
    qtest_quit(qts);
    sim_free(sim);
}

/* The kernel series' interfaces the simulator reproduces. */
static const char *const uapis[] = { "v2", "v3", "v4" };

/*
 * A host bridge without HDM decoders (pxb-cxl's default) works, but a
 * Linux 7.x guest cannot assemble a region over the device: QEMU says
 * so, once, naming the fix; with the host bridge's decoders it says
 * nothing.
 */
static void test_host_bridge_without_decoders(void)
{
    const char *bin = sim_binary();
    const char *warning = "has no HDM decoders";
    g_autofree char *log = NULL;
    g_autofree char *err = NULL;
    g_autofree char *with_hdm = NULL;
    g_autofree char *dev = NULL;
    QTestState *qts;
    const char *at;
    Sim *sim;

    if (!bin) {
        return;
    }
    sim = sim_start(bin, 256, NULL);
    log = g_build_filename(sim->dir, "qemu-stderr", NULL);
    qts = start_qemu_logging(sim, log);
    qobject_unref(qtest_qmp(qts, "{'execute': 'system_reset'}"));
    qtest_qmp_eventwait(qts, "RESET");
    qtest_quit(qts);
    err = file_tail(log, 0);
    at = strstr(err, warning);
    if (!at || !strstr(err, "hdm_for_passthrough=on") ||
        !strstr(err, "'cxl.1'") || strstr(at + 1, warning)) {
        fail_test("expected one warning naming host bridge 'cxl.1' and "
                  "hdm_for_passthrough=on, got: '%s'", err);
    }

    dev = device_arg("rp0", sim->sock);
    with_hdm = g_strdup_printf("%s" TOPO_FMW_4G
                               "-device pxb-cxl,id=cxl.1,bus=pcie.0,"
                               "bus_nr=12,hdm_for_passthrough=on "
                               "-device cxl-rp,id=rp0,bus=cxl.1,chassis=0,"
                               "slot=0,port=0 %s 2>%s", platform->machine,
                               dev, log);
    qts = qtest_init(with_hdm);
    qtest_quit(qts);
    g_free(err);
    err = file_tail(log, 0);
    if (strstr(err, warning)) {
        fail_test("warned although the host bridge has decoders: '%s'", err);
    }
    sim_free(sim);
}

/*
 * A function whose Device Capabilities do not advertise FLR: a guest
 * write of Initiate FLR is an ordinary config write, never a host reset,
 * and the memory stays where it is.
 */
static void test_no_flr(void)
{
    const char *extra[] = { "--fault", "no-flr", NULL };
    const char *bin = sim_binary();
    const uint64_t pattern = 0x6b6b1e1e2d2d3c3cULL;
    uint32_t exp;
    uint64_t resets;
    uint16_t devctl;
    QTestState *qts;
    GuestCxl g;
    Sim *sim;

    if (!bin) {
        return;
    }
    sim = sim_start(bin, 256, extra);
    qts = start_qemu(sim);
    guest_cxl_setup(qts, sim, &g);
    exp = find_exp_cap(qts, DEV_BUS);
    g_assert_cmphex(exp, !=, 0);
    g_assert_cmphex(cfg_readl(qts, DEV_BUS, exp + EXP_DEVCAP) &
                    EXP_DEVCAP_FLR, ==, 0);
    put_pattern(qts, sim, g.base, pattern);
    resets = sim_stat(sim, "resets");
    devctl = cfg_readw(qts, DEV_BUS, exp + EXP_DEVCTL);
    cfg_writew(qts, DEV_BUS, exp + EXP_DEVCTL, devctl | EXP_DEVCTL_FLR);
    g_assert_cmpuint(sim_stat(sim, "resets"), ==, resets);
    g_assert(qmp_running(qts));
    assert_memory_after_reset(qts, sim, g.base, pattern, false,
                              "Initiate FLR on a function without FLR");
    qtest_quit(qts);
    sim_free(sim);
}

/*
 * Our properties carry descriptions (what -device <type>,help prints), as
 * QEMU's own do.
 */
static void test_property_help(void)
{
    static const char *const types[] = { "vfio-cxl", "vfio-user-cxl" };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(types); i++) {
        QTestState *qts = qtest_init("-machine none");
        QDict *rsp = qtest_qmp(qts, "{'execute': 'device-list-properties', "
                               "'arguments': {'typename': %s}}", types[i]);
        QListEntry *e;
        int described = 0;

        QLIST_FOREACH_ENTRY(qdict_get_qlist(rsp, "return"), e) {
            QDict *prop = qobject_to(QDict, qlist_entry_obj(e));
            const char *name = qdict_get_str(prop, "name");

            if (!strcmp(name, "cxl-fmw") || !strcmp(name, "cxl-status")) {
                if (!qdict_haskey(prop, "description") ||
                    strlen(qdict_get_str(prop, "description")) < 20) {
                    fail_test("%s: property %s has no description", types[i],
                              name);
                }
                described++;
            }
        }
        g_assert_cmpint(described, ==, 2);
        qobject_unref(rsp);
        qtest_quit(qts);
    }
}

/* Options that cannot work are refused before the host is opened. */
static void test_refused_options(void)
{
    g_autofree char *fmw_args = g_strconcat(
        platform->machine,
        "-device '{\"driver\":\"vfio-user-cxl\",\"id\":\"acc\","
        "\"socket\":{\"type\":\"unix\",\"path\":\"/nonexistent\"},"
        "\"cxl-fmw\":-2}'", NULL);
    g_autofree char *migration_args = g_strconcat(
        platform->machine,
        "-device vfio-cxl,id=acc,host=0000:00:1f.7,enable-migration=on",
        NULL);
    g_autofree char *fmw = qemu_expect_failure(fmw_args);
    g_autofree char *migration = qemu_expect_failure(migration_args);

    if (!strstr(fmw, "acc") || !strstr(fmw, "cxl-fmw=-2")) {
        fail_test("cxl-fmw=-2 was not refused by name: '%s'", fmw);
    }
    if (!strstr(migration, "acc") ||
        !strstr(migration, "enable-migration=on cannot work")) {
        fail_test("enable-migration=on was not refused: '%s'", migration);
    }
}

/* -------------------------------------------------------------------- */
/* Several devices                                                       */
/* -------------------------------------------------------------------- */

/*
 * Two host bridges: cxl.1 with root ports rp0 and rp1 (port 0 and 1, so it
 * has HDM decoders) and window 0 of 4 GiB, cxl.2 with rp2 and window 1 of
 * 1 GiB; and QEMU's own cxl-type3 memory below cxl.3 in window 2.
 */
#define TOPO_SEVERAL \
    "-M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G," \
    "cxl-fmw.1.targets.0=cxl.2,cxl-fmw.1.size=1G," \
    "cxl-fmw.2.targets.0=cxl.3,cxl-fmw.2.size=1G " \
    "-device pxb-cxl,id=cxl.1,bus=pcie.0,bus_nr=12 " \
    "-device cxl-rp,id=rp0,bus=cxl.1,chassis=0,slot=0,port=0 " \
    "-device cxl-rp,id=rp1,bus=cxl.1,chassis=0,slot=1,port=1 " \
    "-device pxb-cxl,id=cxl.2,bus=pcie.0,bus_nr=40 " \
    "-device cxl-rp,id=rp2,bus=cxl.2,chassis=0,slot=2,port=0 " \
    "-device pxb-cxl,id=cxl.3,bus=pcie.0,bus_nr=60 " \
    "-device cxl-rp,id=rp3,bus=cxl.3,chassis=0,slot=3,port=0 " \
    "-object memory-backend-ram,id=t3mem,size=256M " \
    "-device cxl-type3,bus=rp3,volatile-memdev=t3mem,id=t3 "

/* rp1 is function 1.0 of bus 12: its config space in ECAM. */
#define RP1_FN              (1u << 15)

static char *device_arg_at(const char *id, const char *bus, Sim *sim)
{
    return g_strdup_printf("-device '{\"driver\":\"vfio-user-cxl\","
                           "\"id\":\"%s\",\"bus\":\"%s\","
                           "\"socket\":{\"type\":\"unix\","
                           "\"path\":\"%s\"}}' ", id, bus, sim->sock);
}

static QDict *qmp_device_add_at(QTestState *qts, Sim *sim, const char *id,
                                const char *bus)
{
    return qtest_qmp(qts, "{'execute': 'device_add', 'arguments': {"
                     "'driver': 'vfio-user-cxl', 'id': %s, 'bus': %s, "
                     "'socket': {'type': 'unix', 'path': %s}}}", id, bus,
                     sim->sock);
}

/* Where the device @id says its memory is, and in which window. */
static uint64_t device_base(QTestState *qts, const char *id, int *window)
{
    g_autofree char *path = g_strdup_printf("/machine/peripheral/%s", id);
    QDict *rsp = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments': "
                           "{'path': %s, 'property': 'cxl-status'}}", path);
    const char *status = qdict_get_str(rsp, "return");
    uint64_t size, base;

    if (sscanf(status, "mapped: 0x%" SCNx64 " bytes at 0x%" SCNx64
               " in CXL fixed memory window %d", &size, &base, window) != 3) {
        fail_test("%s: cxl-status '%s' does not say where its memory is", id,
                  status);
    }
    qobject_unref(rsp);
    return base;
}

/* Host bridge cxl.1's decoder @n: base, size, control, target port. */
static void assert_hb_decoder(QTestState *qts, int n, uint64_t base,
                              uint64_t size, int port, const char *when)
{
    uint64_t d = host_bridge_hdm(qts) + 0x10 + 0x20 * n;
    uint64_t b = addr_of(qtest_readl(qts, d + 4), qtest_readl(qts, d));
    uint64_t sz = addr_of(qtest_readl(qts, d + 0xc), qtest_readl(qts, d + 8));
    uint32_t ctrl = qtest_readl(qts, d + 0x10);
    uint32_t target = qtest_readl(qts, d + 0x14);

    g_test_message("%s: host bridge decoder %d: 0x%" PRIx64 " + 0x%" PRIx64
                   " ctrl 0x%x target 0x%x", when, n, b, sz, ctrl, target);
    if (size == 0) {
        if (ctrl & HDM_CTRL_COMMITTED) {
            fail_test("%s: host bridge decoder %d is still committed "
                      "(0x%" PRIx64 " + 0x%" PRIx64 ")", when, n, b, sz);
        }
        return;
    }
    if (b != base || sz != size || (ctrl & 0x700) != 0x700 ||
        (target & 0xff) != port) {
        fail_test("%s: host bridge decoder %d routes 0x%" PRIx64 " + 0x%"
                  PRIx64 " to port %u (ctrl 0x%x), expected 0x%" PRIx64
                  " + 0x%" PRIx64 " to port %d", when, n, b, sz,
                  target & 0xff, ctrl, base, size, port);
    }
}

/* Writes @pattern at @base through the window; only @sim sees it. */
static void assert_memory_is(QTestState *qts, uint64_t base, Sim *sim,
                             Sim *const *others, uint64_t pattern)
{
    uint8_t buf[8];

    qtest_writeq(qts, base, pattern);
    sim_mem_read(sim, 0, buf, 8);
    g_assert_cmphex(ldq_le_p(buf), ==, pattern);
    for (; *others; others++) {
        sim_mem_read(*others, 0, buf, 8);
        g_assert_cmphex(ldq_le_p(buf), !=, pattern);
    }
}

/*
 * Three accelerators and a cxl-type3: two share host bridge cxl.1's
 * window, one has cxl.2's.  Each lies where the placement rule says, the
 * host bridge routes each range to its root port, the memories are
 * independent; hot-unplug and replug of the second device, repeated
 * (VFIO_CXL_REPLUG_CYCLES, default 3), leave the others alone and give the
 * same address back; one too big for
 * the window is refused and harms nothing; a system reset keeps it all.
 */
static void test_several_devices(void)
{
    const char *bin = sim_binary();
    g_autofree char *args = NULL;
    g_autofree char *a0 = NULL, *a1 = NULL, *a2 = NULL;
    const char *env_cycles = g_getenv("VFIO_CXL_REPLUG_CYCLES");
    int cycles = env_cycles ? atoi(env_cycles) : 3;
    Sim *s0, *s1, *s2, *big;
    uint64_t w0, b1, b2;
    QTestState *qts;
    uint32_t exp;
    int win, cycle;
    QDict *rsp;

    if (!bin) {
        return;
    }
    s0 = sim_start(bin, 512, NULL);
    s1 = sim_start(bin, 256, NULL);
    s2 = sim_start(bin, 256, NULL);
    big = sim_start(bin, 4096, NULL);
    a0 = device_arg_at("acc0", "rp0", s0);
    a1 = device_arg_at("acc1", "rp1", s1);
    a2 = device_arg_at("acc2", "rp2", s2);
    args = g_strconcat(platform->machine, TOPO_SEVERAL, a0, a1, a2, NULL);
    qts = qtest_init(args);

    w0 = device_base(qts, "acc0", &win);
    g_assert_cmpint(win, ==, 0);
    g_assert_cmphex(device_base(qts, "acc1", &win), ==, w0 + 512 * MiB);
    g_assert_cmpint(win, ==, 0);
    b2 = device_base(qts, "acc2", &win);
    g_assert_cmpint(win, ==, 1);
    assert_hb_decoder(qts, 0, w0, 512 * MiB, 0, "machine start");
    assert_hb_decoder(qts, 1, w0 + 512 * MiB, 256 * MiB, 1, "machine start");
    assert_hb_decoder(qts, 2, 0, 0, 0, "machine start");
    {
        Sim *not0[] = { s1, s2, NULL }, *not1[] = { s0, s2, NULL };
        Sim *not2[] = { s0, s1, NULL };

        assert_memory_is(qts, w0, s0, not0, 0x0a0a0a0a00000000ULL);
        assert_memory_is(qts, w0 + 512 * MiB, s1, not1, 0x1b1b1b1b11111111ULL);
        assert_memory_is(qts, b2, s2, not2, 0x2c2c2c2c22222222ULL);
    }

    /* rp1's slot: unplug acc1, replug it, VFIO_CXL_REPLUG_CYCLES times. */
    ecam_enable(qts);
    exp = find_exp_cap(qts, RP_BUS);
    for (cycle = 0; cycle < cycles; cycle++) {
        g_autofree char *when = g_strdup_printf("replug %d", cycle);

        qtest_qmp_device_del_send(qts, "acc1");
        slot_power(qts, RP1_FN + exp, false);
        if (!wait_id_deleted(qts, "acc1")) {
            fail_test("acc1: no DEVICE_DELETED (cycle %d)", cycle);
        }
        assert_hb_decoder(qts, 0, w0, 512 * MiB, 0, "after unplug");
        assert_hb_decoder(qts, 1, 0, 0, 0, "after unplug");
        assert_sim_free_for_new_client(s1);

        rsp = qmp_device_add_at(qts, s1, "acc1", "rp1");
        if (qdict_haskey(rsp, "error")) {
            fail_test("device_add acc1: %s",
                      qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"));
        }
        qobject_unref(rsp);
        slot_power(qts, RP1_FN + exp, true);
        b1 = device_base(qts, "acc1", &win);
        g_assert_cmphex(b1, ==, w0 + 512 * MiB);
        assert_hb_decoder(qts, 0, w0, 512 * MiB, 0, when);
        assert_hb_decoder(qts, 1, b1, 256 * MiB, 1, when);
        g_assert_cmphex(qtest_readq(qts, w0), ==, 0x0a0a0a0a00000000ULL);
        g_assert_cmphex(qtest_readq(qts, b2), ==, 0x2c2c2c2c22222222ULL);
    }

    /* A device larger than what is left of window 0 is refused. */
    qtest_qmp_device_del_send(qts, "acc1");
    slot_power(qts, RP1_FN + exp, false);
    g_assert(wait_id_deleted(qts, "acc1"));
    rsp = qmp_device_add_at(qts, big, "accbig", "rp1");
    if (!qdict_haskey(rsp, "error")) {
        fail_test("a 4 GiB device fit beside a 512 MiB one in a 4 GiB window");
    }
    {
        const char *desc = qdict_get_str(qdict_get_qdict(rsp, "error"),
                                         "desc");

        g_test_message("device_add accbig: %s", desc);
        if (!strstr(desc, "accbig") || !strstr(desc, "window 0") ||
            !strstr(desc, "acc0") || !strstr(desc, "cxl-fmw.0.size")) {
            fail_test("the refusal does not name the device, the window, "
                      "the device in it and the fix: '%s'", desc);
        }
    }
    qobject_unref(rsp);
    g_assert(qmp_running(qts));
    g_assert_cmphex(qtest_readq(qts, w0), ==, 0x0a0a0a0a00000000ULL);
    assert_hb_decoder(qts, 0, w0, 512 * MiB, 0, "after the refusal");
    assert_hb_decoder(qts, 1, 0, 0, 0, "after the refusal");

    /*
     * A second device on a simulator that serves acc0 already: refused
     * quickly with a reason (not QEMU's 5 s reply timeout), harmlessly.
     */
    {
        gint64 t0 = g_get_monotonic_time();
        const char *desc;

        rsp = qmp_device_add_at(qts, s0, "dup", "rp1");
        g_assert(qdict_haskey(rsp, "error"));
        desc = qdict_get_str(qdict_get_qdict(rsp, "error"), "desc");
        g_test_message("device_add on a busy socket: %s (%" PRId64 " ms)",
                       desc, (g_get_monotonic_time() - t0) / 1000);
        if (!strstr(desc, "busy")) {
            fail_test("a busy simulator socket was not reported: '%s'", desc);
        }
        g_assert_cmpint(g_get_monotonic_time() - t0, <, 4 * G_USEC_PER_SEC);
        g_assert_cmpuint(sim_stat(s0, "busy_refusals"), ==, 1);
        qobject_unref(rsp);
        g_assert_cmphex(qtest_readq(qts, w0), ==, 0x0a0a0a0a00000000ULL);
    }

    /* acc1 back, then a system reset: the same layout again. */
    qobject_unref(qmp_device_add_at(qts, s1, "acc1", "rp1"));
    qobject_unref(qtest_qmp(qts, "{'execute': 'system_reset'}"));
    qtest_qmp_eventwait(qts, "RESET");
    g_assert_cmphex(device_base(qts, "acc0", &win), ==, w0);
    g_assert_cmphex(device_base(qts, "acc1", &win), ==, w0 + 512 * MiB);
    g_assert_cmphex(device_base(qts, "acc2", &win), ==, b2);
    assert_hb_decoder(qts, 0, w0, 512 * MiB, 0, "system reset");
    assert_hb_decoder(qts, 1, w0 + 512 * MiB, 256 * MiB, 1, "system reset");

    /* acc0's FLR, CXL Reset and secondary bus reset leave them alone. */
    {
        GuestCxl g;

        guest_cxl_setup(qts, s0, &g);
        g_assert_cmphex(g.base, ==, w0);
        guest_flr(qts);
        assert_hb_decoder(qts, 0, w0, 512 * MiB, 0, "FLR");
        assert_hb_decoder(qts, 1, w0 + 512 * MiB, 256 * MiB, 1, "FLR");
        guest_cxl_reset(qts, s0, &g);
        assert_hb_decoder(qts, 0, w0, 512 * MiB, 0, "CXL Reset");
        assert_hb_decoder(qts, 1, w0 + 512 * MiB, 256 * MiB, 1, "CXL Reset");
        guest_secondary_bus_reset(qts);
        assert_hb_decoder(qts, 0, w0, 512 * MiB, 0, "bus reset");
        assert_hb_decoder(qts, 1, w0 + 512 * MiB, 256 * MiB, 1, "bus reset");
        g_assert_cmphex(device_base(qts, "acc1", &win), ==, w0 + 512 * MiB);
    }

    qtest_quit(qts);
    sim_free(big);
    sim_free(s2);
    sim_free(s1);
    sim_free(s0);
}

/*
 * The vfio-user server dies while the guest runs: within a watch period
 * the device hides its memory, cxl-status says the host is gone and why
 * (one error line, naming the cause rather than an errno), the VM keeps
 * running, and the device can still be removed.
 */
static void test_host_gone(void)
{
    const char *bin = sim_binary();
    const uint64_t pattern = 0x7e7e1f1f3d3d5b5bULL;
    g_autofree char *log = NULL;
    g_autofree char *err = NULL;
    const char *status, *at;
    QTestState *qts;
    QDict *rsp;
    uint32_t exp;
    GuestCxl g;
    Sim *sim;

    if (!bin) {
        return;
    }
    sim = sim_start(bin, 256, NULL);
    log = g_build_filename(sim->dir, "qemu-stderr", NULL);
    qts = start_qemu_logging(sim, log);
    guest_cxl_setup(qts, sim, &g);
    put_pattern(qts, sim, g.base, pattern);

    kill(sim->pid, SIGKILL);
    /* Give QEMU's client time to see the socket close, then tick. */
    g_usleep(200 * 1000);
    qtest_clock_step(qts, 300 * 1000 * 1000);
    rsp = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments': "
                    "{'path': '/machine/peripheral/acc', "
                    "'property': 'cxl-status'}}");
    status = qdict_get_str(rsp, "return");
    g_test_message("cxl-status after the server died: %s", status);
    if (!g_str_has_prefix(status, "unmapped:") ||
        !strstr(status, "the vfio-user server closed the connection")) {
        fail_test("cxl-status does not say the host is gone: '%s'", status);
    }
    qobject_unref(rsp);
    g_assert(qmp_running(qts));
    /* The window no longer reaches the dead device's memory. */
    g_assert_cmphex(qtest_readq(qts, g.base + RESET_PATTERN_OFF), !=, pattern);
    qtest_clock_step(qts, 1000 * 1000 * 1000);
    err = file_tail(log, 0);
    at = strstr(err, "the host is gone");
    if (!at || strstr(at + 1, "the host is gone")) {
        fail_test("expected one line saying the host is gone: '%s'", err);
    }
    {
        /* (QEMU's own DMA unmap may fail with EFAULT: not our message.) */
        g_auto(GStrv) lines = g_strsplit(err, "\n", -1);
        char **l;

        for (l = lines; *l; l++) {
            if (strstr(*l, "'acc'") && strstr(*l, "Bad address")) {
                fail_test("the device reports errno 14: '%s'", *l);
            }
        }
    }

    /* The device can still be removed. */
    ecam_enable(qts);
    exp = find_exp_cap(qts, RP_BUS);
    qtest_qmp_device_del_send(qts, "acc");
    slot_power(qts, exp, false);
    if (!wait_id_deleted(qts, "acc")) {
        fail_test("device_del of a device whose host is gone did not finish");
    }
    g_assert(qmp_running(qts));
    qtest_quit(qts);
    sim->running = false;
    waitpid(sim->pid, NULL, 0);
    g_spawn_close_pid(sim->pid);
    sim_free(sim);
}

/* -------------------------------------------------------------------- */
/* Hostile guest                                                         */
/* -------------------------------------------------------------------- */

/* Where the storm leaves a pattern in device memory. */
#define STORM_PATTERN_OFF   0x5000
#define STORM_CHECKPOINT    100000

/* What the host holds that no guest access may change. */
typedef struct HostSnapshot {
    char *dvsec;            /* the host's CXL Device DVSEC, hex */
    uint32_t d0[3];         /* decoder 0 BASE_LO, BASE_HI, CTRL */
} HostSnapshot;

static void host_snapshot(Sim *sim, HostSnapshot *h)
{
    uint32_t at, len;
    QDict *d;

    at = find_dvsec(sim_config_readl, sim, DVSEC_ID_DEVICE, &len);
    d = sim_ctl(sim, "config-read 0x%x %u", at, len);
    h->dvsec = g_strdup(qdict_get_str(d, "hex"));
    qobject_unref(d);
    h->d0[0] = sim_comp_regs_readl(sim, HOST_D0_BASE_LO);
    h->d0[1] = sim_comp_regs_readl(sim, HOST_D0_BASE_HI);
    h->d0[2] = sim_comp_regs_readl(sim, HOST_D0_CTRL);
}

/* One guest access of @size bytes (one qtest command). */
static void storm_io(QTestState *qts, uint64_t addr, uint32_t size,
                     bool write, uint64_t value)
{
    switch (size) {
    case 1:
        if (write) {
            qtest_writeb(qts, addr, value);
        } else {
            qtest_readb(qts, addr);
        }
        break;
    case 2:
        if (write) {
            qtest_writew(qts, addr, value);
        } else {
            qtest_readw(qts, addr);
        }
        break;
    case 4:
        if (write) {
            qtest_writel(qts, addr, value);
        } else {
            qtest_readl(qts, addr);
        }
        break;
    default:
        if (write) {
            qtest_writeq(qts, addr, value);
        } else {
            qtest_readq(qts, addr);
        }
        break;
    }
}

/*
 * One storm access: a read or write of 1, 2, 4 or 8 bytes, aligned or
 * not, at a random offset of the device's extended config space, of the
 * emulated component block or of the rest of the component BAR.  Returns
 * how many host resets the access asks for (an Initiate FLR or Initiate
 * CXL Reset write).
 */
static int storm_access(QTestState *qts, GRand *rng, const GuestCxl *g,
                        uint32_t exp, uint64_t bar0)
{
    uint32_t what = g_rand_int_range(rng, 0, 3);
    uint32_t size = 1u << g_rand_int_range(rng, 0, 4);
    bool write = g_rand_boolean(rng);
    uint64_t value = (uint64_t)g_rand_int(rng) << 32 | g_rand_int(rng);
    uint64_t span = what == 0 ? 0x1000 : what == 1 ? 0x10000 : 0x40000;
    uint64_t off = g_rand_int_range(rng, 0, span - 8);
    uint64_t addr;
    int resets = 0;

    if (g_rand_int_range(rng, 0, 4)) {
        off &= ~(uint64_t)(size - 1);
    }
    if (what == 0) {
        /* Config space: 1, 2 or 4 bytes. */
        size = MIN(size, 4);
        addr = ecam(DEV_BUS, off);
        if (write) {
            uint64_t flr_bit = (uint64_t)(exp + EXP_DEVCTL) * 8 + 15;
            uint64_t cxl_bit = (uint64_t)(g->dvsec + DVSEC_CONTROL2) * 8 + 2;

            if (flr_bit >= off * 8 && flr_bit < (off + size) * 8 &&
                (value >> (flr_bit - off * 8)) & 1) {
                resets++;
            }
            if (cxl_bit >= off * 8 && cxl_bit < (off + size) * 8 &&
                (value >> (cxl_bit - off * 8)) & 1) {
                resets++;
            }
        }
    } else if (what == 1) {
        addr = g->block + off;
    } else {
        addr = bar0 + off;
        /* The block's own accesses are the previous case. */
        if (off >= g->block - bar0 && off < g->block - bar0 + 0x10000) {
            addr = bar0 + off + 0x10000;
        }
    }
    storm_io(qts, addr, size, write, value);
    return resets;
}

/*
 * A hostile guest: a seeded storm of accesses (VFIO_CXL_STORM_ACCESSES,
 * default Platform.storm_accesses, from seed VFIO_CXL_STORM_SEED, printed)
 * over the device's config space, component block and BAR, with a reset
 * of every kind in turn every STORM_CHECKPOINT accesses.  At each
 * checkpoint the host's DVSEC and decoder 0 are as they were, it saw
 * exactly the resets the guest asked for, the device memory is where it
 * was with the same bytes, and QEMU answers.
 */
static void test_storm(const void *data)
{
    const char *uapi = data;
    const char *extra[] = { "--uapi", uapi, NULL };
    const char *bin = sim_binary();
    const char *env_count = g_getenv("VFIO_CXL_STORM_ACCESSES");
    const char *env_seed = g_getenv("VFIO_CXL_STORM_SEED");
    uint64_t count = env_count ? g_ascii_strtoull(env_count, NULL, 0) :
                     platform->storm_accesses;
    uint32_t seed = env_seed ? g_ascii_strtoull(env_seed, NULL, 0) :
                    20261201;
    const uint64_t pattern = 0x5707a5707a5707a5ULL;
    bool clears = !strcmp(uapi, "v4");
    g_autoptr(GRand) rng = g_rand_new_with_seed(seed);
    uint64_t expected, i, base;
    HostSnapshot before, now;
    QTestState *qts;
    uint32_t exp;
    GuestCxl g;
    Sim *sim;
    int kind = 0;

    if (!bin) {
        return;
    }
    g_test_message("storm: uAPI %s, %" PRIu64 " accesses, seed %u "
                   "(VFIO_CXL_STORM_SEED=%u reproduces it)", uapi, count,
                   seed, seed);
    sim = sim_start(bin, 256, extra);
    qts = start_qemu(sim);
    guest_cxl_setup(qts, sim, &g);
    base = g.base;
    exp = find_exp_cap(qts, DEV_BUS);
    host_snapshot(sim, &before);
    qtest_writeq(qts, base + STORM_PATTERN_OFF, pattern);
    expected = sim_stat(sim, "resets");

    for (i = 1; i <= count; i++) {
        expected += storm_access(qts, rng, &g, exp, DEV_BAR0_ADDR);
        if (i % STORM_CHECKPOINT && i != count) {
            continue;
        }
        /* Checkpoint: QEMU answers, the host is untouched. */
        g_assert(qmp_running(qts));
        host_snapshot(sim, &now);
        if (strcmp(now.dvsec, before.dvsec) ||
            memcmp(now.d0, before.d0, sizeof(now.d0))) {
            fail_test("storm (seed %u, access %" PRIu64 "): the host's DVSEC "
                      "or decoder 0 changed: %s / %08x %08x %08x, was %s / "
                      "%08x %08x %08x", seed, i, now.dvsec, now.d0[0],
                      now.d0[1], now.d0[2], before.dvsec, before.d0[0],
                      before.d0[1], before.d0[2]);
        }
        g_free(now.dvsec);
        if (sim_stat(sim, "resets") != expected) {
            fail_test("storm (seed %u, access %" PRIu64 "): the host saw %"
                      PRIu64 " resets, the guest asked for %" PRIu64, seed, i,
                      sim_stat(sim, "resets"), expected);
        }
        /* The guest's config may be anything now: set it up again. */
        guest_cxl_setup(qts, sim, &g);
        g_assert_cmphex(g.base, ==, base);
        if (expected == sim_stat(sim, "resets") && !clears) {
            g_assert_cmphex(qtest_readq(qts, base + STORM_PATTERN_OFF), ==,
                            pattern);
        }
        /* A reset of the next kind. */
        switch (kind++ % 4) {
        case 0:
            guest_flr(qts);
            break;
        case 1:
            guest_cxl_reset(qts, sim, &g);
            break;
        case 2:
            guest_secondary_bus_reset(qts);
            break;
        default:
            qobject_unref(qtest_qmp(qts, "{'execute': 'system_reset'}"));
            qtest_qmp_eventwait(qts, "RESET");
            break;
        }
        expected++;
        g_assert_cmpuint(sim_stat(sim, "resets"), ==, expected);
        guest_cxl_setup(qts, sim, &g);
        g_assert_cmphex(g.base, ==, base);
        if (!clears) {
            g_assert_cmphex(qtest_readq(qts, base + STORM_PATTERN_OFF), ==,
                            pattern);
        }
        qtest_writeq(qts, base + STORM_PATTERN_OFF, pattern);
    }
    /* v4's COMP_REGS is the HDM block, which the device emulates. */
    if (clears) {
        g_assert_cmpuint(sim_stat(sim, "comp_regs_writes"), ==, 0);
    }
    g_free(before.dvsec);
    qtest_quit(qts);
    sim_free(sim);
}

int main(int argc, char **argv)
{
    size_t i;

    g_test_init(&argc, &argv, NULL);
    for (i = 0; i < ARRAY_SIZE(platforms); i++) {
        if (!strcmp(qtest_get_arch(), platforms[i].arch)) {
            platform = &platforms[i];
        }
    }
    if (!platform) {
        /* meson builds it only for the targets listed there. */
        g_printerr("vfio-cxl-test: no CXL machine known for target %s\n",
                   qtest_get_arch());
        return 1;
    }
    /* A QEMU that exits early must not kill us through its stdin. */
    signal(SIGPIPE, SIG_IGN);

    for (i = 0; i < ARRAY_SIZE(uapis); i++) {
        g_autofree char *dvsec = g_strdup_printf("/vfio-cxl/dvsec/%s",
                                                 uapis[i]);
        g_autofree char *comp = g_strdup_printf("/vfio-cxl/component/%s",
                                                uapis[i]);
        g_autofree char *mem = g_strdup_printf("/vfio-cxl/memory/%s",
                                               uapis[i]);
        g_autofree char *plug = g_strdup_printf("/vfio-cxl/hotplug/%s",
                                                uapis[i]);

        qtest_add_data_func(dvsec, uapis[i], test_dvsec);
        qtest_add_data_func(comp, uapis[i], test_component);
        qtest_add_data_func(mem, uapis[i], test_memory);
        qtest_add_data_func(plug, uapis[i], test_hotplug);
        {
            g_autofree char *storm = g_strdup_printf("/vfio-cxl/storm/%s",
                                                     uapis[i]);

            qtest_add_data_func(storm, uapis[i], test_storm);
        }
    }
    qtest_add_data_func("/vfio-cxl/uapi/v2", "v2", test_uapi);
    qtest_add_data_func("/vfio-cxl/uapi/v3", "v3", test_uapi);
    qtest_add_data_func("/vfio-cxl/uapi/v4", "v4", test_uapi);
    qtest_add_data_func("/vfio-cxl/uapi/v4-early-region-type", "early",
                        test_uapi_v4_early);
    qtest_add_func("/vfio-cxl/v4/host-address-hidden", test_v4_hpa_hidden);
    qtest_add_func("/vfio-cxl/v4/memory-enable", test_v4_memory_enable);
    for (i = 0; i < ARRAY_SIZE(refused_cases); i++) {
        g_autofree char *path =
            g_strdup_printf("/vfio-cxl/refused/%s", refused_cases[i].name);

        if (refused_cases[i].topo == TOPO_WINDOW_UNPLACED &&
            !platform->unplaced_window) {
            continue;
        }
        qtest_add_data_func(path, &refused_cases[i], test_refused);
    }
    qtest_add_func("/vfio-cxl/host-bridge-decoder", test_host_bridge_decoder);
    qtest_add_func("/vfio-cxl/no-flr", test_no_flr);
    qtest_add_func("/vfio-cxl/host-gone", test_host_gone);
    qtest_add_func("/vfio-cxl/several-devices", test_several_devices);
    qtest_add_func("/vfio-cxl/property-help", test_property_help);
    qtest_add_func("/vfio-cxl/refused-options", test_refused_options);
    qtest_add_func("/vfio-cxl/host-bridge-without-decoders",
                   test_host_bridge_without_decoders);
    for (i = 0; i < ARRAY_SIZE(reset_cases); i++) {
        g_autofree char *path = g_strdup_printf("/vfio-cxl/reset/%s/%s",
                                                reset_cases[i].name,
                                                reset_cases[i].uapi);

        qtest_add_data_func(path, &reset_cases[i], test_reset);
    }
    qtest_add_data_func("/vfio-cxl/reset/failure/v3", "v3",
                        test_reset_failure);
    qtest_add_data_func("/vfio-cxl/reset/failure/v2", "v2",
                        test_reset_failure);
    qtest_add_data_func("/vfio-cxl/reset/failure/v4", "v4",
                        test_reset_failure);
    return g_test_run();
}
