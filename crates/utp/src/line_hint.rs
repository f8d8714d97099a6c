//! What the cache-line hints (`demote`: `CLDEMOTE`, `claim`: `PREFETCHW`)
//! share: asking the CPU whether it has the instruction, walking a range
//! line by line, and the tests every hint must pass.

/// Bytes of a cache line (the unit a hint acts on).
pub(crate) const LINE: usize = 64;

/// Whether CPUID leaf `leaf` (subleaf 0) sets bit `bit` of ECX, counting
/// the leaf only if the highest leaf of its range (0 or 0x8000_0000) says
/// the CPU has it: an older CPU answers a leaf it lacks with another
/// leaf's values. How each hint asks once per process whether the CPU has
/// its instruction.
// Not under Miri, which runs neither CPUID nor inline assembly: there the
// hints are simply off.
#[cfg(all(target_arch = "x86_64", not(miri)))]
pub(crate) fn cpuid_ecx_bit(leaf: u32, bit: u32) -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // SAFETY: CPUID exists on every x86-64 CPU and only reads identity
    // registers. (A safe function in newer Rust; the block keeps the
    // minimum supported Rust, where it was `unsafe`, building.)
    #[allow(unused_unsafe)]
    let (max_leaf, features) =
        unsafe { (__cpuid(leaf & 0x8000_0000).eax, __cpuid_count(leaf, 0).ecx) };
    max_leaf >= leaf && (features >> bit) & 1 == 1
}

#[cfg(any(not(target_arch = "x86_64"), miri))]
pub(crate) fn cpuid_ecx_bit(_leaf: u32, _bit: u32) -> bool {
    false
}

/// Calls `hint` with the address of every cache line that
/// `start..start + len` touches, if the CPU has the instruction
/// (`supported`); returns how many. Nothing is read or written through
/// the addresses.
#[inline(always)]
pub(crate) fn each_line(
    start: *const u8,
    len: usize,
    supported: bool,
    hint: impl Fn(usize),
) -> usize {
    if len == 0 || !supported {
        return 0;
    }
    let end = start.addr().saturating_add(len);
    let mut count = 0;
    let mut line = start.addr() & !(LINE - 1);
    while line < end {
        hint(line);
        count += 1;
        line += LINE;
    }
    count
}

/// The tests every hint passes: `lines` hints each line a range touches
/// (none where the CPU lacks the instruction, `supported` false), changes
/// no memory, and takes an unmapped address without faulting.
#[cfg(test)]
pub(crate) fn check(lines: fn(*const u8, usize) -> usize, supported: bool) {
    let buffer = vec![0u8; 4 * LINE + LINE];
    let base = buffer
        .as_ptr()
        .wrapping_add(buffer.as_ptr().align_offset(LINE));
    let per_line = usize::from(supported);
    // Whole lines, a range straddling a boundary, one byte, nothing.
    assert_eq!(lines(base, 2 * LINE), 2 * per_line);
    assert_eq!(lines(base.wrapping_add(LINE - 1), 2), 2 * per_line);
    assert_eq!(lines(base.wrapping_add(3), 1), per_line);
    assert_eq!(lines(base, 0), 0);
    // The bytes are untouched: a hint changes no memory.
    assert!(buffer.iter().all(|&b| b == 0));
    // Page 0 is never mapped in a Linux process: a real access would
    // fault, the hint must not.
    assert_eq!(lines(std::ptr::without_provenance(64), LINE), per_line);
}

/// Whether the kernel lists `flag` among the CPU's (`/proc/cpuinfo`). One
/// way only: a kernel older than the flag's name does not list it even
/// where the CPU has it.
#[cfg(test)]
#[cfg_attr(miri, allow(dead_code))] // its callers' tests read /proc, which Miri skips
pub(crate) fn listed(flag: &str) -> bool {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == flag))
}
