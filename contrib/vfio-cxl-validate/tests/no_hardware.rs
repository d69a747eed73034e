// SPDX-License-Identifier: GPL-2.0-or-later

//! Kernel-VFIO mode on a host without a vfio-pci CXL function (as in
//! CI) ends at once with a message saying what is missing, and never
//! touches a function bound to another driver.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vfio-cxl-validate");

/// Runs the kit; returns (exit code, stderr, stdout).
fn kit(args: &[&str]) -> (Option<i32>, String, String) {
    let t0 = Instant::now();
    let out = Command::new(BIN).args(args).output().expect("run the kit");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "not fast: {:?}",
        t0.elapsed()
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A fake sysfs function directory bound to `driver`.
fn fake_function(tag: &str, driver: Option<&str>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cxl-validate-sysfs-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config"), [0u8; 64]).unwrap();
    if let Some(d) = driver {
        symlink(
            Path::new("../../../bus/pci/drivers").join(d),
            dir.join("driver"),
        )
        .unwrap();
    }
    dir
}

/// A function that does not exist here: the usual example, unless this
/// machine has one there.
fn absent_bdf() -> &'static str {
    ["0000:3b:00.0", "ffff:ff:1f.7"]
        .into_iter()
        .find(|b| !Path::new("/sys/bus/pci/devices").join(b).exists())
        .expect("a free BDF")
}

#[test]
fn a_missing_function_is_named() {
    let bdf = absent_bdf();
    for cmd in ["contract", "guest-view"] {
        let mut args = vec![cmd, "--host", bdf, "--yes"];
        if cmd == "guest-view" {
            args.extend(["--qemu", "/nonexistent/qemu"]);
        }
        let (code, err, out) = kit(&args);
        assert_eq!(code, Some(2), "{cmd}: {err}");
        assert!(
            err.contains(&format!("no PCI function at /sys/bus/pci/devices/{bdf}"))
                && err.contains(
                    "bound to vfio-pci on a kernel carrying the vfio-pci CXL Type-2 series"
                ),
            "{cmd}: {err}"
        );
        assert!(!out.contains("PASS"), "{cmd}: nothing is checked: {out}");
    }
}

#[test]
fn a_function_of_another_driver_is_refused() {
    for (tag, driver, says) in [
        ("nvme", Some("nvme"), "bound to driver 'nvme', not vfio-pci"),
        ("unbound", None, "bound to no driver, not vfio-pci"),
    ] {
        let dir = fake_function(tag, driver);
        let (code, err, _) = kit(&["contract", "--sysfsdev", dir.to_str().unwrap(), "--yes"]);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("refusing") && err.contains(says), "{err}");
    }
}

#[test]
fn a_vfio_pci_function_without_vfio_nodes_is_refused() {
    // Bound to vfio-pci but no IOMMU group or cdev: the kit says which.
    let dir = fake_function("vfio", Some("vfio-pci"));
    let (code, err, _) = kit(&["contract", "--sysfsdev", dir.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no IOMMU group"), "{err}");
}
