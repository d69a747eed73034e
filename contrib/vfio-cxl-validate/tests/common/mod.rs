// SPDX-License-Identifier: GPL-2.0-or-later

//! The simulator, served in-process on a private socket, and the suite
//! run against it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use vfio_cxl_validate::contract::{self, Options, Summary};
use vfio_cxl_validate::host::Host;
use vfio_cxl_validate::report::{Outcome, Report};
use vfio_cxl_validate::vfio_user::VfioUserHost;
use vfio_user_cxl_sim::options::{self, Parsed};
use vfio_user_cxl_sim::server::{bind_socket, Simulator};

/// A simulator serving on its own socket until the test process ends;
/// its directory goes on drop.
pub struct Sim {
    dir: PathBuf,
    pub socket: PathBuf,
}

impl Sim {
    /// Starts a simulator with these command-line arguments.
    pub fn start(args: &[&str]) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cxl-validate-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("vfio-user.sock");
        let argv = ["--socket", socket.to_str().unwrap()]
            .into_iter()
            .chain(args.iter().copied())
            .map(str::to_owned);
        let Ok(Parsed::Run(opts)) = options::parse(argv) else {
            panic!("bad simulator arguments {args:?}");
        };
        let sim = Arc::new(Simulator::new(&opts).expect("simulator"));
        let listener = bind_socket(&socket).expect("bind");
        thread::spawn(move || sim.serve(&listener));
        Self { dir, socket }
    }

    /// Runs the suite (with `--yes`) and returns its report.
    pub fn suite(&self, expect: Option<&str>) -> (Report, Option<Summary>) {
        let opts = Options {
            yes: true,
            expect: expect.map(|e| e.parse().unwrap()),
        };
        let mut report = Report::new(false);
        let mut host = VfioUserHost::connect(&self.socket);
        let opened = host
            .as_mut()
            .map(|h| h as &mut dyn Host)
            .map_err(|e| e.clone());
        let summary = contract::run(opened, &opts, &mut report);
        (report, summary)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The report's lines, for assertion messages.
pub fn dump(r: &Report) -> String {
    r.lines
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first failing check's name.
pub fn first_failure(r: &Report) -> Option<&'static str> {
    r.lines
        .iter()
        .find(|l| l.outcome == Outcome::Fail)
        .map(|l| l.name)
}
