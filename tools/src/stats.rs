//! Summary statistics of benchmark runs.

use std::time::Duration;

use serde::Serialize;

/// Nearest-rank percentile (p in 0..=100) of sorted values.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// One side of the comparison (the device, or FFmpeg in-process).
#[derive(Debug, Clone, Serialize, Default)]
pub struct SideSummary {
    pub name: String,
    pub runs: u32,
    pub frames: u64,
    pub error_frames: u64,
    pub seconds: f64,
    pub fps: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    pub client_cpu_ms_per_frame: Option<f64>,
    pub daemon_cpu_ms_per_frame: Option<f64>,
    pub daemon_peak_rss_kib: Option<u64>,
    /// Per-run frames per second, for the plot.
    pub run_fps: Vec<f64>,
    /// Every frame's latency in ms (sorted), for the plot; not serialised.
    #[serde(skip)]
    pub latencies_ms: Vec<f64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl SideSummary {
    pub fn new(name: &str) -> Self {
        SideSummary {
            name: name.to_string(),
            ..Default::default()
        }
    }

    pub fn add_run(&mut self, frames: u64, errors: u64, elapsed: Duration, latencies: &[Duration]) {
        self.runs += 1;
        self.frames += frames;
        self.error_frames += errors;
        self.seconds += elapsed.as_secs_f64();
        self.run_fps
            .push(frames as f64 / elapsed.as_secs_f64().max(1e-9));
        self.latencies_ms.extend(latencies.iter().map(|&d| ms(d)));
    }

    /// Computes the derived figures once all runs are in.
    pub fn finish(&mut self, client_cpu: Option<Duration>, daemon_cpu: Option<Duration>) {
        self.fps = self.frames as f64 / self.seconds.max(1e-9);
        self.latencies_ms.sort_by(f64::total_cmp);
        let sorted: Vec<Duration> = self
            .latencies_ms
            .iter()
            .map(|&m| Duration::from_secs_f64(m / 1e3))
            .collect();
        self.latency_p50_ms = percentile(&sorted, 50.0).map(ms);
        self.latency_p99_ms = percentile(&sorted, 99.0).map(ms);
        self.latency_max_ms = sorted.last().copied().map(ms);
        let per_frame = |d: Duration| ms(d) / self.frames as f64;
        if self.frames > 0 {
            self.client_cpu_ms_per_frame = client_cpu.map(per_frame);
            self.daemon_cpu_ms_per_frame = daemon_cpu.map(per_frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&v, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&v, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&v[..1], 99.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summary() {
        let mut s = SideSummary::new("x");
        s.add_run(
            10,
            0,
            Duration::from_secs(1),
            &[Duration::from_millis(5); 10],
        );
        s.add_run(
            10,
            1,
            Duration::from_secs(1),
            &[Duration::from_millis(7); 10],
        );
        s.finish(Some(Duration::from_millis(200)), None);
        assert_eq!(s.frames, 20);
        assert!((s.fps - 10.0).abs() < 1e-9);
        assert!((s.latency_p50_ms.unwrap() - 5.0).abs() < 1e-6);
        assert!((s.latency_p99_ms.unwrap() - 7.0).abs() < 1e-6);
        assert!((s.client_cpu_ms_per_frame.unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(s.daemon_cpu_ms_per_frame, None);
    }
}
