//! Human units for the terminal table.

/// `850 ns`, `12.3 µs`, `1.20 ms`, `2.5 s`.
pub fn ns(value: u64) -> String {
    let v = value as f64;
    if v < 1e3 {
        format!("{value} ns")
    } else if v < 1e6 {
        format!("{:.2} µs", v / 1e3)
    } else if v < 1e9 {
        format!("{:.2} ms", v / 1e6)
    } else {
        format!("{:.2} s", v / 1e9)
    }
}

/// Decimal rates: `950`, `12.3 k`, `4.56 M`, `1.2 G`, followed by `unit`.
pub fn rate(value: f64, unit: &str) -> String {
    let (scaled, prefix) = if value >= 1e9 {
        (value / 1e9, "G")
    } else if value >= 1e6 {
        (value / 1e6, "M")
    } else if value >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    format!("{scaled:.2} {prefix}{unit}")
}

/// `8 B`, `1 KiB`, `64 KiB`, `1 MiB`.
pub fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// `-` for a missing figure.
pub fn opt<T>(value: Option<T>, f: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "-".to_string(), f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(ns(850), "850 ns");
        assert_eq!(ns(12_345), "12.35 µs");
        assert_eq!(rate(5.3e9, "B/s"), "5.30 GB/s");
        assert_eq!(size(65536), "64 KiB");
        assert_eq!(size(8), "8 B");
        assert_eq!(size(1 << 20), "1 MiB");
        assert_eq!(opt(None::<u64>, ns), "-");
    }
}
