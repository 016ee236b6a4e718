//! A sink's jq workers, with the real binary as the worker and no broker: a runaway is
//! killed at its deadline, a record that crashes its worker is refused as `crashed`
//! and the next one evaluated, a worker that cannot start is waited for and not the
//! record's fault, a worker has no environment, and at most four run at once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookbridge::connectors::load_dir;
use hookbridge::egress::record::{Record, TopicPartition};
use hookbridge::egress::request::{Refused, Shaper};
use hookbridge::telemetry::{Metrics, SinkTelemetry};
use tokio_util::sync::CancellationToken;

use crate::support::connectors::SinkToml;
use crate::support::hookbridge::{bin, metric};
use crate::support::processes::{children, group, open_fds, Seen};

/// The filter of these tests: passes a record with `n` > 0 after counting to it, so a
/// large `n` runs as long as it says.
const COUNTING: &str = "last(range(.n)) > 0";

/// A shaper of a sink with `shaping` (jq keys), its workers run from `program`.
fn shaper(shaping: &str, program: PathBuf, deadline: Duration) -> (Shaper, Arc<Metrics>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sink = SinkToml::bare("s", &["t"]).url("http://127.0.0.1:9/hook");
    std::fs::write(dir.path().join("s.toml"), sink.raw(shaping).render()).expect("file");
    let connectors = load_dir(dir.path()).expect("valid sink");
    let metrics = Arc::new(Metrics::new());
    let telemetry = Arc::new(SinkTelemetry::new("s".into(), metrics.clone()));
    let shaper = Shaper::new(&connectors.sinks[0], telemetry).with_workers(program, deadline);
    (shaper, metrics)
}

/// A shaper with the [`COUNTING`] filter, its workers of the built binary.
fn counting_shaper() -> (Shaper, Arc<Metrics>) {
    let shaping = format!("filter = '{COUNTING}'");
    shaper(&shaping, bin().into(), Duration::from_secs(30))
}

/// Shapes a record that passes, and names the worker it leaves idle.
async fn first_worker(s: &Shaper) -> u32 {
    assert!(matches!(shape(s, &record(r#"{"n":2}"#)).await, Ok(Some(_))));
    s.workers().expect("workers").idle_pids()[0]
}

fn record(value: &str) -> Record {
    Record {
        tp: TopicPartition {
            topic: hookbridge::egress::record::Topic::new("t"),
            partition: 0,
        },
        offset: 7,
        leader_epoch: -1,
        checked_item: None,
        null_headers: Vec::new(),
        null_value: false,
        key: Some(Bytes::from_static(b"k")),
        value: Bytes::copy_from_slice(value.as_bytes()),
        headers: vec![],
        epoch: 0,
    }
}

/// How `record` shapes: `Ok(body)`, `Ok(None)` when filtered, or the refusal.
async fn shape(s: &Shaper, record: &Record) -> Result<Option<Bytes>, Refused> {
    let shaped = s.shape_in_time(record, &CancellationToken::new()).await;
    shaped
        .expect("not cancelled")
        .map(|p| p.map(|p| p.body(record).clone()))
}

fn restarts(metrics: &Metrics, reason: &str) -> f64 {
    metric(
        &metrics.render(),
        "hookbridge_jq_worker_restarts_total",
        &[("connector", "s"), ("reason", reason)],
    )
}

fn refused(reason: &'static str, error: &'static str) -> Result<Option<Bytes>, Refused> {
    Err(Refused::new(reason, error))
}

/// A program that never ends on a record is killed at the deadline (a runaway on a core
/// gets no second try; one starved of CPU by a loaded machine gets one): the record is
/// refused with `timeout` naming the program that ran over, its worker process is gone
/// (no core kept), the task waiting was never blocked, and later records evaluate.
#[tokio::test(flavor = "current_thread")]
async fn a_runaway_is_killed_at_the_deadline_and_later_records_evaluate() {
    let (s, metrics) = shaper(
        &format!("filter = '{COUNTING}'\ntransform = 'last(range(.m))'"),
        bin().into(),
        Duration::from_millis(500),
    );
    let ticks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    assert_eq!(
        shape(&s, &record(r#"{"n":2,"m":3}"#)).await,
        Ok(Some(Bytes::from_static(b"2")))
    );
    let pids = s.workers().expect("workers").idle_pids();
    assert_eq!(pids.len(), 1, "one worker, kept for the next record");
    let worker = Seen::of(pids[0]).expect("the worker runs");
    let started = Instant::now();
    assert_eq!(
        shape(&s, &record(r#"{"n":1e15}"#)).await,
        refused("filter", "timeout")
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "refused: {took:?}");
    assert!(worker.reaped(), "the runaway's worker {} is gone", pids[0]);
    assert!(
        ticks.load(std::sync::atomic::Ordering::Relaxed) > 10,
        "the thread was blocked"
    );
    assert_eq!(
        shape(&s, &record(r#"{"n":2,"m":1e15}"#)).await,
        refused("transform", "timeout"),
        "the transform ran over"
    );
    assert_eq!(shape(&s, &record(r#"{"n":0}"#)).await, Ok(None), "filtered");
    let killed = restarts(&metrics, "timeout");
    assert!(
        (2.0..=4.0).contains(&killed),
        "one worker per runaway, two if starved: {killed}"
    );
    // Given up on (a revoke): the worker is killed, the next record evaluated at once.
    let cancel = CancellationToken::new();
    let given_up = {
        let runaway = record(r#"{"n":1e15}"#);
        let cancel = cancel.clone();
        // Once the worker is taken (evaluating): the one worker is no longer idle.
        let canceller = async {
            while !s.workers().expect("workers").idle_pids().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            cancel.cancel();
        };
        let (shaped, ()) = tokio::join!(s.shape_in_time(&runaway, &cancel), canceller);
        shaped.is_none()
    };
    assert!(given_up, "cancelled");
    assert_eq!(restarts(&metrics, "given-up"), 1.0);
    assert!(s.workers().expect("workers").idle_pids().is_empty());
    assert_eq!(
        shape(&s, &record(r#"{"n":2,"m":3}"#)).await,
        Ok(Some(Bytes::from_static(b"2")))
    );
    ticker.abort();
}

/// A program that builds a value nested as deep as the record says overflows the
/// worker's stack: that worker dies, the record is refused with `crashed`, and the
/// next record is evaluated by a new worker (this process, the sink, never aborts).
#[tokio::test(flavor = "current_thread")]
async fn a_record_that_overflows_the_stack_crashes_only_its_worker() {
    let (s, metrics) = shaper(
        "filter = 'if .n then (reduce range(.n) as $i (0; [.]) | true) else true end'",
        bin().into(),
        Duration::from_secs(20),
    );
    assert!(matches!(
        shape(&s, &record(r#"{"a":1}"#)).await,
        Ok(Some(_))
    ));
    let pid = s.workers().expect("workers").idle_pids()[0];
    let worker = Seen::of(pid).expect("the worker runs");
    assert_eq!(
        shape(&s, &record(r#"{"n":1000000}"#)).await,
        refused("filter", "crashed")
    );
    assert!(worker.reaped(), "the worker that crashed is gone");
    assert_eq!(restarts(&metrics, "crashed"), 1.0);
    assert!(matches!(
        shape(&s, &record(r#"{"a":2}"#)).await,
        Ok(Some(_))
    ));
    let next = s.workers().expect("workers").idle_pids();
    assert!(next.len() == 1 && next[0] != pid, "{next:?}");
}

/// A worker that cannot be started is not the record's fault: the record waits (the
/// failures counted) and is evaluated once a worker starts.
#[tokio::test(flavor = "current_thread")]
async fn a_worker_that_cannot_start_is_waited_for_not_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let program = dir.path().join("hookbridge");
    let (s, metrics) = shaper(
        &format!("filter = '{COUNTING}'"),
        program.clone(),
        Duration::from_secs(30),
    );
    let s = Arc::new(s);
    let shaping = tokio::spawn({
        let s = s.clone();
        async move { shape(&s, &record(r#"{"n":2}"#)).await.map(|b| b.is_some()) }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while restarts(&metrics, "spawn-failed") < 2.0 {
        assert!(Instant::now() < deadline, "no start was tried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!shaping.is_finished(), "the record was not refused");
    std::os::unix::fs::symlink(bin(), &program).expect("the binary appears");
    let shaped = tokio::time::timeout(Duration::from_secs(20), shaping)
        .await
        .expect("evaluated once a worker starts")
        .expect("no panic");
    assert_eq!(shaped, Ok(true));
}

/// A worker that ended between records (killed from outside) is replaced, and the
/// record that finds it gone is evaluated, not refused.
#[tokio::test(flavor = "current_thread")]
async fn a_worker_gone_between_records_is_replaced_without_refusing() {
    let (s, metrics) = counting_shaper();
    let pid = first_worker(&s).await;
    let worker = Seen::of(pid).expect("the worker runs");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    worker.wait_gone(Duration::from_secs(10));
    let shaped = shape(&s, &record(r#"{"n":2}"#)).await;
    assert!(matches!(shaped, Ok(Some(_))), "{shaped:?}");
    // Seen dead at the write (`exited`), or, when the record's frame still fit the
    // pipe (a worker being spawned at that moment held its other end), at the answer
    // (`killed`): never the record's fault either way.
    let (exited, killed) = (restarts(&metrics, "exited"), restarts(&metrics, "killed"));
    assert_eq!(exited + killed, 1.0, "exited {exited}, killed {killed}");
    assert_eq!(restarts(&metrics, "crashed"), 0.0);
}

/// A record that counts for a few seconds in the [`COUNTING`] filter.
const SLOW: &str = r#"{"n":1.5e7}"#;

/// Signals meant for hookbridge (Ctrl-C, `systemctl stop`, a hang-up, sent to its
/// group or cgroup) are not its workers': a worker is in a group of its own and goes on
/// evaluating through them. A worker ended from outside under a record (SIGKILL: the
/// OOM killer, an operator) is not the record's fault: the record is evaluated on a new
/// worker, not refused as `crashed`.
#[tokio::test(flavor = "current_thread")]
async fn signals_from_outside_cost_the_record_under_evaluation_nothing() {
    let (s, metrics) = counting_shaper();
    let workers = || s.workers().expect("workers").idle_pids();
    let first = first_worker(&s).await;
    assert_eq!(group(first), Some(first), "a group of its own");
    let slow = record(SLOW);
    for signal in ["TERM", "INT", "HUP", "KILL"] {
        let pid = workers()[0];
        let worker = Seen::of(pid).expect("the worker runs");
        let started = Instant::now();
        let signaller = async {
            // Once the worker has the record (it is no longer idle) and is counting.
            while !workers().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let sent = std::process::Command::new("kill")
                .args([format!("-{signal}"), pid.to_string()])
                .status()
                .expect("kill");
            assert!(sent.success());
            started.elapsed()
        };
        let (shaped, sent_after) = tokio::join!(shape(&s, &slow), signaller);
        assert!(matches!(shaped, Ok(Some(_))), "SIG{signal}: {shaped:?}");
        assert!(
            started.elapsed() > sent_after + Duration::from_millis(100),
            "SIG{signal} came after the evaluation ({sent_after:?} of {:?})",
            started.elapsed()
        );
        assert_eq!(worker.alive(), signal != "KILL", "SIG{signal}");
    }
    assert_eq!(restarts(&metrics, "killed"), 1.0);
    assert_eq!(restarts(&metrics, "crashed"), 0.0);
}

/// The worker's environment is empty: nothing of the parent's (here the test's own
/// variables, in the service the secrets given as `${VAR}`) is there to read. A worker
/// that crashes writes no core file (it would hold the record), and the OOM killer
/// takes a worker before the process.
#[tokio::test(flavor = "current_thread")]
async fn a_worker_has_an_empty_environment_no_core_and_goes_first_under_oom() {
    assert!(
        std::env::var_os("PATH").is_some(),
        "the parent has variables"
    );
    let (s, _) = counting_shaper();
    let pid = first_worker(&s).await;
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("the worker's environ");
    assert!(environ.is_empty(), "{}", String::from_utf8_lossy(&environ));
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let core = limits.lines().find(|l| l.starts_with("Max core file size"));
    let core: Vec<_> = core.expect("a core limit").split_whitespace().collect();
    assert_eq!(core[4..6], ["0", "0"], "{limits}");
    let oom = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).expect("oom");
    assert_eq!(oom.trim(), "1000");
    let workers: Vec<_> = (s.workers().expect("workers").idle_pids().into_iter())
        .filter_map(Seen::of)
        .collect();
    drop(s);
    for w in workers {
        w.wait_reaped(Duration::from_secs(10)).await;
    }
}

/// A transform whose output is over the largest body (64 MiB) is refused as
/// `output-too-large` by its worker, which goes on with the next record: not a crash.
#[tokio::test(flavor = "current_thread")]
async fn an_output_over_the_largest_body_is_refused_not_a_crash() {
    let (s, metrics) = shaper(
        "transform = '\"x\" * .n'",
        bin().into(),
        Duration::from_secs(30),
    );
    assert_eq!(
        shape(&s, &record(r#"{"n":3}"#)).await,
        Ok(Some(Bytes::from_static(b"\"xxx\"")))
    );
    let pid = s.workers().expect("workers").idle_pids()[0];
    // The body's length, not the body, in a failure's message.
    let shaped = shape(&s, &record(r#"{"n":67108864}"#)).await;
    let shaped = shaped.map(|b| b.map(|b| b.len()));
    assert_eq!(shaped, Err(Refused::new("transform", "output-too-large")));
    assert_eq!(
        s.workers().expect("workers").idle_pids(),
        [pid],
        "the same worker"
    );
    assert_eq!(restarts(&metrics, "crashed"), 0.0);
}

/// A worker holds only stdin, stdout and stderr: not what its parent left open without
/// close-on-exec (librdkafka's wake-up pipes; here a pipe of the test's own).
#[tokio::test(flavor = "current_thread")]
async fn a_worker_holds_only_its_standard_descriptors() {
    let mut inherited = [0; 2];
    // SAFETY: `pipe` writes two descriptors into the array it is given.
    assert_eq!(unsafe { libc::pipe(inherited.as_mut_ptr()) }, 0, "a pipe");
    let (s, _) = counting_shaper();
    let pid = first_worker(&s).await;
    let fds = open_fds(pid);
    for fd in inherited {
        // SAFETY: the test's own descriptors, closed once.
        unsafe { libc::close(fd) };
    }
    assert_eq!(fds, [0, 1, 2], "descriptors of worker {pid}");
}

/// Records shaped at the same moment share four workers: while eight runaways are
/// evaluated, no more than four worker processes run at any moment; and a quick
/// record waiting behind four runaways gets a worker once they are killed and is
/// evaluated, not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_four_evaluations_run_at_once() {
    let deadline = Duration::from_millis(600);
    // Started under a name of their own, so that they are told apart from the workers
    // of the tests running beside this one (all children of this process).
    let dir = tempfile::tempdir().expect("temp dir");
    let program = dir.path().join("hookbridge-four");
    std::os::unix::fs::symlink(bin(), &program).expect("link");
    let (s, _) = shaper(&format!("filter = '{COUNTING}'"), program.clone(), deadline);
    let s = Arc::new(s);
    let ours = || {
        let name = program.as_os_str().as_encoded_bytes();
        children(std::process::id())
            .into_iter()
            .filter(|c| {
                let cmdline = std::fs::read(format!("/proc/{}/cmdline", c.pid)).unwrap_or_default();
                cmdline.split(|b| *b == 0).next() == Some(name)
            })
            .count()
    };
    let runaways: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { shape(&s, &record(r#"{"n":1e15}"#)).await })
        })
        .collect();
    let mut most = 0;
    while !runaways.iter().all(|r| r.is_finished()) {
        most = most.max(ours());
        assert!(most <= 4, "{most} workers at once");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(most, 4, "four ran at once");
    for r in runaways {
        assert_eq!(r.await.expect("no panic"), refused("filter", "timeout"));
    }
    let started = Instant::now();
    let runaways: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { shape(&s, &record(r#"{"n":1e15}"#)).await })
        })
        .collect();
    // Once the four runaways hold the four slots.
    while s.workers().expect("workers").evaluating() < 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let quick = tokio::spawn({
        let s = s.clone();
        async move { shape(&s, &record(r#"{"n":2}"#)).await }
    });
    while !quick.is_finished() {
        assert!(ours() <= 4, "a fifth worker for the quick record");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(matches!(quick.await.expect("no panic"), Ok(Some(_))));
    assert!(started.elapsed() >= deadline, "it waited for a worker");
    for r in runaways {
        assert_eq!(r.await.expect("no panic"), refused("filter", "timeout"));
    }
}

/// The worker subcommand is there for the sink, not for people: not in `--help`.
#[test]
fn the_worker_command_is_hidden() {
    let out = std::process::Command::new(bin())
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("check"), "{help}");
    assert!(!help.contains("jq-worker"), "{help}");
}

/// A program in `dir` that starts and only sleeps: a worker that never takes its
/// programs.
fn silent_program(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let program = dir.join("silent");
    std::fs::write(&program, "#!/bin/sh\nexec sleep 60\n").expect("script");
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    program
}

/// A worker that starts but never takes its programs (here a program that only
/// sleeps) holds up neither a revoke nor shutdown: the evaluation waiting for it is
/// given up on at once.
#[tokio::test(flavor = "current_thread")]
async fn an_evaluation_waiting_for_a_worker_to_start_is_given_up_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let program = silent_program(dir.path());
    let (s, _) = shaper(
        &format!("filter = '{COUNTING}'"),
        program,
        Duration::from_secs(30),
    );
    let cancel = CancellationToken::new();
    let r = record(r#"{"n":2}"#);
    let revoke = async {
        while s.workers().expect("workers").evaluating() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Long enough for the worker to be started and waited for.
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
        Instant::now()
    };
    let (shaped, cancelled_at) = tokio::join!(s.shape_in_time(&r, &cancel), revoke);
    assert!(shaped.is_none(), "given up on");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(2),
        "{:?} after the revoke",
        cancelled_at.elapsed()
    );
}

/// Shutdown waits for no jq worker to start: an evaluation waiting on a start that
/// hangs (a program that only sleeps), or in the backoff between starts that fail (no
/// program), is given up on at once, its record left unfinished, instead of holding
/// the drain until its deadline.
#[tokio::test(flavor = "current_thread")]
async fn shutdown_gives_up_an_evaluation_waiting_for_a_worker_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let silent = silent_program(dir.path());
    let missing = dir.path().join("missing");
    for (program, waits) in [(silent, "a start"), (missing, "the backoff")] {
        let (s, metrics) = shaper(
            &format!("filter = '{COUNTING}'"),
            program,
            Duration::from_secs(30),
        );
        let shutdown = CancellationToken::new();
        let s = s.stopped_by(shutdown.clone());
        let (r, never) = (record(r#"{"n":2}"#), CancellationToken::new());
        let stop = async {
            while s.workers().expect("workers").evaluating() == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Past the fifth failed start the backoff is 1.6 s, longer than the wait
            // allowed below.
            while waits == "the backoff" && restarts(&metrics, "spawn-failed") < 5.0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            shutdown.cancel();
            Instant::now()
        };
        // Bounded, so that a shutdown that does not give it up fails here, not hangs.
        let evaluation = tokio::time::timeout(Duration::from_secs(5), s.shape_in_time(&r, &never));
        let (shaped, stopped_at) = tokio::join!(evaluation, stop);
        assert!(matches!(shaped, Ok(None)), "{waits}: not given up on");
        assert!(
            stopped_at.elapsed() < Duration::from_secs(1),
            "{waits}: {:?} after shutdown",
            stopped_at.elapsed()
        );
    }
}
