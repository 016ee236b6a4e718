//! A sink's jq worker processes, seen from the sink: at most [`SLOTS`] evaluations at
//! once, a worker per slot, started when first needed and reused record after record
//! (one request frame written and one answer read per record).
//!
//! What happens to a worker decides what happens to the record:
//! * past [`JQ_DEADLINE`] the worker is killed and replaced, the record refused with
//!   `timeout`; unless the worker got little CPU in that time (a busy machine, a
//!   container out of quota), when the record is tried once more on another worker
//!   with [`TIMEOUT_RETRY_FACTOR`] times the deadline;
//! * a worker that dies of a fault on a record (a stack overflow aborts it, a bad
//!   access, a panic's exit code) is replaced, the record refused with `crashed`: the
//!   same record would crash the next one;
//! * a worker ended from outside under a record (SIGKILL: the OOM killer, an
//!   operator) is replaced and the record tried once more on the new one; it is
//!   `crashed` only if that one dies too. Workers are in a process group of their own
//!   and ignore the signals that stop the sink, which drains;
//! * a worker that cannot be started, or that died between records, is not the
//!   record's fault: the record waits and is tried again with backoff, until its
//!   evaluation is given up on (revoke, shutdown);
//! * an evaluation given up on kills its worker: what it was doing is unknown.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::frame::{self, Class, FrameError, Request, Response, Stage, Verdict};
use super::{Programs, WORKER_COMMAND};
use crate::egress::record::Record;
use crate::kafka::headers::EVENT_TYPE;
use crate::telemetry::sink::{JqWorkerReplaced, JqWorkerSpawnFailed, Replaced, SinkTelemetry};

/// How long a sink's filter and transform together may take on one record.
pub const JQ_DEADLINE: Duration = Duration::from_secs(1);

/// How many times the deadline a record that ran past it, starved of CPU, gets on its
/// second try. A busy machine, or a container whose CPU quota is used up, can hold a
/// worker past the deadline on a record it evaluates in milliseconds: that record is not
/// the program's fault, and is not dead-lettered for it. A program that ran the whole
/// deadline on a core (a runaway) gets no second try.
pub const TIMEOUT_RETRY_FACTOR: u32 = 4;

/// A worker that got less CPU than this share of the time it was measured over, before
/// the deadline passed, was starved, not running away.
const STARVED_SHARE: f64 = 0.5;

/// Evaluations of a sink running at once, each in a worker of its own.
pub const SLOTS: usize = 4;

/// How long a new worker may take to start and compile the programs.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// How long a worker that was killed or that ended its output is waited for, to tell
/// how it ended and not leave it a zombie.
const REAP_DEADLINE: Duration = Duration::from_secs(2);

/// Backoff between attempts to start a worker: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// A sink's worker processes.
pub struct Workers {
    program: PathBuf,
    /// The setup frame every new worker reads first.
    setup: Vec<u8>,
    first_stage: Stage,
    deadline: Duration,
    slots: Semaphore,
    /// Workers between records; at most one per slot.
    idle: Mutex<Vec<Worker>>,
    telemetry: Arc<SinkTelemetry>,
}

/// One worker process and its pipes.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Request frames are encoded here, answers read here: reused record after record
    /// (given back after one that grew them past [`frame::KEEP_BUFFER`]).
    request: Vec<u8>,
    answer: BytesMut,
    /// No record has been answered by it yet.
    fresh: bool,
}

/// How asking a worker about a record failed.
enum Failed {
    /// The request could not be written: the worker had ended before.
    NotSent,
    /// The worker's output ended after it had the record.
    Died,
    /// The worker answered what is not this protocol.
    Garbled,
    /// The record does not fit a frame: not sent, the worker is as it was.
    TooLarge,
}

/// Why a worker could not be started.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("cannot start {program}: {error}")]
    Spawn {
        program: String,
        error: std::io::Error,
    },
    #[error("its pipes were not there")]
    Pipes,
    #[error("it did not take its programs: {0}")]
    Setup(String),
    #[error("it did not start within {0:?}")]
    Slow(Duration),
}

impl Workers {
    /// Workers running `program` (the hookbridge binary) with the sink's `programs`.
    pub fn new(program: PathBuf, programs: &Programs, telemetry: Arc<SinkTelemetry>) -> Self {
        let mut setup = Vec::new();
        // Program texts a gigabyte long: `check` reads no such file. A worker that is
        // given no programs then refuses to start, and says so in the log.
        let _ = programs.setup().encode(&mut setup);
        Workers {
            program,
            setup,
            first_stage: programs.first_stage(),
            deadline: JQ_DEADLINE,
            slots: Semaphore::new(SLOTS),
            idle: Mutex::new(Vec::with_capacity(SLOTS)),
            telemetry,
        }
    }

    /// The binary this process runs, to start workers from. On Linux the running
    /// image itself, so an upgrade that replaces the file on disk does not start
    /// workers of another build.
    pub fn this_program() -> PathBuf {
        let own = PathBuf::from("/proc/self/exe");
        if own.exists() {
            return own;
        }
        std::env::current_exe().unwrap_or(own)
    }

    /// The same workers with another deadline (tests).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Process ids of the workers between records (tests look at them).
    pub fn idle_pids(&self) -> Vec<u32> {
        self.lock_idle()
            .iter()
            .filter_map(|w| w.child.id())
            .collect()
    }

    /// Evaluations running or waiting for a worker to start (tests look at it).
    pub fn evaluating(&self) -> usize {
        SLOTS - self.slots.available_permits()
    }

    /// The verdict on `record`; `None` when `cancel` fired first, or `shutdown` while
    /// a worker was to be started or started again: a worker that cannot start is
    /// waited for, but not by a shutdown, which would wait its whole drain.
    pub async fn evaluate(
        &self,
        record: &Record,
        cancel: &CancellationToken,
        shutdown: &CancellationToken,
    ) -> Option<Verdict> {
        let _slot = tokio::select! {
            _ = cancel.cancelled() => return None,
            slot = self.slots.acquire() => slot.ok()?,
        };
        let given_up = || async {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = shutdown.cancelled() => {}
            }
        };
        let mut failures = 0u32;
        // A worker ended under this record by something else than the record (killed
        // by someone, out of memory): the record is tried once more on a new worker.
        let mut killed_once = false;
        // Past the deadline once: the second try has TIMEOUT_RETRY_FACTOR times as long.
        let mut timed_out_once = false;
        loop {
            let idle = self.lock_idle().pop();
            let mut worker = match idle {
                Some(w) => w,
                None => match tokio::select! {
                    () = given_up() => return None,
                    started = self.start() => started,
                } {
                    Ok(w) => w,
                    Err(e) => {
                        let retry_in = backoff(failures);
                        failures += 1;
                        JqWorkerSpawnFailed {
                            error: e.to_string(),
                            retry_in,
                        }
                        .emit(&self.telemetry);
                        tokio::select! {
                            () = given_up() => return None,
                            () = tokio::time::sleep(retry_in) => continue,
                        }
                    }
                },
            };
            let mut stage = self.first_stage;
            let deadline = match timed_out_once {
                true => self.deadline * TIMEOUT_RETRY_FACTOR,
                false => self.deadline,
            };
            let pid = worker.child.id();
            let asked = tokio::select! {
                _ = cancel.cancelled() => None,
                r = within(deadline, pid, worker.ask(record, &mut stage)) => Some(r),
            };
            let failed = match asked {
                Some(Ok(Ok(verdict))) => {
                    worker.fresh = false;
                    worker.trim();
                    self.lock_idle().push(worker);
                    return Some(verdict);
                }
                Some(Ok(Err(Failed::TooLarge))) => {
                    worker.trim();
                    self.lock_idle().push(worker);
                    return Some(Verdict::Refused(stage, Class::RecordTooLarge));
                }
                None => {
                    self.retire(worker, Replaced::GivenUp).await;
                    return None;
                }
                Some(Err(Overran { starved })) => {
                    self.retire(worker, Replaced::Timeout).await;
                    if starved && !timed_out_once {
                        timed_out_once = true;
                        continue;
                    }
                    return Some(Verdict::Refused(stage, Class::Timeout));
                }
                Some(Ok(Err(failed))) => failed,
            };
            // Ended between records (killed from outside, out of memory): the next
            // worker gets the record. A worker that had only just started and took its
            // programs ended on this record's way in: its status tells why.
            if matches!(failed, Failed::NotSent) && !worker.fresh {
                self.retire(worker, Replaced::Exited).await;
                continue;
            }
            // A crashing worker is ending: given a moment, its own status says why (a
            // signal, an abort) rather than the kill.
            let status = reap(&mut worker.child, Duration::from_millis(200)).await;
            let why = match failed {
                Failed::Garbled | Failed::TooLarge => Replaced::Crashed,
                Failed::NotSent | Failed::Died if died_of_its_record(status) => Replaced::Crashed,
                Failed::NotSent | Failed::Died if killed_once => Replaced::Crashed,
                Failed::NotSent | Failed::Died => Replaced::Killed,
            };
            self.replaced(why, status);
            if why == Replaced::Killed {
                killed_once = true;
                continue;
            }
            return Some(Verdict::Refused(stage, Class::Crashed));
        }
    }

    /// Starts a worker and hands it the programs.
    async fn start(&self) -> Result<Worker, StartError> {
        let mut child = Command::new(&self.program)
            .arg(WORKER_COMMAND)
            // The parent's environment may hold secrets; the worker needs none of it.
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Whatever a worker would write there could quote a record.
            .stderr(Stdio::null())
            .kill_on_drop(true)
            // Not in the parent's group: a Ctrl-C or a signal to the group is the
            // parent's, which drains, and would otherwise end a worker mid-record.
            .process_group(0)
            .spawn()
            .map_err(|error| StartError::Spawn {
                program: self.program.display().to_string(),
                error,
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(StartError::Pipes);
        };
        let mut worker = Worker {
            child,
            stdin,
            stdout: BufReader::with_capacity(64 << 10, stdout),
            request: Vec::new(),
            answer: BytesMut::new(),
            fresh: true,
        };
        let ready = async {
            worker
                .stdin
                .write_all(&self.setup)
                .await
                .map_err(|e| e.to_string())?;
            read_frame(&mut worker.stdout, &mut worker.answer, frame::MAX_ANSWER)
                .await
                .map_err(|e| e.to_string())?;
            match Response::decode(&worker.answer) {
                Ok(Response::Ready) => Ok(()),
                Ok(other) => Err(format!("answered {other:?}")),
                Err(e) => Err(e.to_string()),
            }
        };
        match tokio::time::timeout(START_DEADLINE, ready).await {
            Ok(Ok(())) => Ok(worker),
            Ok(Err(e)) => {
                let status = reap(&mut worker.child, Duration::from_millis(200)).await;
                Err(StartError::Setup(format!("{e} ({})", describe(status))))
            }
            Err(_) => {
                reap(&mut worker.child, Duration::ZERO).await;
                Err(StartError::Slow(START_DEADLINE))
            }
        }
    }

    /// Kills `worker` (if it is still there) and waits for it to end.
    async fn retire(&self, mut worker: Worker, why: Replaced) {
        let status = reap(&mut worker.child, Duration::ZERO).await;
        self.replaced(why, status);
    }

    fn replaced(&self, why: Replaced, status: Option<ExitStatus>) {
        JqWorkerReplaced {
            why,
            status: describe(status),
        }
        .emit(&self.telemetry);
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Worker>> {
        // Nothing panics while holding it; a poisoned list is still a list of workers.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Worker {
    /// Sends `record` and reads the verdict. `stage` follows the programs as the worker
    /// reports them done.
    async fn ask(&mut self, record: &Record, stage: &mut Stage) -> Result<Verdict, Failed> {
        self.request.clear();
        Request::encode_parts(
            &mut self.request,
            &record.value,
            record.key.as_deref(),
            record.headers.iter().map(|(k, v)| (k.as_str(), v.as_ref())),
            &record.tp.topic,
            record.header(EVENT_TYPE).map(|v| v.as_ref()),
        )
        .map_err(|_| Failed::TooLarge)?;
        self.stdin
            .write_all(&self.request)
            .await
            .map_err(|_| Failed::NotSent)?;
        loop {
            read_frame(&mut self.stdout, &mut self.answer, frame::MAX_ANSWER)
                .await
                .map_err(|e| match e {
                    FrameError::Short => Failed::Died,
                    _ => Failed::Garbled,
                })?;
            match Response::decode_from(&mut self.answer) {
                Ok(Response::FilterPassed) => *stage = Stage::Transform,
                Ok(Response::Done(verdict)) => return Ok(verdict),
                Ok(Response::Ready) | Err(_) => return Err(Failed::Garbled),
            }
        }
    }

    /// Gives back what one large record grew the buffers to.
    fn trim(&mut self) {
        frame::trim(&mut self.request);
        if self.answer.capacity() > frame::KEEP_BUFFER {
            self.answer = BytesMut::new();
        }
    }
}

/// Kills the process unless it ends within `grace`, and waits a while for it; its
/// status when it ended within that while.
async fn reap(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    if let Ok(Ok(status)) = tokio::time::timeout(grace, child.wait()).await {
        return Some(status);
    }
    let _ = child.start_kill();
    tokio::time::timeout(REAP_DEADLINE, child.wait())
        .await
        .ok()
        .and_then(Result::ok)
}

/// Whether a worker that ended under a record ended of the record: a fault signal (a
/// stack overflow aborts; a bad access, an illegal instruction) or an exit code of its
/// own (a panic). Any other end (SIGKILL from the OOM killer or an operator, SIGTERM,
/// a status never seen) came from outside, and is not held against the record.
fn died_of_its_record(status: Option<ExitStatus>) -> bool {
    use std::os::unix::process::ExitStatusExt;
    let Some(status) = status else {
        return false;
    };
    match (status.code(), status.signal()) {
        (Some(code), _) => code != 0,
        (None, Some(signal)) => [
            libc::SIGSEGV,
            libc::SIGABRT,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
        ]
        .contains(&signal),
        (None, None) => false,
    }
}

/// How a worker ended, for the log.
fn describe(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        None => "still ending".to_owned(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => s.to_string(),
        },
    }
}

/// The wait after `failures` failed starts in a row.
fn backoff(failures: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(1 << failures.min(16))
        .min(RETRY_MAX)
}

/// Reads one frame's payload, of at most `max` bytes, into `buf`. `buf` grows with the
/// bytes that come, not with what the length prefix says: a worker that is not
/// hookbridge (or garbled output) makes the sink allocate nothing for a length alone.
async fn read_frame(
    input: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    max: usize,
) -> Result<(), FrameError> {
    /// Room made for one read: what a pipe holds at once, at most.
    const STEP: usize = 64 << 10;
    let mut prefix = [0u8; 4];
    input
        .read_exact(&mut prefix)
        .await
        .map_err(|_| FrameError::Short)?;
    let len = frame::payload_len(prefix)?;
    if len > max {
        return Err(FrameError::TooLong(len));
    }
    buf.clear();
    let mut payload = input.take(len as u64);
    while buf.len() < len {
        buf.reserve((len - buf.len()).min(STEP));
        match payload.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(FrameError::Short),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// An evaluation that ran past its deadline; `starved` when its worker got less than
/// [`STARVED_SHARE`] of a core over the last nine tenths of it (or that could not be
/// told: no `/proc`).
#[derive(Debug)]
struct Overran {
    starved: bool,
}

/// `evaluation` within `deadline`. The worker's CPU time is read only for an evaluation
/// still running at a tenth of the deadline (a quick record costs nothing), and again
/// when the deadline passes.
async fn within<T>(
    deadline: Duration,
    pid: Option<u32>,
    evaluation: impl std::future::Future<Output = T>,
) -> Result<T, Overran> {
    tokio::pin!(evaluation);
    let first = deadline / 10;
    if let Ok(done) = tokio::time::timeout(first, &mut evaluation).await {
        return Ok(done);
    }
    let before = pid.and_then(cpu_time);
    let rest = deadline - first;
    match tokio::time::timeout(rest, &mut evaluation).await {
        Ok(done) => Ok(done),
        Err(_) => {
            let used = before
                .zip(pid.and_then(cpu_time))
                .map(|(b, a)| a.saturating_sub(b));
            Err(Overran {
                starved: starved(used, rest),
            })
        }
    }
}

/// Whether a worker that used `used` CPU over `over` was starved: less than
/// [`STARVED_SHARE`] of a core, or not known.
fn starved(used: Option<Duration>, over: Duration) -> bool {
    used.is_none_or(|u| u.as_secs_f64() < over.as_secs_f64() * STARVED_SHARE)
}

/// CPU time (user and system) process `pid` has used, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_time_of(&stat, ticks_per_second()?)
}

/// The `utime` and `stime` fields of a `/proc/<pid>/stat` line, in `ticks` per second.
/// Fields are counted after the command name's closing parenthesis (the name may hold
/// spaces and parentheses).
fn cpu_time_of(stat: &str, ticks: u64) -> Option<Duration> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks_used = utime.checked_add(stime)?;
    Some(Duration::from_secs_f64(ticks_used as f64 / ticks as f64))
}

/// The kernel's clock ticks per second (`sysconf(_SC_CLK_TCK)`).
fn ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf reads a constant of the system; no memory is shared.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `utime` and `stime` are the 14th and 15th fields, counted past a command name
    /// that may hold spaces and parentheses.
    #[test]
    fn cpu_time_is_read_past_the_command_name() {
        let stat = "4242 (hookbridge (jq) x) R 1 4242 4242 0 -1 4194560 120 0 0 0 250 130 0 0 20 0 1 0 99 0 0";
        assert_eq!(cpu_time_of(stat, 100), Some(Duration::from_millis(3800)));
        assert_eq!(cpu_time_of("4242 (x) R 1", 100), None);
        assert_eq!(cpu_time_of("no name", 100), None);
        assert!(
            cpu_time(std::process::id()).is_some(),
            "this process's CPU time"
        );
    }

    /// Under half a core over the time measured is starved; half or more is not; not
    /// knowing counts as starved (the record gets its second try, as without `/proc`).
    #[test]
    fn a_worker_under_half_a_core_was_starved() {
        let ms = Duration::from_millis;
        assert!(starved(Some(ms(100)), ms(900)));
        assert!(starved(Some(ms(449)), ms(900)));
        assert!(!starved(Some(ms(450)), ms(900)));
        assert!(!starved(Some(ms(600)), ms(900)));
        assert!(!starved(Some(ms(900)), ms(900)));
        assert!(starved(None, ms(900)));
    }

    /// A quick evaluation is its answer; one past the deadline whose process sat idle
    /// (a `sleep` process) was starved, and so is one whose CPU cannot be read.
    #[tokio::test(flavor = "current_thread")]
    async fn an_evaluation_past_its_deadline_on_an_idle_process_was_starved() {
        let quick = within(Duration::from_secs(1), None, async { 7 }).await;
        assert_eq!(quick.ok(), Some(7));
        let mut idle = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("a sleep process");
        let slow = tokio::time::sleep(Duration::from_millis(400));
        let over = within(Duration::from_millis(200), Some(idle.id()), slow).await;
        let _ = idle.kill();
        let _ = idle.wait();
        assert!(over.is_err_and(|o| o.starved));
        let slow = tokio::time::sleep(Duration::from_millis(400));
        let unknown = within(Duration::from_millis(100), None, slow).await;
        assert!(unknown.is_err_and(|o| o.starved));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_answer_is_read_as_its_bytes_come_not_as_its_prefix_says() {
        let mut buf = BytesMut::new();
        let prefix = 0x3fff_ffffu32.to_le_bytes();
        let read = read_frame(&mut &prefix[..], &mut buf, frame::MAX_FRAME).await;
        assert_eq!(read, Err(FrameError::Short));
        assert!(buf.capacity() < 1 << 20, "{}", buf.capacity());
        let over = ((frame::MAX_ANSWER + 1) as u32).to_le_bytes();
        let read = read_frame(&mut &over[..], &mut buf, frame::MAX_ANSWER).await;
        assert_eq!(read, Err(FrameError::TooLong(frame::MAX_ANSWER + 1)));
        let mut frame = 3u32.to_le_bytes().to_vec();
        frame.extend_from_slice(b"abc");
        frame.extend_from_slice(&1u32.to_le_bytes());
        frame.push(b'd');
        let mut input = &frame[..];
        assert_eq!(read_frame(&mut input, &mut buf, 3).await, Ok(()));
        assert_eq!(&buf[..], b"abc");
        assert_eq!(read_frame(&mut input, &mut buf, 3).await, Ok(()));
        assert_eq!(&buf[..], b"d", "the next frame, nothing of it read before");
    }

    #[test]
    fn starts_are_tried_again_ever_later_up_to_the_cap() {
        let waits: Vec<_> = (0..8).map(backoff).collect();
        assert_eq!(waits[0], RETRY_FIRST);
        assert_eq!(waits[1], RETRY_FIRST * 2);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
        assert_eq!(backoff(6), RETRY_MAX);
        assert_eq!(backoff(u32::MAX), RETRY_MAX);
    }
}
