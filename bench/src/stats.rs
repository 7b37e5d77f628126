//! Medians, percentiles and min/max of a set of samples.

use serde::Serialize;

/// What a set of samples comes to: the median with the extremes, and how many there were.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// How many samples (rounds) the figure comes from.
    pub rounds: usize,
    /// Every sample, in the order taken.
    pub samples: Vec<f64>,
}

impl Summary {
    /// `None` when there is no finite sample.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let kept: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        let mut sorted = kept.clone();
        sorted.sort_by(f64::total_cmp);
        let median = median_sorted(&sorted)?;
        Some(Self {
            median,
            min: *sorted.first()?,
            max: *sorted.last()?,
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            rounds: sorted.len(),
            samples: kept,
        })
    }

    /// Drops the samples when there are more than `max` (the summary stays).
    pub fn compact(&mut self, max: usize) {
        if self.samples.len() > max {
            self.samples = Vec::new();
        }
    }

    /// One figure given with its own bounds (e.g. criterion's estimate and confidence interval).
    pub fn with_bounds(median: f64, min: f64, max: f64, rounds: usize) -> Self {
        Self {
            median,
            min,
            max,
            mean: median,
            rounds,
            samples: Vec::new(),
        }
    }
}

/// The median of sorted samples: the middle one, or the mean of the two middle ones.
pub fn median_sorted(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The median of samples in any order.
pub fn median(samples: &[f64]) -> Option<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    median_sorted(&sorted)
}

/// The `p`-th percentile (0–100) by nearest rank: the smallest sample with at least `p` % of
/// the samples at or below it.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn summary_keeps_extremes_and_drops_non_finite() {
        let s = Summary::of(&[5.0, f64::NAN, 1.0, 3.0]).expect("summary");
        assert_eq!((s.median, s.min, s.max, s.rounds), (3.0, 1.0, 5.0, 3));
        assert_eq!(s.samples, vec![5.0, 1.0, 3.0]);
        assert!(Summary::of(&[f64::INFINITY]).is_none());
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&xs, 50.0), Some(50.0));
        assert_eq!(percentile(&xs, 99.0), Some(99.0));
        assert_eq!(percentile(&xs, 100.0), Some(100.0));
        assert_eq!(percentile(&xs, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
