//! Processes seen through /proc: whether one still runs, and the children of one (the
//! jq workers of a hookbridge process).

use std::time::{Duration, Instant};

/// The fields of `/proc/<pid>/stat` after the command name, from the state on (`S`,
/// ppid, …); `None` when there is no such process.
fn stat(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ppid …`: comm may hold spaces and parentheses, so after the last `)`.
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// A process as seen once: its id and start time, so that another process given the
/// same id later (ids wrap at 32768 on a busy machine) is not taken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub pid: u32,
    start: u64,
}

impl Seen {
    /// `pid` as it is now; `None` when it has ended.
    pub fn of(pid: u32) -> Option<Seen> {
        let fields = stat(pid)?;
        // `starttime` is field 22 of stat; the state is field 3, the first here.
        let start = fields.get(22 - 3)?.parse().ok()?;
        let seen = Seen { pid, start };
        seen.alive().then_some(seen)
    }

    /// Whether it is still a process that can run (a zombie has ended).
    pub fn alive(&self) -> bool {
        let Some(fields) = stat(self.pid) else {
            return false;
        };
        let start = fields.get(22 - 3).and_then(|s| s.parse::<u64>().ok());
        start == Some(self.start) && !matches!(fields[0].as_str(), "Z" | "X")
    }

    /// Whether it has ended and its parent has collected its exit (a zombie has not
    /// been reaped yet).
    pub fn reaped(&self) -> bool {
        let Some(fields) = stat(self.pid) else {
            return true;
        };
        fields.get(22 - 3).and_then(|s| s.parse::<u64>().ok()) != Some(self.start)
    }

    /// CPU time it has used so far, in clock ticks (user + system).
    pub fn cpu_ticks(&self) -> u64 {
        let Some(fields) = stat(self.pid).filter(|_| self.alive()) else {
            return 0;
        };
        // utime and stime are fields 14 and 15 of stat.
        let ticks = |n: usize| fields.get(n - 3).and_then(|s| s.parse::<u64>().ok());
        ticks(14).unwrap_or(0) + ticks(15).unwrap_or(0)
    }

    /// Waits until its parent has reaped it; panics after `timeout`. Async: a child
    /// tokio killed on drop is reaped when a runtime runs, which a blocked test thread
    /// would keep from happening.
    pub async fn wait_reaped(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.reaped() {
            assert!(
                Instant::now() < deadline,
                "process {} is not reaped",
                self.pid
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether it ignores SIGTERM (bit 15 of `SigIgn` in its status): a jq worker does
    /// from its first steps on, so one that does has started.
    pub fn ignores_sigterm(&self) -> bool {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid));
        let ignored = status.ok().and_then(|s| {
            let mask = s.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        });
        self.alive() && ignored.is_some_and(|m| m & (1 << (libc::SIGTERM - 1)) != 0)
    }

    /// Waits until it has ended; panics after `timeout`.
    pub fn wait_gone(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.alive() {
            assert!(
                Instant::now() < deadline,
                "process {} is still there",
                self.pid
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The process group of `pid`.
pub fn group(pid: u32) -> Option<u32> {
    stat(pid)?.get(2)?.parse().ok()
}

/// The descriptors `pid` holds open, in order.
pub fn open_fds(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut fds: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

/// The live children of `parent`.
pub fn children(parent: u32) -> Vec<Seen> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let ppid = stat(*pid).and_then(|f| f.get(1)?.parse::<u32>().ok());
            ppid == Some(parent)
        })
        .filter_map(Seen::of)
        .collect()
}
