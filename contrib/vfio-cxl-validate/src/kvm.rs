// SPDX-License-Identifier: GPL-2.0-or-later

//! Whether KVM can give a guest the device memory as ordinary, cacheable
//! memory.
//!
//! vfio-pci's mmap of the memory region is a `VM_PFNMAP` mapping of the
//! device.  On arm64, KVM maps such a mapping into a guest with the host
//! mapping's (cacheable) attributes only where it reports
//! `KVM_CAP_ARM_CACHEABLE_PFNMAP_SUPPORTED` (a CPU with `FEAT_S2FWB`, and
//! a kernel with cacheable PFNMAP support at stage 2, Linux 6.17 on);
//! otherwise the guest gets it as device memory, slow and faulting on
//! unaligned accesses, or not at all.  x86 KVM has no such capability.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use crate::host::Transport;
use crate::report::Verdict;

/// `KVM_CHECK_EXTENSION`: `_IO(KVMIO, 0x03)`, `KVMIO` being 0xAE.
const KVM_CHECK_EXTENSION: libc::c_ulong = 0xAE03;
/// `KVM_CAP_ARM_CACHEABLE_PFNMAP_SUPPORTED`.
const CAP_CACHEABLE_PFNMAP: libc::c_ulong = 243;

/// Asks `/dev/kvm` for the capability: its value (0: absent).
pub fn probe() -> io::Result<i32> {
    let kvm = File::open("/dev/kvm")?;
    // SAFETY: KVM_CHECK_EXTENSION takes a plain integer and writes nothing.
    let r = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_CHECK_EXTENSION, CAP_CACHEABLE_PFNMAP) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The verdict of `kvm_cacheable_memory` on an `arch` host reached over
/// `transport`, `probe` asking KVM.
pub fn judge(arch: &str, transport: Transport, probe: impl FnOnce() -> io::Result<i32>) -> Verdict {
    if transport == Transport::VfioUser {
        return Verdict::NotApplicable(
            "vfio-user: the memory is a file mapping, which KVM maps as it maps guest RAM".into(),
        );
    }
    if arch != "aarch64" {
        return Verdict::NotApplicable(format!(
            "{arch}: only arm64 KVM needs KVM_CAP_ARM_CACHEABLE_PFNMAP_SUPPORTED"
        ));
    }
    match probe() {
        Err(e) => Verdict::NotApplicable(format!("no KVM on this host (/dev/kvm: {e})")),
        Ok(0) => Verdict::Fail(
            "KVM lacks KVM_CAP_ARM_CACHEABLE_PFNMAP_SUPPORTED: a guest gets the device memory as \
             device memory, not cacheable (needs a CPU with FEAT_S2FWB and Linux 6.17 or later)"
                .into(),
        ),
        Ok(n) => Verdict::Pass(format!(
            "KVM maps the device memory cacheable (KVM_CAP_ARM_CACHEABLE_PFNMAP_SUPPORTED = {n})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::IommuBackend;

    const KERNEL: Transport = Transport::Kernel {
        backend: IommuBackend::Iommufd,
    };

    fn unasked() -> io::Result<i32> {
        panic!("KVM asked although the check does not apply")
    }

    #[test]
    fn arm64_kernel_host_passes_only_with_the_capability() {
        assert!(matches!(
            judge("aarch64", KERNEL, || Ok(1)),
            Verdict::Pass(_)
        ));
        match judge("aarch64", KERNEL, || Ok(0)) {
            Verdict::Fail(why) => assert!(why.contains("FEAT_S2FWB"), "{why}"),
            _ => panic!("no failure without the capability"),
        }
        assert!(matches!(
            judge("aarch64", KERNEL, || Err(io::ErrorKind::NotFound.into())),
            Verdict::NotApplicable(_)
        ));
    }

    #[test]
    fn other_hosts_are_not_asked() {
        assert!(matches!(
            judge("x86_64", KERNEL, unasked),
            Verdict::NotApplicable(_)
        ));
        assert!(matches!(
            judge("aarch64", Transport::VfioUser, unasked),
            Verdict::NotApplicable(_)
        ));
    }
}
