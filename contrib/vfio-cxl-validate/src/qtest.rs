// SPDX-License-Identifier: GPL-2.0-or-later

//! QEMU under qtest: no guest runs, the kit plays the guest through the
//! qtest protocol (one text command per line: `readl ADDR`, `writel ADDR
//! VAL`, `outl PORT VAL`; replies `OK [VALUE]`) and talks QMP beside it.
//! QEMU connects to both sockets, which the kit listens on.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Longest wait for QEMU to start, or for any reply.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A line-oriented connection.
struct Line {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Line {
    fn new(s: UnixStream) -> io::Result<Self> {
        s.set_read_timeout(Some(TIMEOUT))?;
        Ok(Self {
            writer: s.try_clone()?,
            reader: BufReader::new(s),
        })
    }

    fn send(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.writer, "{text}")
    }

    fn recv(&mut self) -> io::Result<String> {
        let mut l = String::new();
        if self.reader.read_line(&mut l)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(l.trim_end().to_owned())
    }
}

/// A running QEMU; killed and reaped on drop if still running.
pub struct Qemu {
    child: Option<Child>,
    qtest: Line,
    qmp: Line,
    pub log: PathBuf,
}

/// Accepts one connection on `l`, unless `child` exits first.
fn accept(l: &UnixListener, child: &mut Child, what: &str) -> io::Result<UnixStream> {
    l.set_nonblocking(true)?;
    let t0 = Instant::now();
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if let Some(st) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "QEMU exited ({st}) before connecting its {what}"
            )));
        }
        if t0.elapsed() > TIMEOUT {
            return Err(io::Error::other(format!(
                "QEMU did not connect its {what} in {TIMEOUT:?}"
            )));
        }
        sleep(Duration::from_millis(20));
    }
}

impl Qemu {
    /// Starts `binary` with `args` plus the qtest and QMP sockets in
    /// `dir`; its stderr goes to `dir/qemu.log`.
    pub fn start(binary: &Path, args: &[String], dir: &Path) -> io::Result<Self> {
        let qtest_sock = dir.join("qtest.sock");
        let qmp_sock = dir.join("qmp.sock");
        let log = dir.join("qemu.log");
        for p in [&qtest_sock, &qmp_sock] {
            let _ = std::fs::remove_file(p);
        }
        let qtest_l = UnixListener::bind(&qtest_sock)?;
        let qmp_l = UnixListener::bind(&qmp_sock)?;
        let mut child = Command::new(binary)
            .args(["-qtest", &format!("unix:{}", qtest_sock.display())])
            .args(["-qtest-log", "/dev/null"])
            .args([
                "-chardev",
                &format!("socket,id=qmp,path={}", qmp_sock.display()),
            ])
            .args([
                "-mon",
                "chardev=qmp,mode=control",
                "-display",
                "none",
                "-accel",
                "qtest",
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", binary.display())))?;
        let connected = accept(&qtest_l, &mut child, "qtest socket").and_then(|q| {
            let m = accept(&qmp_l, &mut child, "QMP monitor")?;
            Ok((Line::new(q)?, Line::new(m)?))
        });
        let (qtest, qmp) = match connected {
            Ok(c) => c,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let mut q = Self {
            child: Some(child),
            qtest,
            qmp,
            log,
        };
        q.qmp.recv()?; // the greeting
        q.qmp_command(&json!({"execute": "qmp_capabilities"}))?;
        Ok(q)
    }

    /// One qtest command; the reply's words after `OK`.
    fn command(&mut self, cmd: &str) -> io::Result<String> {
        self.qtest.send(cmd)?;
        loop {
            let l = self.qtest.recv()?;
            if l.starts_with("IRQ") {
                continue;
            }
            return match l.strip_prefix("OK") {
                Some(rest) => Ok(rest.trim().to_owned()),
                None => Err(io::Error::other(format!("qtest '{cmd}': {l}"))),
            };
        }
    }

    fn value(&mut self, cmd: &str) -> io::Result<u64> {
        let r = self.command(cmd)?;
        u64::from_str_radix(r.trim_start_matches("0x"), 16)
            .map_err(|_| io::Error::other(format!("qtest '{cmd}': bad value '{r}'")))
    }

    pub fn readl(&mut self, addr: u64) -> io::Result<u32> {
        Ok(self.value(&format!("readl {addr:#x}"))? as u32)
    }

    pub fn readw(&mut self, addr: u64) -> io::Result<u16> {
        Ok(self.value(&format!("readw {addr:#x}"))? as u16)
    }

    pub fn writel(&mut self, addr: u64, v: u32) -> io::Result<()> {
        self.command(&format!("writel {addr:#x} {v:#x}"))
            .map(|_| ())
    }

    pub fn writew(&mut self, addr: u64, v: u16) -> io::Result<()> {
        self.command(&format!("writew {addr:#x} {v:#x}"))
            .map(|_| ())
    }

    pub fn outl(&mut self, port: u16, v: u32) -> io::Result<()> {
        self.command(&format!("outl {port:#x} {v:#x}")).map(|_| ())
    }

    /// A QMP command's `return` (events are skipped), or its error.
    pub fn qmp_command(&mut self, cmd: &Value) -> io::Result<Value> {
        self.qmp.send(&cmd.to_string())?;
        loop {
            let v: Value = serde_json::from_str(&self.qmp.recv()?)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(io::Error::other(format!("QMP {cmd}: {e}")));
            }
        }
    }

    /// Whether QEMU is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Asks QEMU to quit and waits for it (killing it after a timeout).
    pub fn quit(mut self) -> io::Result<ExitStatus> {
        let _ = self.qmp_command(&json!({"execute": "quit"}));
        let mut child = self.child.take().expect("QEMU child");
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait()? {
                return Ok(st);
            }
            if t0.elapsed() > TIMEOUT {
                let _ = child.kill();
                return child.wait();
            }
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
