//! Single-core memcpy bandwidth: how far every streaming figure is from the
//! memory system. One thread copies a buffer into another, over and over.

use std::hint::black_box;
use std::time::Instant;

/// Copies `size`-byte buffers until at least `total` bytes moved; returns bytes per second.
pub fn bandwidth(size: usize, total: u64) -> f64 {
    let src = vec![0x5au8; size];
    let mut dst = vec![0u8; size];
    // Touch both once so page faults stay out of the timing.
    dst.copy_from_slice(&src);
    let rounds = total.div_ceil(size as u64).max(1);
    let start = Instant::now();
    for _ in 0..rounds {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
    }
    let elapsed = start.elapsed().as_secs_f64();
    (rounds * size as u64) as f64 / elapsed
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_a_positive_bandwidth() {
        assert!(super::bandwidth(4096, 1 << 20) > 0.0);
    }
}
