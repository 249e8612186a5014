//! Facts about the machine the daemon runs on, read from /proc, for the host record.
//! Missing or odd files give neutral defaults; nothing here fails.

/// What the host record reports about the machine.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub hostname: String,
    pub kernel: String,
    /// One entry per logical CPU: its speed in MHz.
    pub cpus: Vec<f64>,
    pub sockets: usize,
    pub vendor: String,
    pub model_name: String,
    pub family: i64,
    pub model: i64,
    pub stepping: String,
    pub flags: String,
    pub mhz: f64,
    /// Bytes.
    pub memory_total: u64,
    /// Bytes.
    pub memory_free: u64,
}

impl HostFacts {
    /// Reads /proc (and falls back to neutral values).
    pub fn read() -> HostFacts {
        let text = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let mut facts = parse_cpuinfo(&text("/proc/cpuinfo"));
        let (total, free) = parse_meminfo(&text("/proc/meminfo"));
        facts.memory_total = total;
        facts.memory_free = free;
        facts.hostname = text("/proc/sys/kernel/hostname").trim().to_owned();
        if facts.hostname.is_empty() {
            facts.hostname = "localhost".into();
        }
        facts.kernel = text("/proc/sys/kernel/osrelease").trim().to_owned();
        facts
    }
}

fn parse_cpuinfo(text: &str) -> HostFacts {
    let mut f = HostFacts {
        hostname: String::new(),
        kernel: String::new(),
        cpus: Vec::new(),
        sockets: 1,
        vendor: String::new(),
        model_name: String::new(),
        family: 0,
        model: 0,
        stepping: String::new(),
        flags: String::new(),
        mhz: 0.0,
        memory_total: 0,
        memory_free: 0,
    };
    let mut sockets = std::collections::BTreeSet::new();
    for block in text.split("\n\n").filter(|b| b.contains("processor")) {
        let get = |key: &str| {
            block
                .lines()
                .find(|l| l.split(':').next().map(str::trim) == Some(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        let mhz: f64 = get("cpu MHz").parse().unwrap_or(0.0);
        f.cpus.push(mhz);
        sockets.insert(get("physical id"));
        if f.cpus.len() == 1 {
            f.vendor = get("vendor_id");
            f.model_name = get("model name");
            f.family = get("cpu family").parse().unwrap_or(0);
            f.model = get("model").parse().unwrap_or(0);
            f.stepping = get("stepping");
            f.flags = get("flags");
            f.mhz = mhz;
        }
    }
    if f.cpus.is_empty() {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        f.cpus = vec![0.0; n];
    }
    f.sockets = sockets.len().max(1);
    f
}

/// `(MemTotal, MemAvailable)` in bytes.
fn parse_meminfo(text: &str) -> (u64, u64) {
    let kib = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let total = kib("MemTotal:");
    let free = kib("MemAvailable:");
    (if total == 0 { 4 << 30 } else { total }, free)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_blocks_are_counted() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Xeon\nstepping\t: 7\ncpu MHz\t\t: 2500.000\nphysical id\t: 0\nflags\t\t: fpu vme\n\nprocessor\t: 1\ncpu MHz\t\t: 2500.000\nphysical id\t: 0\n\n";
        let f = parse_cpuinfo(text);
        assert_eq!(f.cpus.len(), 2);
        assert_eq!(f.vendor, "GenuineIntel");
        assert_eq!(f.family, 6);
        assert_eq!(f.flags, "fpu vme");
        assert_eq!(f.sockets, 1);
    }

    #[test]
    fn meminfo_is_read_in_bytes() {
        let (t, a) =
            parse_meminfo("MemTotal:       1024 kB\nMemFree: 1 kB\nMemAvailable:    512 kB\n");
        assert_eq!((t, a), (1024 * 1024, 512 * 1024));
    }
}
