// SPDX-License-Identifier: GPL-2.0-or-later

//! Interoperability with QEMU's stock vfio-user client (`vfio-user-pci`).
//!
//! Runs when `QEMU_BIN` names a `qemu-system-x86_64`.  Without it the test
//! prints `skipped: QEMU_BIN not set` and passes, unless
//! `VFIO_CXL_REQUIRE_QEMU=1`, in which case it fails.
//!
//! QEMU runs a q35 machine under the qtest accelerator with the qtest
//! protocol on stdio.  The test checks the realized device through
//! CF8/CFC (IDs, class, BAR 0 sizing), then enables q35's ECAM through the
//! MCH's PCIEXBAR register and reads the extended config space with
//! `readl`, finding the CXL DVSECs there as a guest would, and compares
//! them with the simulator's own view.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::{firmware_dirs, qemu_bin, spawn_line_reader, Sim};
use cxl_model::dvsec::{
    find_dvsec, parse_device_dvsec, parse_register_locator, BLOCK_ID_COMPONENT, CXL_VENDOR_ID,
    DVSEC_ID_CXL_DEVICE, DVSEC_ID_REGISTER_LOCATOR,
};

/// Slot of the device on pcie.0.
const SLOT: u32 = 4;
/// Where the test puts q35's ECAM window (QEMU's default PCIEXBAR base).
const ECAM_BASE: u64 = 0xb000_0000;
/// Where the test places BAR 0.
const BAR_ADDR: u64 = 0xe000_0000;

struct Qtest {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Qtest {
    fn start(qemu: &Path, socket: &Path) -> Self {
        let dev = format!(
            r#"{{"driver":"vfio-user-pci","socket":{{"type":"unix","path":"{}"}},"addr":"{SLOT:#x}"}}"#,
            socket.display()
        );
        let mut cmd = Command::new(qemu);
        cmd.args([
            "-machine",
            "q35",
            "-accel",
            "qtest",
            "-display",
            "none",
            "-nodefaults",
            "-qtest",
            "stdio",
            "-qtest-log",
            "/dev/null",
            "-device",
            &dev,
        ]);
        for dir in firmware_dirs(qemu) {
            cmd.arg("-L").arg(dir);
        }
        let (child, stdin, lines) = spawn_line_reader(&mut cmd, Stdio::inherit());
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// Sends one qtest command and returns the value of its "OK" reply.
    fn cmd(&mut self, line: &str) -> Option<u64> {
        writeln!(self.stdin, "{line}").expect("QEMU stdin");
        loop {
            let reply = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no qtest reply to '{line}' (QEMU died?)"));
            if reply.starts_with("IRQ") {
                continue;
            }
            let rest = reply
                .strip_prefix("OK")
                .unwrap_or_else(|| panic!("qtest '{line}' failed: {reply}"));
            return rest
                .trim()
                .strip_prefix("0x")
                .map(|h| u64::from_str_radix(h, 16).unwrap());
        }
    }

    fn cfg_read(&mut self, dev: u32, reg: u32) -> u32 {
        self.cmd(&format!(
            "outl 0xcf8 {:#x}",
            0x8000_0000 | (dev << 11) | reg
        ));
        self.cmd("inl 0xcfc").unwrap() as u32
    }

    fn cfg_write(&mut self, dev: u32, reg: u32, v: u32) {
        self.cmd(&format!(
            "outl 0xcf8 {:#x}",
            0x8000_0000 | (dev << 11) | reg
        ));
        self.cmd(&format!("outl 0xcfc {v:#x}"));
    }
}

impl Drop for Qtest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn qemu_vfio_user_pci_sees_the_cxl_device() {
    let Some(qemu) = qemu_bin() else { return };
    let sim = Sim::start(&["--memory-size", "1G"]);
    let mut q = Qtest::start(&qemu, &sim.socket);

    // Realized, with our IDs, class and a 64-bit BAR 0 of 256K.
    assert_eq!(q.cfg_read(SLOT, 0x00), 0xc202_1234, "vendor/device");
    assert_eq!(q.cfg_read(SLOT, 0x08) >> 8, 0x12_00_00, "class");
    assert_eq!(q.cfg_read(SLOT, 0x10) & 0xf, 0x4, "64-bit memory BAR");
    q.cfg_write(SLOT, 0x10, 0xffff_ffff);
    assert_eq!(q.cfg_read(SLOT, 0x10), 0xfffc_0004, "BAR 0 is 256K");
    q.cfg_write(SLOT, 0x10, 0);
    assert_eq!(sim.stat("connections"), 1);

    // Enable ECAM (MCH PCIEXBAR, 256 buses) and read extended config.
    q.cfg_write(0, 0x64, (ECAM_BASE >> 32) as u32);
    q.cfg_write(0, 0x60, ECAM_BASE as u32 | 1);
    let fn_base = ECAM_BASE + (u64::from(SLOT) << 15);
    assert_eq!(
        q.cmd(&format!("readl {fn_base:#x}")).unwrap() as u32,
        0xc202_1234,
        "ECAM reaches the device"
    );
    let mut config = vec![0u8; 0x1000];
    for off in (0..0x200).step_by(4) {
        let v = q
            .cmd(&format!("readl {:#x}", fn_base + off as u64))
            .unwrap() as u32;
        config[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    let dvsec = find_dvsec(&config, CXL_VENDOR_ID, DVSEC_ID_CXL_DEVICE)
        .unwrap()
        .expect("CXL Device DVSEC visible through QEMU");
    let d = parse_device_dvsec(&config[usize::from(dvsec)..]).unwrap();
    assert_eq!(d.range1_size, 1 << 30, "Range 1 = device memory");
    let loc = find_dvsec(&config, CXL_VENDOR_ID, DVSEC_ID_REGISTER_LOCATOR)
        .unwrap()
        .expect("Register Locator visible through QEMU");
    let blocks = parse_register_locator(&config[usize::from(loc)..]).unwrap();
    assert!(blocks
        .iter()
        .any(|b| b.block_id == BLOCK_ID_COMPONENT && b.bir == 0 && b.offset == 0x10000));

    // QEMU's view of the DVSEC equals the host's.
    let len = 0x3c;
    let host = sim.control(&format!("config-read {dvsec} {len}"));
    let seen: String = config[usize::from(dvsec) + 4..usize::from(dvsec) + len]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        &host["hex"].as_str().unwrap()[8..],
        seen,
        "DVSEC body through QEMU = host shadow"
    );

    // Map BAR 0 and read it through QEMU: the accelerator pages come from
    // the mmapped memfd (sparse areas), the component block is trapped
    // and the simulator refuses direct access to it.
    q.cfg_write(SLOT, 0x10, BAR_ADDR as u32);
    q.cfg_write(SLOT, 0x14, (BAR_ADDR >> 32) as u32);
    q.cfg_write(SLOT, 0x04, 0x2);
    let rd = |qt: &mut Qtest, a: u64| qt.cmd(&format!("readl {a:#x}")).unwrap() as u32;
    assert_eq!(rd(&mut q, BAR_ADDR), u32::from_le_bytes(*b"CXL2"));
    assert_eq!(rd(&mut q, BAR_ADDR + 8), 1 << 30, "memory size register");
    q.cmd(&format!("writel {:#x} 0x5a5a1234", BAR_ADDR + 0x20040));
    assert_eq!(rd(&mut q, BAR_ADDR + 0x20040), 0x5a5a_1234);
    assert_eq!(
        rd(&mut q, BAR_ADDR + 0x11000),
        0xffff_ffff,
        "component block not directly accessible"
    );

    // QEMU restarts: the simulator serves the new instance.
    drop(q);
    let mut again = Qtest::start(&qemu, &sim.socket);
    assert_eq!(again.cfg_read(SLOT, 0x00), 0xc202_1234);
    assert_eq!(sim.stat("connections"), 2);
}
