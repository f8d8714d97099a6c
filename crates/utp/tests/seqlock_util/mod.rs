//! Helpers of the seqlock process tests: a checksummed value, child
//! processes that re-execute the test binary, cleanup guards.

#![allow(dead_code)] // each test binary uses a different subset

#[path = "../child/mod.rs"]
mod child;

pub use child::{Proc, role, say, unique};
use utp::seqlock::place::Place;

/// 256 bytes: 31 data words and a checksum of them (spans 4 cache lines,
/// so an unprotected copy would tear easily).
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Checked {
    pub words: [u64; 32],
}

impl Checked {
    pub fn new(n: u64) -> Self {
        let mut words = [0u64; 32];
        for (i, w) in words.iter_mut().take(31).enumerate() {
            *w = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64) << 56;
        }
        words[31] = Self::sum(&words);
        Checked { words }
    }
    fn sum(words: &[u64; 32]) -> u64 {
        words[..31]
            .iter()
            .fold(7, |h, w| (h ^ w).wrapping_mul(0x100_0000_01b3))
    }
    pub fn intact(&self) -> bool {
        self.words[31] == Self::sum(&self.words)
    }
}

/// Removes a cell when dropped, so a failing test leaves nothing behind.
pub struct Remove(pub String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = Place::parse(&self.0).map(|p| p.remove());
    }
}
