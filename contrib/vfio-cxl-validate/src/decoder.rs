// SPDX-License-Identifier: GPL-2.0-or-later

//! An HDM decoder's registers, read through whatever shows them: the
//! host's `COMP_REGS` region, or the guest's view of the component BAR.

use std::fmt;

use crate::layout::component::{
    CTRL_COMMIT, CTRL_COMMITTED, CTRL_LOCK_ON_COMMIT, DEC_BASE_HI, DEC_BASE_LO, DEC_CTRL,
    DEC_SIZE_HI, DEC_SIZE_LO,
};
use crate::pci::addr;

/// One decoder's base, size and control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    pub base: u64,
    pub size: u64,
    pub ctrl: u32,
}

impl Decoder {
    /// Reads the decoder with `readl`, given a register's offset from the
    /// decoder's start.
    pub fn read<E>(mut readl: impl FnMut(u64) -> Result<u32, E>) -> Result<Self, E> {
        let (blo, bhi) = (readl(DEC_BASE_LO)?, readl(DEC_BASE_HI)?);
        let (slo, shi) = (readl(DEC_SIZE_LO)?, readl(DEC_SIZE_HI)?);
        Ok(Self {
            base: addr(bhi, blo),
            size: addr(shi, slo),
            ctrl: readl(DEC_CTRL)?,
        })
    }

    #[must_use]
    pub const fn committed_and_locked(&self) -> bool {
        let both = CTRL_COMMITTED | CTRL_LOCK_ON_COMMIT;
        self.ctrl & both == both
    }
}

impl fmt::Display for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "base {:#x} size {:#x} ctrl {:#x} (lock {}, commit {}, committed {})",
            self.base,
            self.size,
            self.ctrl,
            u8::from(self.ctrl & CTRL_LOCK_ON_COMMIT != 0),
            u8::from(self.ctrl & CTRL_COMMIT != 0),
            u8::from(self.ctrl & CTRL_COMMITTED != 0)
        )
    }
}
