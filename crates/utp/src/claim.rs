//! Asking for cache lines before writing them (`PREFETCHW`).
//!
//! With keyed stamps (`docs/shm-layout.md` 4.1) a ring's consumer leaves
//! the lines it read as they were, so a producer's next lap writes over
//! lines both cores hold shared. Each such store finds the line in its own
//! cache, but may not complete until the other core's copy is invalidated,
//! and the hardware does not fetch ownership ahead for stores that hit.
//! `PREFETCHW` asks for a line in a writable state without writing it, so
//! the invalidations of a chunk's lines overlap each other and the copy of
//! the chunk before. It is a hint: it changes no memory, never faults, and
//! decodes as a no-op on x86-64 CPUs without it (the 0F 0D opcode space).
//! [`supported`] asks the CPU once per process (CPUID leaf 0x8000_0001,
//! ECX bit 8), so other CPUs skip the loop altogether.
//!
//! Measured on an Intel Xeon (docs/benchmarks/journal.md, 2026-12-05, forenoon):
//! with each 2 KiB chunk's lines asked for before the chunk ahead of it is
//! copied, spinning 64 KiB streams over `shm://` moved 1.2–1.4x the frames,
//! 1 MiB streams 1.05–1.15x, and 64 KiB round trips took about 6 % less.
//!
//! Written by hand: the standard library's `_mm_prefetch` with a write hint
//! emits `PREFETCHW` only when the whole build targets it, and a crate for
//! one line of assembly would cost more than it saves.

/// Whether this CPU has `PREFETCHW`, asked once per process (CPUID leaf
/// 0x8000_0001, ECX bit 8).
pub fn supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| crate::line_hint::cpuid_ecx_bit(0x8000_0001, 8))
}

/// Asks for every cache line of `start..start + len` in a writable state
/// (see the module). Returns the lines asked for: 0 where the CPU lacks
/// the instruction or `len` is 0.
///
/// Takes a pointer rather than a slice because the bytes are usually in
/// shared memory another process may write; nothing is read or written
/// through it, and any address, mapped or not, is allowed.
#[inline]
pub fn lines(start: *const u8, len: usize) -> usize {
    crate::line_hint::each_line(start, len, supported(), claim_line)
}

/// How far ahead of the record it writes a ring's producer asks for the
/// lines of a later one (see [`ahead`]).
pub const AHEAD: usize = 1024;

/// Asks for the lines `AHEAD` bytes past the record of `len` bytes at
/// `offset` in a ring of `cap` bytes (a power of two) at `ring`, as many
/// as the record has: so a producer writing record after record finds each
/// line already writable when it gets there, instead of waiting for the
/// consumer's copy to be invalidated store by store. Records from
/// `copy::CLAIM_FROM` (8 KiB) bytes ask for their own lines
/// as they are copied (`copy::copy_into_shared`), so they skip this (and
/// utp's link skips it for a frame that answers one just received: in a
/// round trip those lines would change hands while the peer reads); so
/// does a ring with less than `AHEAD + len` bytes of room after the record
/// (`room_after`, as last seen): those lines hold records the consumer has
/// yet to read, and asking for them would take them from it just before
/// it reads them. Stops at the end of the data area. Returns the lines
/// asked for.
///
/// Measured on an Intel Xeon (docs/benchmarks/journal.md, 2026-12-05, afternoon):
/// spinning and blocking 64-byte streams over `shm://` moved about a tenth
/// more frames in alternated `utp bench` runs.
#[inline(always)]
pub fn ahead(ring: *const u8, cap: usize, offset: usize, len: usize, room_after: u64) -> usize {
    if len >= crate::copy::CLAIM_FROM || room_after < (AHEAD + len) as u64 {
        return 0;
    }
    let at = offset.wrapping_add(AHEAD) & (cap - 1);
    lines(ring.wrapping_add(at), len.min(cap - at))
}

#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline(always)]
fn claim_line(address: usize) {
    // SAFETY: PREFETCHW (0F 0D /1) is a hint: it reads and writes no memory
    // in the language's sense and never faults, not even on an unmapped
    // address (Intel SDM, "PREFETCHW"); CPUs without it execute it as a
    // no-op. The operand is a memory reference only for the encoding;
    // flags and the stack are untouched.
    unsafe {
        core::arch::asm!(
            "prefetchw byte ptr [{}]",
            in(reg) address,
            options(nostack, preserves_flags, readonly),
        );
    }
}

#[cfg(any(not(target_arch = "x86_64"), miri))]
#[inline(always)]
fn claim_line(_address: usize) {}

#[cfg(test)]
mod tests {
    use super::{AHEAD, ahead, lines, supported};
    use crate::copy::CLAIM_FROM;

    #[test]
    fn asks_ahead_for_as_many_lines_as_the_record_has_only_with_room_to_spare() {
        let cap = 8192;
        let buffer = vec![0u8; cap + 64];
        let ring = buffer
            .as_ptr()
            .wrapping_add(buffer.as_ptr().align_offset(64));
        let per_line = usize::from(supported());
        let plenty = u64::MAX;
        // A 128-byte record: the two lines AHEAD bytes past it.
        assert_eq!(ahead(ring, cap, 0, 128, plenty), 2 * per_line);
        // Past the end of the data area the count wraps to its start.
        assert_eq!(ahead(ring, cap, cap - 128, 128, plenty), 2 * per_line);
        // Stops at the end: only the last line is left there.
        assert_eq!(ahead(ring, cap, cap - AHEAD - 64, 256, plenty), per_line);
        // Not into lines the consumer has yet to read.
        let just_enough = (AHEAD + 128) as u64;
        assert_eq!(ahead(ring, cap, 0, 128, just_enough), 2 * per_line);
        assert_eq!(ahead(ring, cap, 0, 128, just_enough - 1), 0);
        // A record that asks for its own lines as it is copied.
        assert_eq!(ahead(ring, 1 << 20, 0, CLAIM_FROM, plenty), 0);
        assert_eq!(
            ahead(ring, 1 << 20, 0, CLAIM_FROM - 64, plenty) > 0,
            supported()
        );
        assert!(buffer.iter().all(|&b| b == 0), "a hint changes no memory");
    }

    #[test]
    fn asks_for_every_line_the_range_touches_and_nothing_else() {
        crate::line_hint::check(lines, supported());
    }

    #[cfg(all(target_arch = "x86_64", not(miri)))]
    #[test]
    fn a_cpu_the_kernel_lists_with_the_instruction_is_detected() {
        // Linux names the flag after AMD's 3DNow! prefetches, which
        // brought the instruction.
        if crate::line_hint::listed("3dnowprefetch") {
            assert!(supported());
        }
    }
}
