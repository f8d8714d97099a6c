//! Byte copies that stay out of `rep movsb`'s page-aliasing slow path.
//!
//! glibc's `memcpy` (2.36, Debian 12's) moves copies of 2113 bytes up to
//! about half a MiB with `rep movsb` on CPUs that announce fast short
//! `rep movsb` (FSRM). On the AMD EPYC cores utp is measured on, that
//! instruction runs 15–30 times slower when the destination sits 1–31
//! bytes past the source modulo a 4 KiB page: 64 KiB copies at 1.4 GB/s
//! instead of 25–40, 4 KiB at 1.0–1.4 instead of 22–36 (the same copy 32
//! or 80 bytes apart runs at full speed; the problem is public as glibc
//! bug 30994). A ring, whose records walk through every page offset,
//! meets that window once every 64 records; a reader whose buffer keeps a
//! fixed distance to the caller's vector meets it on every message, or
//! never. [`copy_nonoverlapping`] splits such copies into 2 KiB pieces,
//! which glibc moves with vector loads and stores at full speed (13–40
//! GB/s in the same scan), hands every other copy of more than 64 bytes
//! to `memcpy` whole, and moves up to 64 bytes inline (a libc call costs
//! more than the copy for a few lines' worth).
//!
//! Written by hand because this is the product's own copy path: no crate
//! sits between Rust's `copy_nonoverlapping` and the C library.

/// Bytes per piece of a copy in the slow window: below the smallest size
/// at which glibc chooses `rep movsb` (2113 with FSRM, 2048 × the vector
/// width / 16 without), so each piece takes the vector loop.
const PIECE: usize = 2048;

/// Bytes of the page the window is measured in.
const PAGE: usize = 4096;

/// A destination 1 to `WINDOW - 1` bytes past the source, modulo a page,
/// is in the slow window. Measured: 1–31 slow, 32–63 and 0 full speed;
/// 63 keeps a margin for cores not measured (a copy in pieces costs at
/// most a few per cent).
const WINDOW: usize = 64;

/// Whether a copy from `src` to `dst` would meet the slow window.
#[inline(always)]
fn in_slow_window(src: *const u8, dst: *const u8) -> bool {
    let distance = dst.addr().wrapping_sub(src.addr()) % PAGE;
    distance != 0 && distance < WINDOW
}

/// Copies `n` bytes from `src` to `dst`, as `std::ptr::copy_nonoverlapping`
/// does: up to 64 inline, in pieces when the two sit in the slow window,
/// otherwise through `memcpy` (see the module).
///
/// # Safety
///
/// As `std::ptr::copy_nonoverlapping(src, dst, n)`: `src..src+n` readable,
/// `dst..dst+n` writable, the two not overlapping.
#[inline(always)]
pub unsafe fn copy_nonoverlapping(src: *const u8, dst: *mut u8, n: usize) {
    if n <= 64 {
        // SAFETY: the caller's contract, forwarded.
        unsafe { copy_small(src, dst, n) }
    } else if n > PIECE && in_slow_window(src, dst) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { copy_in_pieces(src, dst, n) }
    } else {
        // SAFETY: the caller's contract, forwarded.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, n) }
    }
}

/// Bytes from which [`copy_into_shared`] asks for lines ahead.
pub(crate) const CLAIM_FROM: usize = 8192;

/// Bytes [`copy_into_shared`] asks for ahead of the copy, and copies
/// between two asks: the lines of one chunk are asked for while the chunk
/// before is copied. Below `rep movsb`'s sizes, so each chunk takes
/// glibc's vector loop.
const CLAIM_CHUNK: usize = 2048;

/// [`copy_nonoverlapping`] into memory another core may hold shared (a
/// ring's data area): a copy of 8 KiB or more asks for each 2 KiB chunk's
/// lines in a writable state (`PREFETCHW`, `crate::claim`) before it
/// copies the chunk ahead of them, so the other core's copies are
/// invalidated while the copy runs rather than store by store.
///
/// # Safety
///
/// As [`copy_nonoverlapping`].
#[inline(always)]
pub unsafe fn copy_into_shared(src: *const u8, dst: *mut u8, n: usize) {
    if n < CLAIM_FROM {
        // SAFETY: the caller's contract, forwarded.
        unsafe { copy_nonoverlapping(src, dst, n) }
    } else {
        // SAFETY: the caller's contract, forwarded.
        unsafe { copy_claiming(src, dst, n) }
    }
}

/// [`copy_into_shared`] from [`CLAIM_FROM`] bytes: out of line, so a small
/// copy's path is the plain copy's.
///
/// # Safety
///
/// As [`copy_nonoverlapping`].
#[inline(never)]
unsafe fn copy_claiming(src: *const u8, dst: *mut u8, n: usize) {
    if !crate::claim::supported() {
        // SAFETY: the caller's contract, forwarded.
        return unsafe { copy_nonoverlapping(src, dst, n) };
    }
    crate::claim::lines(dst, CLAIM_CHUNK);
    let mut done = 0;
    while done < n {
        let len = (n - done).min(CLAIM_CHUNK);
        let next = done + len;
        if next < n {
            crate::claim::lines(dst.wrapping_add(next), (n - next).min(CLAIM_CHUNK));
        }
        // SAFETY: `done + len <= n`, so both ranges lie inside the
        // caller's `src..src+n` and `dst..dst+n`, which do not overlap.
        unsafe { copy_nonoverlapping(src.add(done), dst.add(done), len) };
        done = next;
    }
}

/// Copies `n <= 64` bytes with at most four loads and four stores.
///
/// # Safety
///
/// As [`copy_nonoverlapping`], and `n <= 64`.
#[inline(always)]
unsafe fn copy_small(src: *const u8, dst: *mut u8, n: usize) {
    // SAFETY: the caller's contract; every access below is inside
    // `src..src+n` / `dst..dst+n` (overlapping unaligned word moves).
    unsafe {
        if n > 32 {
            // The first and the last 32 bytes, overlapping.
            let a = src.cast::<u128>().read_unaligned();
            let b = src.add(16).cast::<u128>().read_unaligned();
            let c = src.add(n - 32).cast::<u128>().read_unaligned();
            let d = src.add(n - 16).cast::<u128>().read_unaligned();
            dst.cast::<u128>().write_unaligned(a);
            dst.add(16).cast::<u128>().write_unaligned(b);
            dst.add(n - 32).cast::<u128>().write_unaligned(c);
            dst.add(n - 16).cast::<u128>().write_unaligned(d);
        } else if n > 16 {
            let a = src.cast::<u128>().read_unaligned();
            let b = src.add(n - 16).cast::<u128>().read_unaligned();
            dst.cast::<u128>().write_unaligned(a);
            dst.add(n - 16).cast::<u128>().write_unaligned(b);
        } else if n >= 8 {
            let a = src.cast::<u64>().read_unaligned();
            let b = src.add(n - 8).cast::<u64>().read_unaligned();
            dst.cast::<u64>().write_unaligned(a);
            dst.add(n - 8).cast::<u64>().write_unaligned(b);
        } else if n >= 4 {
            let a = src.cast::<u32>().read_unaligned();
            let b = src.add(n - 4).cast::<u32>().read_unaligned();
            dst.cast::<u32>().write_unaligned(a);
            dst.add(n - 4).cast::<u32>().write_unaligned(b);
        } else {
            for i in 0..n {
                *dst.add(i) = *src.add(i);
            }
        }
    }
}

/// # Safety
///
/// As [`copy_nonoverlapping`].
#[cold]
#[inline(never)]
unsafe fn copy_in_pieces(src: *const u8, dst: *mut u8, n: usize) {
    let mut done = 0;
    while done < n {
        let piece = (n - done).min(PIECE);
        // SAFETY: `done + piece <= n`, so both ranges lie inside the
        // caller's `src..src+n` and `dst..dst+n`, which do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(src.add(done), dst.add(done), piece) };
        done += piece;
    }
}

/// `dst.copy_from_slice(src)` through [`copy_nonoverlapping`].
///
/// # Panics
///
/// If the lengths differ, as `copy_from_slice` does.
#[inline]
pub(crate) fn copy_slice(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "copy_slice: lengths differ");
    // SAFETY: both slices are `src.len()` long; a `&mut` and a `&` borrow
    // never overlap.
    unsafe { copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr(), src.len()) }
}

/// `out.extend_from_slice(src)` through [`copy_nonoverlapping`].
#[inline]
pub(crate) fn extend(out: &mut Vec<u8>, src: &[u8]) {
    // SAFETY: a shared borrow is readable for its length and cannot overlap
    // the vector's spare capacity, which nothing borrows.
    unsafe { extend_from_raw(out, src.as_ptr(), src.len()) }
}

/// Appends the `len` bytes at `src` to `out` (one copy, no zeroing): the
/// form for sources that must not be behind a `&[u8]`, such as shared
/// memory another process writes.
///
/// # Safety
///
/// `src..src+len` readable for the call and not inside `out`'s buffer.
#[inline(always)]
pub(crate) unsafe fn extend_from_raw(out: &mut Vec<u8>, src: *const u8, len: usize) {
    out.reserve(len);
    let start = out.len();
    // SAFETY: `reserve` made room for `len` bytes after `start`, all written
    // by the copy before `set_len`; the source is readable and outside the
    // vector (the caller's contract).
    unsafe {
        copy_nonoverlapping(src, out.as_mut_ptr().add(start), len);
        out.set_len(start + len);
    }
}

/// `src.to_vec()` through [`copy_nonoverlapping`].
#[inline]
pub fn to_vec(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    extend(&mut out, src);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_a_destination_just_past_the_source_modulo_a_page() {
        let base = 1 << 20;
        let at = |offset: usize| std::ptr::without_provenance::<u8>(base + offset);
        assert!(!in_slow_window(at(0), at(0)));
        assert!(in_slow_window(at(0), at(1)));
        assert!(in_slow_window(at(0), at(16)));
        assert!(in_slow_window(at(0), at(63)));
        assert!(!in_slow_window(at(0), at(64)));
        assert!(!in_slow_window(at(0), at(PAGE)));
        assert!(in_slow_window(at(0), at(3 * PAGE + 16)));
        assert!(in_slow_window(at(100), at(PAGE + 116)));
        // A destination before the source is outside.
        assert!(!in_slow_window(at(16), at(0)));
        assert!(!in_slow_window(at(PAGE + 16), at(PAGE)));
    }

    /// Every size around the piece boundaries, at distances inside and
    /// outside the window: the copy is exact and touches nothing past
    /// `n`.
    #[test]
    fn copies_are_exact_in_and_out_of_the_window() {
        let source: Vec<u8> = (0..5 * PAGE + 64).map(|i| (i * 131 % 251) as u8).collect();
        for n in [
            0,
            1,
            3,
            4,
            8,
            16,
            17,
            33,
            64,
            65,
            PIECE,
            PIECE + 1,
            2 * PIECE,
            2 * PIECE + 7,
            5 * PAGE,
        ] {
            for distance in [0usize, 1, 16, 31, 32, 63, 64, 80] {
                let mut target = vec![0xAAu8; n + 2 * PAGE + 64];
                // Place the destination `distance` bytes past the source
                // modulo a page.
                let src = source.as_ptr();
                let base = target.as_mut_ptr();
                let dst_at = (src.addr() + distance).wrapping_sub(base.addr()) % PAGE;
                assert!(dst_at + n <= target.len());
                // SAFETY: `source` holds at least `n` bytes; `target` holds
                // `dst_at + n` (asserted); distinct allocations.
                unsafe { copy_nonoverlapping(src, base.add(dst_at), n) };
                assert_eq!(
                    in_slow_window(src, target[dst_at..].as_ptr()),
                    distance % PAGE != 0 && distance < WINDOW,
                    "n {n} distance {distance}"
                );
                assert_eq!(
                    &target[dst_at..dst_at + n],
                    &source[..n],
                    "n {n} distance {distance}"
                );
                assert!(target[..dst_at].iter().all(|&b| b == 0xAA));
                assert!(target[dst_at + n..].iter().all(|&b| b == 0xAA));
            }
        }
    }

    /// The copy into shared memory, around the size where it starts asking
    /// for lines and around its chunks, at odd offsets: exact, and nothing
    /// past either end is touched.
    #[test]
    fn copies_into_shared_memory_are_exact() {
        let source: Vec<u8> = (0..5 * CLAIM_FROM).map(|i| (i * 131 % 251) as u8).collect();
        for n in [
            0,
            100,
            CLAIM_FROM - 1,
            CLAIM_FROM,
            CLAIM_FROM + 1,
            CLAIM_FROM + CLAIM_CHUNK - 1,
            3 * CLAIM_FROM + 17,
            4 * CLAIM_FROM,
        ] {
            for at in [0usize, 24, 40, 63] {
                let mut target = vec![0xAAu8; at + n + 64];
                // SAFETY: `source` holds at least `n` bytes, `target` holds
                // `at + n`; distinct allocations.
                unsafe { copy_into_shared(source.as_ptr(), target.as_mut_ptr().add(at), n) };
                assert_eq!(&target[at..at + n], &source[..n], "n {n} at {at}");
                assert!(target[..at].iter().all(|&b| b == 0xAA), "n {n} at {at}");
                assert!(target[at + n..].iter().all(|&b| b == 0xAA), "n {n} at {at}");
            }
        }
    }

    /// Every size of the inline path and past it: each of its branches
    /// (1–3, 4–7, 8–16, 17–32, 33–64 bytes) and the hand-over to `memcpy`.
    #[test]
    fn every_small_size_is_copied_exactly() {
        for n in 0..100 {
            let src: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(7) ^ 0x5a).collect();
            let mut dst = vec![0xffu8; n + 8];
            // SAFETY: both buffers hold at least n bytes and do not overlap.
            unsafe { copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().add(4), n) };
            assert_eq!(&dst[4..4 + n], &src[..], "n = {n}");
            assert!(dst[..4].iter().chain(&dst[4 + n..]).all(|&b| b == 0xff));
        }
    }

    #[test]
    fn copy_slice_and_extend_copy_every_byte() {
        let source: Vec<u8> = (0..3 * PIECE + 5).map(|i| (i % 253) as u8).collect();
        let mut dst = vec![0u8; source.len()];
        copy_slice(&mut dst, &source);
        assert_eq!(dst, source);
        let mut out = b"head".to_vec();
        extend(&mut out, &source);
        assert_eq!(&out[..4], b"head");
        assert_eq!(&out[4..], &source[..]);
        assert_eq!(to_vec(&source), source);
    }

    #[test]
    #[should_panic(expected = "lengths differ")]
    fn copy_slice_refuses_different_lengths() {
        copy_slice(&mut [0u8; 3], &[1, 2]);
    }
}
