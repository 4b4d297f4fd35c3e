//! CPU time and peak memory of processes, from /proc: the benchmark's view
//! of its own cost and of the daemon's.

use std::path::PathBuf;
use std::time::Duration;

/// The daemon's process name (comm).
pub const DAEMON_COMM: &str = "daedalus-v4l2d";

/// Finds the first process whose comm is `comm`.
pub fn find_process(comm: &str) -> Option<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == comm)
    })
}

fn proc_path(pid: Option<u32>, file: &str) -> PathBuf {
    match pid {
        Some(pid) => PathBuf::from(format!("/proc/{pid}/{file}")),
        None => PathBuf::from(format!("/proc/self/{file}")),
    }
}

/// User + system CPU time of `pid` (None: this process), all threads.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let stat = std::fs::read_to_string(proc_path(pid, "stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| {
        Duration::from_secs_f64(ticks as f64 / crate::sys::clock_ticks_per_second() as f64)
    })
}

/// utime + stime (fields 14 and 15) of a /proc/<pid>/stat line. The comm
/// field may contain spaces and parentheses, so fields count from the last ')'.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 -> index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Peak resident set size (VmHWM) in KiB.
pub fn peak_rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(proc_path(pid, "status")).ok()?;
    parse_status_kib(&status, "VmHWM:")
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resets the peak RSS of `pid` to its current RSS (needs to own the
/// process or be root); returns whether it worked.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_comm_with_spaces() {
        let stat = "1234 (weird ) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some(287));
    }

    #[test]
    fn status_hwm() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    4242 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(4242));
    }

    #[test]
    fn own_process_is_readable() {
        assert!(cpu_time(None).is_some());
        assert!(peak_rss_kib(None).unwrap_or(0) > 0);
    }
}
