//! utp's payload copy against plain `memcpy`, with the destination in and
//! out of `rep movsb`'s slow window (1–31 bytes past the source modulo a
//! 4 KiB page; see the `copy` module and docs/benchmarks/journal.md,
//! 2026-12-03, evening). Run with `cargo bench -p utp --bench copy`.
//!
//! Both sides of each pair copy between the same two buffers in the same
//! run, so the ratio between them is the figure; the absolute rates move
//! with the host.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// Payload sizes: below the window's sizes (1 KiB), a page, a large
/// message, the largest size glibc copies with `rep movsb` here, and past it.
const SIZES: [usize; 5] = [1024, 4096, 65536, 262_144, 1 << 20];

/// Destination bytes past the source, modulo a page: 0 (aligned), 16 (in
/// the window: where a 16-byte-aligned vector lands against a 64-byte
/// aligned ring line), 48 (out of it).
const DISTANCES: [usize; 3] = [0, 16, 48];

const PAGE: usize = 4096;

/// `len` bytes at `offset` past a page boundary inside `buf`.
fn at_page_offset(buf: &mut [u8], offset: usize, len: usize) -> *mut u8 {
    let start = buf.as_ptr().align_offset(PAGE) + offset;
    buf[start..start + len].as_mut_ptr()
}

fn copies(c: &mut Criterion) {
    let mut group = c.benchmark_group("copy");
    for size in SIZES {
        let mut source = vec![0x5au8; size + 2 * PAGE];
        let mut target = vec![0u8; size + 2 * PAGE];
        group.throughput(Throughput::Bytes(size as u64));
        for distance in DISTANCES {
            let src = at_page_offset(&mut source, 0, size).cast_const();
            let dst = at_page_offset(&mut target, distance, size);
            let label = format!("{size}/+{distance}");
            group.bench_function(BenchmarkId::new("memcpy", &label), |b| {
                // SAFETY: `src` and `dst` each point at `size` bytes of
                // distinct live vectors.
                b.iter(|| unsafe { std::ptr::copy_nonoverlapping(black_box(src), dst, size) });
            });
            group.bench_function(BenchmarkId::new("utp", &label), |b| {
                // SAFETY: as above.
                b.iter(|| unsafe { utp::__bench::copy_nonoverlapping(black_box(src), dst, size) });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, copies);
criterion_main!(benches);
