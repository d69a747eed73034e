// SPDX-License-Identifier: GPL-2.0-or-later

//! Measures start-up time for 1 GiB and 1 TiB of device memory, the
//! `VFIO_USER_REGION_READ` round-trip rate, and (v4) the time to gate and
//! ungate the memory with nothing, 16 MiB and 256 MiB written, side by
//! side.
//!
//! `cargo run --release -p vfio-user-cxl-sim --example bench`
//!
//! Start-up is measured in-process (memory backing, device, socket) and,
//! when the simulator binary sits next to the example's directory (after
//! `cargo build --release -p vfio-user-cxl-sim`), also as a whole process
//! up to its "listening" line.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vfio_user_cxl_sim::client::Client;
use vfio_user_cxl_sim::memory::Backing;
use vfio_user_cxl_sim::options::{DeviceOptions, Options};
use vfio_user_cxl_sim::server::{bind_socket, Simulator};

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("cxl-sim-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn options(dir: &Path, tag: &str, size: u64) -> Options {
    Options {
        socket: dir.join(format!("{tag}.sock")),
        control: None,
        memory_file: Some(dir.join(format!("{tag}.mem"))),
        device: DeviceOptions {
            memory_size: size,
            ..DeviceOptions::default()
        },
        verbose: false,
        hostile: None,
    }
}

/// Median in-process start-up over a few runs, and allocated bytes.
fn startup_in_process(dir: &Path, tag: &str, size: u64) -> (Duration, u64) {
    let mut times = Vec::new();
    let mut blocks = 0;
    for _ in 0..5 {
        let o = options(dir, tag, size);
        let t = Instant::now();
        let sim = Simulator::new(&o).unwrap();
        let l = bind_socket(&o.socket).unwrap();
        times.push(t.elapsed());
        blocks = std::fs::metadata(o.memory_file.as_ref().unwrap())
            .unwrap()
            .blocks();
        drop((sim, l));
        let _ = std::fs::remove_file(&o.socket);
    }
    times.sort();
    (times[times.len() / 2], blocks * 512)
}

fn startup_process(bin: &Path, dir: &Path, tag: &str, size: &str) -> Duration {
    let sock = dir.join(format!("{tag}-p.sock"));
    let mem = dir.join(format!("{tag}-p.mem"));
    let t = Instant::now();
    let mut child = Command::new(bin)
        .arg("--socket")
        .arg(&sock)
        .arg("--memory-file")
        .arg(&mem)
        .args(["--memory-size", size])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let d = t.elapsed();
    assert!(line.contains("listening"), "{line}");
    let _ = child.kill();
    let _ = child.wait();
    d
}

fn rate(c: &mut Client, region: u32, offset: u64, count: u32, n: u32) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        c.region_read(region, offset, count).unwrap();
    }
    f64::from(n) / t.elapsed().as_secs_f64()
}

/// Median time of one `hide` + `show` of a 1 GiB memfd with `written`
/// bytes allocated (what a v4 Memory Space Enable toggle costs).
fn gate_toggle(written: u64) -> Duration {
    let mut b = Backing::anonymous("bench-gate", 1 << 30).unwrap();
    let chunk = vec![0x5Au8; 1 << 20];
    for at in (0..written).step_by(chunk.len()) {
        b.write(at, &chunk).unwrap();
    }
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            b.hide().unwrap();
            b.show().unwrap();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let dir = scratch();
    println!(
        "v4 memory gate (hide + show, 1 GiB memfd, median of 5): 0 MiB written {:?} | 16 MiB {:?} | 256 MiB {:?}",
        gate_toggle(0),
        gate_toggle(16 << 20),
        gate_toggle(256 << 20)
    );
    let (g, gb) = startup_in_process(&dir, "1g", 1 << 30);
    let (t, tb) = startup_in_process(&dir, "1t", 1 << 40);
    println!("start-up (in-process, median of 5): 1 GiB {g:?} ({gb} bytes allocated) | 1 TiB {t:?} ({tb} bytes allocated)");

    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.join("vfio-user-cxl-sim")))
        .filter(|p| p.is_file());
    match &bin {
        Some(b) => println!(
            "start-up (process to 'listening'):   1 GiB {:?} | 1 TiB {:?}",
            startup_process(b, &dir, "1g", "1G"),
            startup_process(b, &dir, "1t", "1T")
        ),
        None => {
            println!("start-up (process): simulator binary not built next to the example; skipped")
        }
    }

    // Round trips against an in-process server on a real unix socket.
    let o = options(&dir, "rt", 1 << 30);
    let sim = Arc::new(Simulator::new(&o).unwrap());
    let l = bind_socket(&o.socket).unwrap();
    let s = Arc::clone(&sim);
    std::thread::spawn(move || s.serve(&l));
    let mut c = Client::connect(&o.socket).unwrap();
    let n = 50_000;
    let comp = rate(&mut c, 9, 0x1000, 4, n);
    let mem4 = rate(&mut c, 10, 0x1000, 4, n);
    let cfg = rate(&mut c, 7, 0x100, 4, n);
    let mem4k = rate(&mut c, 10, 0x1000, 4096, n / 5);
    println!(
        "REGION_READ round trips/s: COMP_REGS 4B {comp:.0} | memory 4B {mem4:.0} | config 4B {cfg:.0} | memory 4 KiB {mem4k:.0}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
