//! Latency distributions. Where the throughput workloads keep one figure per
//! run, a latency workload keeps every sample of a run and sums the run up
//! by its median and 99th percentile; a contender's figure is then the median
//! over rounds of those per-run percentiles, as for throughput.

/// The median and 99th percentile of one run's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// Half the samples are at or below this.
    pub median: f64,
    /// 99% of the samples are at or below this.
    pub p99: f64,
}

impl Percentiles {
    /// The percentiles of `samples` (sorted in place), by nearest rank: the
    /// `q`-quantile is the smallest sample with at least a fraction `q` of
    /// the samples at or below it. `None` if there are none.
    pub fn of(samples: &mut [u64]) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        Some(Percentiles {
            median: nearest_rank(samples, 0.50) as f64,
            p99: nearest_rank(samples, 0.99) as f64,
        })
    }
}

fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The percentiles of each contender in each measured round.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    /// `rounds[c][r]`: contender `c`'s percentiles in round `r`.
    pub rounds: Vec<Vec<Percentiles>>,
}

impl Latencies {
    /// Contender `c`'s per-round medians.
    pub fn medians(&self, c: usize) -> Vec<f64> {
        self.rounds[c].iter().map(|p| p.median).collect()
    }

    /// Contender `c`'s per-round 99th percentiles.
    pub fn p99s(&self, c: usize) -> Vec<f64> {
        self.rounds[c].iter().map(|p| p.p99).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Percentiles;

    #[test]
    fn nearest_rank_percentiles() {
        let mut hundred: Vec<u64> = (1..=100).rev().collect();
        let p = Percentiles::of(&mut hundred).unwrap();
        assert_eq!((p.median, p.p99), (50.0, 99.0));
        let mut one = [7];
        let p = Percentiles::of(&mut one).unwrap();
        assert_eq!((p.median, p.p99), (7.0, 7.0));
        let mut odd = [3, 1, 2];
        assert_eq!(Percentiles::of(&mut odd).unwrap().median, 2.0);
        assert_eq!(Percentiles::of(&mut []), None);
    }
}
