// SPDX-License-Identifier: GPL-2.0-or-later

//! A hostile host against QEMU: the simulator's `--hostile` kinds and a
//! disconnect after every message of realize, the first reset and a
//! hot-plug, each against a fresh QEMU running `vfio-user-cxl` on the
//! documented q35 CXL topology under the qtest accelerator, driven over
//! QMP.
//!
//! For every case QEMU must either refuse the device with a message
//! (cold plug: exit status 1 and a line on stderr; hot-plug: a
//! `device_add` error with a description) or keep it working: answer
//! QMP, say in `cxl-status` whether the memory is mapped, and if it is,
//! map exactly the simulator's memory at the window base (`info mtree
//! -f`), then quit with status 0.  A signal, a wait that runs out (every
//! one is bounded), a mapping elsewhere or of another size, or a silent
//! exit is a failure.
//!
//! Runs when `QEMU_BIN` is set (see `common::qemu_bin`).
//! `VFIO_CXL_HOSTILE=report` lists the failures and passes;
//! the default, `strict`, fails on any.  `VFIO_CXL_HOSTILE_SEED`
//! (default 1) seeds the kinds' cases, `VFIO_CXL_HOSTILE_SEEDS` (default
//! 2) is how many seeds each kind gets, `VFIO_CXL_HOSTILE_ONLY` runs only
//! the cases whose name contains it.  Each failure prints the command
//! lines that reproduce it.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{firmware_dirs, qemu_bin, spawn_line_reader, Scratch, Sim};
use serde_json::{json, Value};
use vfio_user_cxl_sim::hostile::Kind;

/// Device memory the simulator offers.
const MEMORY_SIZE: u64 = 256 << 20;
/// How long QEMU may take to start (realize and the first reset).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one QMP command may take.
const QMP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long QEMU may take to exit after `quit`.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// vfio-user reply timeout given to the device (QEMU's default is 5 s).
const MSG_TIMEOUT_MS: u32 = 2000;

const TOPOLOGY: &[&str] = &[
    "-nodefaults",
    "-display",
    "none",
    "-machine",
    "q35,cxl=on,accel=qtest",
    "-M",
    "cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G",
    "-device",
    "pxb-cxl,id=cxl.1,bus=pcie.0,bus_nr=12,hdm_for_passthrough=on",
    "-device",
    "cxl-rp,id=rp0,bus=cxl.1,chassis=0,slot=0,port=0",
    "-qmp",
    "stdio",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plug {
    /// On the command line: realize, then the machine's first reset.
    Cold,
    /// `device_add` into a running machine.
    Hot,
}

/// One case: the simulator's arguments and how the device is plugged.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    sim_args: Vec<String>,
    plug: Plug,
}

/// What QEMU did.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Up and answering; `cxl-status` and the memory map agree with the
    /// simulator.
    Working(String),
    /// The device was refused with this message.
    Refused(String),
    /// A failure: crash, abort, hang, wrong mapping, silent exit.
    Failed(String),
}

/// The device's JSON for `-device` and `device_add`.
fn device_json(socket: &Path) -> Value {
    json!({
        "driver": "vfio-user-cxl",
        "id": "acc",
        "bus": "rp0",
        "x-msg-timeout": MSG_TIMEOUT_MS,
        "socket": {"type": "unix", "path": socket.to_str().unwrap()},
    })
}

/// A QEMU process with QMP on its stdio, killed on drop.
struct Qemu {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: PathBuf,
    status: Option<ExitStatus>,
}

/// A QMP exchange that did not produce a reply.
enum QmpError {
    /// QEMU's stdout closed (it exited).
    Gone,
    /// No reply within the bound.
    Timeout,
}

impl Qemu {
    /// Starts QEMU with its stderr in the file `stderr`.
    fn start(qemu: &Path, args: &[String], stderr: &Path) -> Self {
        let file = File::create(stderr).expect("QEMU stderr file");
        Self::start_with_stderr(qemu, args, file, stderr)
    }

    /// Starts QEMU with its stderr going to `file`, which is `path`.
    fn start_with_stderr(qemu: &Path, args: &[String], file: File, path: &Path) -> Self {
        let mut cmd = Command::new(qemu);
        cmd.args(TOPOLOGY).args(args);
        for dir in firmware_dirs(qemu) {
            cmd.arg("-L").arg(dir);
        }
        let (child, stdin, lines) = spawn_line_reader(&mut cmd, Stdio::from(file));
        Self {
            child,
            stdin,
            lines,
            stderr: path.to_owned(),
            status: None,
        }
    }

    /// The next QMP object that is not an event.
    fn next(&self, timeout: Duration) -> Result<Value, QmpError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => match serde_json::from_str::<Value>(&line) {
                    Ok(v) if v.get("event").is_none() => return Ok(v),
                    _ => {}
                },
                Err(RecvTimeoutError::Timeout) => return Err(QmpError::Timeout),
                Err(RecvTimeoutError::Disconnected) => return Err(QmpError::Gone),
            }
        }
    }

    fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": command });
        if !arguments.is_null() {
            msg["arguments"] = arguments;
        }
        if writeln!(self.stdin, "{msg}").is_err() {
            return Err(QmpError::Gone);
        }
        self.next(QMP_TIMEOUT)
    }

    /// Waits (bounded) for the process to end.
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.status.is_none() && Instant::now() < deadline {
            self.status = self.child.try_wait().ok().flatten();
            if self.status.is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.status
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Judges an exit: a signal or a silent failure is a failure, status
    /// 1 with a message on stderr a refusal.
    fn judge_exit(&mut self, during: &str) -> Outcome {
        let err = self.stderr_text();
        let last = err.lines().last().unwrap_or_default().to_owned();
        match self.wait(EXIT_TIMEOUT) {
            None => Outcome::Failed(format!("hang: stdout closed {during}, process still there")),
            Some(s) if s.signal().is_some() => Outcome::Failed(format!(
                "{} {during}: {}",
                signal_name(s.signal().unwrap_or_default()),
                tail(&err)
            )),
            Some(s) if s.code() == Some(1) && !last.is_empty() => Outcome::Refused(last),
            Some(s) => Outcome::Failed(format!("exit {s} {during} with stderr '{}'", tail(&err))),
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The end of a stderr text, enough to recognise a failure.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(4)..].join(" | ")
}

fn signal_name(sig: i32) -> String {
    match sig {
        6 => "abort (SIGABRT)".into(),
        11 => "crash (SIGSEGV)".into(),
        7 => "crash (SIGBUS)".into(),
        s => format!("killed by signal {s}"),
    }
}

/// Where the device memory is, from `cxl-status` ("mapped: SIZE bytes at
/// BASE ...").
fn status_mapping(status: &str) -> Option<(u64, u64)> {
    let rest = status.strip_prefix("mapped: ")?;
    let mut words = rest.split_whitespace();
    let hex = |w: Option<&str>| u64::from_str_radix(w?.strip_prefix("0x")?, 16).ok();
    let size = hex(words.next())?;
    let base = hex(words.nth(2))?;
    Some((base, size))
}

/// The ranges of the device memory in the system address space's flat
/// view, from `info mtree -f`.
fn mtree_memory(mtree: &str) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut in_system = false;
    for line in mtree.lines() {
        if line.starts_with("FlatView") {
            in_system = false;
        }
        if line.contains("AS \"memory\"") {
            in_system = true;
        }
        if !in_system || !line.contains("vfio-cxl-memory") {
            continue;
        }
        let range = line.split_whitespace().next().unwrap_or_default();
        if let Some((a, b)) = range.split_once('-') {
            if let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                out.push((a, b.wrapping_sub(a).wrapping_add(1)));
            }
        }
    }
    out
}

/// The reference the cases are held to: where an honest host's memory
/// lands.
#[derive(Debug, Clone, Copy)]
struct Reference {
    base: u64,
    size: u64,
}

/// A QEMU that started: checks what it says about the device against
/// `reference` and that it quits cleanly.
fn judge_running(q: &mut Qemu, reference: Option<Reference>) -> Outcome {
    let status = match q.execute(
        "qom-get",
        json!({"path": "/machine/peripheral/acc", "property": "cxl-status"}),
    ) {
        Ok(v) => match v["return"].as_str() {
            Some(s) => s.to_owned(),
            None => return Outcome::Failed(format!("qom-get cxl-status: {v}")),
        },
        Err(QmpError::Gone) => return q.judge_exit("during qom-get cxl-status"),
        Err(QmpError::Timeout) => return Outcome::Failed("hang: qom-get cxl-status".into()),
    };
    let mtree = match q.execute(
        "human-monitor-command",
        json!({"command-line": "info mtree -f"}),
    ) {
        Ok(v) => v["return"].as_str().unwrap_or_default().to_owned(),
        Err(QmpError::Gone) => return q.judge_exit("during info mtree"),
        Err(QmpError::Timeout) => return Outcome::Failed("hang: info mtree".into()),
    };
    let mapped = mtree_memory(&mtree);
    let claimed = status_mapping(&status);
    match (claimed, reference) {
        (Some((base, size)), Some(r)) => {
            if (base, size) != (r.base, r.size) || mapped != [(r.base, r.size)] {
                return Outcome::Failed(format!(
                    "wrong mapping: status '{status}', flat view {mapped:x?}, \
                     expected {:#x} bytes at {:#x}",
                    r.size, r.base
                ));
            }
        }
        (Some(_), None) => {}
        (None, _) => {
            if !status.starts_with("unmapped") {
                return Outcome::Failed(format!("cxl-status says neither: '{status}'"));
            }
            if !mapped.is_empty() {
                return Outcome::Failed(format!(
                    "status '{status}' but device memory in the flat view: {mapped:x?}"
                ));
            }
        }
    }
    match q.execute("query-status", Value::Null) {
        Ok(v) if v["return"]["status"].is_string() => {}
        Ok(v) => return Outcome::Failed(format!("query-status: {v}")),
        Err(QmpError::Gone) => return q.judge_exit("during query-status"),
        Err(QmpError::Timeout) => return Outcome::Failed("hang: query-status".into()),
    }
    let _ = q.execute("quit", Value::Null);
    match q.wait(EXIT_TIMEOUT) {
        Some(s) if s.success() => Outcome::Working(status),
        Some(s) => Outcome::Failed(format!(
            "{} at quit: {}",
            s.signal().map_or_else(|| format!("exit {s}"), signal_name),
            tail(&q.stderr_text())
        )),
        None => Outcome::Failed("hang: no exit after quit".into()),
    }
}

/// Runs one case against a fresh simulator and QEMU; both are stopped by
/// PID (drop) whatever happens.
fn run_case(qemu: &Path, case: &Case, reference: Option<Reference>) -> (Outcome, String) {
    let scratch = Scratch::new("hostile");
    let sim_log = scratch.path("sim-stderr");
    let qemu_log = scratch.path("qemu-stderr");
    let mut args: Vec<&str> = vec!["--memory-size", "256M"];
    args.extend(case.sim_args.iter().map(String::as_str));
    let sim = Sim::start_with_stderr(
        scratch,
        &args,
        Stdio::from(File::create(&sim_log).expect("sim stderr file")),
    );
    let dev = device_json(&sim.socket);
    let mut qemu_args: Vec<String> = Vec::new();
    if case.plug == Plug::Cold {
        qemu_args.push("-device".into());
        qemu_args.push(dev.to_string());
    }
    let repro = format!(
        "{} --socket S --control C {}\n    {} {} {}",
        common::BIN,
        args.join(" "),
        qemu.display(),
        TOPOLOGY.join(" "),
        if case.plug == Plug::Cold {
            format!("-device '{dev}'")
        } else {
            format!("then QMP device_add {dev}")
        }
    );
    let mut q = Qemu::start(qemu, &qemu_args, &qemu_log);
    let outcome = (|| {
        match q.next(START_TIMEOUT) {
            Ok(_) => {}
            Err(QmpError::Gone) => return q.judge_exit("at start-up"),
            Err(QmpError::Timeout) => {
                return Outcome::Failed("hang: no QMP greeting (realize or first reset)".into())
            }
        }
        if let Err(e) = q.execute("qmp_capabilities", Value::Null) {
            return match e {
                QmpError::Gone => q.judge_exit("after start-up"),
                QmpError::Timeout => Outcome::Failed("hang: qmp_capabilities".into()),
            };
        }
        if case.plug == Plug::Hot {
            match q.execute("device_add", dev.clone()) {
                Ok(v) if v.get("return").is_some() => {}
                Ok(v) => {
                    let desc = v["error"]["desc"].as_str().unwrap_or_default().to_owned();
                    // Refused: QEMU must still be healthy afterwards.
                    return match judge_after_refusal(&mut q) {
                        None if !desc.is_empty() => Outcome::Refused(desc),
                        None => Outcome::Failed(format!("device_add error without text: {v}")),
                        Some(failure) => failure,
                    };
                }
                Err(QmpError::Gone) => return q.judge_exit("during device_add"),
                Err(QmpError::Timeout) => return Outcome::Failed("hang: device_add".into()),
            }
        }
        judge_running(&mut q, reference)
    })();
    drop(q);
    let sim_err = std::fs::read_to_string(&sim_log).unwrap_or_default();
    let fired: Vec<&str> = sim_err
        .lines()
        .filter(|l| l.contains("hostile: message"))
        .collect();
    let detail = if fired.is_empty() {
        repro
    } else {
        format!("{repro}\n    {}", fired.join("\n    "))
    };
    drop(sim);
    (outcome, detail)
}

/// After a refused `device_add`: QEMU answers and quits cleanly.
fn judge_after_refusal(q: &mut Qemu) -> Option<Outcome> {
    match q.execute("query-status", Value::Null) {
        Ok(_) => {}
        Err(QmpError::Gone) => return Some(q.judge_exit("after a refused device_add")),
        Err(QmpError::Timeout) => return Some(Outcome::Failed("hang: after device_add".into())),
    }
    let _ = q.execute("quit", Value::Null);
    match q.wait(EXIT_TIMEOUT) {
        Some(s) if s.success() => None,
        Some(s) => Some(Outcome::Failed(format!(
            "{} at quit after a refused device_add: {}",
            s.signal().map_or_else(|| format!("exit {s}"), signal_name),
            tail(&q.stderr_text())
        ))),
        None => Some(Outcome::Failed("hang: no exit after quit".into())),
    }
}

/// How many messages an honest host exchanges: for a cold plug, in
/// realize and in the first reset (split by the device's reset trace);
/// for a hot-plug, in `device_add`.
struct Counts {
    realize: u64,
    first_reset: u64,
    hot_plug: u64,
}

/// Runs an honest cold plug: where the memory lands, and how many
/// messages realize and the first reset take.
fn honest_cold_plug(qemu: &Path) -> (Reference, u64, u64) {
    // Cold: the simulator's message log and QEMU's reset trace share one
    // file; each request is logged before its reply, so the order holds.
    let scratch = Scratch::new("hostile-ref");
    let log = scratch.path("log");
    let file = File::create(&log).unwrap();
    let sim = Sim::start_with_stderr(
        scratch,
        &["--memory-size", "256M", "-v"],
        Stdio::from(file.try_clone().unwrap()),
    );
    let args = [
        "-device".to_owned(),
        device_json(&sim.socket).to_string(),
        "-trace".into(),
        "vfio_cxl_reset_begin".into(),
        "-trace".into(),
        "vfio_cxl_reset_end".into(),
    ];
    let mut q = Qemu::start_with_stderr(qemu, &args, file, &log);
    q.next(START_TIMEOUT)
        .unwrap_or_else(|_| panic!("honest QEMU did not start"));
    let _ = q.execute("qmp_capabilities", Value::Null);
    let status = q
        .execute(
            "qom-get",
            json!({"path": "/machine/peripheral/acc", "property": "cxl-status"}),
        )
        .ok()
        .and_then(|v| v["return"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let (base, size) = status_mapping(&status)
        .unwrap_or_else(|| panic!("an honest host is not mapped: '{status}'"));
    assert_eq!(size, MEMORY_SIZE, "honest host: {status}");
    let _ = q.execute("quit", Value::Null);
    q.wait(EXIT_TIMEOUT);
    drop(q);
    let text = std::fs::read_to_string(&log).unwrap();
    let (mut realize, mut reset, mut phase) = (0, 0, 0);
    for line in text.lines() {
        if line.contains("vfio_cxl_reset_begin") && phase == 0 {
            phase = 1;
        } else if line.contains("vfio_cxl_reset_end") && phase == 1 {
            phase = 2;
        } else if line.starts_with("vfio-user-cxl-sim: id ") {
            match phase {
                0 => realize += 1,
                1 => reset += 1,
                _ => {}
            }
        }
    }
    assert!(realize > 0 && reset > 0, "no messages counted:\n{text}");
    drop(sim);
    (Reference { base, size }, realize, reset)
}

/// Runs an honest hot-plug and counts the messages `device_add` takes.
fn honest_hot_plug(qemu: &Path) -> u64 {
    let sim = Sim::start(&["--memory-size", "256M"]);
    let qlog = sim.scratch.path("qemu-stderr");
    let mut q = Qemu::start(qemu, &[], &qlog);
    q.next(START_TIMEOUT).ok().expect("QEMU did not start");
    let _ = q.execute("qmp_capabilities", Value::Null);
    let r = q.execute("device_add", device_json(&sim.socket)).ok();
    assert!(
        r.as_ref().is_some_and(|v| v.get("return").is_some()),
        "honest device_add failed: {r:?}"
    );
    let hot_plug = sim.stat("messages");
    let _ = q.execute("quit", Value::Null);
    q.wait(EXIT_TIMEOUT);
    hot_plug
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every case: each kind with each seed (cold plug, and the first seed
/// hot-plugged too), and the disconnect after every message.
fn cases(counts: &Counts) -> Vec<Case> {
    let seed = env_u64("VFIO_CXL_HOSTILE_SEED", 1);
    let seeds = env_u64("VFIO_CXL_HOSTILE_SEEDS", 2).max(1);
    let mut out = Vec::new();
    for (k, kind) in Kind::ALL.iter().enumerate() {
        for i in 0..seeds {
            let s = seed * 1000 + k as u64 * 10 + i;
            let arg = format!("{s},{}", kind.name());
            out.push(Case {
                name: format!("cold {arg}"),
                sim_args: vec!["--hostile".into(), arg.clone()],
                plug: Plug::Cold,
            });
            if i == 0 {
                out.push(Case {
                    name: format!("hot {arg}"),
                    sim_args: vec!["--hostile".into(), arg],
                    plug: Plug::Hot,
                });
            }
        }
    }
    let cold = counts.realize + counts.first_reset;
    for n in 0..=cold {
        let phase = if n < counts.realize {
            "realize"
        } else if n < cold {
            "first reset"
        } else {
            "after the first reset"
        };
        out.push(Case {
            name: format!("cold drop-after={n} ({phase})"),
            sim_args: vec!["--fault".into(), format!("drop-after={n}")],
            plug: Plug::Cold,
        });
    }
    for n in 0..=counts.hot_plug {
        let phase = if n < counts.hot_plug {
            "device_add"
        } else {
            "after device_add"
        };
        out.push(Case {
            name: format!("hot drop-after={n} ({phase})"),
            sim_args: vec!["--fault".into(), format!("drop-after={n}")],
            plug: Plug::Hot,
        });
    }
    if let Ok(only) = std::env::var("VFIO_CXL_HOSTILE_ONLY") {
        out.retain(|c| c.name.contains(&only));
    }
    out
}

#[test]
fn qemu_survives_a_hostile_host() {
    let Some(qemu) = qemu_bin() else { return };
    let strict = std::env::var("VFIO_CXL_HOSTILE").map_or(true, |m| m != "report");
    let t0 = Instant::now();
    let (reference, realize, first_reset) = honest_cold_plug(&qemu);
    let counts = Counts {
        realize,
        first_reset,
        hot_plug: honest_hot_plug(&qemu),
    };
    eprintln!(
        "hostile: honest host mapped {:#x} bytes at {:#x}; messages: realize {}, \
         first reset {}, device_add {}",
        reference.size, reference.base, counts.realize, counts.first_reset, counts.hot_plug
    );
    let all = cases(&counts);
    let queue = Arc::new(Mutex::new(all.into_iter().enumerate()));
    let results = Arc::new(Mutex::new(BTreeMap::new()));
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    std::thread::scope(|s| {
        for _ in 0..workers {
            let (queue, results, qemu) = (Arc::clone(&queue), Arc::clone(&results), &qemu);
            s.spawn(move || loop {
                let Some((i, case)) = queue.lock().unwrap().next() else {
                    break;
                };
                let (outcome, detail) = run_case(qemu, &case, Some(reference));
                results.lock().unwrap().insert(i, (case, outcome, detail));
            });
        }
    });
    let results = std::mem::take(&mut *results.lock().unwrap());
    let (mut working, mut refused, mut failed) = (0, 0, Vec::new());
    for (case, outcome, detail) in results.values() {
        match outcome {
            Outcome::Working(s) => {
                working += 1;
                eprintln!("hostile: {}: working: {s}", case.name);
            }
            Outcome::Refused(m) => {
                refused += 1;
                eprintln!("hostile: {}: refused: {m}", case.name);
            }
            Outcome::Failed(f) => {
                eprintln!("hostile: {}: FAILED: {f}\n    {detail}", case.name);
                failed.push(case.name.clone());
            }
        }
    }
    eprintln!(
        "hostile: {} cases ({} kinds, disconnect points: {} realize + {} first reset + 1 \
         after, {} device_add + 1 after) in {:.0?}: {working} working, {refused} refused, \
         {} failed",
        results.len(),
        Kind::ALL.len(),
        counts.realize,
        counts.first_reset,
        counts.hot_plug,
        t0.elapsed(),
        failed.len()
    );
    assert!(
        !strict || failed.is_empty(),
        "QEMU failed against a hostile host in {} cases: {failed:?} \
         (VFIO_CXL_HOSTILE=report lists them without failing)",
        failed.len()
    );
}
