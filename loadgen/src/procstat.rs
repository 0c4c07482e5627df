//! What a process consumed, from Linux's /proc: CPU time (/proc/PID/stat utime + stime) and storage writes
//! (/proc/PID/io write_bytes: bytes sent to the block layer, fsync'd log included). Read for the service and
//! for the load generator itself around the load, to put a cost on each token.

/// USER_HZ: the unit of utime and stime, 100 on every Linux architecture the service runs on.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcSample {
    pub cpu_secs: f64,
    /// None when /proc/PID/io is not readable.
    pub write_bytes: Option<u64>,
}

/// `pid` is a number or "self".
pub fn sample(pid: &str) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok();
    Some(ProcSample { cpu_secs: cpu_secs(&stat)?, write_bytes: io.as_deref().and_then(write_bytes) })
}

/// utime + stime (fields 14 and 15; the command name in field 2 may hold spaces and parentheses).
fn cpu_secs(stat: &str) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / CLOCK_TICKS_PER_SEC)
}

fn write_bytes(io: &str) -> Option<u64> {
    io.lines().find_map(|l| l.strip_prefix("write_bytes:")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_and_io() {
        let stat = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 4 0 100 0 0";
        assert_eq!(cpu_secs(stat), Some(3.25));
        assert_eq!(write_bytes("rchar: 1\nwchar: 2\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n"), Some(4096));
        assert!(sample("self").is_some_and(|s| s.cpu_secs >= 0.0));
    }
}
