// SPDX-License-Identifier: GPL-2.0-or-later

//! The command line: which host, and what may be done to it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::host::{Host, HostResult};
use crate::kernel::{KernelHost, Target};
use crate::machine::Machine;
use crate::posting::Posting;
use crate::vfio_user::VfioUserHost;

/// Exit status when the device cannot or may not be used at all.
pub const EXIT_REFUSED: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "vfio-cxl-validate",
    version,
    about = "Checks a vfio-pci CXL Type-2 host against the kernel interface (v2, v3, v4), \
             then what a guest sees through QEMU's vfio-cxl",
    max_term_width = 80
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the host-contract suite.
    Contract(Common),
    /// Start QEMU with the device on q35 or virt under qtest and check what
    /// the guest would see.
    GuestView {
        #[command(flatten)]
        common: Common,
        /// QEMU binary built with vfio-cxl, for the machine's target
        #[arg(long, value_name = "PATH")]
        qemu: PathBuf,
        /// the machine (default: this host's: q35 on an x86 host, virt on arm64)
        #[arg(long, value_enum, default_value_t = Machine::native())]
        machine: Machine,
        /// directory for QEMU's sockets and log (default: a fresh one
        /// under the temporary directory)
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
    },
}

/// The host and the permissions, for every subcommand.
#[derive(Debug, Args)]
pub struct Common {
    #[command(flatten)]
    pub target: TargetArgs,
    /// allow writes to registers and device memory, and resets
    #[arg(long)]
    pub yes: bool,
    /// fail unless the host speaks this posting (v2, v3, v4)
    #[arg(long, value_name = "VERSION")]
    pub expect: Option<Posting>,
}

/// Exactly one way to name the host.
#[derive(Debug, Args)]
#[group(id = "target", required = true, multiple = false)]
pub struct TargetArgs {
    /// a PCI function bound to vfio-pci (kernel VFIO), e.g. 0000:3b:00.0
    #[arg(long, value_name = "BDF")]
    pub host: Option<String>,
    /// the same, by sysfs path (/sys/bus/pci/devices/...)
    #[arg(long, value_name = "PATH")]
    pub sysfsdev: Option<PathBuf>,
    /// a vfio-user server's socket (the simulator)
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

impl TargetArgs {
    /// Opens the host named on the command line.
    pub fn open(&self) -> HostResult<Box<dyn Host>> {
        if let Some(s) = &self.socket {
            return Ok(Box::new(VfioUserHost::connect(s)?));
        }
        Ok(Box::new(KernelHost::open(&self.kernel_target())?))
    }

    /// The kernel target, when the host is kernel VFIO.
    #[must_use]
    pub fn kernel_target(&self) -> Target {
        match (&self.host, &self.sysfsdev) {
            (Some(b), _) => Target::Bdf(b.clone()),
            (None, Some(p)) => Target::Sysfs(p.clone()),
            (None, None) => Target::Bdf(String::new()),
        }
    }
}
