//! Percentiles of samples.

/// Median and 99th percentile (nearest rank) of samples; NaN for none.
pub fn median_p99(v: &mut [f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let p99 = ((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1;
    (v[v.len() / 2], v[p99])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p99_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(median_p99(&mut v), (51.0, 99.0));
        assert!(median_p99(&mut []).0.is_nan());
        assert_eq!(median_p99(&mut [3.0]), (3.0, 3.0));
    }
}
