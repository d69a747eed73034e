#!/usr/bin/env python3
"""Export the vfio-cxl overlay as a QEMU patch series.

    patches.py PROJECT TREE OUTDIR

TREE is a git work tree of QEMU whose tag `debian-base` is Debian's
unpacked source (mk/patches.sh makes it).  The series is built on a branch
`series` there, from the overlay itself: the files of mk/overlay.py's
overlay_files() are copied in (real files, not links), and its EDITS and
FIXES are applied with its own functions, so the overlay and the series
follow one rule.  Which patch carries what is the table PLAN below; every
overlay file and every EDITS entry must land in exactly one patch, and each
FIXES entry is a patch of its own, first in the series.  OUTDIR receives
`git format-patch --cover-letter` output, the cover letter filled in.
"""

import fnmatch
import os
import shutil
import subprocess
import sys
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import overlay  # noqa: E402

BASE_TAG = "debian-base"
BRANCH = "series"
AUTHOR = "Your Name"
EMAIL = "you@example.com"
SIGNOFF = f"Signed-off-by: {AUTHOR} <{EMAIL}>"


class Patch:
    """One commit of the series: its subject and body, the overlay files
    it carries (globs over project paths; `*` crosses directories) and
    the EDITS entries it applies (globs over the upstream paths)."""

    def __init__(self, name, subject, body, files=(), edits=(), fix=None):
        self.name = name    # what the cover letter calls it
        self.subject = subject
        self.body = body
        self.files = list(files)
        self.edits = list(edits)
        self.fix = fix    # the {path: [edit]} of a FIXES entry


# The patches after the fixes, in the order a reviewer reads them.
PLAN = [
    Patch("header", "vfio-user: move VFIOUserPCIDevice into a header",
          "A device that extends vfio-user-pci has to embed its instance as "
          "its parent and size its own instances from it, as devices that "
          "extend vfio-pci do with hw/vfio/pci.h.  Move the type name, the "
          "QOM declaration and the struct from hw/vfio-user/pci.c into a "
          "new hw/vfio-user/pci.h.\n\n"
          "No functional change.  The vfio-user-cxl device later in this "
          "series is the first user.",
          files=["hw/vfio-user/*.h"],
          edits=["hw/vfio-user/pci.c"]),
    Patch("glue", "hw/vfio: add the C helpers of the vfio-cxl device",
          "The vfio-cxl device (Rust, later in this series) needs a few "
          "things from C code that has no Rust bindings:\n\n"
          "* cxl-topology: the CXL fixed memory windows of the machine, the "
          "root port and host bridge above a device, and the host bridge's "
          "HDM decoder registers.  The decisions (which window, which "
          "decoder values) stay in Rust.\n"
          "* cxl-reset: a host device reset that returns whether it "
          "worked, with vfio-pci's pre- and post-reset steps around it for "
          "a system or bus reset (a guest FLR or CXL Reset goes without, as "
          "a guest FLR of a plain vfio-pci device does); vfio-pci's own "
          "reset paths only log a failure, and a CXL device must not give "
          "its memory back to the guest after a failed reset.\n"
          "* cxl-host: whether the vfio-user server of a device is still "
          "connected.\n\n"
          "The Kconfig symbol VFIO_CXL comes here, so that the helpers "
          "build (and are checked) from this patch on; the device that "
          "uses them follows.",
          files=["hw/vfio/cxl-*", "rust/hw/vfio/Kconfig"],
          edits=["hw/vfio/meson.build", "rust/hw/Kconfig"]),
    Patch("model", "rust/hw/vfio: add cxl-model, a CXL Type-2 passthrough model",
          "The QEMU-independent core of the vfio-cxl device, in safe Rust: "
          "the CXL Device and Register Locator DVSECs, the CXL.cachemem "
          "capability array and HDM decoders as the guest sees them, the "
          "kernel's component register shadow for each posting of the "
          "vfio-pci CXL series (v2, v3, v4), the checks a host device must "
          "pass, the choice of a CXL fixed memory window and a range in it, "
          "and the device core (realize, guest accesses, resets) over a "
          "small HostDevice trait.  Every parser takes untrusted bytes and "
          "reports malformed input as an error.\n\n"
          "The crate builds and runs its unit and property tests with cargo "
          "on its own.  It uses the vfio-bindings crate; meson builds it "
          "from the next patch on, which adds rust/hw/vfio to the build.",
          files=["rust/hw/vfio/cxl-model/*"]),
    Patch("device", "rust/hw/vfio: add the vfio-cxl and vfio-user-cxl devices",
          "Pass a CXL Type-2 accelerator (an accelerator with coherent "
          "device memory) to a guest: vfio-cxl extends vfio-pci for kernel "
          "VFIO hosts, vfio-user-cxl extends vfio-user-pci for a device "
          "served over a vfio-user socket; one Rust implementation serves "
          "both.\n\n"
          "At realize the device finds the host's CXL memory and component "
          "register regions, tells the kernel interface's posting apart "
          "and refuses a host that does not fit, naming what it found.  It "
          "places the device memory in a CXL fixed memory window whose "
          "only target is the device's host bridge, maps it there as a "
          "RAM device region (no trap on guest accesses), programs the host "
          "bridge's HDM decoders to route it, overlays the component block "
          "in the BAR with an emulated one whose decoder 0 is committed and "
          "locked at that address, and serves the CXL Device DVSEC from an "
          "emulated, locked copy.  Resets (FLR, secondary bus reset, CXL "
          "Reset, system reset) hide the memory, reset the host and show "
          "the memory again only if the host still presents the same "
          "device.  Migration is blocked.\n\n"
          "The crate has its own bindgen bindings for hw/vfio and "
          "hw/vfio-user (outside include/, hence not in the shared "
          "bindings), and its trace events.",
          files=["rust/hw/vfio/cxl/*", "rust/hw/vfio/meson.build"],
          edits=["rust/Cargo.toml", "rust/hw/meson.build", "meson.build"]),
    Patch("qtest", "tests/qtest: add vfio-cxl-test",
          "Drive vfio-user-cxl against a simulated CXL Type-2 accelerator "
          "(a vfio-user server; the test skips unless VFIO_CXL_SIM names "
          "it) for each posting of the kernel interface: the DVSEC, the "
          "component block, the device memory and hot-plug, every host the "
          "device must refuse, the host bridge decoders, several devices "
          "sharing a window, a server that goes away, every reset path, a "
          "function without FLR, the properties, and a seeded storm of "
          "guest accesses checked against a model.",
          files=["tests/qtest/*"],
          edits=["tests/qtest/meson.build"]),
    Patch("functional", "tests/functional: boot Linux guests on vfio-user-cxl",
          "Linux guests (Debian's 6.1 and 7.2 kernels) use the device under "
          "TCG: a program in the guest checks the locked DVSEC, the "
          "committed HDM decoder, the guest CXL core's view of the device "
          "and data written from either side of the device memory, before "
          "and after an FLR and a CXL Reset.  Under 7.2 a small Type-2 "
          "driver (built in the test) gets a memdev, an endpoint decoder "
          "and a region from the guest's own CXL core.",
          files=["tests/functional/*"],
          edits=["tests/functional/*/meson.build"]),
    Patch("devel_docs", "docs/devel: describe the vfio-pci CXL interface per posting",
          "The kernel series \"vfio/pci: Add CXL Type-2 device passthrough "
          "support\" is not in mainline and its user interface changed "
          "between postings.  Record what each posting (v2, v3, v4) "
          "presents to user space and what the vfio-cxl device relies on; "
          "its code refers to this page.",
          files=["docs/devel/*"],
          edits=["docs/devel/*"]),
    Patch("docs", "docs/system: document the vfio-cxl device",
          "How to use vfio-cxl and vfio-user-cxl: what the host must "
          "present, the machine topology and options, what the guest sees, "
          "resets, the errors the device reports and what they mean, "
          "libvirt domain examples, the simulator and what has not been "
          "tested on hardware.",
          files=["docs/system/*"],
          edits=["docs/system/*"]),
]


def fix_patches():
    return [Patch(f"fix{i + 1}", subject, body, fix=files)
            for i, (subject, body, files) in enumerate(overlay.FIXES)]


class PlanError(Exception):
    pass


def place(plan, files, edit_paths):
    """Map each patch of `plan` to the overlay files and EDITS paths it
    carries.  Fails, naming them, on a file or edit no patch places, one
    two patches place, and a glob that places nothing."""
    problems = []
    placed = {id(p): ([], []) for p in plan}
    for kind, items, globs_of in (("file", files, lambda p: p.files),
                                  ("EDITS entry", edit_paths, lambda p: p.edits)):
        used = set()
        for item in items:
            owners = []
            for p in plan:
                for g in globs_of(p):
                    if fnmatch.fnmatchcase(item, g):
                        used.add((id(p), g))
                        owners.append(p)
            if not owners:
                problems.append(f"{kind} {item} is in no patch of the series: "
                                "add it to a patch in mk/patches.py's PLAN")
            elif len({id(p) for p in owners}) > 1:
                problems.append(f"{kind} {item} is in more than one patch: "
                                + "; ".join(repr(p.subject) for p in owners))
            else:
                placed[id(owners[0])][0 if kind == "file" else 1].append(item)
        for p in plan:
            for g in globs_of(p):
                if (id(p), g) not in used:
                    problems.append(f"{kind} glob {g!r} of {p.subject!r} matches nothing")
    if problems:
        raise PlanError("\n".join(problems))
    return [(p,) + placed[id(p)] for p in plan]


def message(patch):
    paragraphs = []
    for para in patch.body.split("\n\n"):
        lines = para.split("\n")
        if all(line.startswith("* ") for line in lines):
            paragraphs.append("\n".join(textwrap.fill(line, 72, subsequent_indent="  ")
                                        for line in lines))
        else:
            paragraphs.append(textwrap.fill(para, 72))
    return f"{patch.subject}\n\n" + "\n\n".join(paragraphs) + f"\n\n{SIGNOFF}\n"


def git(tree, *args, env=None, capture=False):
    return subprocess.run(["git", "-C", tree, *args], check=True, env=env,
                          text=True, stdout=subprocess.PIPE if capture else None).stdout


def apply_edits(tree, path, edits):
    full = os.path.join(tree, path)
    with open(full) as f:
        text = f.read()
    overlay.write_if_changed(full, overlay.edited(text, edits))


def identity(project):
    """The placeholder author, dated as the project's last commit, so that
    the same project commit gives the same series."""
    date = git(project, "log", "-1", "--format=%cI", capture=True).strip()
    return dict(os.environ, GIT_AUTHOR_NAME=AUTHOR, GIT_AUTHOR_EMAIL=EMAIL,
                GIT_COMMITTER_NAME=AUTHOR, GIT_COMMITTER_EMAIL=EMAIL,
                GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)


def build_series(project, tree, placed):
    env = identity(project)
    git(tree, "checkout", "-q", "-f", "-B", BRANCH, BASE_TAG)
    git(tree, "clean", "-q", "-ffdx")
    for patch, files, edit_paths in placed:
        changed = []
        for rel in files:
            dst = os.path.join(tree, rel)
            if os.path.lexists(dst):
                raise PlanError(f"file {rel} exists upstream; an overlay file "
                                "must not replace an upstream file")
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(os.path.join(project, rel), dst)
            shutil.copymode(os.path.join(project, rel), dst)
            changed.append(rel)
        edits = dict(patch.fix or {})
        for rel in edit_paths:
            edits[rel] = overlay.EDITS[rel]
        for rel, e in edits.items():
            apply_edits(tree, rel, e)
            changed.append(rel)
        git(tree, "add", "-f", "--", *changed)
        subprocess.run(["git", "-C", tree, "commit", "-q", "--no-verify", "-F", "-"],
                       input=message(patch), text=True, env=env, check=True)


def check_final_tree(tree):
    """The series must end where the overlay puts QEMU: every upstream file
    as overlay.py edits it from the pristine file."""
    for rel, edits in overlay.all_edits().items():
        text = overlay.edited(git(tree, "show", f"{BASE_TAG}:{rel}", capture=True), edits)
        with open(os.path.join(tree, rel)) as f:
            if f.read() != text:
                raise PlanError(f"{rel} at the end of the series differs from "
                                "what mk/overlay.py makes of it")


COVER_SUBJECT = "vfio-cxl: pass CXL Type-2 accelerators to a guest"

COVER_BLURB = """\
This series adds vfio-cxl, a device (in Rust) that passes a CXL Type-2
accelerator (an accelerator with coherent device memory, such as a GPU)
from a Linux host to a guest, and vfio-user-cxl, the same device served
over a vfio-user socket.  The guest sees the accelerator's PCI function
with its CXL Device DVSEC and component registers, and its device memory
in a CXL fixed memory window below a committed, locked HDM decoder, so
that a Linux guest's CXL core finds a region it can use.

    -M q35,cxl=on,cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G
    -device pxb-cxl,id=cxl.1,bus=pcie.0,bus_nr=12,hdm_for_passthrough=on
    -device cxl-rp,id=rp0,bus=cxl.1,chassis=0,slot=0,port=0
    -device vfio-cxl,host=0000:3b:00.0,bus=rp0

It runs on x86_64's q35 and arm64's virt machines, the two with CXL;
machine-specific addresses (windows, host bridge registers) come from
the machine's CXL state, never from q35's layout.

The host side is the Linux series "vfio/pci: Add CXL Type-2 device
passthrough support", which is not in mainline.  Its user interface
changed between postings; the device works with v2 (April 2026), v3
(June 2026) and v4 (August 2026, both variants of its region type), and
tells them apart from what the host presents, never from an option.
What each posting presents is in docs/devel/vfio-cxl-uapi.rst (patch
{devel_docs}).

The series:

* Patches 1-{fixes} fix QEMU's vfio-user, vfio-pci, CXL and pxb code; the
  device's tests found them (a vfio-user server that answers wrongly in
  every way it can, UBSan, a Linux 6.1 guest).  Each stands on its own
  and can be taken without the rest.
* Patch {header} moves VFIOUserPCIDevice into a header, for subclasses.
* Patch {glue} adds the C helpers the Rust device needs (CXL windows and
  host bridges, a host reset that reports failure, the vfio-user
  connection state) and the VFIO_CXL Kconfig symbol.
* Patch {model} adds cxl-model, the QEMU-independent core in safe Rust;
  patch {device}, the device crate, adds both crates to the build.
* Patch {qtest} adds the qtest, patch {functional} the functional test.
* Patches {devel_docs}-{docs} add the documentation, last and in one piece: it
  describes the device, its tests and the fixes together.

Testing.  No CXL Type-2 hardware, and no host with the kernel series,
was available: vfio-cxl with a kernel host has never run.  Everything
ran against a simulated accelerator, a vfio-user server that presents
what each posting of the kernel series presents (it is not part of this
series, see below):

* the qtest, for each of v2, v3 and v4, on q35 and virt, also under
  ASan and UBSan (q35);
* the functional test: Debian's Linux 6.1 and 7.2 guests under TCG, for
  each posting, on host bridges with and without HDM decoders, on q35
  and (booted through UEFI firmware) on virt;
* the simulator against stock vfio-user-pci, a hostile simulator, and
  libvirt domains from the documented examples;
* the series bisects: every patch compiles (x86_64-softmmu,
  --enable-rust) and links (from patch {glue} on in the quick check, at
  every patch in the full one), and checkpatch.pl reports no error on
  any of them.

Building.  Patch {model} needs one crate QEMU does not use yet,
vfio-bindings 0.7.0 (Apache-2.0 OR BSD-3-Clause): a tree with QEMU's own
subprojects needs subprojects/vfio-bindings-0.7-rs.wrap and
subprojects/packagefiles/vfio-bindings-0.7-rs/meson.build, written as
for the other crates.  They are not in this series, which was made
against Debian's source package of QEMU 10.2.2 (1:10.2.2+ds-1), where
subprojects are stripped.  The other crates the device uses (bilge,
bilge-impl, foreign, glib-sys) are QEMU's own.

Open questions for reviewers:

* The kernel interface is not merged.  Should the device wait for it,
  or go in with the postings it knows, refusing any other host by name?
* The qtest runs against the simulator (a vfio-user server in Rust,
  outside QEMU's tree here) and skips without it.  Is the simulator
  wanted under contrib/, or should the qtest grow a smaller server?
* The functional test takes its guests (Debian kernels, an initramfs
  with the check program and, for 7.2, the Type-2 driver) from a
  directory built outside QEMU; should they become test assets?
* The device places the memory in a window whose only target is its
  host bridge, and programs that bridge's HDM decoders itself
  (pxb-cxl's hdm_for_passthrough).  Is that the right split between
  the device and the CXL host bridge emulation?
* Migration is blocked.  Is that acceptable for a first version?
* MAINTAINERS: the new files need an entry; who should be listed?
"""


def write_series(project, tree, outdir, series):
    os.makedirs(outdir, exist_ok=True)
    for name in os.listdir(outdir):
        if name.endswith(".patch"):
            os.unlink(os.path.join(outdir, name))
    git(tree, "format-patch", "-q", "--cover-letter", "--no-signature",
        "--subject-prefix=PATCH", "-o", outdir, f"{BASE_TAG}..{BRANCH}",
        env=identity(project))
    cover = os.path.join(outdir, "0000-cover-letter.patch")
    with open(cover) as f:
        text = f.read()
    numbers = {p.name: i + 1 for i, p in enumerate(series)}
    blurb = COVER_BLURB.format(fixes=len(overlay.FIXES), **numbers)
    for placeholder, value in (("*** SUBJECT HERE ***", COVER_SUBJECT),
                               ("*** BLURB HERE ***", blurb.rstrip("\n"))):
        if text.count(placeholder) != 1:
            raise PlanError(f"git format-patch's cover letter has no {placeholder!r}")
        text = text.replace(placeholder, value)
    with open(cover, "w") as f:
        f.write(text)
    return sorted(n for n in os.listdir(outdir) if n.endswith(".patch"))


def main():
    project, tree, outdir = (os.path.abspath(a) for a in sys.argv[1:4])
    series = fix_patches() + PLAN
    try:
        placed = place(series, overlay.overlay_files(project), sorted(overlay.EDITS))
        build_series(project, tree, placed)
        check_final_tree(tree)
        names = write_series(project, tree, outdir, series)
    except PlanError as e:
        raise SystemExit(f"patches: {e}")
    print(f"patches: {len(names) - 1} patches and a cover letter in {outdir}")


if __name__ == "__main__":
    main()
