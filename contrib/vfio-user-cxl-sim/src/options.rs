// SPDX-License-Identifier: GPL-2.0-or-later

//! Command-line options, parsed by clap; the help text is the doc
//! comments below plus [`AFTER_HELP`].

use std::fmt;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::hostile::Plan;

/// Which kernel series' interface to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Uapi {
    #[value(help = "memory = region 9, COMP_REGS = region 10")]
    V2,
    #[value(help = "COMP_REGS = region 9, memory = region 10")]
    V3,
    #[value(help = "memory = region 9, COMP_REGS = region 10 (the HDM block)")]
    V4,
}

/// Which v4-era tree's region type the CXL regions carry
/// (`--v4-region-type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum V4RegionType {
    /// The newest tree: the PCI vendor type with the CXL vendor ID.
    #[default]
    #[value(help = "0x80001E98 (newest v4 tree)")]
    Vendor,
    /// The earlier tree's `VFIO_REGION_TYPE_CXL`.
    #[value(help = "4 (earlier v4 tree's VFIO_REGION_TYPE_CXL)")]
    Early,
}

/// Decoder 0 as host firmware left it (`--decoder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DecoderState {
    Committed,
    Uncommitted,
}

/// Deliberately broken hosts, one symptom each (`--fault NAME`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// The `COMP_REGS` region is absent (size 0, no flags, no capability).
    pub no_comp_regs: bool,
    /// The memory region is absent (size 0, no flags, no capability).
    pub no_memory: bool,
    /// The `COMP_REGS` region reports 4 KiB more than the layout has.
    pub comp_regs_size_mismatch: bool,
    /// The `COMP_REGS` region's capability chain points back to itself.
    pub cap_chain_loop: bool,
    /// The memory region reports half of decoder 0's size.
    pub memory_smaller_than_decoder: bool,
    /// `VFIO_USER_DEVICE_RESET` fails with EIO, and so does the reset an
    /// FLR written to Device Control starts (the write itself succeeds).
    pub reset_fails: bool,
    /// v4: the CXL reset the kernel runs when the device is opened fails,
    /// so every connection is closed at once.
    pub open_reset_fails: bool,
    /// Device Capabilities does not advertise Function Level Reset, so a
    /// write of Initiate FLR is no reset (as on such hardware).
    pub no_flr: bool,
    /// Each connection is closed after this many messages.
    pub drop_after: Option<u64>,
}

impl Faults {
    /// Turns on the fault named `name` (`drop-after=N` carries a count).
    pub fn enable(&mut self, name: &str) -> Result<(), String> {
        match name {
            "no-comp-regs" => self.no_comp_regs = true,
            "no-memory" => self.no_memory = true,
            "comp-regs-size-mismatch" => self.comp_regs_size_mismatch = true,
            "cap-chain-loop" => self.cap_chain_loop = true,
            "memory-smaller-than-decoder" => self.memory_smaller_than_decoder = true,
            "reset-fails" => self.reset_fails = true,
            "open-reset-fails" => self.open_reset_fails = true,
            "no-flr" => self.no_flr = true,
            _ => {
                let n = name
                    .strip_prefix("drop-after=")
                    .ok_or_else(|| format!("unknown fault '{name}' (see --help)"))?;
                let n = parse_number(n).map_err(|e| format!("--fault drop-after: {e}"))?;
                self.drop_after = Some(n);
            }
        }
        Ok(())
    }
}

/// What the simulated device looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceOptions {
    pub uapi: Uapi,
    /// v4 only: the region type of the CXL regions.
    pub v4_region_type: V4RegionType,
    /// Size of the device memory (and of decoder 0).
    pub memory_size: u64,
    /// Host physical base address reported in decoder 0.
    pub hpa: u64,
    /// Decoder 0 committed by "host firmware".
    pub committed: bool,
    pub faults: Faults,
}

/// Default device memory size: 256 MiB.
pub const DEFAULT_MEMORY_SIZE: u64 = 256 << 20;
/// Default host physical base: 64 GiB (256 MiB aligned, room for 1 TiB).
pub const DEFAULT_HPA: u64 = 0x10_0000_0000;
/// HDM decoder granularity.
pub const HDM_GRANULE: u64 = 256 << 20;

impl Default for DeviceOptions {
    fn default() -> Self {
        Self {
            uapi: Uapi::V3,
            v4_region_type: V4RegionType::Vendor,
            memory_size: DEFAULT_MEMORY_SIZE,
            hpa: DEFAULT_HPA,
            committed: true,
            faults: Faults::default(),
        }
    }
}

/// Everything the command line says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    pub socket: PathBuf,
    pub control: Option<PathBuf>,
    pub memory_file: Option<PathBuf>,
    pub device: DeviceOptions,
    pub verbose: bool,
    /// `--hostile`: which reply to answer wrongly, and how.
    pub hostile: Option<Plan>,
}

/// Result of parsing: run, or print something and exit.
#[derive(Debug)]
pub enum Parsed {
    Run(Options),
    /// Print this help text.
    Help(String),
    /// Print this version line.
    Version(String),
}

/// A command-line error, printed as is (it ends with a hint to
/// `--help`); the program exits with status 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.trim_end())
    }
}

/// The part of `--help` after the options: the device and the control
/// socket.
pub const AFTER_HELP: &str = "\
Faults (--fault NAME, repeatable):
  no-comp-regs                 COMP_REGS region absent (size 0, no caps)
  no-memory                    memory region absent (size 0, no caps)
  comp-regs-size-mismatch      COMP_REGS region 4K larger than the layout
  cap-chain-loop               COMP_REGS capability chain loops on itself
  memory-smaller-than-decoder  memory region half of decoder 0's size
  reset-fails                  DEVICE_RESET replies EIO; an FLR written to
                               Device Control fails too (v4: and the DVSEC
                               CXL Reset, which reports RST_ERR)
  open-reset-fails             v4: the reset at open fails, so each
                               connection is closed at once
  no-flr                       Device Capabilities without FLR: a write of
                               Initiate FLR is no reset
  drop-after=N                 close each connection after N messages

Hostile mode (--hostile SEED[,KIND[,NTH]]): in each connection, reply NTH
(from 0) of those KIND applies to is answered wrongly; the seed draws what is
not given and every detail (errno, size, field).  The plan is printed at
start and each time it fires (counted in hostile_faults).  Kinds:
  truncated-header   part of the header, then hang up
  truncated-payload  header and part of the payload, then hang up
  short-reply        payload cut short (size says so)
  long-reply         junk appended (size says so)
  size-too-small     header size below 16
  size-too-large     header size above what is sent
  wrong-id           another message's id
  wrong-command      another command
  wrong-type         typed as a request or an unknown type
  odd-errno          error reply with an odd errno (0, EINTR, 512, ...)
  stray-fd           descriptors where none (or fewer) belong
  missing-fd         no descriptor where one belongs (mmap regions)
  duplicate          the reply twice
  no-reply           no reply, connection kept
  bad-version        VERSION: broken JSON, major 1, absurd limits
  bad-device-info    DEVICE_GET_INFO: odd argsz, flags, counts
  region-size        region info: impossible size
  region-offset      region info: impossible or misaligned offset
  region-index       region info: another region's index
  region-argsz       region info: argsz too small, past the reply, huge
  region-flags       region info: impossible flags
  cap-offset         region info: cap_offset inside, past or misaligned
  cap-loop           region info: the capability chain loops
  cap-past-end       region info: a capability past the reply
  cap-overlap        region info: next points inside a capability
  sparse-areas       region info: too many, overlapping, outside areas
  bad-irq-info       IRQ info: huge count, other index, odd flags
  read-mismatch      region read: count, offset, region not as asked
  write-mismatch     region write: count, offset, region not as asked
  bad-dma-reply      DMA map/unmap: payload where none belongs

Device: vendor 0x1234 device 0xc202, class 0x120000; BAR 0 is 256K, 64-bit
non-prefetchable; the component block is at BAR 0 + 0x10000 (64K), with
accelerator pages at 0x0-0xffff (ID registers at 0x0: \"CXL2\", version, memory
size) and 0x20000-0x3ffff (scratch).  v4 traps only the HDM decoder block
and gates the memory on Memory Space Enable (see the README).

Control socket (one command per line, one JSON object per reply line):
  stats                  counters: resets, dma_maps, dma_unmaps,
                         comp_regs_writes, config_writes, connections,
                         messages, memory_clears, gated_accesses,
                         hdm_bar_accesses, ...
  state                  memory_accessible, memory_enable (v4 gating)
  config-read OFF LEN    config bytes as the host presents them (hex)
  comp-regs-read OFF     host shadow dword at COMP_REGS region offset OFF
  mem-read OFF LEN       device memory bytes (hex)
  mem-write OFF HEX      write device memory
  irq INDEX [SUBINDEX]   signal the eventfd registered for an interrupt
  help                   list the commands
Numbers are decimal or 0x-prefixed hex.

The simulator serves one client at a time (another one waits up to 1 s, then
gets EBUSY); each new connection sees a
powered-on device, except device memory, which keeps its contents (v4:
cleared by the kernel's reset at open and close).
SIGTERM or SIGINT removes the sockets and exits with status 0.
";

/// The command line as clap sees it (see [`parse`]).
#[derive(Debug, Parser)]
#[command(
    name = "vfio-user-cxl-sim",
    version,
    about = "A simulated CXL Type-2 accelerator served over vfio-user.  It reproduces the \
             Linux vfio-pci CXL interface (uAPI v2, v3, v4): COMP_REGS and memory regions, \
             BAR 0 with the component registers trapped, the CXL Device and Register \
             Locator DVSECs in config space.",
    after_help = AFTER_HELP,
    max_term_width = 80
)]
struct Cli {
    /// vfio-user socket to listen on
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// control socket for tests (see below)
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// device memory size, suffixes K/M/G/T; a multiple of 256M, at most 1T
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_size)]
    memory_size: u64,
    /// back device memory with this file (created, resized sparsely, kept
    /// on exit); default: an anonymous memfd
    #[arg(long, value_name = "PATH")]
    memory_file: Option<PathBuf>,
    /// host physical base in decoder 0, 256M aligned
    #[arg(long, value_name = "ADDR", default_value = "0x1000000000", value_parser = parse_number)]
    hpa: u64,
    /// kernel series to reproduce
    #[arg(long, value_name = "VERSION", value_enum, default_value = "v3")]
    uapi: Uapi,
    /// v4: region type of the CXL regions
    #[arg(long, value_name = "TYPE", value_enum, default_value = "vendor")]
    v4_region_type: V4RegionType,
    /// decoder 0 state left by host firmware
    #[arg(long, value_name = "STATE", value_enum, default_value = "committed")]
    decoder: DecoderState,
    /// break the host in one way (repeatable; the names are below)
    #[arg(long, value_name = "NAME")]
    fault: Vec<String>,
    /// answer one message per connection wrongly (kinds below); what is
    /// not given is drawn from the seed
    #[arg(long, value_name = "SEED[,KIND[,NTH]]")]
    hostile: Option<String>,
    /// log every message to stderr
    #[arg(short, long)]
    verbose: bool,
}

/// Parses a number: decimal, or hex with `0x`.
pub fn parse_number(s: &str) -> Result<u64, String> {
    let r = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(&h.replace('_', ""), 16)
    } else {
        s.replace('_', "").parse()
    };
    r.map_err(|_| format!("'{s}' is not a number"))
}

/// Parses a size with an optional K/M/G/T suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (num, shift) = match s.as_bytes().last().map(u8::to_ascii_uppercase) {
        Some(b'K') => (&s[..s.len() - 1], 10),
        Some(b'M') => (&s[..s.len() - 1], 20),
        Some(b'G') => (&s[..s.len() - 1], 30),
        Some(b'T') => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n = parse_number(num)?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size '{s}' is too large"))
}

/// Largest accepted device memory.
pub const MAX_MEMORY_SIZE: u64 = 1 << 40;

/// A usage error in clap's format for something clap cannot check alone.
fn invalid(what: &str) -> UsageError {
    UsageError(format!(
        "error: {what}\n\nFor more information, try '--help'.\n"
    ))
}

/// Parses the arguments (without the program name).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Parsed, UsageError> {
    use clap::error::ErrorKind;
    let argv = std::iter::once("vfio-user-cxl-sim".to_owned()).chain(args);
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let text = e.render().to_string();
            return match e.kind() {
                ErrorKind::DisplayHelp => Ok(Parsed::Help(text)),
                ErrorKind::DisplayVersion => Ok(Parsed::Version(text)),
                _ => Err(UsageError(text)),
            };
        }
    };
    let mut faults = Faults::default();
    for f in &cli.fault {
        faults
            .enable(f)
            .map_err(|e| invalid(&format!("--fault: {e}")))?;
    }
    let hostile = cli
        .hostile
        .as_deref()
        .map(Plan::parse)
        .transpose()
        .map_err(|e| invalid(&e))?;
    let device = DeviceOptions {
        uapi: cli.uapi,
        v4_region_type: cli.v4_region_type,
        memory_size: cli.memory_size,
        hpa: cli.hpa,
        committed: cli.decoder == DecoderState::Committed,
        faults,
    };
    if device.memory_size == 0 || device.memory_size % HDM_GRANULE != 0 {
        return Err(invalid(&format!(
            "--memory-size: {:#x} is not a non-zero multiple of 256M",
            device.memory_size
        )));
    }
    if device.memory_size > MAX_MEMORY_SIZE {
        return Err(invalid("--memory-size: at most 1T"));
    }
    if device.hpa % HDM_GRANULE != 0 || device.hpa.checked_add(device.memory_size).is_none() {
        return Err(invalid(&format!(
            "--hpa: {:#x} is not 256M aligned or the range overflows",
            device.hpa
        )));
    }
    Ok(Parsed::Run(Options {
        socket: cli.socket,
        control: cli.control,
        memory_file: cli.memory_file,
        device,
        verbose: cli.verbose,
        hostile,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostile::Kind;

    fn run(args: &[&str]) -> Result<Options, UsageError> {
        match parse(args.iter().map(|s| (*s).to_owned()))? {
            Parsed::Run(o) => Ok(o),
            p => panic!("unexpected {p:?}"),
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256M").unwrap(), 256 << 20);
        assert_eq!(parse_size("1t").unwrap(), 1 << 40);
        assert_eq!(parse_size("0x1000").unwrap(), 4096);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        parse_size("12Q").unwrap_err();
        parse_size("99999999999T").unwrap_err();
    }

    #[test]
    fn defaults_and_options() {
        let o = run(&["--socket", "/tmp/s"]).unwrap();
        assert_eq!(o.device, DeviceOptions::default());
        let o2 = run(&[
            "--socket=/tmp/s",
            "--uapi",
            "v2",
            "--decoder",
            "uncommitted",
            "--memory-size",
            "1G",
            "--hpa",
            "0x4000_0000_0",
            "--fault",
            "reset-fails",
            "--fault=drop-after=5",
        ])
        .unwrap();
        let d = &o2.device;
        assert_eq!(d.uapi, Uapi::V2);
        assert!(!d.committed);
        assert_eq!(d.memory_size, 1 << 30);
        assert_eq!(d.hpa, 0x4_0000_0000);
        assert!(d.faults.reset_fails);
        assert_eq!(d.faults.drop_after, Some(5));
        let o3 = run(&[
            "--socket",
            "s",
            "--uapi=v4",
            "--v4-region-type",
            "early",
            "--fault",
            "open-reset-fails",
            "-v",
        ])
        .unwrap();
        assert_eq!(o3.device.uapi, Uapi::V4);
        assert_eq!(o3.device.v4_region_type, V4RegionType::Early);
        assert!(o3.device.faults.open_reset_fails && o3.verbose);
    }

    #[test]
    fn help_lists_every_hostile_kind() {
        for k in Kind::ALL {
            assert!(
                AFTER_HELP.contains(&format!("\n  {} ", k.name())),
                "{} not in --help",
                k.name()
            );
        }
        let o = run(&["--socket", "s", "--hostile", "5,no-reply,2"]).unwrap();
        assert_eq!(o.hostile.map(|p| (p.kind, p.nth)), Some((Kind::NoReply, 2)));
        run(&["--socket", "s", "--hostile", "5,nonsense"]).unwrap_err();
    }

    #[test]
    fn errors() {
        run(&[]).unwrap_err();
        run(&["--socket", "s", "--bogus"]).unwrap_err();
        run(&["--socket", "s", "--fault", "nope"]).unwrap_err();
        run(&["--socket", "s", "--memory-size", "100M"]).unwrap_err();
        run(&["--socket", "s", "--memory-size", "2T"]).unwrap_err();
        run(&["--socket", "s", "--hpa", "0x1000"]).unwrap_err();
        run(&["--socket"]).unwrap_err();
        run(&["--socket", "s", "--uapi", "v9"]).unwrap_err();
        run(&["--socket", "s", "--v4-region-type", "other"]).unwrap_err();
        run(&["--socket", "s", "--decoder", "half"]).unwrap_err();
        assert!(matches!(
            parse(["--help".to_owned()]).unwrap(),
            Parsed::Help(h) if h.contains("--socket <PATH>") && h.contains("open-reset-fails")
        ));
        assert!(matches!(
            parse(["-V".to_owned()]).unwrap(),
            Parsed::Version(v) if v.starts_with("vfio-user-cxl-sim ")
        ));
    }
}
