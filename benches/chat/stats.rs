//! Medians and percentiles of samples, and how figures are written.

use std::time::Duration;

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => panic!("the median of no samples"),
        n if n % 2 == 1 => sorted[mid],
        _ => (sorted[mid - 1] + sorted[mid]) / 2.0,
    }
}

/// The nearest-rank percentile: the smallest sample with at least `p` percent of the samples at
/// or below it.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    assert!(!samples.is_empty(), "a percentile of no samples");
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median_duration(samples: &[Duration]) -> Duration {
    percentile(samples, 50.0)
}

pub fn max_duration(samples: &[Duration]) -> Duration {
    samples.iter().copied().max().unwrap_or_default()
}

/// `2.61 M/s`
pub fn rate(per_second: f64) -> String {
    format!("{:.2} M msgs/s", per_second / 1e6)
}

/// `41.2 µs`, or `1.25 ms` from a millisecond up.
pub fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

/// `500.9 ms`
pub fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// `3.12 MiB`
pub fn mib(kib: u64) -> String {
    format!("{:.2} MiB", kib as f64 / 1024.0)
}

pub fn yes_no(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}
