//! Frame timestamps on links: `CLOCK_REALTIME_COARSE`.
//!
//! A link frame carries the time it was built (frame.md), but a precise
//! clock read per frame (`clock_gettime(CLOCK_REALTIME)`, ~46 ns in this KVM
//! guest, or an `rdtsc` plus conversion) was a large share of a ~100 ns
//! message. The coarse clock is a read of the vDSO data page (no `rdtsc`, no
//! system call, a few ns); its resolution is one kernel tick (4 ms at
//! HZ=250). That is what shm frame timestamps promise (docs/shm-layout.md
//! section 12); measure latency with your own clock around send and recv.

/// Microseconds since the Unix epoch, to the resolution of a kernel tick.
#[inline]
pub fn coarse_micros() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add(ts.tv_nsec as u64 / 1_000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn coarse_time_is_within_a_few_ticks_of_the_real_clock() {
        let real = crate::frame::now_micros();
        let coarse = super::coarse_micros();
        assert!(real.abs_diff(coarse) < 50_000, "{real} vs {coarse}");
    }
}
