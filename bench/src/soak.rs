//! Memory over a long run: the gateway in shadow with diffing, at half its saturation
//! throughput, its resident memory sampled every few seconds.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::gateway::{Running, Settings, Target, Workload};
use crate::load::Load;
use crate::process::{rss_kib, with_children};

/// What the soak run saw.
#[derive(Debug, Clone)]
pub struct Soak {
    pub minutes: u64,
    pub rate: u32,
    /// (seconds since start, RSS MiB).
    pub samples: Vec<(f64, f64)>,
    pub requests_per_sec: f64,
    pub p99_ms: f64,
    pub shadows_dropped: u64,
}

impl Soak {
    /// Peak RSS of each whole minute of the run, in order.
    pub fn per_minute(&self) -> Vec<f64> {
        let mut peaks: Vec<f64> = Vec::new();
        for &(t, mib) in &self.samples {
            let minute = (t / 60.0) as usize;
            if minute >= self.minutes as usize {
                break;
            }
            if peaks.len() <= minute {
                peaks.resize(minute + 1, 0.0);
            }
            peaks[minute] = peaks[minute].max(mib);
        }
        peaks
    }

    /// Peak RSS in the first and the last minute, and the drift between them in percent.
    pub fn drift(&self) -> (f64, f64, f64) {
        let minutes = self.per_minute();
        let first = minutes.first().copied().unwrap_or(0.0);
        let last = minutes.last().copied().unwrap_or(0.0);
        (first, last, (last - first) / first * 100.0)
    }
}

/// Runs the soak for `minutes` at `rate` requests per second.
pub async fn run(
    settings: &Settings,
    workload: &Workload,
    rate: u32,
    minutes: u64,
) -> anyhow::Result<Soak> {
    let mut running = Running::start(settings).await?;
    let target = Target::gateway("shadow", None, true);
    let (url, pid) = running.prepare(settings, target, workload.path).await?;
    let pid = pid.unwrap_or_default();
    let load = Load {
        url,
        method: workload.method,
        body: workload.body.clone(),
        headers: vec![],
        duration: Duration::from_secs(minutes * 60),
        connections: settings.connections,
        rate: Some(rate),
    };
    let before = crate::gateway::shadow_counters(&running.admin_url).await?;
    let sampler = tokio::spawn(async move {
        let started = Instant::now();
        let mut samples = Vec::new();
        while started.elapsed() < Duration::from_secs(minutes * 60) {
            let rss: u64 = with_children(pid).iter().filter_map(|&p| rss_kib(p)).sum();
            samples.push((started.elapsed().as_secs_f64(), rss as f64 / 1024.0));
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        samples
    });
    let measured = settings.generator.run(&load).await?;
    let samples = sampler.await?;
    let after = crate::gateway::shadow_counters(&running.admin_url).await?;
    running.stop().await;
    Ok(Soak {
        minutes,
        rate,
        samples,
        requests_per_sec: measured.requests_per_sec,
        p99_ms: measured.p99_ms,
        shadows_dropped: after.1 - before.1,
    })
}

pub fn table(soak: &Soak) -> String {
    let (first, last, drift) = soak.drift();
    let mut out = format!(
        "## Memory over a long run\n\nThe gateway in shadow with diffing on, small JSON GET at {} req/s for {} minutes \
         (`make bench` runs it at half the saturation throughput of shadow with diffing measured just before); resident \
         memory sampled every 5 s.\n\n\
         | req/s | p99 ms | shadows dropped | peak RSS, first minute (MiB) | peak RSS, last minute (MiB) | drift |\n\
         |---:|---:|---:|---:|---:|---:|\n",
        soak.rate, soak.minutes
    );
    let _ = writeln!(
        out,
        "| {:.0} | {:.2} | {} | {first:.1} | {last:.1} | {drift:+.1} % |",
        soak.requests_per_sec, soak.p99_ms, soak.shadows_dropped
    );
    let minutes: Vec<String> = soak
        .per_minute()
        .iter()
        .map(|m| format!("{m:.1}"))
        .collect();
    let _ = writeln!(
        out,
        "\nPeak RSS of each minute (MiB): {}.",
        minutes.join(", ")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_shows_each_minutes_peak_and_the_drift_between_first_and_last() {
        // Samples every 30 s over 3 minutes: a burst in minute 2, then back down.
        let samples = [60.0, 61.0, 66.0, 64.0, 61.0, 62.0, 62.5];
        let soak = Soak {
            minutes: 3,
            rate: 1000,
            samples: samples
                .iter()
                .enumerate()
                .map(|(i, &mib)| (i as f64 * 30.0, mib))
                .collect(),
            requests_per_sec: 1000.0,
            p99_ms: 1.0,
            shadows_dropped: 0,
        };
        assert_eq!(soak.per_minute(), vec![61.0, 66.0, 62.0]);
        let table = table(&soak);
        assert!(table.contains("Peak RSS of each minute (MiB): 61.0, 66.0, 62.0."));
        assert!(table.contains("| 61.0 | 62.0 | +1.6 % |"), "{table}");
    }
}
