//! The worker process (`hookbridge jq-worker`, hidden): reads a sink's programs, then
//! one record at a time from stdin, and writes each verdict to stdout
//! ([`super::frame`]).
//!
//! It is started by the sink with an empty environment and stderr to nowhere: a record
//! value never reaches a log, and no secret of the parent is there to read. Whatever a
//! record does to it (a stack overflow aborts it, a runaway is killed) ends this
//! process only. It ends when its stdin closes, and on its own when its parent is gone
//! (a runaway program would otherwise never read that EOF); not by the signals that
//! stop its parent, and it keeps none of its parent's descriptors ([`detach`]).

use std::io::{BufReader, Read, Write};
use std::os::fd::FromRawFd;
use std::process::ExitCode;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::frame::{self, Class, FrameError, Request, Response, Setup, Stage, Verdict};
use super::Programs;

/// Stack of the evaluating thread. jaq runs nested values and calls on the native
/// stack: twice the usual 8 MiB of a main thread leaves room for any program whose
/// values stay near JSON's depths (record values and bodies are at most 128 deep). A
/// value built deeper than this overflows it and aborts this worker only, which costs
/// just that record: no need for more, and a smaller stack ends such a record sooner.
/// Reserved, not used: only the pages touched take memory.
const STACK: usize = 16 << 20;

/// How often the watching thread wakes: to see whether the parent is still there, and
/// whether a transform has run long enough to be reported.
const WATCH: Duration = Duration::from_millis(50);

/// A transform running this long is reported ([`Response::FilterPassed`]), so that a
/// deadline passing names it rather than the filter (one that starts within the last
/// tenth of a second before the deadline is still taken for the filter). Quicker ones
/// are not: a record costs one write, its verdict.
const REPORT_AFTER: Duration = Duration::from_millis(50);

/// Exit codes, for the sink's log of a worker that did not start.
const BAD_SETUP: u8 = 3;
const BROKEN_PIPE: u8 = 4;

/// The worker's stdout, shared by the serving thread (verdicts) and the watching thread
/// (reports of a long transform), so their frames never interleave.
struct Output {
    out: std::fs::File,
    /// When the transform of the record being evaluated started, after its filter let
    /// it through; `None` between records or when it is not reported.
    transform_since: Option<Instant>,
}

type Shared = Arc<Mutex<Output>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Output> {
    // A panic while holding it ends the worker anyway; the file is still a file.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the worker on this process's stdin and stdout; returns when stdin closes.
pub fn main() -> ExitCode {
    detach();
    let parent = std::os::unix::process::parent_id();
    // Not `Stdout`: it flushes at every newline, a write per line of a body. One write
    // per frame, from a buffer that is reused. Not a duplicate either: a worker holds
    // only its three standard descriptors.
    // SAFETY: descriptor 1 is open (the sink's pipe; without it `write` fails, which is
    // handled) and nothing else in this process uses it: `Stdout` is never touched.
    let out = unsafe { std::fs::File::from_raw_fd(1) };
    let shared: Shared = Arc::new(Mutex::new(Output {
        out,
        transform_since: None,
    }));
    let (done, ended) = std::sync::mpsc::channel();
    let serving = std::thread::Builder::new()
        .name("jq-worker".to_owned())
        .stack_size(STACK)
        .spawn({
            let shared = shared.clone();
            move || {
                let code = serve(&shared);
                let _ = done.send(code);
            }
        });
    if serving.is_err() {
        return ExitCode::FAILURE;
    }
    let mut report = Vec::new();
    if Response::FilterPassed.encode(&mut report).is_err() {
        return ExitCode::FAILURE;
    }
    loop {
        match ended.recv_timeout(WATCH) {
            Ok(code) => return ExitCode::from(code),
            // The serving thread panicked (it never sends then).
            Err(RecvTimeoutError::Disconnected) => return ExitCode::FAILURE,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if std::os::unix::process::parent_id() != parent {
            return ExitCode::SUCCESS;
        }
        let mut output = lock(&shared);
        if output
            .transform_since
            .is_some_and(|t| t.elapsed() >= REPORT_AFTER)
        {
            output.transform_since = None;
            // A broken pipe is the serving thread's to see, at its verdict.
            let _ = output.out.write_all(&report);
        }
    }
}

/// Makes this process answer to its stdin and its parent only, before anything else
/// runs (no thread exists yet).
///
/// Signals: Ctrl-C, `systemctl stop` or a hang-up reach a whole process group or
/// cgroup, and are meant for the parent, which drains: a worker ended by them would
/// cost the record it is evaluating. It ends instead when its stdin closes or its
/// parent is gone. (The sink also starts it in a process group of its own.)
///
/// Descriptors: whatever the parent held open without close-on-exec (librdkafka's
/// wake-up pipes) would be kept open by every worker, and readable by a program that
/// is not ours to trust; only stdin, stdout and stderr are kept.
///
/// Crashes and memory: a record that crashes its worker must not leave a core file
/// (it would hold the record, and each such record would write one more), and a
/// transform that builds a huge value must cost the worker, not the process: the
/// kernel's OOM killer is told to take a worker first.
fn detach() {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct given and changes only this process's limit;
    // a failure leaves the limit as inherited.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
    }
    // Raising one's own OOM score needs no privilege; where /proc is not mounted the
    // worker runs with the parent's.
    let _ = std::fs::write("/proc/self/oom_score_adj", "1000");
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: setting a signal's disposition to "ignore" installs no handler and
        // touches no memory of this process.
        unsafe {
            libc::signal(signal, libc::SIG_IGN);
        }
    }
    // SAFETY: no thread runs yet and nothing of this process refers to these
    // descriptors: the standard library opens none before `main`.
    let closed = unsafe { libc::close_range(3, libc::c_uint::MAX, 0) };
    if closed != 0 {
        // A kernel before 5.9: one by one. Listed first, closed after, so the listing's
        // own descriptor is not closed under it.
        let open: Vec<libc::c_int> = std::fs::read_dir("/proc/self/fd")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2)
            .collect();
        for fd in open {
            // SAFETY: as above; a descriptor already closed (the listing's) is EBADF.
            unsafe {
                libc::close(fd);
            }
        }
    }
}

/// The request loop; the exit code.
fn serve(shared: &Shared) -> u8 {
    let mut input = BufReader::with_capacity(64 << 10, std::io::stdin().lock());
    let mut frame = Vec::new();
    let mut out = Vec::new();
    let programs = match read_frame(&mut input, &mut frame) {
        Ok(true) => match Setup::decode(&frame)
            .map_err(|e| e.to_string())
            .and_then(|s| Programs::compile(&s))
        {
            Ok(p) => p,
            Err(_) => return BAD_SETUP,
        },
        _ => return BAD_SETUP,
    };
    if Response::Ready.encode(&mut out).is_err() || lock(shared).out.write_all(&out).is_err() {
        return BROKEN_PIPE;
    }
    let both = programs.filter.is_some() && programs.transform.is_some();
    loop {
        match read_frame(&mut input, &mut frame) {
            Ok(true) => {}
            Ok(false) => return 0,
            Err(_) => return BROKEN_PIPE,
        }
        let Ok(request) = Request::decode(&frame) else {
            return BROKEN_PIPE;
        };
        let verdict = programs.evaluate(&request, || {
            if both {
                lock(shared).transform_since = Some(Instant::now());
            }
        });
        out.clear();
        if Response::Done(verdict).encode(&mut out).is_err() {
            // Over the frame's limit: [`Programs::evaluate`] refuses such an output
            // before, so this is the same refusal, never a length cut short.
            let too_large = Verdict::Refused(Stage::Transform, Class::OutputTooLarge);
            if Response::Done(too_large).encode(&mut out).is_err() {
                return BROKEN_PIPE;
            }
        }
        let mut output = lock(shared);
        // Under the lock: no report of this record's transform can follow its verdict.
        output.transform_since = None;
        if output.out.write_all(&out).is_err() {
            return BROKEN_PIPE;
        }
        drop(output);
        frame::trim(&mut frame);
        frame::trim(&mut out);
    }
}

/// Reads one frame's payload into `buf`; `false` at a clean end of input. `buf` grows
/// with the bytes that come, not with what the length prefix says.
fn read_frame(input: &mut impl Read, buf: &mut Vec<u8>) -> Result<bool, FrameError> {
    let mut prefix = [0u8; 4];
    match input.read_exact(&mut prefix) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(_) => return Err(FrameError::Short),
    }
    let len = frame::payload_len(prefix)?;
    buf.clear();
    let read = input.take(len as u64).read_to_end(buf);
    if read.is_err() || buf.len() != len {
        return Err(FrameError::Short);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_read_as_its_bytes_come_not_as_its_prefix_says() {
        let mut buf = Vec::new();
        let prefix = 0x3fff_ffffu32.to_le_bytes();
        assert_eq!(
            read_frame(&mut &prefix[..], &mut buf),
            Err(FrameError::Short)
        );
        assert!(buf.capacity() < 1 << 20, "{}", buf.capacity());
        let mut frame = 3u32.to_le_bytes().to_vec();
        frame.extend_from_slice(b"abc");
        assert_eq!(read_frame(&mut &frame[..], &mut buf), Ok(true));
        assert_eq!(buf, b"abc");
        assert_eq!(read_frame(&mut &[][..], &mut buf), Ok(false));
    }
}
