//! Stopping one sink of this process for a console replay, and starting it again.
//!
//! A replay moves the sink's group back, which Kafka allows only while the group has no
//! live member, and this process is one. So the console stops this process's consumer of
//! the sink (a graceful stop: in-flight deliveries drain, the watermark is committed, the
//! consumer leaves the group), runs the replay exactly as `hookbridge replay` does (still
//! refused while other processes run the sink), and starts the sink again, which resumes
//! from the rewound offsets. `run` runs each sink under a [`SinkSwitch`] for this.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One sink's run in this process, which the console can pause.
#[derive(Debug)]
pub struct SinkSwitch {
    /// Cancels the current run of the sink.
    current: Mutex<CancellationToken>,
    /// Set while a console action holds the sink stopped.
    paused: watch::Sender<bool>,
    /// Set once the current run has ended.
    stopped: watch::Sender<bool>,
}

impl Default for SinkSwitch {
    fn default() -> Self {
        SinkSwitch {
            current: Mutex::default(),
            paused: watch::Sender::new(false),
            stopped: watch::Sender::new(false),
        }
    }
}

/// What the sink's runner does once a run has ended.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterRun {
    /// The run ended on its own or with the process: so does the runner.
    End,
    /// The console paused it and resumed it: run again.
    RunAgain,
}

impl SinkSwitch {
    /// The token of a new run, a child of the process's `stop`.
    pub fn starting(&self, stop: &CancellationToken) -> CancellationToken {
        let run = stop.child_token();
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = run.clone();
        self.stopped.send_replace(false);
        run
    }

    /// Called when a run ended (`ok`: without an error): waits while the console holds
    /// the sink paused, and says whether to run it again.
    pub async fn ended(&self, ok: bool, stop: &CancellationToken) -> AfterRun {
        self.stopped.send_replace(true);
        if !ok || stop.is_cancelled() || !*self.paused.borrow() {
            return AfterRun::End;
        }
        let mut paused = self.paused.subscribe();
        tokio::select! {
            _ = stop.cancelled() => AfterRun::End,
            _ = paused.wait_for(|p| !*p) => AfterRun::RunAgain,
        }
    }
}

/// Every sink this process runs, by name.
#[derive(Debug, Default)]
pub struct SinkSwitches(Mutex<HashMap<String, Arc<SinkSwitch>>>);

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

    /// Stops this process's run of sink `name` and waits (up to `wait`) until it has
    /// drained and left the group; the sink runs again when the guard is dropped. `None`
    /// when this process does not run the sink. Err when it did not stop in time (it is
    /// started again at once).
    pub async fn pause(&self, name: &str, wait: Duration) -> Result<Option<Paused>, String> {
        let Some(switch) = self.get(name) else {
            return Ok(None);
        };
        let mut stopped = switch.stopped.subscribe();
        switch.paused.send_replace(true);
        let guard = Paused(switch.clone());
        switch
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cancel();
        let done = tokio::time::timeout(wait, stopped.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok());
        if done {
            Ok(Some(guard))
        } else {
            Err(format!(
                "sink {name:?} did not stop within {wait:?}; it goes on running"
            ))
        }
    }
}

/// A sink held stopped; it runs again when this is dropped.
#[derive(Debug)]
pub struct Paused(Arc<SinkSwitch>);

impl Drop for Paused {
    fn drop(&mut self) {
        self.0.paused.send_replace(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_paused_sink_runs_again_once_resumed_and_ends_with_the_process() {
        let switches = Arc::new(SinkSwitches::default());
        let stop = CancellationToken::new();
        let switch = switches.of("orders");
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let runner = {
            let (switch, stop, runs) = (switch.clone(), stop.clone(), runs.clone());
            tokio::spawn(async move {
                loop {
                    let run = switch.starting(&stop);
                    runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    run.cancelled().await;
                    if switch.ended(true, &stop).await == AfterRun::End {
                        return;
                    }
                }
            })
        };
        tokio::task::yield_now().await;
        while runs.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(switches
            .pause("billing", Duration::from_secs(1))
            .await
            .expect("no such sink here")
            .is_none());
        let paused = switches
            .pause("orders", Duration::from_secs(5))
            .await
            .expect("stopped")
            .expect("runs here");
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        drop(paused);
        while runs.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), runner)
            .await
            .expect("the runner ends with the process")
            .expect("no panic");
    }
}
