//! Single-core memcpy bandwidth: how far every streaming figure is from the
//! memory system. One thread copies a buffer into another, over and over.

use std::hint::black_box;
use std::time::Instant;

/// Copies `size`-byte buffers until at least `total` bytes moved; returns bytes per second.
///
/// Both buffers start on a 64-byte boundary (see `raw::aligned`): glibc's
/// 64 KiB copy ran at 2 GB/s instead of 41 with the destination 16 bytes
/// past the source, and runs 22 and 23 measured that as the floor.
pub fn bandwidth(size: usize, total: u64) -> f64 {
    let (mut src_buf, mut dst_buf) = (Vec::new(), Vec::new());
    let src = super::aligned(&mut src_buf, size);
    src.fill(0x5a);
    let dst = super::aligned(&mut dst_buf, size);
    // Touch both once so page faults stay out of the timing.
    dst.copy_from_slice(src);
    let rounds = total.div_ceil(size as u64).max(1);
    let start = Instant::now();
    for _ in 0..rounds {
        dst.copy_from_slice(black_box(&*src));
        black_box(&mut *dst);
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
