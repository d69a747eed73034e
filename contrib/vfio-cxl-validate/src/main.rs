// SPDX-License-Identifier: GPL-2.0-or-later

//! `vfio-cxl-validate`: the host-contract suite and the guest-view
//! checks (see the crate's README).

use std::process::ExitCode;

use clap::Parser;

use vfio_cxl_validate::cli::{Cli, Command, Common, EXIT_REFUSED};
use vfio_cxl_validate::contract::{self, Options};
use vfio_cxl_validate::guest_view;
use vfio_cxl_validate::host::{Host, HostError};
use vfio_cxl_validate::report::{say, Report};

fn options(c: &Common) -> Options {
    Options {
        yes: c.yes,
        expect: c.expect,
    }
}

/// Opens the host, or ends the run saying why it may not be used.
fn open(c: &Common) -> Result<Box<dyn Host>, ExitCode> {
    match c.target.open() {
        Ok(h) => Ok(h),
        Err(HostError::Refused(why)) => {
            eprintln!("vfio-cxl-validate: {why}");
            Err(ExitCode::from(EXIT_REFUSED))
        }
        Err(e) => {
            eprintln!("vfio-cxl-validate: cannot open the device: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn contract(c: &Common) -> ExitCode {
    let mut host = match open(c) {
        Ok(h) => h,
        Err(code) => return code,
    };
    let mut report = Report::new(true);
    let summary = contract::run(Ok(host.as_mut()), &options(c), &mut report);
    say(format_args!(
        "contract: {}{}",
        report.summary(),
        summary.map_or_else(String::new, |s| format!(
            " (host uAPI {}, memory {:#x} bytes)",
            s.posting, s.memory_size
        ))
    ));
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Contract(c) => contract(c),
        Command::GuestView {
            common,
            qemu,
            machine,
            work_dir,
        } => guest_view::main(
            common,
            &options(common),
            qemu,
            *machine,
            work_dir.as_deref(),
        ),
    }
}
