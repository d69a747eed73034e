// SPDX-License-Identifier: GPL-2.0-or-later

//! `vfio-user-cxl-sim`: command-line entry point.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;

use nix::sys::signal::{SigSet, Signal};

use vfio_user_cxl_sim::control;
use vfio_user_cxl_sim::options::{self, Parsed};
use vfio_user_cxl_sim::server::{bind_socket, Simulator};

fn main() -> ExitCode {
    let opts = match options::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help(text) | Parsed::Version(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };

    // Block the termination signals in every thread; the main thread
    // waits for them below and cleans up.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    if let Err(e) = signals.thread_block() {
        eprintln!("vfio-user-cxl-sim: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }

    let sim = match Simulator::new(&opts) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("vfio-user-cxl-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut cleanup: Vec<PathBuf> = Vec::new();
    let listener = match bind_socket(&opts.socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("vfio-user-cxl-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    cleanup.push(opts.socket.clone());
    if let Some(path) = &opts.control {
        match bind_socket(path) {
            Ok(l) => {
                cleanup.push(path.clone());
                control::spawn(l, Arc::clone(&sim));
            }
            Err(e) => {
                eprintln!("vfio-user-cxl-sim: control socket: {e}");
                let _ = std::fs::remove_file(&opts.socket);
                return ExitCode::FAILURE;
            }
        }
    }

    if let Some(plan) = &opts.hostile {
        eprintln!("vfio-user-cxl-sim: hostile {plan}");
    }
    let server = Arc::clone(&sim);
    thread::spawn(move || server.serve(&listener));
    println!("vfio-user-cxl-sim: listening on {}", opts.socket.display());
    let _ = std::io::stdout().flush();

    let sig = signals.wait();
    for p in &cleanup {
        let _ = std::fs::remove_file(p);
    }
    eprintln!(
        "vfio-user-cxl-sim: exiting on {}: {}",
        sig.map_or_else(|e| e.to_string(), |s| s.as_str().to_owned()),
        sim.stats.summary()
    );
    ExitCode::SUCCESS
}
