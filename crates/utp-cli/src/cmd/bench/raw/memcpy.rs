//! Single-core memcpy bandwidth: how far every streaming figure is from the
//! memory system. One thread copies a buffer into another, over and over.

use std::hint::black_box;
use std::time::Instant;

/// Both buffers start on a 64-byte boundary. glibc copies 64 KiB with
/// `rep movsb`, which on this project's AMD hosts runs at about 2 GB/s
/// instead of 40 when the destination sits 16 bytes past the source modulo
/// 64 (docs/BENCHMARKS.md, "2026-12-03, afternoon"); two vectors from the
/// allocator land wherever it puts them, and runs 22 and 23 measured the
/// slow case as the floor.
const ALIGN: usize = 64;

/// Copies `size`-byte buffers until at least `total` bytes moved; returns bytes per second.
pub fn bandwidth(size: usize, total: u64) -> f64 {
    let mut src_buf = vec![0x5au8; size + ALIGN];
    let mut dst_buf = vec![0u8; size + ALIGN];
    let src = aligned(&mut src_buf, size);
    let dst = aligned(&mut dst_buf, size);
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

/// The `size` bytes of `buf` that start on a 64-byte boundary.
fn aligned(buf: &mut [u8], size: usize) -> &mut [u8] {
    let at = buf.as_ptr().align_offset(ALIGN);
    &mut buf[at..at + size]
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_a_positive_bandwidth() {
        assert!(super::bandwidth(4096, 1 << 20) > 0.0);
    }

    #[test]
    fn the_copied_buffers_start_on_a_line() {
        for extra in 0..4 {
            let mut buf = vec![0u8; 100 + super::ALIGN + extra * 16];
            let place = super::aligned(&mut buf, 100);
            assert_eq!(place.as_ptr().addr() % super::ALIGN, 0);
            assert_eq!(place.len(), 100);
        }
    }
}
