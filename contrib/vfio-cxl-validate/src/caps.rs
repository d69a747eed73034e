// SPDX-License-Identifier: GPL-2.0-or-later

//! VFIO capability chains (`struct vfio_info_cap_header`: u16 id, u16
//! version, u32 next, offsets from the start of the info reply), walked
//! with the checks a careful consumer makes.

use crate::host::le32;

/// One capability of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cap<'a> {
    pub id: u16,
    pub version: u16,
    pub offset: usize,
    /// From the header to the next capability (or the reply's end).
    pub bytes: &'a [u8],
}

/// Walks the chain that starts at `first`.  Fails, saying where, on a
/// header outside the reply, a next pointer that does not move forward
/// (a loop) or more than 64 entries.
pub fn walk(raw: &[u8], first: usize) -> Result<Vec<Cap<'_>>, String> {
    match walk_partial(raw, first) {
        (caps, None) => Ok(caps),
        (_, Some(e)) => Err(e),
    }
}

/// The capabilities before the first fault of the chain, and the fault.
#[must_use]
pub fn walk_partial(raw: &[u8], first: usize) -> (Vec<Cap<'_>>, Option<String>) {
    let mut caps = Vec::new();
    let mut at = first;
    while at != 0 {
        if at + 8 > raw.len() {
            let e = format!(
                "capability header at {at:#x} outside the {:#x}-byte reply",
                raw.len()
            );
            return (caps, Some(e));
        }
        if caps.len() == 64 {
            return (caps, Some("more than 64 capabilities".into()));
        }
        let hdr = le32(raw, at);
        let next = le32(raw, at + 4) as usize;
        let end = if next == 0 || next <= at {
            raw.len()
        } else {
            next.min(raw.len())
        };
        caps.push(Cap {
            id: (hdr & 0xFFFF) as u16,
            version: (hdr >> 16) as u16,
            offset: at,
            bytes: &raw[at..end],
        });
        if next != 0 && next <= at {
            let e = format!(
                "capability {:#x} at {at:#x} points back to {next:#x}",
                hdr & 0xFFFF
            );
            return (caps, Some(e));
        }
        at = next;
    }
    (caps, None)
}

/// The first capability `id` of a chain, if the chain is sound.
#[must_use]
pub fn find<'a>(raw: &'a [u8], first: usize, id: u16) -> Option<Cap<'a>> {
    walk(raw, first).ok()?.into_iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(caps: &[(u16, u32)]) -> Vec<u8> {
        let mut raw = vec![0u8; 32];
        for (i, &(id, next)) in caps.iter().enumerate() {
            let at = 32 + 16 * i;
            raw.resize(at + 16, 0);
            raw[at..at + 2].copy_from_slice(&id.to_le_bytes());
            raw[at + 2..at + 4].copy_from_slice(&1u16.to_le_bytes());
            raw[at + 4..at + 8].copy_from_slice(&next.to_le_bytes());
        }
        raw
    }

    #[test]
    fn walks_a_chain() {
        let raw = reply(&[(1, 48), (2, 0)]);
        let caps = walk(&raw, 32).unwrap();
        assert_eq!(caps.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(caps[0].bytes.len(), 16);
        assert_eq!(find(&raw, 32, 2).unwrap().offset, 48);
        assert!(find(&raw, 32, 3).is_none());
        assert!(walk(&raw, 0).unwrap().is_empty());
    }

    #[test]
    fn refuses_loops_and_overruns() {
        let looped = reply(&[(1, 32)]);
        assert!(walk(&looped, 32).unwrap_err().contains("points back"));
        let outside = reply(&[(1, 4096)]);
        assert!(walk(&outside, 32).unwrap_err().contains("outside"));
        assert!(find(&looped, 32, 1).is_none());
    }
}
