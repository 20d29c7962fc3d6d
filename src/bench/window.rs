//! Counting what a receiver saw: latency percentiles, and the most deliveries in any second,
//! which is what a per-endpoint rate limit promises the receiver.

use std::time::Duration;

/// The value at quantile `q` (0 to 1) of `sorted`, by the rank below; zero when empty.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (sorted.len() as f64 * q) as usize;
    sorted
        .get(rank.min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// The most of `sorted` (times from one origin) inside one window `width` long, wherever it
/// starts. A busiest window can always be slid until it ends at an arrival, so only those
/// ends are tried; a window holds `(end - width, end]`.
pub fn max_in_sliding_window(sorted: &[Duration], width: Duration) -> usize {
    let mut first = 0;
    let mut most = 0;
    for (last, at) in sorted.iter().enumerate() {
        while *at - sorted[first] >= width {
            first += 1;
        }
        most = most.max(last + 1 - first);
    }
    most
}

/// The most of `sorted` (times since the Unix epoch) inside one calendar second.
pub fn max_in_calendar_second(sorted: &[Duration]) -> usize {
    let mut most = 0;
    let mut run = 0;
    let mut second = None;
    for at in sorted {
        if second == Some(at.as_secs()) {
            run += 1;
        } else {
            (second, run) = (Some(at.as_secs()), 1);
        }
        most = most.max(run);
    }
    most
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(times: &[u64]) -> Vec<Duration> {
        times.iter().copied().map(Duration::from_millis).collect()
    }

    #[test]
    fn a_sliding_window_finds_bursts_that_straddle_a_second() {
        let second = Duration::from_secs(1);
        // Three in the first second and four in the next, but five within (980 ms, 1980 ms].
        let arrivals = ms(&[0, 500, 990, 1000, 1200, 1500, 1980]);
        assert_eq!(max_in_sliding_window(&arrivals, second), 5);
        assert_eq!(max_in_calendar_second(&arrivals), 4);
    }

    #[test]
    fn a_window_is_shorter_than_its_width() {
        let second = Duration::from_secs(1);
        assert_eq!(max_in_sliding_window(&ms(&[0, 1000]), second), 1);
        assert_eq!(max_in_sliding_window(&ms(&[0, 999]), second), 2);
        assert_eq!(max_in_sliding_window(&ms(&[7, 7, 7]), second), 3);
        assert_eq!(max_in_sliding_window(&[], second), 0);
        assert_eq!(max_in_calendar_second(&[]), 0);
    }

    #[test]
    fn a_steady_rate_fills_each_window_to_the_rate() {
        // 100 per second, evenly, for five seconds.
        let arrivals: Vec<Duration> = (0..500).map(|i| Duration::from_millis(i * 10)).collect();
        assert_eq!(
            max_in_sliding_window(&arrivals, Duration::from_secs(1)),
            100
        );
        assert_eq!(max_in_calendar_second(&arrivals), 100);
    }

    #[test]
    fn quantiles_take_the_rank_below() {
        let lat = ms(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(quantile(&lat, 0.5), Duration::from_millis(6));
        assert_eq!(quantile(&lat, 0.99), Duration::from_millis(10));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
