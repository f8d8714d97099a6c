//! Handing freshly written cache lines to the peer's core (`CLDEMOTE`).
//!
//! A line this core has just written sits modified in its private caches.
//! When the other core reads it, the read has to fetch it from here, a
//! snoop of this core's caches. `CLDEMOTE` (Intel, from Sapphire Rapids
//! and Tremont; CPUID leaf 7, ECX bit 25) hints the core to move the line
//! to the shared last-level cache at once, where the reader finds it
//! sooner. It is a hint: it changes no memory and no architectural state,
//! it never faults, and on CPUs without it (older Intel, AMD) it decodes
//! as a no-op. [`supported`] asks the CPU once per process, so those CPUs
//! skip the loop altogether.
//!
//! utp's shared-memory link demotes a record it sends right after a
//! receive, when the record is small ([`RECORD_UP_TO`]): that send answers
//! a peer that is most likely polling for it, and the peer's first read of
//! the record is what the round trip waits on. Measured on an Intel Xeon
//! with the instruction (docs/benchmarks/journal.md, 2026-12-04, afternoon), spin
//! round trips over `shm://` took 15–17 % less time at 64 B and 1 KiB,
//! about 10 % at 2 and 4 KiB, 3–4 % at 8 KiB and nothing at 16 KiB, while at
//! 64 KiB they took 18–19 % more (a thousand lines to hint, about a
//! nanosecond each on the sending core, where the reader's prefetching
//! hid most of the misses anyway). Demoting every record sent, not only
//! answers, slowed every stream (64 B frames: 53 → 39 M a second; 4 KiB:
//! to a third): a streaming consumer reads lines long after they were
//! written, and the hint is pure cost.
//!
//! Written by hand: the standard library has no stable intrinsic for the
//! instruction, and a crate for one line of assembly would cost more than
//! it saves.

/// The largest shared-memory record a link demotes once published, when
/// it sends it right after a receive: the record of a 4 KiB payload
/// (stamp, header and payload padded to lines: 4160 bytes, which holds
/// payloads of up to 4120). The peer is most likely polling for that
/// answer and finds it in the shared cache rather than snooping this core.
/// Larger records and sends in a stream are not demoted: there the hint
/// costs the sender about a nanosecond a line, and the reader's
/// prefetching hides the misses anyway (see the module).
pub const RECORD_UP_TO: usize = 4096 + 64;

/// Whether this CPU has `CLDEMOTE`, asked once per process (CPUID leaf
/// 7, ECX bit 25).
pub fn supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| crate::line_hint::cpuid_ecx_bit(7, 25))
}

/// Hints the CPU to move every cache line of `start..start + len` out of
/// this core's private caches (see the module). Returns the lines hinted:
/// 0 where the CPU lacks the instruction or `len` is 0.
///
/// Takes a pointer rather than a slice because the bytes are usually in
/// shared memory another process may write; nothing is read or written
/// through it, and any address, mapped or not, is allowed.
#[inline]
pub fn lines(start: *const u8, len: usize) -> usize {
    crate::line_hint::each_line(start, len, supported(), demote_line)
}

#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline(always)]
fn demote_line(address: usize) {
    // SAFETY: CLDEMOTE (0F 1C /0) is a hint: it reads and writes no memory
    // in the language's sense, raises no exception but #UD for a LOCK
    // prefix (none here), and never faults on an unmapped address (Intel
    // SDM, "CLDEMOTE"). CPUs without it execute it as a no-op. The operand
    // is a memory reference only for the encoding; flags and the stack are
    // untouched.
    unsafe {
        core::arch::asm!(
            "cldemote byte ptr [{}]",
            in(reg) address,
            options(nostack, preserves_flags, readonly),
        );
    }
}

#[cfg(any(not(target_arch = "x86_64"), miri))]
#[inline(always)]
fn demote_line(_address: usize) {}

#[cfg(test)]
mod tests {
    use super::{lines, supported};

    #[test]
    fn hints_every_line_the_range_touches_and_nothing_else() {
        crate::line_hint::check(lines, supported());
    }

    #[cfg(all(target_arch = "x86_64", not(miri)))]
    #[test]
    fn a_cpu_the_kernel_lists_with_the_instruction_is_detected() {
        if crate::line_hint::listed("cldemote") {
            assert!(supported());
        }
    }
}
