//! CPU time and resident memory of a process, read from `/proc` while a load runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// What a process used during a measurement window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// CPU seconds (user + system) spent in the window.
    pub cpu_seconds: f64,
    /// Highest resident set size seen in the window, in KiB.
    pub peak_rss_kib: u64,
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Current resident set size of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `pid` and its descendants (nginx's workers, say).
pub fn with_children(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut index = 0;
    while index < all.len() {
        let parent = all[index];
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        all.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
        index += 1;
    }
    all
}

fn total<F: Fn(u32) -> Option<u64>>(pids: &[u32], read: F) -> u64 {
    pids.iter().filter_map(|&p| read(p)).sum()
}

/// Samples a group of processes (CPU summed, RSS summed) until finished.
#[derive(Debug)]
pub struct Sampler {
    pids: Vec<u32>,
    start_ticks: u64,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// Samples `pid` and its children.
    pub fn start(pid: u32) -> Self {
        let pids = with_children(pid);
        let peak = Arc::new(AtomicU64::new(total(&pids, rss_kib)));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (peak, stop, pids) = (Arc::clone(&peak), Arc::clone(&stop), pids.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(total(&pids, rss_kib), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        Self {
            start_ticks: total(&pids, cpu_ticks),
            pids,
            peak,
            stop,
            task,
        }
    }

    pub async fn finish(self) -> Usage {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let ticks = total(&self.pids, cpu_ticks).saturating_sub(self.start_ticks);
        self.peak
            .fetch_max(total(&self.pids, rss_kib), Ordering::Relaxed);
        Usage {
            cpu_seconds: ticks as f64 / clock_ticks(),
            peak_rss_kib: self.peak.load(Ordering::Relaxed),
        }
    }
}
