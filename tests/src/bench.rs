//! Small helpers shared by the bench binaries (`xapi-bench`, `xapi-vm-bench`).
use std::path::Path;
use std::time::Duration;

/// The value after flag `name` on the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile (0.0..=1.0) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on every Linux ABI).
const USER_HZ: u64 = 100;

/// CPU time (user + system) used so far by the daemon serving `state_dir` (the process whose
/// command line names that directory), or `None` when it cannot be found (not Linux).
pub fn daemon_cpu(state_dir: &Path) -> Option<Duration> {
    let dir = state_dir.as_os_str().as_encoded_bytes();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if !cmdline.split(|b| *b == 0).any(|arg| arg == dir) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        return cpu_of_stat(&stat);
    }
    None
}

/// utime + stime of a `/proc/<pid>/stat` line (fields 14 and 15; the command name in
/// parentheses may contain spaces, so fields are counted after its closing parenthesis).
fn cpu_of_stat(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_read_after_the_command_name() {
        let stat = "42 (xapi (sim) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(cpu_of_stat(stat), Some(Duration::from_secs(3)));
        assert_eq!(cpu_of_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_found_by_an_argument_it_was_started_with() {
        let me = std::env::args().next().unwrap_or_default();
        assert!(daemon_cpu(Path::new(&me)).is_some());
    }
}
