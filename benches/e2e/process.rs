//! The processes under test: started with their output in a log file, measured through
//! `/proc/PID` (CPU time and peak RSS, which cover every thread), killed when dropped so
//! a failed run leaves nothing behind.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};

/// Transparent huge pages off for the harness, as hookbridge turns them off for itself.
/// The receiver takes each batch's body (about 100 KiB) into a fresh buffer; with huge
/// pages the kernel zeroes a 2 MiB page whenever mimalloc reaches for new memory, about a
/// sixth of the receiver's CPU in the batched row, on the cores the broker and the
/// program under test share with it. Children would inherit the setting: every program
/// the harness starts gets the kernel's default back ([`huge_pages_by_default`]).
pub fn without_huge_pages() {
    set_huge_pages_disabled(true);
}

/// Gives a program the harness starts the kernel's default for transparent huge pages,
/// which the harness turned off for itself ([`without_huge_pages`]): the programs
/// measured run as they would anywhere. (A tokio command is made from this one.)
pub fn huge_pages_by_default(cmd: &mut Command) -> &mut Command {
    // SAFETY: the closure runs in the child between fork and exec, where it makes one
    // system call and touches no memory (allocation or locks would be unsafe there).
    unsafe {
        cmd.pre_exec(|| {
            set_huge_pages_disabled(false);
            Ok(())
        })
    }
}

fn set_huge_pages_disabled(disabled: bool) {
    let (flag, unused): (libc::c_ulong, libc::c_ulong) = (disabled.into(), 0);
    // SAFETY: PR_SET_THP_DISABLE sets a flag of this process's memory map and reads or
    // writes no memory of ours; every argument is passed as the unsigned long the kernel
    // reads it as (unused ones must be 0).
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, flag, unused, unused, unused);
    }
}

/// A free loopback port (bound then released: racy in theory, fine on a dev machine).
pub fn free_addr() -> Result<SocketAddr> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(BenchError::io("finding a free port"))?;
    listener
        .local_addr()
        .map_err(BenchError::io("finding a free port"))
}

/// Clock ticks per second, the unit of utime and stime in `/proc/PID/stat`.
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

pub struct Process {
    pub name: String,
    child: Child,
    log: PathBuf,
    ticks: f64,
}

impl Process {
    /// Starts `program args` with `envs`, stdout and stderr appended to `log_dir/name.log`.
    pub fn start(
        name: &str,
        program: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
        log_dir: &Path,
    ) -> Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        let out =
            File::create(&log).map_err(BenchError::io(format!("creating {}", log.display())))?;
        let err = out.try_clone().map_err(BenchError::io("log file"))?;
        let child = huge_pages_by_default(&mut Command::new(program))
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(BenchError::io(format!("starting {}", program.display())))?;
        Ok(Process {
            name: name.to_string(),
            child,
            log,
            ticks: clock_ticks(),
        })
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Fails when the process has exited (it should run until killed).
    pub fn alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            _ => Err(BenchError::Exited {
                name: self.name.clone(),
                log: self.log.clone(),
            }),
        }
    }

    /// Waits until something accepts connections on `addr`.
    pub async fn wait_port(&mut self, addr: SocketAddr, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while TcpStream::connect(addr).is_err() {
            self.alive()?;
            self.check_deadline(deadline, timeout)?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Waits until `GET url` answers 200 (hookbridge's `/readyz`).
    pub async fn wait_ready(&mut self, url: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            self.alive()?;
            self.check_deadline(deadline, timeout)?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn check_deadline(&self, deadline: Instant, timeout: Duration) -> Result<()> {
        if Instant::now() < deadline {
            return Ok(());
        }
        Err(BenchError::NotReady {
            name: self.name.clone(),
            seconds: timeout.as_secs(),
            log: self.log.clone(),
        })
    }

    fn proc_file(&self, file: &str) -> Result<String> {
        let path = format!("/proc/{}/{file}", self.child.id());
        std::fs::read_to_string(&path).map_err(BenchError::io(format!("reading {path}")))
    }

    /// User + system CPU seconds used so far, all threads, with its children's (a
    /// sink's jq workers): those running now and those it has reaped.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let pid = self.child.id();
        let ticks = cpu_ticks(&self.proc_file("stat")?)
            .ok_or_else(|| BenchError::Tool(format!("unexpected /proc/{pid}/stat format")))?;
        let children: f64 = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
            .filter(|stat| parent_of(stat) == Some(pid))
            .filter_map(|stat| cpu_ticks(&stat))
            .sum();
        Ok((ticks + children) / self.ticks)
    }

    /// Peak resident set size (VmHWM) in MiB.
    pub fn peak_rss_mib(&self) -> Result<f64> {
        let status = self.proc_file("status")?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
            .ok_or_else(|| {
                BenchError::Tool(format!("no VmHWM in /proc/{}/status", self.child.id()))
            })
    }
}

/// CPU seconds this process (the bench harness, and the receiver it runs) has used so
/// far, all threads, without its children's.
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes one `rusage` into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0.0;
        }
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fields of a `/proc/PID/stat` line from field 3 (the state) on: the command name
/// (field 2) may contain spaces, the fields after it are plain.
fn stat_fields(stat: &str) -> Vec<&str> {
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name.split_whitespace().collect()
}

/// The parent process id in a `/proc/PID/stat` line (field 4).
fn parent_of(stat: &str) -> Option<u32> {
    stat_fields(stat).get(1)?.parse().ok()
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks, with
/// those of the children it has waited for (cutime + cstime, 16 and 17).
fn cpu_ticks(stat: &str) -> Option<f64> {
    let fields = stat_fields(stat);
    let tick = |field: usize| fields.get(field - 3)?.parse::<f64>().ok();
    Some(tick(14)? + tick(15)? + tick(16)? + tick(17)?)
}
