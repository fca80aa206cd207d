//! Beaconing: a client that connects to the same `ip:port` at regular intervals with
//! similar-sized payloads, the way implants poll their C2.
//!
//! Per (client, destination ip, destination port) the detector keeps flow start times and byte
//! counts. At [`BeaconDetector::finish`] each series with enough connections over enough time is
//! tested:
//! - the period is the median inter-arrival gap; every gap is divided by its nearest whole
//!   number of periods, so a missed beat (a gap of 2P or 3P) still counts as regular;
//! - a gap *fits* when that per-beat interval is within `tolerance` of the period; beacons need
//!   most gaps to fit and the fitting intervals to have a small coefficient of variation
//!   (random browsing-like gaps fit ~40 % of the time, see the tests);
//! - most flows must be within 25 % (or 64 bytes) of the median size.
//!
//! Jitter up to about ±`tolerance` is absorbed; implants with larger jitter (Cobalt Strike at
//! 50 %) are not found by this test.

use super::{Finding, FindingKind};
use crate::record::FlowRecord;
use botwatch_model::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;

/// Thresholds of [`BeaconDetector`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BeaconConfig {
    /// Fewest connections in a series.
    pub min_events: usize,
    /// Shortest time from first to last connection, seconds.
    pub min_span_secs: f64,
    /// Shortest period considered, seconds (below it, bursts of parallel connections look regular).
    pub min_period_secs: f64,
    /// Relative deviation of a per-beat interval from the period that still fits.
    pub tolerance: f64,
    /// Share of gaps that must fit.
    pub min_fit: f64,
    /// Largest coefficient of variation of the fitting intervals.
    pub max_cv: f64,
    /// Share of flows whose size must be near the median size.
    pub min_size_fit: f64,
    /// Gaps of more than this many periods are outages, not missed beats, and do not fit.
    pub max_missed_beats: u32,
    /// Memory bounds.
    pub max_events_per_series: usize,
    pub max_series: usize,
}

impl Default for BeaconConfig {
    fn default() -> Self {
        BeaconConfig {
            min_events: 12,
            min_span_secs: 60.0,
            min_period_secs: 0.25,
            tolerance: 0.2,
            min_fit: 0.75,
            max_cv: 0.15,
            min_size_fit: 0.7,
            max_missed_beats: 4,
            max_events_per_series: 4096,
            max_series: 1_000_000,
        }
    }
}

/// What [`analyse`] measured on one series.
#[derive(Debug, Clone, PartialEq)]
pub struct BeaconStats {
    pub events: usize,
    pub period_secs: f64,
    pub period_sd_secs: f64,
    pub fit: f64,
    pub missed_beats: u64,
    pub bytes_mean: f64,
    pub bytes_sd: f64,
    pub size_fit: f64,
    pub span_secs: f64,
    pub confidence: f64,
    pub is_beacon: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    client: IpAddr,
    dst: IpAddr,
    port: u16,
}

/// Collects flows and reports beaconing series.
#[derive(Debug)]
pub struct BeaconDetector {
    cfg: BeaconConfig,
    series: HashMap<Key, Vec<(Timestamp, u64)>>,
    dropped: u64,
}

impl BeaconDetector {
    pub fn new(cfg: BeaconConfig) -> Self {
        BeaconDetector { cfg, series: HashMap::new(), dropped: 0 }
    }

    /// Flows over the memory bounds are dropped and counted.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn observe(&mut self, f: &FlowRecord) {
        let key = Key { client: f.src, dst: f.dst, port: f.dst_port };
        let full = self.series.len() >= self.cfg.max_series;
        match self.series.get_mut(&key) {
            Some(v) if v.len() < self.cfg.max_events_per_series => v.push((f.start, f.bytes)),
            None if !full => {
                self.series.insert(key, vec![(f.start, f.bytes)]);
            }
            _ => self.dropped += 1,
        }
    }

    /// One finding per beaconing series, highest confidence first.
    pub fn finish(self) -> Vec<Finding> {
        let mut out = Vec::new();
        for (key, mut events) in self.series {
            if events.len() < self.cfg.min_events {
                continue;
            }
            events.sort_unstable();
            let s = analyse(&events, &self.cfg);
            if !s.is_beacon {
                continue;
            }
            let dest = match key.dst {
                IpAddr::V6(a) => format!("[{a}]:{}", key.port),
                IpAddr::V4(a) => format!("{a}:{}", key.port),
            };
            out.push(Finding {
                client: key.client,
                kind: FindingKind::Beacon,
                confidence: s.confidence,
                reason: format!(
                    "{} connections to {dest} every {:.1} s ± {:.1} s, {:.0} ± {:.0} bytes, over {:.0} s \
                     ({:.0} % of gaps regular, {} missed beats)",
                    s.events,
                    s.period_secs,
                    s.period_sd_secs,
                    s.bytes_mean,
                    s.bytes_sd,
                    s.span_secs,
                    s.fit * 100.0,
                    s.missed_beats
                ),
                count: s.events,
                first_seen: events[0].0,
                last_seen: events[events.len() - 1].0,
                samples: vec![dest],
            });
        }
        out.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then(a.client.cmp(&b.client)));
        out
    }
}

/// Test one series, sorted by time, for beaconing.
pub fn analyse(events: &[(Timestamp, u64)], cfg: &BeaconConfig) -> BeaconStats {
    let n = events.len();
    let span = if n > 1 { (events[n - 1].0.0 - events[0].0.0) as f64 / 1e6 } else { 0.0 };
    let gaps: Vec<f64> = events.windows(2).map(|w| (w[1].0.0 - w[0].0.0) as f64 / 1e6).collect();
    let sizes: Vec<f64> = events.iter().map(|e| e.1 as f64).collect();
    let (bytes_mean, bytes_sd) = mean_sd(&sizes);
    let med_size = median(&sizes);
    let size_fit =
        ratio(sizes.iter().filter(|s| (**s - med_size).abs() <= (0.25 * med_size).max(64.0)).count(), n);
    let p0 = median(&gaps);
    let mut units = Vec::with_capacity(gaps.len());
    let mut missed = 0u64;
    if p0 > 0.0 {
        for g in &gaps {
            let k = (g / p0).round();
            if k >= 1.0 && k <= cfg.max_missed_beats as f64 {
                let unit = g / k;
                if (unit - p0).abs() <= cfg.tolerance * p0 {
                    units.push(unit);
                    missed += k as u64 - 1;
                }
            }
        }
    }
    let fit = ratio(units.len(), gaps.len());
    let (period, period_sd) = mean_sd(&units);
    let cv = if period > 0.0 { period_sd / period } else { f64::INFINITY };
    let is_beacon = n >= cfg.min_events
        && span >= cfg.min_span_secs
        && period >= cfg.min_period_secs
        && fit >= cfg.min_fit
        && cv <= cfg.max_cv
        && size_fit >= cfg.min_size_fit;
    let repetition = (n as f64 / (3.0 * cfg.min_events as f64)).min(1.0);
    let confidence = if is_beacon {
        (0.35 * fit + 0.2 * size_fit + 0.25 * (1.0 - cv / cfg.max_cv).max(0.0) + 0.2 * repetition)
            .clamp(0.0, 1.0)
    } else {
        0.0
    };
    BeaconStats {
        events: n,
        period_secs: period,
        period_sd_secs: period_sd,
        fit,
        missed_beats: missed,
        bytes_mean,
        bytes_sd,
        size_fit,
        span_secs: span,
        confidence,
        is_beacon,
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 { s[m] } else { (s[m - 1] + s[m]) / 2.0 }
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64: deterministic noise without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn flow(t: f64, src: &str, dst: &str, port: u16, bytes: u64) -> FlowRecord {
        let start = Timestamp((t * 1e6) as i64);
        FlowRecord {
            start,
            end: start,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            src_port: 40000,
            dst_port: port,
            proto: 6,
            packets: 4,
            bytes,
            exporter: None,
        }
    }

    #[test]
    fn jittered_beacon_with_missing_beats_is_found() {
        let mut rng = Rng(7);
        let mut d = BeaconDetector::new(BeaconConfig::default());
        let mut t = 1_700_000_000.0;
        for i in 0..60 {
            t += 60.0 * (1.0 + 0.1 * (2.0 * rng.next() - 1.0));
            if i % 9 == 4 {
                continue; // a missed beat
            }
            d.observe(&flow(t, "10.0.0.5", "203.0.113.9", 443, 300 + (rng.next() * 20.0) as u64));
        }
        let f = d.finish();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind, FindingKind::Beacon);
        assert_eq!(f[0].samples, vec!["203.0.113.9:443".to_string()]);
        assert!(f[0].confidence > 0.6, "{:?}", f[0]);
        assert!(f[0].reason.contains("every 6"), "{}", f[0].reason);
    }

    #[test]
    fn browsing_like_random_intervals_are_not_beacons() {
        let mut rng = Rng(11);
        let mut flagged = 0;
        for series in 0..300 {
            let mut events = Vec::new();
            let mut t = 0.0;
            let mean = 5.0 + series as f64;
            for _ in 0..80 {
                // Exponential gaps (Poisson arrivals) and variable sizes, as page loads.
                t += -mean * (1.0 - rng.next()).ln();
                events.push((Timestamp((t * 1e6) as i64), 300 + (rng.next() * 200.0) as u64));
            }
            if analyse(&events, &BeaconConfig::default()).is_beacon {
                flagged += 1;
            }
        }
        assert_eq!(flagged, 0);
    }

    #[test]
    fn regular_timing_with_random_sizes_is_not_a_beacon() {
        let mut rng = Rng(3);
        let events: Vec<_> =
            (0..50).map(|i| (Timestamp::from_secs(i * 30), 100 + (rng.next() * 50_000.0) as u64)).collect();
        let s = analyse(&events, &BeaconConfig::default());
        assert!(s.fit > 0.99 && !s.is_beacon, "{s:?}");
    }

    #[test]
    fn too_few_or_too_short_series_are_ignored() {
        let cfg = BeaconConfig::default();
        let few: Vec<_> = (0..5).map(|i| (Timestamp::from_secs(i * 60), 300)).collect();
        assert!(!analyse(&few, &cfg).is_beacon);
        let short: Vec<_> = (0..50).map(|i| (Timestamp::from_micros(i * 100_000), 300)).collect();
        assert!(!analyse(&short, &cfg).is_beacon);
        assert!(!analyse(&[], &cfg).is_beacon);
    }
}
