// SPDX-License-Identifier: GPL-2.0-or-later

//! Device, regions, DVSECs, the posting: what every later check needs.

use super::Suite;
use crate::caps;
use crate::host::{le32, le64, Host, IommuBackend, RegionInfo, Transport};
use crate::layout::component::{
    decoder_count, hdm_size, BLOCK_SIZE, CAP_ARRAY, CAP_COUNT_SHIFT, CAP_ID_HDM, CAP_ID_MASK,
    CAP_POINTER_SHIFT, HDM_CAPABILITY, HDM_DECODER0,
};
use crate::layout::{
    device_cap, device_flags, dvsec, pci, region_cap, region_type, BAR_REGIONS, CONFIG_REGION,
    DEVICE_INFO_CAP_OFFSET, FIRST_DEVICE_REGION, REGION_INFO_CAP_OFFSET,
};
use crate::pci::{component_block, find_cap, find_dvsec, Dvsec};
use crate::posting::{detect, is_array_header, Posting};
use crate::report::{verdict, Verdict};

/// Where everything is.
#[derive(Debug, Clone)]
pub struct Found {
    pub posting: Posting,
    pub device_flags: u32,
    pub mem: RegionInfo,
    pub comp: RegionInfo,
    pub region_type: u32,
    pub dvsec: Dvsec,
    /// Config offset of the PCI Express capability.
    pub pcie: Option<u64>,
    /// The BAR holding the component block, and the block's offset in it.
    pub bar: u32,
    pub block: u64,
    /// The HDM structure's offset in the component block.
    pub hdm_in_block: u64,
    pub decoders: u64,
}

impl Found {
    /// `COMP_REGS` region offset of component block offset `block_off`.
    #[must_use]
    pub const fn comp_off(&self, block_off: u64) -> u64 {
        block_off - self.posting.comp_regs_base(self.hdm_in_block)
    }

    /// `COMP_REGS` offset of decoder 0's register `reg`.
    #[must_use]
    pub const fn dec0(&self, reg: u64) -> u64 {
        self.comp_off(self.hdm_in_block + HDM_DECODER0 + reg)
    }

    /// BAR offset of the HDM structure.
    #[must_use]
    pub const fn hdm_in_bar(&self) -> u64 {
        self.block + self.hdm_in_block
    }
}

/// A config dword reader over the host's config region.
pub fn config_reader(host: &mut dyn Host) -> impl FnMut(u64) -> Option<u32> + '_ {
    move |at| host.read_u32(CONFIG_REGION, at).ok()
}

/// (type, subtype) from a region's `VFIO_REGION_INFO_CAP_TYPE`.
fn type_of(info: &RegionInfo) -> Option<(u32, u32)> {
    let first = le32(&info.raw, REGION_INFO_CAP_OFFSET) as usize;
    // A chain that breaks later still says what it said before.
    let cap = caps::walk_partial(&info.raw, first)
        .0
        .into_iter()
        .find(|c| c.id == region_cap::TYPE)?;
    Some((le32(cap.bytes, 8), le32(cap.bytes, 12)))
}

pub fn run(s: &mut Suite<'_>) -> Option<Found> {
    let info = match s.host.device_info() {
        Ok(i) => i,
        Err(e) => {
            s.record(
                "device_is_cxl",
                Verdict::Fail(format!("VFIO_DEVICE_GET_INFO: {e}")),
            );
            return None;
        }
    };
    let cxl = info.flags & device_flags::CXL != 0;
    let pci_flag = info.flags & device_flags::PCI != 0;
    s.record(
        "device_is_cxl",
        verdict(
            cxl && pci_flag && info.num_regions > FIRST_DEVICE_REGION + 1,
            format!(
                "flags {:#x} (CXL {cxl}, PCI {pci_flag}), {} regions, {} IRQ indices",
                info.flags, info.num_regions, info.num_irqs
            ),
        ),
    );

    iommu_backend(s);
    let regions = region_chains(s, info.num_regions);
    let (mem, comp, rtype) = regions_by_subtype(s, &regions)?;

    let dvsec_found = dvsec_device(s)?;
    let (bar, block) = register_locator(s)?;
    let posting = interface_version(s, &comp, rtype)?;
    let hdm_in_block = capability_array(s, posting, &comp, bar, block)?;
    let mut found = Found {
        posting,
        device_flags: info.flags,
        mem,
        comp,
        region_type: rtype,
        dvsec: dvsec_found,
        pcie: find_cap(config_reader(s.host), pci::CAP_ID_EXP),
        bar,
        block,
        hdm_in_block,
        decoders: 1,
    };
    found.decoders = comp_regs_region(s, &found)?;
    device_info_cap(s, &found, info.raw.as_deref());
    comp_regs_geometry_cap(s, &found);
    Some(found)
}

/// `iommu_backend`: kernel VFIO only; how the device was opened: the
/// iommufd cdev bound and attached to an IOAS, or the group set in a
/// type-1 container.  The open itself is the check; QEMU is given the
/// same backend.
fn iommu_backend(s: &mut Suite<'_>) {
    let v = match s.host.transport() {
        Transport::VfioUser => Verdict::NotApplicable("vfio-user: no IOMMU backend".into()),
        Transport::Kernel {
            backend: IommuBackend::Iommufd,
        } => Verdict::Pass(format!(
            "iommufd: VFIO_DEVICE_BIND_IOMMUFD and ATTACH_IOMMUFD_PT done ({})",
            s.host.describe()
        )),
        Transport::Kernel {
            backend: IommuBackend::Container,
        } => Verdict::Pass(format!(
            "VFIO group in a type-1 container, no iommufd cdev ({})",
            s.host.describe()
        )),
    };
    s.record("iommu_backend", v);
}

/// `region_cap_chain`: every region's info and a sound capability chain.
fn region_chains(s: &mut Suite<'_>, n: u32) -> Vec<Option<RegionInfo>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut total = 0;
    for i in 0..n {
        match s.region(i) {
            Ok(r) => {
                let first = le32(&r.raw, REGION_INFO_CAP_OFFSET) as usize;
                if r.flags & crate::layout::region_flags::CAPS != 0 {
                    match caps::walk(&r.raw, first) {
                        Ok(c) => total += c.len(),
                        Err(e) => problems.push(format!("region {i}: {e}")),
                    }
                }
                out.push(Some(r));
            }
            Err(e) => {
                // Absent regions (e.g. VGA) may fail; that is fine.
                if i >= FIRST_DEVICE_REGION {
                    problems.push(format!("region {i}: {e}"));
                }
                out.push(None);
            }
        }
    }
    s.record(
        "region_cap_chain",
        if problems.is_empty() {
            Verdict::Pass(format!(
                "{n} regions, {total} capabilities, every chain ends"
            ))
        } else {
            Verdict::Fail(problems.join("; "))
        },
    );
    out
}

/// `regions_by_subtype`: one memory and one `COMP_REGS` region, found by
/// type and subtype, at indices from 9, distinct.
fn regions_by_subtype(
    s: &mut Suite<'_>,
    regions: &[Option<RegionInfo>],
) -> Option<(RegionInfo, RegionInfo, u32)> {
    let mut mem = Vec::new();
    let mut comp = Vec::new();
    for r in regions.iter().flatten() {
        if let Some((t, sub)) = type_of(r) {
            if t != region_type::CXL_VENDOR && t != region_type::CXL_EARLY_V4 {
                continue;
            }
            if sub == region_type::SUBTYPE_MEMORY {
                mem.push((r.clone(), t));
            } else if sub == region_type::SUBTYPE_COMP_REGS {
                comp.push((r.clone(), t));
            }
        }
    }
    let idx = |v: &[(RegionInfo, u32)]| v.iter().map(|(r, _)| r.index).collect::<Vec<_>>();
    let seen = format!(
        "memory (subtype 1) at {:?}, COMP_REGS (subtype 2) at {:?}",
        idx(&mem),
        idx(&comp)
    );
    let (Some((m, mt)), Some((c, ct))) = (mem.first().cloned(), comp.first().cloned()) else {
        s.record(
            "regions_by_subtype",
            Verdict::Fail(format!("{seen}: need one of each")),
        );
        return None;
    };
    let ok = mem.len() == 1
        && comp.len() == 1
        && m.index >= FIRST_DEVICE_REGION
        && c.index >= FIRST_DEVICE_REGION
        && mt == ct
        && m.size != 0
        && c.size != 0;
    s.record(
        "regions_by_subtype",
        verdict(
            ok,
            format!(
                "{seen}, type {mt:#x}/{ct:#x}, sizes {:#x}/{:#x}",
                m.size, c.size
            ),
        ),
    );
    ok.then_some((m, c, mt))
}

/// `dvsec_device`: the CXL Device DVSEC in config space.
fn dvsec_device(s: &mut Suite<'_>) -> Option<Dvsec> {
    match find_dvsec(config_reader(s.host), dvsec::CXL_VENDOR, dvsec::ID_DEVICE) {
        Ok(Some(d)) => {
            let ok = d.length >= dvsec::DEVICE_MIN_LENGTH;
            s.record(
                "dvsec_device",
                verdict(
                    ok,
                    format!(
                        "CXL Device DVSEC at {:#x}, length {:#x}, revision {}",
                        d.offset, d.length, d.revision
                    ),
                ),
            );
            ok.then_some(d)
        }
        Ok(None) => {
            s.record(
                "dvsec_device",
                Verdict::Fail("no CXL Device DVSEC (0x1E98, ID 0)".into()),
            );
            None
        }
        Err(e) => {
            s.record("dvsec_device", Verdict::Fail(e));
            None
        }
    }
}

/// `register_locator`: the component block's BAR and offset, inside a
/// BAR big enough for it.
fn register_locator(s: &mut Suite<'_>) -> Option<(u32, u64)> {
    let loc = match find_dvsec(
        config_reader(s.host),
        dvsec::CXL_VENDOR,
        dvsec::ID_REGISTER_LOCATOR,
    ) {
        Ok(Some(l)) => l,
        Ok(None) => {
            s.record(
                "register_locator",
                Verdict::Fail("no Register Locator DVSEC (0x1E98, ID 8)".into()),
            );
            return None;
        }
        Err(e) => {
            s.record("register_locator", Verdict::Fail(e));
            return None;
        }
    };
    let b = match component_block(config_reader(s.host), &loc) {
        Ok(b) => b,
        Err(e) => {
            s.record("register_locator", Verdict::Fail(e));
            return None;
        }
    };
    let bar_size = if b.bar < BAR_REGIONS {
        s.region(b.bar).map(|r| r.size).unwrap_or(0)
    } else {
        0
    };
    let ok = b.bar < BAR_REGIONS && b.offset % BLOCK_SIZE == 0 && b.offset + BLOCK_SIZE <= bar_size;
    s.record(
        "register_locator",
        verdict(
            ok,
            format!(
                "locator at {:#x}: component block in BAR {} at {:#x} (BAR size {bar_size:#x})",
                loc.offset, b.bar, b.offset
            ),
        ),
    );
    ok.then_some((b.bar, b.offset))
}

/// `interface_version`: the posting, from `COMP_REGS`; the earlier v4
/// region type only with the v4 layout; `--expect` honoured.
fn interface_version(s: &mut Suite<'_>, comp: &RegionInfo, rtype: u32) -> Option<Posting> {
    let at0 = s.host.read_u32(comp.index, 0);
    let at1000 = if comp.size >= CAP_ARRAY + 4 {
        s.host.read_u32(comp.index, CAP_ARRAY).ok()
    } else {
        None
    };
    let at0 = match at0 {
        Ok(v) => v,
        Err(e) => {
            s.record(
                "interface_version",
                Verdict::Fail(format!("COMP_REGS read at 0: {e}")),
            );
            return None;
        }
    };
    let p = match detect(comp.size, at0, at1000) {
        Ok(p) => p,
        Err(e) => {
            s.record("interface_version", Verdict::Fail(e));
            return None;
        }
    };
    let mut problems = Vec::new();
    if rtype == region_type::CXL_EARLY_V4 && p != Posting::V4 {
        problems.push(format!(
            "region type 4 (earlier v4 tree) with the {p} layout"
        ));
    }
    if let Some(want) = s.opts.expect {
        if want != p {
            problems.push(format!("expected {want}"));
        }
    }
    let tree = if rtype == region_type::CXL_EARLY_V4 {
        " (earlier v4-era tree's region type 4)"
    } else {
        ""
    };
    let seen = format!(
        "{p}{tree}: COMP_REGS {:#x} bytes, offset 0 reads {at0:#010x}",
        comp.size
    );
    let ok = problems.is_empty();
    s.record(
        "interface_version",
        verdict(
            ok,
            if ok {
                seen
            } else {
                format!("{seen}; {}", problems.join("; "))
            },
        ),
    );
    ok.then_some(p)
}

/// `capability_array`: the CXL.mem capability array (`COMP_REGS` for v2
/// and v3, the BAR for v4) names the HDM structure; returns its block
/// offset.
fn capability_array(
    s: &mut Suite<'_>,
    p: Posting,
    comp: &RegionInfo,
    bar: u32,
    block: u64,
) -> Option<u64> {
    let (region, base, via) = match p {
        Posting::V2 => (comp.index, 0, "COMP_REGS"),
        Posting::V3 => (comp.index, CAP_ARRAY, "COMP_REGS"),
        Posting::V4 => (bar, block + CAP_ARRAY, "the BAR"),
    };
    let hdr = s.host.read_u32(region, base);
    let hdr = match hdr {
        Ok(h) if is_array_header(h) => h,
        Ok(h) => {
            s.record(
                "capability_array",
                Verdict::Fail(format!(
                    "header through {via} reads {h:#010x}, not ID 1 with entries"
                )),
            );
            return None;
        }
        Err(e) => {
            s.record(
                "capability_array",
                Verdict::Fail(format!("header through {via}: {e}")),
            );
            return None;
        }
    };
    let count = hdr >> CAP_COUNT_SHIFT;
    let mut entries = Vec::new();
    for i in 1..=u64::from(count) {
        match s.host.read_u32(region, base + 4 * i) {
            Ok(e) => entries.push(e),
            Err(e) => {
                s.record("capability_array", Verdict::Fail(format!("entry {i}: {e}")));
                return None;
            }
        }
    }
    let hdm = entries
        .iter()
        .find(|e| *e & CAP_ID_MASK == CAP_ID_HDM)
        .map(|e| u64::from(e >> CAP_POINTER_SHIFT));
    let seen = format!("through {via}: header {hdr:#010x}, entries {entries:08x?}");
    match hdm {
        Some(ptr) if ptr != 0 && CAP_ARRAY + ptr + hdm_size(1) <= BLOCK_SIZE => {
            s.record(
                "capability_array",
                Verdict::Pass(format!("{seen}; HDM at block {:#x}", CAP_ARRAY + ptr)),
            );
            Some(CAP_ARRAY + ptr)
        }
        _ => {
            s.record(
                "capability_array",
                Verdict::Fail(format!("{seen}: no usable HDM entry (ID 5)")),
            );
            None
        }
    }
}

/// `comp_regs_region`: flags (read, write, never mmap) and the size the
/// posting gives; returns the decoder count.
fn comp_regs_region(s: &mut Suite<'_>, f: &Found) -> Option<u64> {
    use crate::layout::region_flags::{MMAP, READ, WRITE};
    let cap = match s
        .host
        .read_u32(f.comp.index, f.comp_off(f.hdm_in_block + HDM_CAPABILITY))
    {
        Ok(v) => v,
        Err(e) => {
            s.record(
                "comp_regs_region",
                Verdict::Fail(format!("HDM capability read: {e}")),
            );
            return None;
        }
    };
    let Some(n) = decoder_count(cap) else {
        s.record(
            "comp_regs_region",
            Verdict::Fail(format!(
                "HDM capability {cap:#010x}: reserved decoder count"
            )),
        );
        return None;
    };
    let expect = match f.posting {
        Posting::V2 => f.hdm_in_block - CAP_ARRAY + hdm_size(n),
        Posting::V3 => BLOCK_SIZE,
        Posting::V4 => hdm_size(n),
    };
    let flags_ok = f.comp.flags & (READ | WRITE) == READ | WRITE && f.comp.flags & MMAP == 0;
    s.record(
        "comp_regs_region",
        verdict(
            flags_ok && f.comp.size == expect,
            format!(
                "region {}: flags {:#x}, size {:#x} ({} expects {expect:#x}: {n} decoder(s))",
                f.comp.index, f.comp.flags, f.comp.size, f.posting
            ),
        ),
    );
    Some(n)
}

/// `device_info_cap`: kernel VFIO only; the device-info capability of
/// the posting (v2: 32 bytes, v3: 48 bytes, v4: none, or one without
/// layout) agreeing with the regions and the Register Locator.
fn device_info_cap(s: &mut Suite<'_>, f: &Found, raw: Option<&[u8]>) {
    let Some(raw) = raw else {
        s.record(
            "device_info_cap",
            Verdict::NotApplicable("vfio-user has no device-info capabilities".into()),
        );
        return;
    };
    let first = if f.device_flags & device_flags::CAPS != 0 {
        le32(raw, DEVICE_INFO_CAP_OFFSET) as usize
    } else {
        0
    };
    let cap = match caps::walk(raw, first) {
        Ok(c) => c.into_iter().find(|c| c.id == device_cap::CXL),
        Err(e) => {
            s.record("device_info_cap", Verdict::Fail(e));
            return;
        }
    };
    let v = match (f.posting, cap) {
        (Posting::V4, None) => {
            Verdict::Pass("v4: no CXL device-info capability, as expected".into())
        }
        (Posting::V4, Some(c)) => verdict(
            c.bytes.len() < device_cap::V2_SIZE,
            format!(
                "v4 host sends a {}-byte CXL device-info capability",
                c.bytes.len()
            ),
        ),
        (p, None) => Verdict::Fail(format!(
            "{p} host sends no CXL device-info capability (ID 6)"
        )),
        (Posting::V2, Some(c)) => {
            let b = c.bytes;
            let (bar, off) = (u32::from(b.get(8).copied().unwrap_or(0xFF)), le64(b, 16));
            let (mem, comp) = (le32(b, 24), le32(b, 28));
            verdict(
                b.len() >= device_cap::V2_SIZE
                    && bar == f.bar
                    && off == f.block + CAP_ARRAY
                    && mem == f.mem.index
                    && comp == f.comp.index,
                format!(
                    "v2 layout, {} bytes: BAR {bar}, HDM registers {off:#x}, memory region {mem}, \
                     COMP_REGS {comp}, flags {:#x}",
                    b.len(),
                    le32(b, 12)
                ),
            )
        }
        (Posting::V3, Some(c)) => {
            let b = c.bytes;
            let (flags, mem, comp, bar) = (le32(b, 8), le32(b, 12), le32(b, 16), le32(b, 20));
            let (off, size) = (le64(b, 32), le64(b, 40));
            verdict(
                b.len() >= device_cap::V3_SIZE
                    && mem == f.mem.index
                    && comp == f.comp.index
                    && bar == f.bar
                    && off == f.block
                    && size == f.comp.size,
                format!(
                    "v3 layout, {} bytes: flags {flags:#x}, memory region {mem}, COMP_REGS {comp}, \
                     BAR {bar}, block {off:#x}, size {size:#x}",
                    b.len()
                ),
            )
        }
    };
    s.record("device_info_cap", v);
}

/// `comp_regs_geometry_cap`: v4's `COMP_REGS` region capability names the
/// BAR and the HDM structure found through the Register Locator; other
/// postings carry none.
fn comp_regs_geometry_cap(s: &mut Suite<'_>, f: &Found) {
    let first = le32(&f.comp.raw, REGION_INFO_CAP_OFFSET) as usize;
    let cap = caps::find(&f.comp.raw, first, region_cap::CXL_COMP_REGS);
    let v = match (f.posting, cap) {
        (Posting::V4, Some(c)) => {
            let (bar, off) = (le32(c.bytes, 8), le64(c.bytes, 16));
            verdict(
                c.version == 1 && bar == f.bar && off == f.hdm_in_bar(),
                format!(
                    "version {}: BAR {bar}, HDM at {off:#x} (the BAR walk found BAR {} at {:#x})",
                    c.version,
                    f.bar,
                    f.hdm_in_bar()
                ),
            )
        }
        (Posting::V4, None) => Verdict::NotApplicable(format!(
            "no capability {} on COMP_REGS (its number is not public; the BAR walk is what counts)",
            region_cap::CXL_COMP_REGS
        )),
        (p, Some(_)) => Verdict::Fail(format!("{p} host carries v4's COMP_REGS capability")),
        (p, None) => Verdict::NotApplicable(format!("{p}: no COMP_REGS geometry capability")),
    };
    s.record("comp_regs_geometry_cap", v);
}
