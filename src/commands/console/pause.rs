//! Stopping one sink of this process for a console replay, and starting it again.
//!
//! A replay moves the sink's group back, which Kafka allows only while the group has no
//! live member, and this process is one. So the console stops this process's consumer of
//! the sink (a graceful stop: in-flight deliveries drain, the watermark is committed, the
//! consumer leaves the group), runs the replay exactly as `hookbridge replay` does (still
//! refused while other processes run the sink), and the sink runs again, from the
//! rewound offsets, or from where it was when the replay failed or was refused.
//!
//! Who starts the sink again is its supervisor ([`supervise`], which `run` runs each sink
//! under), never the console's request: a run that ended without an error because its own
//! token was cancelled (by [`SinkSwitches::replay`]; the process is not stopping) runs
//! again as soon as no replay holds the sink. The replay itself runs in a task of its own,
//! so a client that goes away mid-drain, or a sink that takes longer to stop than the
//! replay waits, cannot leave the sink stopped: the hold ends with that task, whatever
//! happens to the request.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One sink's runs in this process, as its supervisor and the console see them.
#[derive(Debug, Default)]
struct RunState {
    /// Cancels the current run of the sink.
    token: CancellationToken,
    /// A run is going on (from its start until it has drained and left the group).
    running: bool,
    /// Console replays holding the sink stopped: no run starts while any does. A count,
    /// not a flag: a replay that ends must not release another one's hold.
    holds: u32,
}

/// One sink of this process: what its supervisor and a console replay share.
#[derive(Debug)]
pub struct SinkSwitch(watch::Sender<RunState>);

impl Default for SinkSwitch {
    fn default() -> Self {
        SinkSwitch(watch::Sender::new(RunState::default()))
    }
}

/// Runs a sink until the process stops (`stop`) or a run fails, and runs it again each
/// time a console replay stopped it on purpose. `run` is one run of the sink until the
/// token it is given is cancelled; `restarting` is called before each run after the
/// first (the ended run is over: drained, committed, out of the group). What the last
/// run ended with; `None` when the process stopped while no run was going.
pub async fn supervise<T, E, F, Fut>(
    switch: &SinkSwitch,
    stop: &CancellationToken,
    mut run: F,
    mut restarting: impl FnMut(),
) -> Result<Option<T>, E>
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut first = true;
    loop {
        // Once the process stops, nothing starts again, whatever else is ready.
        if stop.is_cancelled() {
            return Ok(None);
        }
        // A run starts only while no replay holds the sink, decided under the state's
        // lock, so a replay never sees the sink stopped while a run is starting.
        let mut token = None;
        switch.0.send_if_modified(|s| {
            if s.holds > 0 {
                return false;
            }
            s.token = stop.child_token();
            s.running = true;
            token = Some(s.token.clone());
            true
        });
        let Some(token) = token else {
            let mut state = switch.0.subscribe();
            tokio::select! {
                biased; // the process stopping wins over a hold ending at the same time
                _ = stop.cancelled() => return Ok(None),
                _ = state.wait_for(|s| s.holds == 0) => continue,
            }
        };
        if !first {
            restarting();
        }
        first = false;
        let ended = run(token.clone()).await;
        switch.0.send_modify(|s| s.running = false);
        let ended = ended?;
        // Only a deliberate stop runs the sink again: its own token cancelled while the
        // process goes on. A run that ended by itself, or with the process, is the end.
        if stop.is_cancelled() || !token.is_cancelled() {
            return Ok(Some(ended));
        }
    }
}

/// Every sink this process runs, by name.
#[derive(Debug, Default)]
pub struct SinkSwitches(Mutex<HashMap<String, Arc<SinkSwitch>>>);

/// Why a console replay did not run, or did not finish.
#[derive(Debug, PartialEq, Eq)]
pub enum NotRun {
    /// The sink's run did not leave the group within the wait; it runs again as soon as
    /// it has.
    Late(Duration),
    /// The process is stopping.
    Stopping,
    /// The replay itself stopped on an internal error.
    Died,
}

impl std::fmt::Display for NotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotRun::Late(wait) => write!(
                f,
                "this process's run of the sink did not stop within {wait:?}; nothing moved, and the sink runs again once it has stopped"
            ),
            NotRun::Stopping => write!(f, "the process is stopping; nothing moved"),
            NotRun::Died => write!(f, "the replay stopped on an internal error"),
        }
    }
}

/// A sink held stopped by a replay; it may run again once this is dropped.
struct Held(Arc<SinkSwitch>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0
             .0
            .send_modify(|s| s.holds = s.holds.saturating_sub(1));
    }
}

impl SinkSwitches {
    /// The switch of sink `name`, created on first use.
    pub fn of(&self, name: &str) -> Arc<SinkSwitch> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(name.to_owned()).or_default().clone()
    }

    fn get(&self, name: &str) -> Option<Arc<SinkSwitch>> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.get(name).cloned()
    }

    /// Runs `replay` with this process's run of sink `name` stopped: in a task of its
    /// own, which stops the run, waits up to `wait` until it has drained and left the
    /// group, runs `replay` (blocking) and lets the sink's supervisor run it again. The
    /// caller may await the answer or drop it: the task goes on either way. When this
    /// process does not run the sink, `replay` runs at once.
    pub fn replay<T: Send + 'static>(
        &self,
        name: &str,
        wait: Duration,
        stop: &CancellationToken,
        replay: impl FnOnce() -> T + Send + 'static,
    ) -> tokio::task::JoinHandle<Result<T, NotRun>> {
        let switch = self.get(name);
        let (stop, name) = (stop.clone(), name.to_owned());
        tokio::spawn(async move {
            let _held = match switch {
                Some(switch) => Some(hold(&name, switch, wait, &stop).await?),
                None => None,
            };
            if stop.is_cancelled() {
                return Err(NotRun::Stopping);
            }
            tokio::task::spawn_blocking(replay)
                .await
                .map_err(|_| NotRun::Died)
        })
    }
}

/// Stops the sink's current run and holds it stopped; Err (and the hold ended) when the
/// run has not left the group within `wait`, or the process stops meanwhile.
async fn hold(
    name: &str,
    switch: Arc<SinkSwitch>,
    wait: Duration,
    stop: &CancellationToken,
) -> Result<Held, NotRun> {
    tracing::info!(connector = %name, "stopping the sink for a console replay");
    let mut state = switch.0.subscribe();
    switch.0.send_modify(|s| {
        s.holds += 1;
        s.token.cancel();
    });
    let held = Held(switch);
    tokio::select! {
        biased; // the process stopping wins over the run having ended at the same time
        _ = stop.cancelled() => Err(NotRun::Stopping),
        stopped = tokio::time::timeout(wait, state.wait_for(|s| !s.running)) => match stopped {
            Ok(Ok(_)) => Ok(held),
            _ => Err(NotRun::Late(wait)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A supervised fake sink: each run counts itself, waits for its token, then takes
    /// `linger` to drain.
    struct Fake {
        switches: Arc<SinkSwitches>,
        stop: CancellationToken,
        runs: Arc<AtomicUsize>,
        restarts: Arc<AtomicUsize>,
        /// Each run ends with its number: what the supervisor returns is the last run's.
        supervisor: tokio::task::JoinHandle<Result<Option<usize>, &'static str>>,
    }

    fn fake(linger: Duration, fail_on_run: Option<usize>) -> Fake {
        let switches = Arc::new(SinkSwitches::default());
        let stop = CancellationToken::new();
        let (runs, restarts) = (Arc::<AtomicUsize>::default(), Arc::<AtomicUsize>::default());
        let supervisor = {
            let switch = switches.of("orders");
            let (stop, runs, restarts) = (stop.clone(), runs.clone(), restarts.clone());
            tokio::spawn(async move {
                supervise(
                    &switch,
                    &stop,
                    |token: CancellationToken| {
                        let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                        async move {
                            if fail_on_run == Some(n) {
                                return Err("could not start");
                            }
                            token.cancelled().await;
                            tokio::time::sleep(linger).await;
                            Ok(n)
                        }
                    },
                    || {
                        restarts.fetch_add(1, Ordering::SeqCst);
                    },
                )
                .await
            })
        };
        Fake {
            switches,
            stop,
            runs,
            restarts,
            supervisor,
        }
    }

    async fn until(what: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !what() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("in time");
    }

    #[tokio::test]
    async fn a_replayed_sink_runs_again_and_ends_with_the_process() {
        let f = fake(Duration::ZERO, None);
        until(|| f.runs.load(Ordering::SeqCst) == 1).await;
        let ran = f
            .switches
            .replay("billing", Duration::from_secs(1), &f.stop, || 7);
        assert_eq!(ran.await.expect("no panic"), Ok(7), "no such sink here");
        let runs = f.runs.clone();
        let ran = f
            .switches
            .replay("orders", Duration::from_secs(5), &f.stop, move || {
                runs.load(Ordering::SeqCst)
            });
        assert_eq!(ran.await.expect("no panic"), Ok(1), "run while stopped");
        until(|| f.runs.load(Ordering::SeqCst) == 2).await;
        assert_eq!(f.restarts.load(Ordering::SeqCst), 1);
        f.stop.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(5), f.supervisor).await;
        assert_eq!(
            ended.expect("ends with the process").expect("no panic"),
            Ok(Some(2)),
            "the second run's end, not the first's (stopped for the replay)"
        );
    }

    /// A run that takes longer to stop than the replay waits: the replay does not run,
    /// and the sink still runs again once its run has ended.
    #[tokio::test]
    async fn a_sink_slower_to_stop_than_the_replay_waits_runs_again() {
        let f = fake(Duration::from_millis(300), None);
        until(|| f.runs.load(Ordering::SeqCst) == 1).await;
        let ran = f
            .switches
            .replay("orders", Duration::from_millis(20), &f.stop, || ());
        assert_eq!(
            ran.await.expect("no panic"),
            Err(NotRun::Late(Duration::from_millis(20)))
        );
        until(|| f.runs.load(Ordering::SeqCst) == 2).await;
        f.stop.cancel();
    }

    /// The request that asked for the replay is dropped while the sink drains: the
    /// replay goes on and the sink runs again.
    #[tokio::test]
    async fn a_replay_whose_request_is_dropped_still_runs_the_sink_again() {
        let f = fake(Duration::from_millis(100), None);
        until(|| f.runs.load(Ordering::SeqCst) == 1).await;
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let request = tokio::spawn({
            let (switches, stop) = (f.switches.clone(), f.stop.clone());
            async move {
                switches
                    .replay("orders", Duration::from_secs(5), &stop, move || {
                        d.fetch_add(1, Ordering::SeqCst)
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        request.abort();
        until(|| f.runs.load(Ordering::SeqCst) == 2).await;
        assert_eq!(done.load(Ordering::SeqCst), 1, "the replay ran");
        f.stop.cancel();
    }

    /// A run started again after a replay that fails ends the supervisor with its error
    /// (the caller counts the sink failed), instead of being retried or forgotten.
    #[tokio::test]
    async fn a_run_that_fails_after_a_replay_ends_with_its_error() {
        let f = fake(Duration::ZERO, Some(2));
        until(|| f.runs.load(Ordering::SeqCst) == 1).await;
        let ran = f
            .switches
            .replay("orders", Duration::from_secs(5), &f.stop, || ());
        assert_eq!(ran.await.expect("no panic"), Ok(()));
        let ended = tokio::time::timeout(Duration::from_secs(5), f.supervisor).await;
        assert_eq!(
            ended.expect("ends").expect("no panic"),
            Err("could not start")
        );
    }

    /// A blocking replay that waits for its gate, then reports how many runs the sink
    /// has had.
    fn gated(
        f: &Fake,
        gate: std::sync::mpsc::Receiver<()>,
    ) -> (
        tokio::task::JoinHandle<Result<usize, NotRun>>,
        Arc<AtomicUsize>,
    ) {
        let (runs, entered) = (f.runs.clone(), Arc::<AtomicUsize>::default());
        let inside = entered.clone();
        let replay = f
            .switches
            .replay("orders", Duration::from_secs(5), &f.stop, move || {
                inside.store(1, Ordering::SeqCst);
                let _ = gate.recv();
                runs.load(Ordering::SeqCst)
            });
        (replay, entered)
    }

    /// Two replays hold the sink at once: the first one ending does not start the sink
    /// while the second still holds it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replay_ending_does_not_release_another_replays_hold() {
        let f = fake(Duration::ZERO, None);
        until(|| f.runs.load(Ordering::SeqCst) == 1).await;
        let (open_a, gate_a) = std::sync::mpsc::channel();
        let (open_b, gate_b) = std::sync::mpsc::channel();
        let (a, a_inside) = gated(&f, gate_a);
        until(|| a_inside.load(Ordering::SeqCst) == 1).await;
        let (b, b_inside) = gated(&f, gate_b);
        until(|| b_inside.load(Ordering::SeqCst) == 1).await;
        open_a.send(()).expect("a waits");
        assert_eq!(a.await.expect("no panic"), Ok(1));
        // Time for a wrongly released sink to start before the second replay reads.
        tokio::time::sleep(Duration::from_millis(100)).await;
        open_b.send(()).expect("b waits");
        assert_eq!(b.await.expect("no panic"), Ok(1), "the sink ran during b");
        until(|| f.runs.load(Ordering::SeqCst) == 2).await;
        f.stop.cancel();
    }

    /// The process stops as a replay's hold ends, both before the supervisor looks:
    /// the sink is not started again.
    #[tokio::test]
    async fn a_stopping_process_never_starts_the_sink_again() {
        for round in 0..20 {
            let f = fake(Duration::ZERO, None);
            until(|| f.runs.load(Ordering::SeqCst) == 1).await;
            let switch = f.switches.of("orders");
            let held = hold("orders", switch, Duration::from_secs(5), &f.stop)
                .await
                .expect("the run stops");
            f.stop.cancel();
            drop(held);
            let ended = tokio::time::timeout(Duration::from_secs(5), f.supervisor).await;
            assert_eq!(ended.expect("ends").expect("no panic"), Ok(None));
            assert_eq!(
                f.runs.load(Ordering::SeqCst),
                1,
                "started again in round {round}"
            );
        }
    }

    /// A run that ends by itself (not stopped through the switch) is not run again.
    #[tokio::test]
    async fn a_run_that_ends_by_itself_is_not_run_again() {
        let switch = SinkSwitch::default();
        let stop = CancellationToken::new();
        let runs = AtomicUsize::new(0);
        let ended: Result<Option<()>, ()> = supervise(
            &switch,
            &stop,
            |_| {
                runs.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            },
            || {},
        )
        .await;
        assert_eq!((ended, runs.load(Ordering::SeqCst)), (Ok(Some(())), 1));
    }
}
