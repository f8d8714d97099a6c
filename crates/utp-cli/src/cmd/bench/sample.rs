//! What one run measured, and the median of several runs.

use hdrhistogram::Histogram;

/// The figures of one run (or the medians of several); `None` where a figure
/// does not apply to the mode.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// Median latency, ns.
    pub p50_ns: Option<u64>,
    /// 99th percentile, ns.
    pub p99_ns: Option<u64>,
    /// 99.9th percentile, ns.
    pub p999_ns: Option<u64>,
    /// Largest sample, ns.
    pub max_ns: Option<u64>,
    /// Messages (or calls) per second.
    pub msgs_per_s: Option<f64>,
    /// Payload bytes per second.
    pub bytes_per_s: Option<f64>,
    /// Fixed-rate runs: the 99th percentile measured from each actual send,
    /// i.e. without the correction for coordinated omission, ns.
    pub uncorrected_p99_ns: Option<u64>,
}

/// A histogram for latencies from 1 ns to 100 s at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

impl Sample {
    /// The latency figures of a histogram.
    pub fn from_latencies(h: &Histogram<u64>) -> Sample {
        Sample {
            p50_ns: Some(h.value_at_quantile(0.50)),
            p99_ns: Some(h.value_at_quantile(0.99)),
            p999_ns: Some(h.value_at_quantile(0.999)),
            max_ns: Some(h.max()),
            ..Sample::default()
        }
    }

    /// Each figure's median over `samples` (figures missing from all stay `None`).
    pub fn median(samples: &[Sample]) -> Sample {
        fn med_u64(values: impl Iterator<Item = Option<u64>>) -> Option<u64> {
            let v: Vec<f64> = values.flatten().map(|x| x as f64).collect();
            median_f64(v).map(|m| m.round() as u64)
        }
        fn med_f64(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
            median_f64(values.flatten().collect())
        }
        Sample {
            p50_ns: med_u64(samples.iter().map(|s| s.p50_ns)),
            p99_ns: med_u64(samples.iter().map(|s| s.p99_ns)),
            p999_ns: med_u64(samples.iter().map(|s| s.p999_ns)),
            max_ns: med_u64(samples.iter().map(|s| s.max_ns)),
            msgs_per_s: med_f64(samples.iter().map(|s| s.msgs_per_s)),
            bytes_per_s: med_f64(samples.iter().map(|s| s.bytes_per_s)),
            uncorrected_p99_ns: med_u64(samples.iter().map(|s| s.uncorrected_p99_ns)),
        }
    }
}

/// The median of `values` (mean of the middle two for an even count).
pub fn median_f64(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median_f64(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median_f64(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median_f64(vec![]), None);
    }

    #[test]
    fn median_sample_keeps_missing_figures_missing() {
        let a = Sample {
            p50_ns: Some(100),
            ..Sample::default()
        };
        let b = Sample {
            p50_ns: Some(300),
            ..Sample::default()
        };
        let m = Sample::median(&[a, b]);
        assert_eq!(m.p50_ns, Some(200));
        assert_eq!(m.bytes_per_s, None);
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = latency_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let s = Sample::from_latencies(&h);
        let p50 = s.p50_ns.unwrap();
        assert!((499_000..=501_000).contains(&p50), "{p50}");
        assert!(s.max_ns.unwrap() >= 999_000);
    }
}
