// SPDX-License-Identifier: GPL-2.0-or-later

//! Shared helpers: run the simulator binary in a private directory.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use vfio_user_cxl_sim::client::{self, Client};

pub const BIN: &str = env!("CARGO_BIN_EXE_vfio-user-cxl-sim");

/// A fresh, private scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "cxl-sim-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running simulator.
pub struct Sim {
    child: Option<Child>,
    pub socket: PathBuf,
    pub control: PathBuf,
    pub scratch: Scratch,
    /// How long start-up took, up to the "listening" line.
    pub startup: Duration,
}

impl Sim {
    /// Starts the simulator with `args` (plus `--socket` and `--control`)
    /// and waits until it listens.
    pub fn start(args: &[&str]) -> Self {
        let scratch = Scratch::new("sim");
        Self::start_in(scratch, args)
    }

    pub fn start_in(scratch: Scratch, args: &[&str]) -> Self {
        Self::start_with_stderr(scratch, args, Stdio::inherit())
    }

    /// As [`Sim::start_in`], with the simulator's stderr going to `stderr`.
    pub fn start_with_stderr(scratch: Scratch, args: &[&str], stderr: Stdio) -> Self {
        let socket = scratch.path("vfio-user.sock");
        let control = scratch.path("control.sock");
        let t0 = Instant::now();
        let mut child = Command::new(BIN)
            .arg("--socket")
            .arg(&socket)
            .arg("--control")
            .arg(&control)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn simulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("vfio-user-cxl-sim: listening on "),
            "simulator did not start ({args:?}): {line:?}"
        );
        let startup = t0.elapsed();
        Self {
            child: Some(child),
            socket,
            control,
            scratch,
            startup,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().unwrap().id() as i32)
    }

    /// A connected, negotiated client.
    pub fn client(&self) -> Client {
        Client::connect(&self.socket).expect("connect")
    }

    pub fn control(&self, command: &str) -> Value {
        let v = client::control(&self.control, command).expect("control socket");
        assert_eq!(v["ok"], true, "control '{command}' failed: {v}");
        v
    }

    pub fn stat(&self, name: &str) -> u64 {
        self.control("stats")[name].as_u64().unwrap()
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("simulator did not exit on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Directories that may hold the firmware QEMU needs for q35.
pub fn firmware_dirs(qemu: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("QEMU_FIRMWARE_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(parent) = qemu.parent() {
        dirs.push(parent.join("pc-bios"));
    }
    dirs.push(PathBuf::from("/usr/share/seabios"));
    dirs.push(PathBuf::from("/usr/share/qemu"));
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

/// The QEMU binary named by `QEMU_BIN`; `None` (the test skips, saying
/// why) when it is not set, unless `VFIO_CXL_REQUIRE_QEMU=1`, which makes
/// its absence a failure.
pub fn qemu_bin() -> Option<PathBuf> {
    let require = std::env::var("VFIO_CXL_REQUIRE_QEMU").is_ok_and(|v| v == "1");
    match std::env::var_os("QEMU_BIN").map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        Some(p) => {
            assert!(!require, "QEMU_BIN={} is not a file", p.display());
            eprintln!("skipped: QEMU_BIN={} is not a file", p.display());
            None
        }
        None => {
            assert!(!require, "VFIO_CXL_REQUIRE_QEMU=1 but QEMU_BIN is not set");
            eprintln!("skipped: QEMU_BIN not set");
            None
        }
    }
}

/// Spawns `cmd` (QEMU) with piped stdin and stdout; its stdout lines
/// arrive on the returned channel (read by a thread, so that waits on
/// them can be bounded).
pub fn spawn_line_reader(
    cmd: &mut Command,
    stderr: Stdio,
) -> (Child, std::process::ChildStdin, Receiver<String>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn QEMU");
    let stdin = child.stdin.take().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, stdin, lines)
}

/// Runs the binary to completion and returns (status, stdout, stderr).
pub fn run(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

// ---- CXL helpers built on the register model's parsers ----

use cxl_model::uapi::{
    cap_bytes, find_cap, parse_cap_chain, RegionTypeCap, SparseMmapCap, UapiError,
    VFIO_REGION_INFO_CAP_SPARSE_MMAP, VFIO_REGION_INFO_CAP_TYPE, VFIO_REGION_SUBTYPE_CXL,
    VFIO_REGION_SUBTYPE_CXL_COMP_REGS,
};
use vfio_user_cxl_sim::client::RegionReply;

/// The region type capability of a region-info reply, if any.
pub fn region_type(r: &RegionReply) -> Result<Option<RegionTypeCap>, UapiError> {
    let chain = parse_cap_chain(&r.raw, r.info.cap_offset)?;
    match find_cap(&chain, VFIO_REGION_INFO_CAP_TYPE as u16) {
        Some(cap) => RegionTypeCap::parse(cap_bytes(&r.raw, &chain, &cap)).map(Some),
        None => Ok(None),
    }
}

/// The sparse-mmap capability of a region-info reply, if any.
pub fn sparse_areas(r: &RegionReply) -> Option<Vec<(u64, u64)>> {
    let chain = parse_cap_chain(&r.raw, r.info.cap_offset).ok()?;
    let cap = find_cap(&chain, VFIO_REGION_INFO_CAP_SPARSE_MMAP as u16)?;
    SparseMmapCap::parse(cap_bytes(&r.raw, &chain, &cap))
        .ok()
        .map(|c| c.areas)
}

/// Finds the (`COMP_REGS`, memory) region indices by subtype, as the
/// device must.
pub fn find_cxl_regions(c: &mut Client) -> (Option<u32>, Option<u32>) {
    let n = c.device_info().unwrap().num_regions;
    let (mut comp, mut mem) = (None, None);
    for i in 0..n {
        let r = c.region_info(i).unwrap();
        if let Ok(Some(t)) = region_type(&r) {
            if t.is_cxl(VFIO_REGION_SUBTYPE_CXL_COMP_REGS) {
                comp = Some(i);
            } else if t.is_cxl(VFIO_REGION_SUBTYPE_CXL) {
                mem = Some(i);
            }
        }
    }
    (comp, mem)
}

/// The whole config space as the client reads it.
pub fn read_config(c: &mut Client) -> Vec<u8> {
    c.region_read(7, 0, 4096).unwrap()
}
