//! Rows for the report's and the summary's tests: a point as the run
//! records it, with three steady repeats of its figure.

use super::mechanisms::TABLE;
use super::results::{Row, key_figure};
use super::sample::Sample;
use super::spec::{Impl, Mode, Wait};

/// A row of mechanism `name` (a `TABLE` name), blocking, whose three
/// repeats all measured `sample`'s key figure.
pub fn row(
    name: &'static str,
    implementation: Impl,
    mode: Mode,
    size: usize,
    sample: Sample,
) -> Row {
    Row {
        entry: TABLE.iter().position(|m| m.name == name),
        mechanism: name,
        implementation,
        mode,
        wait: Some(Wait::Block),
        size,
        by_repeat: vec![key_figure(mode, &sample); 3],
        sample,
        steal: None,
    }
}

/// A round trip of `p50` nanoseconds at the median.
pub fn latency(p50: u64) -> Sample {
    Sample {
        p50_ns: Some(p50),
        ..Sample::default()
    }
}

/// A stream of `bytes_per_s`.
pub fn throughput(bytes_per_s: f64) -> Sample {
    Sample {
        bytes_per_s: Some(bytes_per_s),
        ..Sample::default()
    }
}
