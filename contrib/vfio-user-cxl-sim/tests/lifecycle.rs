// SPDX-License-Identifier: GPL-2.0-or-later

//! Process life cycle: start-up, errors, reconnects, signals, sizes.

mod common;

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::{exists, run, Scratch, Sim};
use vfio_user_cxl_sim::client::Client;

#[test]
fn help_and_version() {
    let (st, out, _) = run(&["--help"]);
    assert!(st.success());
    for word in [
        "--socket",
        "--control",
        "--memory-size",
        "--memory-file",
        "--hpa",
        "--uapi",
        "--decoder",
        "--v4-region-type",
        "open-reset-fails",
        "state",
        "no-comp-regs",
        "no-memory",
        "comp-regs-size-mismatch",
        "cap-chain-loop",
        "memory-smaller-than-decoder",
        "reset-fails",
        "drop-after=N",
        "config-read",
        "comp-regs-read",
        "mem-read",
        "mem-write",
        "stats",
    ] {
        assert!(out.contains(word), "--help does not mention {word}");
    }
    let (vst, vout, _) = run(&["--version"]);
    assert!(vst.success() && vout.starts_with("vfio-user-cxl-sim "));
}

#[test]
fn bad_options_are_clear_errors() {
    for (args, needle) in [
        (&["--bogus"][..], "unexpected argument '--bogus'"),
        (
            &[][..],
            "the following required arguments were not provided:\n  --socket <PATH>",
        ),
        (&["--socket", "/x", "--uapi", "v9"][..], "v9"),
        (
            &["--socket", "/x", "--v4-region-type", "odd"][..],
            "'odd' for '--v4-region-type <TYPE>'",
        ),
        (&["--socket", "/x", "--fault", "melt"][..], "unknown fault"),
        (
            &["--socket", "/x", "--memory-size", "3Q"][..],
            "--memory-size",
        ),
        (&["--socket", "/x", "--memory-size", "2T"][..], "at most 1T"),
    ] {
        let (st, _, err) = run(args);
        assert_eq!(st.code(), Some(2), "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn socket_in_use_is_refused() {
    let sim = Sim::start(&[]);
    let sock = sim.socket.to_str().unwrap();
    let (st, _, err) = run(&["--socket", sock]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("in use"), "{err}");
    // The first simulator still works.
    sim.client().device_info().unwrap();

    // A non-socket file is not replaced either.
    let s = Scratch::new("notsock");
    let f = s.path("file");
    std::fs::write(&f, b"x").unwrap();
    let (st2, _, err2) = run(&["--socket", f.to_str().unwrap()]);
    assert_eq!(st2.code(), Some(1));
    assert!(err2.contains("not a socket"), "{err2}");
}

#[test]
fn stale_socket_is_replaced() {
    let s = Scratch::new("stale");
    let p = s.path("vfio-user.sock");
    drop(std::os::unix::net::UnixListener::bind(&p).unwrap());
    assert!(exists(&p));
    let sim = Sim::start_in(s, &[]);
    sim.client().device_info().unwrap();
}

#[test]
fn unusable_memory_file_is_a_clear_error() {
    let s = Scratch::new("memfile");
    let sock = s.path("s");
    let (st, _, err) = run(&[
        "--socket",
        sock.to_str().unwrap(),
        "--memory-file",
        s.0.to_str().unwrap(), // a directory
    ]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("memory file"), "{err}");
    let (st2, _, err2) = run(&[
        "--socket",
        sock.to_str().unwrap(),
        "--memory-file",
        "/nonexistent-dir/mem",
    ]);
    assert_eq!(st2.code(), Some(1));
    assert!(err2.contains("memory file"), "{err2}");
    assert!(!exists(&sock), "no socket left behind on failure");
}

#[test]
fn sigterm_removes_sockets_and_exits_zero() {
    let mut sim = Sim::start(&[]);
    let _c = sim.client();
    assert!(exists(&sim.socket) && exists(&sim.control));
    let st = sim.terminate();
    assert_eq!(st.code(), Some(0));
    assert!(!exists(&sim.socket), "socket removed");
    assert!(!exists(&sim.control), "control socket removed");
}

#[test]
fn sigint_also_exits_cleanly() {
    let mut sim = Sim::start(&[]);
    nix::sys::signal::kill(sim.pid(), nix::sys::signal::Signal::SIGINT).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // SIGTERM to an exited, not yet reaped child is harmless.
    let st = sim.terminate();
    assert_eq!(st.code(), Some(0));
    assert!(!exists(&sim.socket));
}

#[test]
fn reconnect_gets_fresh_device_but_same_memory() {
    let sim = Sim::start(&["--memory-size", "512M"]);
    let (comp, mem) = (9, 10);
    {
        let mut c = sim.client();
        c.region_write(mem, 0x1234_5678, b"persist!").unwrap();
        // Change config and BAR state that must not survive.
        c.region_write(7, 0x04, &[0x06, 0x00]).unwrap();
        c.write_u32(0, 0x20000, 0xdead_beef).unwrap();
        let _ = comp;
    } // disconnect (QEMU exits)
    let mut c = sim.client();
    assert_eq!(c.region_read(mem, 0x1234_5678, 8).unwrap(), b"persist!");
    assert_eq!(c.read_u32(7, 0x04).unwrap() & 0xffff, 0, "command cleared");
    assert_eq!(c.read_u32(0, 0x20000).unwrap(), 0, "BAR scratch cleared");
    assert_eq!(sim.stat("connections"), 2);
    assert_eq!(
        sim.control("mem-read 0x12345678 8")["hex"],
        "7065727369737421"
    );
}

#[test]
fn second_client_on_a_busy_socket_is_refused_with_ebusy() {
    let sim = Sim::start(&[]);
    let mut a = sim.client();
    let started = std::time::Instant::now();
    let refused = Client::connect(&sim.socket).err().expect("refused");
    let waited = started.elapsed();
    assert!(
        matches!(refused, vfio_user_cxl_sim::client::ClientError::Remote(16)),
        "EBUSY expected, got {refused}"
    );
    // After the grace period, well before QEMU's 5 s reply timeout.
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(sim.stat("busy_refusals"), 1);
    // The first client is unaffected, and once it leaves the next is served.
    assert_eq!(a.device_info().unwrap().num_regions, 11);
    drop(a);
    assert_eq!(sim.client().device_info().unwrap().num_regions, 11);
}

#[test]
fn second_client_waits_for_the_first() {
    let sim = Sim::start(&[]);
    let mut a = sim.client();
    let sock = sim.socket.clone();
    let t = std::thread::spawn(move || {
        let mut b = Client::connect(&sock).unwrap();
        b.device_info().unwrap().num_regions
    });
    // Within the grace period the first client leaves: the second is
    // served, not refused.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(a.device_info().unwrap().num_regions, 11);
    drop(a);
    assert_eq!(t.join().unwrap(), 11);
}

#[test]
fn one_tib_starts_without_touching_pages() {
    let s1 = Scratch::new("g");
    let f1 = s1.path("mem");
    let small = Sim::start_in(
        s1,
        &["--memory-size", "1G", "--memory-file", f1.to_str().unwrap()],
    );
    let s2 = Scratch::new("t");
    let f2 = s2.path("mem");
    let big = Sim::start_in(
        s2,
        &["--memory-size", "1T", "--memory-file", f2.to_str().unwrap()],
    );
    eprintln!(
        "start-up: 1 GiB {:?}, 1 TiB {:?}",
        small.startup, big.startup
    );
    let meta = std::fs::metadata(&f2).unwrap();
    assert_eq!(meta.len(), 1 << 40);
    assert_eq!(meta.blocks(), 0, "no page of the memory file touched");
    assert!(big.startup < Duration::from_secs(2));

    // Regions work at the far end too, and only that page gets allocated.
    let mut c = big.client();
    let info = c.region_info(10).unwrap();
    assert_eq!(info.info.size, 1 << 40);
    c.region_write(10, (1 << 40) - 8, b"lastword").unwrap();
    assert_eq!(c.region_read(10, (1 << 40) - 8, 8).unwrap(), b"lastword");
    assert!(std::fs::metadata(&f2).unwrap().blocks() <= 64);
    c.region_read(10, (1 << 40) - 4, 8)
        .expect_err("past the end");

    // The anonymous (memfd) default is sparse as well.
    let anon = Sim::start(&["--memory-size", "1T"]);
    let mut c2 = anon.client();
    let fd = c2.region_info(10).unwrap().fd.unwrap();
    let st = nix::sys::stat::fstat(fd.as_fd()).unwrap();
    assert_eq!(st.st_size, 1 << 40);
    assert_eq!(st.st_blocks, 0);
}
