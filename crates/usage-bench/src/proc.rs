//! CPU time and memory of a process, from `/proc` (Linux).

/// Clock ticks per second for `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU seconds used by `pid` (`"self"` for this process).
pub fn cpu_seconds(pid: &str) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // The command name may contain spaces: fields are counted after its closing ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ')'.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or("malformed stat")
    };
    Ok((tick(11)? + tick(12)?) / TICKS_PER_SECOND)
}

/// A `/proc/<pid>/status` value in KiB, e.g. `VmHWM` (peak RSS) or `VmRSS`.
pub fn status_kib(pid: &str, key: &str) -> Result<u64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {key} in /proc/{pid}/status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let before = cpu_seconds("self").unwrap();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(cpu_seconds("self").unwrap() >= before);
        assert!(status_kib("self", "VmHWM").unwrap() >= status_kib("self", "VmRSS").unwrap() / 2);
        assert!(x > 0);
    }
}
