// SPDX-License-Identifier: GPL-2.0-or-later

//! What a guest sees: QEMU started with the device (`vfio-cxl` on a
//! kernel host, `vfio-user-cxl` on a socket) below a CXL root port on
//! q35 or virt (see [`Machine`]), under qtest.  The kit does what firmware and a driver would
//! (ECAM, bus numbers, the component BAR) and checks the locked DVSEC,
//! decoder 0 committed and locked at the window base, data both ways
//! through the window, and the same after an FLR.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;

use crate::cli::{Common, EXIT_REFUSED};
use crate::contract::{self, Options, Summary};
use crate::decoder::Decoder;
use crate::host::HostError;
use crate::kernel::{self, Target};
use crate::layout::component::{
    CAP_ARRAY, CAP_ID_HDM, CAP_ID_MASK, CAP_POINTER_SHIFT, GRANULE, HDM_DECODER0,
};
use crate::layout::{dvsec, pci};
use crate::machine::{Machine, MemoryMap};
use crate::pci::{addr, component_block, find_cap, find_dvsec, Dvsec};
use crate::posting::{is_array_header, Posting};
use crate::qtest::Qemu;
use crate::report::{say, verdict, Report, Verdict};

/// Bus numbers: the pxb-cxl's (`bus_nr=12`) and the root port's link.
const RP_BUS: u64 = 12;
const DEV_BUS: u64 = 13;
/// Device memory offsets the host seeds and the guest writes.
const SEED_AT: u64 = 0x3000;
const GUEST_AT: u64 = 0x4000;
const SEED: u32 = 0x5EED_CAFE;
const GUEST_PATTERN: [u32; 2] = [0x6E57_0001, 0x6E57_0002];
/// Written through the window after the FLR.
const FRESH: u32 = 0x6E57_0003;

/// The QEMU command line for the device (after the common part).
fn device_args(common: &Common, summary: &Summary, machine: Machine) -> Vec<String> {
    let window = summary.memory_size.div_ceil(GRANULE).max(16) * GRANULE;
    let mut a = vec!["-nodefaults".to_owned()];
    a.extend(machine.args());
    a.extend(
        [
            "-M",
            &format!("cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size={window}"),
            "-device",
            "pxb-cxl,id=cxl.1,bus=pcie.0,bus_nr=12,hdm_for_passthrough=on",
            "-device",
            "cxl-rp,id=rp0,bus=cxl.1,chassis=0,slot=0,port=0",
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    let t = &common.target;
    if let Some(s) = &t.socket {
        a.push("-device".into());
        a.push(
            json!({"driver": "vfio-user-cxl", "id": "acc", "bus": "rp0",
                   "socket": {"type": "unix", "path": s}})
            .to_string(),
        );
        return a;
    }
    let dev = match t.kernel_target() {
        Target::Bdf(b) => format!("vfio-cxl,id=acc,bus=rp0,host={b}"),
        Target::Sysfs(p) => format!("vfio-cxl,id=acc,bus=rp0,sysfsdev={}", p.display()),
    };
    if kernel::uses_iommufd(&t.kernel_target()) {
        a.extend(["-object".into(), "iommufd,id=iommufd0".into()]);
        a.extend(["-device".into(), format!("{dev},iommufd=iommufd0")]);
    } else {
        a.extend(["-device".into(), dev]);
    }
    a
}

/// The guest's view of the device, through qtest.
struct Guest<'a> {
    q: &'a mut Qemu,
    map: MemoryMap,
}

impl<'a> Guest<'a> {
    /// ECAM on and the machine's windows found: what firmware leaves.
    fn new(q: &'a mut Qemu, machine: Machine) -> io::Result<Self> {
        let map = machine.memory_map(q)?;
        Ok(Self { q, map })
    }

    fn cfg(&self, bus: u64, off: u64) -> u64 {
        self.map.ecam + (bus << 20) + off
    }
    fn cfg_readl(&mut self, bus: u64, off: u64) -> io::Result<u32> {
        self.q.readl(self.cfg(bus, off))
    }
    fn cfg_readw(&mut self, bus: u64, off: u64) -> io::Result<u16> {
        self.q.readw(self.cfg(bus, off))
    }
    fn cfg_writel(&mut self, bus: u64, off: u64, v: u32) -> io::Result<()> {
        self.q.writel(self.cfg(bus, off), v)
    }
    fn cfg_writew(&mut self, bus: u64, off: u64, v: u16) -> io::Result<()> {
        self.q.writew(self.cfg(bus, off), v)
    }

    /// Config dwords of the device, through ECAM.
    fn dev_reader(&mut self) -> impl FnMut(u64) -> Option<u32> + '_ {
        let at = self.cfg(DEV_BUS, 0);
        let q: &mut Qemu = self.q;
        move |off| q.readl(at + off).ok()
    }

    /// Bus numbers, and the device's identity.
    fn enumerate(&mut self) -> io::Result<u32> {
        self.cfg_writel(RP_BUS, 0x18, (RP_BUS | DEV_BUS << 8 | DEV_BUS << 16) as u32)?;
        self.cfg_readl(DEV_BUS, pci::VENDOR_ID)
    }

    /// Sizes and places the component BAR; returns its guest address.
    fn place_bar(&mut self, bir: u32) -> Result<(u64, String), String> {
        let e = |e: io::Error| e.to_string();
        let reg = pci::BAR0 + 4 * u64::from(bir);
        let lo = self.cfg_readl(DEV_BUS, reg).map_err(e)?;
        let is64 = lo & 6 == pci::BAR_MEM_64;
        let prefetch = lo & pci::BAR_PREFETCH != 0;
        self.cfg_writel(DEV_BUS, reg, u32::MAX).map_err(e)?;
        let mut mask = u64::from(self.cfg_readl(DEV_BUS, reg).map_err(e)? & !0xF);
        if is64 {
            self.cfg_writel(DEV_BUS, reg + 4, u32::MAX).map_err(e)?;
            mask |= u64::from(self.cfg_readl(DEV_BUS, reg + 4).map_err(e)?) << 32;
        } else {
            mask |= 0xFFFF_FFFF_0000_0000;
        }
        let size = (!mask).wrapping_add(1);
        let (base, window) = if is64 && prefetch {
            (self.map.window64, "64-bit prefetchable")
        } else if size <= 0x1000_0000 {
            (self.map.window32, "32-bit")
        } else {
            return Err(format!(
                "BAR {bir}: {size:#x} bytes, non-prefetchable: too large to place"
            ));
        };
        let span = size.max(1 << 20);
        let limit = base + span - 1;
        // Memory window: off unless 32-bit; prefetchable window: off
        // (base above limit) unless 64-bit.
        let (mem, pref, pref_hi) = if base == self.map.window32 {
            (
                (base >> 16 & 0xFFF0) as u32 | ((limit >> 16 & 0xFFF0) as u32) << 16,
                0x0000_FFF0,
                (0, 0),
            )
        } else {
            (
                0x0000_FFF0,
                (base >> 16 & 0xFFF0) as u32 | ((limit >> 16 & 0xFFF0) as u32) << 16 | 0x0001_0001,
                ((base >> 32) as u32, (limit >> 32) as u32),
            )
        };
        for (off, v) in [
            (0x20, mem),
            (0x24, pref),
            (0x28, pref_hi.0),
            (0x2C, pref_hi.1),
        ] {
            self.cfg_writel(RP_BUS, off, v).map_err(e)?;
        }
        // cxl-rp has a 64-bit component BAR of its own.
        let rp_bar = self.map.root_port_bar;
        self.cfg_writel(RP_BUS, pci::BAR0, rp_bar as u32)
            .map_err(e)?;
        self.cfg_writel(RP_BUS, pci::BAR0 + 4, (rp_bar >> 32) as u32)
            .map_err(e)?;
        self.cfg_writew(
            RP_BUS,
            pci::COMMAND,
            pci::COMMAND_MEMORY | pci::COMMAND_MASTER,
        )
        .map_err(e)?;
        self.cfg_writel(DEV_BUS, reg, base as u32).map_err(e)?;
        if is64 {
            self.cfg_writel(DEV_BUS, reg + 4, (base >> 32) as u32)
                .map_err(e)?;
        }
        let cmd = self.cfg_readw(DEV_BUS, pci::COMMAND).map_err(e)?;
        self.cfg_writew(
            DEV_BUS,
            pci::COMMAND,
            cmd | pci::COMMAND_MEMORY | pci::COMMAND_MASTER,
        )
        .map_err(e)?;
        Ok((
            base,
            format!("BAR {bir}: {size:#x} bytes at {base:#x} ({window} window)"),
        ))
    }
}

/// What the guest found.
struct Layout {
    dvsec: Dvsec,
    bar_reg: u64,
    bar_addr: u64,
    block: u64,
}

/// The DVSEC's Range 1 as the guest reads it: (base, size, lock, ctrl,
/// size low dword).
fn read_dvsec(g: &mut Guest<'_>, d: &Dvsec) -> io::Result<(u64, u64, u16, u16, u32)> {
    let o = d.offset;
    let mut r = |reg| g.cfg_readl(DEV_BUS, o + reg);
    let (slo, shi) = (r(dvsec::RANGE1_SIZE_LO)?, r(dvsec::RANGE1_SIZE_HI)?);
    let (blo, bhi) = (r(dvsec::RANGE1_BASE_LO)?, r(dvsec::RANGE1_BASE_HI)?);
    let lock = g.cfg_readw(DEV_BUS, o + dvsec::LOCK)?;
    let ctrl = g.cfg_readw(DEV_BUS, o + dvsec::CONTROL)?;
    Ok((addr(bhi, blo), addr(shi, slo), lock, ctrl, slo))
}

/// `guest_dvsec`: locked, memory enabled, Range 1 valid and active with
/// the memory's size at a 256 MiB aligned base (returned).
fn guest_dvsec(g: &mut Guest<'_>, l: &Layout, mem: u64, r: &mut Report) -> Option<u64> {
    let (base, size, lock, ctrl, slo) = match read_dvsec(g, &l.dvsec) {
        Ok(v) => v,
        Err(e) => {
            r.record("guest_dvsec", Verdict::Fail(e.to_string()));
            return None;
        }
    };
    let va = dvsec::RANGE_INFO_VALID | dvsec::RANGE_ACTIVE;
    let ok = lock & dvsec::LOCK_CONFIG != 0
        && ctrl & dvsec::CTRL_MEM_ENABLE != 0
        && slo & va == va
        && size == mem
        && base != 0
        && base % GRANULE == 0;
    r.record(
        "guest_dvsec",
        verdict(
            ok,
            format!(
                "DVSEC at {:#x}: lock {lock:#06x}, control {ctrl:#06x}, range 1 base {base:#x} size {size:#x} \
                 (host memory {mem:#x})",
                l.dvsec.offset
            ),
        ),
    )
    .then_some(base)
}

/// The HDM structure's guest address, through the component BAR.
fn guest_hdm(g: &mut Guest<'_>, l: &Layout) -> Result<u64, String> {
    let array = l.bar_addr + l.block + CAP_ARRAY;
    let hdr = g.q.readl(array).map_err(|e| e.to_string())?;
    if !is_array_header(hdr) {
        return Err(format!(
            "capability array header at {array:#x} reads {hdr:#010x}"
        ));
    }
    for i in 1..=u64::from(hdr >> 24) {
        let e = g.q.readl(array + 4 * i).map_err(|e| e.to_string())?;
        if e & CAP_ID_MASK == CAP_ID_HDM {
            return Ok(array + u64::from(e >> CAP_POINTER_SHIFT));
        }
    }
    Err(format!(
        "capability array at {array:#x} (header {hdr:#010x}) has no HDM entry"
    ))
}

/// `guest_hdm_decoder0` (and after an FLR): committed and locked at the
/// window base, of the memory's size.
fn guest_decoder(g: &mut Guest<'_>, l: &Layout, base: u64, mem: u64) -> Result<String, String> {
    let hdm = guest_hdm(g, l)?;
    let d0 = hdm + HDM_DECODER0;
    let d = Decoder::read(|reg| g.q.readl(d0 + reg)).map_err(|e| e.to_string())?;
    let seen = format!("HDM at {hdm:#x}: decoder 0 {d}; window base {base:#x}");
    if d.committed_and_locked() && d.base == base && d.size == mem {
        Ok(seen)
    } else {
        Err(format!(
            "{seen}: want COMMITTED and LOCK_ON_COMMIT at the window base, size {mem:#x}"
        ))
    }
}

/// Data through the window: the host's seed read (v2, v3), the guest's
/// pattern written and read back.
fn guest_window(g: &mut Guest<'_>, base: u64, seed: bool) -> Result<String, String> {
    let e = |e: io::Error| e.to_string();
    let mut seen = Vec::new();
    if seed {
        let v = g.q.readl(base + SEED_AT).map_err(e)?;
        seen.push(format!("host seed at +{SEED_AT:#x} reads {v:#x}"));
        if v != SEED {
            return Err(format!("{}: want {SEED:#x}", seen.join("; ")));
        }
    }
    for (i, p) in GUEST_PATTERN.iter().enumerate() {
        let at = base + GUEST_AT + 4 * i as u64;
        g.q.writel(at, *p).map_err(e)?;
        let v = g.q.readl(at).map_err(e)?;
        seen.push(format!("wrote {p:#x} at {at:#x}, read {v:#x}"));
        if v != *p {
            return Err(seen.join("; "));
        }
    }
    Ok(seen.join("; "))
}

/// The guest's FLR: Initiate FLR in Device Control, then its BAR and
/// Command back, as a driver does.
fn guest_flr(g: &mut Guest<'_>, l: &Layout) -> Result<String, String> {
    let e = |e: io::Error| e.to_string();
    let exp = find_cap(g.dev_reader(), pci::CAP_ID_EXP).ok_or("no PCI Express capability")?;
    let devcap = g.cfg_readl(DEV_BUS, exp + pci::EXP_DEVCAP).map_err(e)?;
    if devcap & pci::EXP_DEVCAP_FLR == 0 {
        return Err(format!("Device Capabilities {devcap:#x}: no FLR"));
    }
    let saved: Vec<u32> = (0..2)
        .map(|i| g.cfg_readl(DEV_BUS, l.bar_reg + 4 * i))
        .collect::<io::Result<_>>()
        .map_err(e)?;
    let cmd = g.cfg_readw(DEV_BUS, pci::COMMAND).map_err(e)?;
    let ctl = g.cfg_readw(DEV_BUS, exp + pci::EXP_DEVCTL).map_err(e)?;
    g.cfg_writew(DEV_BUS, exp + pci::EXP_DEVCTL, ctl | pci::EXP_DEVCTL_FLR)
        .map_err(e)?;
    let after = g.cfg_readw(DEV_BUS, exp + pci::EXP_DEVCTL).map_err(e)?;
    for (i, v) in saved.iter().enumerate() {
        g.cfg_writel(DEV_BUS, l.bar_reg + 4 * i as u64, *v)
            .map_err(e)?;
    }
    g.cfg_writew(DEV_BUS, pci::COMMAND, cmd).map_err(e)?;
    if after & pci::EXP_DEVCTL_FLR != 0 {
        return Err(format!(
            "Device Control reads {after:#06x} after the FLR: bit latched"
        ));
    }
    Ok(format!(
        "Device Control {ctl:#06x} | FLR, then {after:#06x}"
    ))
}

/// `cxl-status` as QOM gives it.
fn cxl_status(q: &mut Qemu) -> io::Result<String> {
    let v = q.qmp_command(&json!({"execute": "qom-get",
        "arguments": {"path": "/machine/peripheral/acc", "property": "cxl-status"}}))?;
    Ok(v.as_str().unwrap_or_default().to_owned())
}

fn status_check(q: &mut Qemu, posting: Posting, r: &mut Report, name: &'static str) {
    let v = match cxl_status(q) {
        Ok(s) => verdict(
            s.starts_with("mapped:") && s.ends_with(&format!("host uAPI {posting}")),
            format!("cxl-status \"{s}\""),
        ),
        Err(e) => Verdict::Fail(e.to_string()),
    };
    r.record(name, v);
}

/// Runs the guest-side checks on a started QEMU.
fn guest_checks(q: &mut Qemu, machine: Machine, s: &Summary, opts: &Options, r: &mut Report) {
    let mut g = match Guest::new(q, machine) {
        Ok(g) => g,
        Err(e) => {
            r.record("guest_device", Verdict::Fail(e.to_string()));
            return;
        }
    };
    let id = match g.enumerate() {
        Ok(id) => id,
        Err(e) => {
            r.record("guest_device", Verdict::Fail(e.to_string()));
            return;
        }
    };
    let reader_dvsec = find_dvsec(g.dev_reader(), dvsec::CXL_VENDOR, dvsec::ID_DEVICE);
    let reader_loc = find_dvsec(
        g.dev_reader(),
        dvsec::CXL_VENDOR,
        dvsec::ID_REGISTER_LOCATOR,
    );
    let (Ok(Some(d)), Ok(Some(loc))) = (reader_dvsec, reader_loc) else {
        r.record(
            "guest_device",
            Verdict::Fail(format!(
                "{DEV_BUS:02x}:00.0 id {id:#010x}: CXL Device DVSEC or Register Locator missing"
            )),
        );
        return;
    };
    let block = match component_block(g.dev_reader(), &loc) {
        Ok(b) => b,
        Err(e) => {
            r.record("guest_device", Verdict::Fail(e));
            return;
        }
    };
    let (bar_addr, placed) = match g.place_bar(block.bar) {
        Ok(p) => p,
        Err(e) => {
            r.record("guest_device", Verdict::Fail(e));
            return;
        }
    };
    r.record(
        "guest_device",
        Verdict::Pass(format!(
            "{DEV_BUS:02x}:00.0 id {id:#010x}, DVSEC at {:#x}, component block at {:#x}; {placed}",
            d.offset, block.offset
        )),
    );
    let l = Layout {
        dvsec: d,
        bar_reg: pci::BAR0 + 4 * u64::from(block.bar),
        bar_addr,
        block: block.offset,
    };
    status_check(g.q, s.posting, r, "qemu_cxl_status");
    let Some(base) = guest_dvsec(&mut g, &l, s.memory_size, r) else {
        return;
    };
    let v = guest_decoder(&mut g, &l, base, s.memory_size).into();
    r.record("guest_hdm_decoder0", v);
    if !opts.yes {
        for (name, would) in [
            (
                "guest_window_round_trip",
                "write device memory through the CXL window",
            ),
            ("guest_flr", "reset the device with an FLR from the guest"),
        ] {
            r.record(
                name,
                Verdict::NotApplicable(format!("not run: would {would} (run with --yes)")),
            );
        }
        return;
    }
    let window = guest_window(&mut g, base, s.posting != Posting::V4).into();
    r.record("guest_window_round_trip", window);
    let flr = guest_flr(&mut g, &l).and_then(|how| after_flr(&mut g, &l, base, s, &how));
    r.record("guest_flr", flr.into());
    status_check(g.q, s.posting, r, "qemu_cxl_status_after_flr");
}

/// After the guest's FLR: the decoder and the DVSEC as before, the
/// memory kept (v2, v3) or cleared (v4), and usable again (a window left
/// hidden would read 0 as well).
fn after_flr(
    g: &mut Guest<'_>,
    l: &Layout,
    base: u64,
    s: &Summary,
    how: &str,
) -> Result<String, String> {
    let e = |e: io::Error| e.to_string();
    let dec = guest_decoder(g, l, base, s.memory_size)?;
    let (_, _, lock, _, _) = read_dvsec(g, &l.dvsec).map_err(e)?;
    let mem = g.q.readl(base + GUEST_AT).map_err(e)?;
    let (want, rule) = if s.posting == Posting::V4 {
        (0, "v4 clears it")
    } else {
        (GUEST_PATTERN[0], "kept")
    };
    let fresh_at = base + GUEST_AT + 8;
    g.q.writel(fresh_at, FRESH).map_err(e)?;
    let fresh = g.q.readl(fresh_at).map_err(e)?;
    let seen = format!(
        "{how}; {dec}; DVSEC lock {lock:#06x}; memory at +{GUEST_AT:#x} {mem:#x} \
         (want {want:#x}: {rule}); wrote {FRESH:#x} after it, read {fresh:#x}"
    );
    if lock & dvsec::LOCK_CONFIG != 0 && mem == want && fresh == FRESH && g.q.running() {
        Ok(seen)
    } else {
        Err(seen)
    }
}

/// A fresh private directory for QEMU's sockets and log.
fn work_dir(given: Option<&Path>) -> io::Result<PathBuf> {
    let d = given.map_or_else(
        || std::env::temp_dir().join(format!("vfio-cxl-validate-{}", std::process::id())),
        Path::to_path_buf,
    );
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Opens the host, runs the contract quietly to learn the posting and
/// the memory, and (with `--yes`, v2/v3) seeds the memory.
fn learn(common: &Common, opts: &Options) -> Result<Summary, ExitCode> {
    let mut host = match common.target.open() {
        Ok(h) => h,
        Err(HostError::Refused(why)) => {
            eprintln!("vfio-cxl-validate: {why}");
            return Err(ExitCode::from(EXIT_REFUSED));
        }
        Err(e) => {
            eprintln!("vfio-cxl-validate: cannot open the device: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    let quiet = Options {
        yes: false,
        expect: opts.expect,
    };
    let mut r = Report::new(false);
    let Some(s) = contract::run(Ok(host.as_mut()), &quiet, &mut r) else {
        eprintln!("vfio-cxl-validate: the host's CXL layout could not be discovered:");
        for l in r
            .lines
            .iter()
            .filter(|l| l.outcome == crate::report::Outcome::Fail)
        {
            eprintln!("  {l}");
        }
        return Err(ExitCode::FAILURE);
    };
    if opts.yes && s.posting != Posting::V4 {
        if let Err(e) = host.write_u32(s.memory_region, SEED_AT, SEED) {
            eprintln!("vfio-cxl-validate: seeding device memory: {e}");
            return Err(ExitCode::FAILURE);
        }
    }
    Ok(s)
}

/// `host_sees_guest_write`: after QEMU closed the device, the guest's
/// pattern is in the host's memory region (v2, v3; v4 clears memory at
/// close).
fn host_sees_guest_write(common: &Common, s: &Summary, r: &mut Report) {
    if s.posting == Posting::V4 {
        r.record(
            "host_sees_guest_write",
            Verdict::NotApplicable("v4 clears device memory when QEMU closes the device".into()),
        );
        return;
    }
    let v = common
        .target
        .open()
        .and_then(|mut h| h.read_u32(s.memory_region, GUEST_AT));
    r.record(
        "host_sees_guest_write",
        verdict(
            v == Ok(GUEST_PATTERN[0]),
            format!("host memory at {GUEST_AT:#x} reads {v:x?} after QEMU closed the device (want {:#x})", GUEST_PATTERN[0]),
        ),
    );
}

pub fn main(
    common: &Common,
    opts: &Options,
    qemu: &Path,
    machine: Machine,
    given_dir: Option<&Path>,
) -> ExitCode {
    let s = match learn(common, opts) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let dir = match work_dir(given_dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("vfio-cxl-validate: work directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args = device_args(common, &s, machine);
    say(format_args!("qemu: {} {}", qemu.display(), args.join(" ")));
    let mut r = Report::new(true);
    let mut exit_ok = false;
    match Qemu::start(qemu, &args, &dir) {
        Ok(mut q) => {
            r.record(
                "qemu_start",
                Verdict::Pass(format!(
                    "host uAPI {}, memory {:#x}",
                    s.posting, s.memory_size
                )),
            );
            guest_checks(&mut q, machine, &s, opts, &mut r);
            let st = q.quit();
            exit_ok = st.as_ref().is_ok_and(std::process::ExitStatus::success);
            r.record("qemu_exit", verdict(exit_ok, format!("{st:?}")));
        }
        Err(e) => {
            r.record("qemu_start", Verdict::Fail(e.to_string()));
        }
    }
    if opts.yes && exit_ok {
        host_sees_guest_write(common, &s, &mut r);
    }
    let log = std::fs::read_to_string(dir.join("qemu.log")).unwrap_or_default();
    say(format_args!(
        "QEMU's messages ({} lines):",
        log.lines().count()
    ));
    for l in log.lines() {
        say(format_args!("  qemu: {l}"));
    }
    if given_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    say(format_args!("guest-view: {}", r.summary()));
    if r.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
