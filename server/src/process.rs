//! The broker process as the kernel accounts for it: resident memory, CPU time, age. What
//! Redis's INFO reports of itself (used_memory_rss, used_cpu_*, uptime_in_seconds) and
//! Prometheus's `process_*` metrics, read from `/proc` and `getrusage`; figures that cannot
//! be read are 0.
use std::time::Duration;

/// Resident set size in bytes (`/proc/self/statm`'s second field, in pages).
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|field| field.parse().ok()).unwrap_or(0);
    pages * page_bytes()
}

/// CPU time the process used, in user and in system mode (every thread).
pub fn cpu_time() -> (Duration, Duration) {
    // SAFETY: getrusage writes only into the struct it is given, which lives for the call.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return (Duration::ZERO, Duration::ZERO);
        }
        usage
    };
    let time = |value: libc::timeval| {
        Duration::from_secs(value.tv_sec.max(0) as u64) + Duration::from_micros(value.tv_usec.max(0) as u64)
    };
    (time(usage.ru_utime), time(usage.ru_stime))
}

/// How long the process has run: the system's uptime less the process's start time
/// (`/proc/self/stat` field 22, in clock ticks after boot).
pub fn uptime() -> Duration {
    let since_boot = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let start_ticks: f64 = after_name.split_whitespace().nth(19).and_then(|field| field.parse().ok()).unwrap_or(0.0);
    // SAFETY: sysconf reads a constant of the system.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64((since_boot - start_ticks / ticks_per_second).max(0.0))
}

fn page_bytes() -> u64 {
    // SAFETY: sysconf reads a constant of the system.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_are_this_process() {
        assert!(resident_bytes() > 1 << 20, "a test process holds more than a MiB");
        let (user, system) = cpu_time();
        assert!(user + system > Duration::ZERO, "the test used some CPU");
        let burn = std::time::Instant::now();
        while burn.elapsed() < Duration::from_millis(20) {}
        assert!(cpu_time().0 + cpu_time().1 > user + system, "CPU time grows");
        assert!(uptime() < Duration::from_secs(24 * 3600), "started recently: {:?}", uptime());
    }
}
