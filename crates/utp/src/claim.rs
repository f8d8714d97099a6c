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
//! Measured on an Intel Xeon (docs/BENCHMARKS.md, 2026-12-05, forenoon):
//! with each 2 KiB chunk's lines asked for before the chunk ahead of it is
//! copied, spinning 64 KiB streams over `shm://` moved 1.2–1.4x the frames,
//! 1 MiB streams 1.05–1.15x, and 64 KiB round trips took about 6 % less.
//!
//! Written by hand: the standard library's `_mm_prefetch` with a write hint
//! emits `PREFETCHW` only when the whole build targets it, and a crate for
//! one line of assembly would cost more than it saves.

/// Whether this CPU has `PREFETCHW`, asked once per process.
pub fn supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(detect)
}

// Not under Miri, which runs neither CPUID nor inline assembly: there the
// hint is simply off.
#[cfg(all(target_arch = "x86_64", not(miri)))]
fn detect() -> bool {
    // The extended leaf counts only if leaf 0x8000_0000 says the CPU has it.
    use std::arch::x86_64::__cpuid;
    // SAFETY: CPUID exists on every x86-64 CPU and only reads identity
    // registers. (A safe function in newer Rust; the block keeps the
    // minimum supported Rust, where it was `unsafe`, building.)
    #[allow(unused_unsafe)]
    let (max_leaf, features) = unsafe { (__cpuid(0x8000_0000).eax, __cpuid(0x8000_0001).ecx) };
    max_leaf >= 0x8000_0001 && (features >> 8) & 1 == 1
}

#[cfg(any(not(target_arch = "x86_64"), miri))]
fn detect() -> bool {
    false
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
    use super::{lines, supported};

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
