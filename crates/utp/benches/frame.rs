//! Frame encode/decode micro-benchmarks, with and without the CRC-32C checksum.
//!
//! One file per area under `benches/`, each registered as a `[[bench]]` in
//! `crates/utp/Cargo.toml` (`frame` here; the ring's reserve/commit/read
//! benchmark sits beside it as its own file). Run with
//! `cargo bench -p utp --bench frame`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use utp::frame::{self, HEADER_LEN, Header, flags, message_type};

/// Payload sizes measured: a calculator request, a cache line, a page, a large message.
const SIZES: [usize; 4] = [8, 64, 4096, 65536];

fn flag_sets() -> [(&'static str, u16); 2] {
    [("plain", 0), ("checksum", flags::CHECKSUM)]
}

/// With a checksum every payload byte is hashed: report bytes/s. Without one,
/// encode and decode touch only the header: report frames/s.
fn throughput(flag_bits: u16, frame_len: usize) -> Throughput {
    if flag_bits & flags::CHECKSUM != 0 {
        Throughput::Bytes(frame_len as u64)
    } else {
        Throughput::Elements(1)
    }
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_encode");
    for (label, flag_bits) in flag_sets() {
        for size in SIZES {
            let payload = vec![0x5au8; size];
            let header = Header::new(message_type::DATA, flag_bits, 1, 1_700_000_000_000_000);
            group.throughput(throughput(flag_bits, HEADER_LEN + size));
            group.bench_with_input(BenchmarkId::new(label, size), &payload, |b, payload| {
                let mut out = [0u8; HEADER_LEN];
                b.iter(|| header.encode_for(black_box(payload), &mut out));
            });
        }
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_decode");
    for (label, flag_bits) in flag_sets() {
        for size in SIZES {
            let header = Header::new(message_type::DATA, flag_bits, 1, 1_700_000_000_000_000);
            let bytes = frame::encode_to_vec(&header, &vec![0x5au8; size]);
            group.throughput(throughput(flag_bits, bytes.len()));
            group.bench_with_input(BenchmarkId::new(label, size), &bytes, |b, bytes| {
                b.iter(|| {
                    frame::decode(black_box(bytes), frame::DEFAULT_MAX_PAYLOAD)
                        .expect("a frame this benchmark encoded decodes")
                        .1
                        .len()
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
