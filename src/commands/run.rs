//! `hookbridge run`: start the admin listener, the webhook listener and every sink; on
//! SIGTERM stop in order — stop accepting webhooks, finish in-flight produces, drain
//! deliveries, commit, flush the producer — within one deadline.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::commands::admin;
use crate::commands::console::pause::{supervise, SinkSwitches};
use crate::commands::console::Console;
use crate::config::load::Loaded;
use crate::config::ConfigError;
use crate::connectors::Connectors;
use crate::egress::{self, Timing};
use crate::http;
use crate::ingress::{self, Ingress};
use crate::kafka;
use crate::kafka::producer::Producer;
use crate::telemetry::{Health, Metrics};

/// Runs until a shutdown signal (or `stop` is cancelled) and everything has drained.
pub async fn run(
    loaded: Loaded,
    connectors: Connectors,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let loaded = Arc::new(loaded);
    let s = &loaded.settings;
    let props = s.kafka.resolved_properties(&loaded.file_label())?;
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    health.sinks_starting(connectors.sinks.iter().map(|sink| sink.name.clone()));

    let mut producer_cfg = kafka::client_config(&s.kafka, &kafka::for_producer(&props), &[]);
    let header_bytes = s.http.max_header_bytes.0 as usize;
    let largest = (connectors.sources.iter())
        .map(|src| src.largest_record(header_bytes))
        .max();
    kafka::producer::fit_records(&mut producer_cfg, largest);
    let producer = kafka::producer::build(producer_cfg.clone(), s.kafka.produce_timeout.0)
        .context("creating the Kafka producer")?;
    let dlq_producers = egress::dlq::Producers {
        batched: producer.clone(),
        alone: kafka::producer::build_one_per_batch(producer_cfg, s.kafka.produce_timeout.0)
            .context("creating the Kafka producer")?,
    };

    let admin_listener = tokio::net::TcpListener::bind(s.admin.listen)
        .await
        .with_context(|| format!("binding admin listener {}", s.admin.listen))?;
    let http_listener = http::server::bind(s.http.listen)
        .await
        .with_context(|| format!("binding webhook listener {}", s.http.listen))?;
    tracing::info!(webhooks = %s.http.listen, admin = %s.admin.listen, sources = connectors.sources.len(), sinks = connectors.sinks.len(), "hookbridge started");
    for warning in loaded.unread_env_warnings() {
        tracing::warn!("{warning}");
    }

    let tasks = TaskTracker::new();
    let admin_stop = CancellationToken::new();
    let switches = Arc::new(SinkSwitches::default());
    {
        let console = Console::from_settings(
            loaded.clone(),
            &connectors,
            metrics.clone(),
            stop.clone(),
            switches.clone(),
        )?;
        let app = admin::app(metrics.clone(), health.clone(), console);
        let limits = admin::limits(s);
        tasks.spawn(http::server::serve(
            admin_listener,
            app,
            limits,
            admin_stop.clone(),
        ));
    }
    tasks.spawn(watch_broker(
        producer.clone(),
        health.clone(),
        admin_stop.clone(),
    ));
    for p in [&producer, &dlq_producers.alone] {
        tasks.spawn(stop_on_fatal_error(
            p.clone(),
            health.clone(),
            stop.clone(),
            admin_stop.clone(),
        ));
    }

    let ingress = Arc::new(Ingress::new(
        connectors.sources,
        producer.clone(),
        s.kafka.produce_timeout.0,
        &ingress::Protection::from_settings(&s.http),
        metrics.clone(),
    ));
    for (path, name) in ingress.paths() {
        tracing::info!(source = name, path, "source ready");
    }
    let tls = listener_tls(&loaded)?;
    let limits = http::server::Limits {
        tls,
        ..http::server::Limits::common(&s.http)
    };
    let http = tokio::spawn(http::server::serve(
        http_listener,
        ingress::app(ingress),
        limits,
        stop.clone(),
    ));

    let timing = Timing {
        commit_interval: s.kafka.commit_interval.0,
        drain_timeout: s.shutdown.drain_timeout.0,
        commit_metadata_budget: s.kafka.commit_metadata_max_bytes,
    };
    let shared = egress::Shared {
        metrics: metrics.clone(),
        health: health.clone(),
        memory: Arc::new(
            egress::memory::MemoryBudget::new(s.kafka.buffer_memory.0)
                .reporting(metrics.buffered_bytes.clone()),
        ),
    };
    let mut sinks = Vec::new();
    for sink in connectors.sinks {
        let cfg = kafka::client_config(&s.kafka, &props, kafka::CONSUMER_DEFAULTS);
        let switch = switches.of(&sink.name);
        let (producers, shared, stop) = (dlq_producers.clone(), shared.clone(), stop.clone());
        // A console replay stops the sink for its moment and its supervisor runs it
        // again (see `console::pause`); otherwise a run ends with the process, or fails.
        sinks.push(tokio::spawn(async move {
            let (name, health) = (sink.name.clone(), shared.health.clone());
            let ended = supervise(
                &switch,
                &stop,
                |run| {
                    egress::run_sink(
                        sink.clone(),
                        cfg.clone(),
                        producers.clone(),
                        shared.clone(),
                        timing,
                        run,
                    )
                },
                || {
                    health.sink_restarting();
                    tracing::info!(connector = %name, "sink started again after a console replay");
                },
            )
            .await;
            // A failed run, the first or one after a replay, is a failed sink: not
            // ready, and the process stops (the sink's own stop is only its run's).
            if let Err(e) = &ended {
                if !e.counted_failed() {
                    health.sinks_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(connector = %name, error = %e, "sink failed; shutting the process down");
                }
                stop.cancel();
            }
            (name, ended)
        }));
    }

    stop.cancelled().await;
    // `/readyz` says so at once: the webhook listener stops accepting below, and the
    // admin listener answers until the drain ends.
    health.stopping.store(true, Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + s.shutdown.drain_timeout.0;
    // 1. The listener stops accepting; in-flight webhooks still wait for their acks.
    match tokio::time::timeout_at(deadline, http).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "webhook listener error"),
        Err(_) => tracing::warn!("webhook requests still in flight at the drain deadline"),
        _ => {}
    }
    // 2. Sinks drain in-flight deliveries and commit their watermarks, by the same
    // deadline (each sink measures it from the signal too). A sink that failed, or did
    // not stop in time, makes the process exit non-zero; what it had not committed is
    // delivered again after the restart.
    let mut failed = None;
    for sink in sinks {
        let Ok(stopped) = tokio::time::timeout_at(deadline + SINK_GRACE, sink).await else {
            tracing::error!(
                "a sink did not stop by the drain deadline; exiting without its final commit"
            );
            failed = Some("a sink did not stop by the drain deadline".to_owned());
            continue;
        };
        match stopped {
            Ok((_, Err(e))) => {
                tracing::error!(error = %e, "sink failed");
                failed = Some(e.to_string());
            }
            // Nothing is lost, but the restart delivers again what the sink delivered
            // since its last commit: a stop that was not clean, said by the exit code.
            Ok((name, Ok(Some(egress::Drained::NotCommitted)))) => {
                tracing::error!(connector = %name, "the sink's final commit failed; records it delivered after its last acknowledged commit, if any, will be delivered again");
                failed = Some(format!("sink {name}: its final commit failed"));
            }
            Err(e) => {
                tracing::error!(error = %e, "sink task failed");
                failed = Some(e.to_string());
            }
            Ok((_, Ok(_))) => {}
        }
    }
    // 3. Flush anything still queued in the producer (DLQ writes, late produces). Like
    // everything after the deadline, within the sinks' grace: the process is gone by
    // then (a metadata request of the broker watch left running is not waited for).
    let end = deadline + SINK_GRACE;
    let left = end
        .saturating_duration_since(tokio::time::Instant::now())
        .max(Duration::from_millis(100));
    let flushing = producer.clone();
    let _ = tokio::task::spawn_blocking(move || flushing.flush(left)).await;
    admin_stop.cancel();
    tasks.close();
    let _ = tokio::time::timeout_at(end, tasks.wait()).await;
    tracing::info!("hookbridge stopped");
    if health.producer_failed.load(Ordering::Relaxed) {
        failed.get_or_insert_with(|| "the Kafka producer hit a fatal error".to_owned());
    }
    match failed {
        Some(e) => Err(anyhow::anyhow!(e)),
        None => Ok(()),
    }
}

/// The webhook listener's TLS, from `http.tls`: a file that cannot serve is a
/// configuration error naming its setting (`check` loads it too).
pub fn listener_tls(loaded: &Loaded) -> Result<Option<http::tls::Tls>, ConfigError> {
    let Some(t) = &loaded.settings.http.tls else {
        return Ok(None);
    };
    let tls = http::tls::Tls::from_files(&t.cert, &t.key)
        .map_err(|e| ConfigError::new(loaded.file_label(), e.setting, e.to_string()))?;
    Ok(Some(tls))
}

/// How long past the drain deadline a sink may take to reply and commit synchronously.
const SINK_GRACE: Duration = Duration::from_secs(3);

/// A producer's fatal error stops the process: librdkafka fails every record of that
/// producer from then on, so every webhook would be answered 503 (and every dead letter
/// fail) for as long as it runs, while the broker itself answers. `/readyz` goes down
/// and the process exits non-zero, to be started again with a new producer; nothing is
/// lost (no webhook was answered 2xx without its ack; sinks commit only what finished).
async fn stop_on_fatal_error(
    producer: Producer,
    health: Arc<Health>,
    stop: CancellationToken,
    watching: CancellationToken,
) {
    tokio::select! {
        error = producer.failed() => {
            health.producer_failed.store(true, Ordering::Relaxed);
            tracing::error!(%error, "the Kafka producer hit a fatal error and can send nothing more; shutting the process down to start with a new one");
            stop.cancel();
        }
        _ = watching.cancelled() => {}
    }
}

/// How long the cluster may leave metadata requests unanswered before `/readyz` says
/// the broker is unreachable. librdkafka asks one broker, and one that just died can
/// let a request time out while the others answer: a single miss would take every
/// replica out of the load balancer at once, for nothing.
const UNANSWERED_GRACE: Duration = Duration::from_secs(10);

/// Whether the broker counts as reachable: it answered within [`UNANSWERED_GRACE`]
/// before `now` (never, until it first answers).
fn reachable(last_answer: Option<Instant>, now: Instant) -> bool {
    last_answer.is_some_and(|at| now.saturating_duration_since(at) < UNANSWERED_GRACE)
}

/// Keeps `/readyz` honest: asks the broker for metadata every few seconds.
async fn watch_broker(producer: Producer, health: Arc<Health>, stop: CancellationToken) {
    let mut last_answer = None;
    loop {
        let p = producer.clone();
        let ok = tokio::task::spawn_blocking(move || {
            p.client()
                .fetch_metadata(None, Duration::from_secs(3))
                .is_ok()
        })
        .await
        .unwrap_or(false);
        let now = Instant::now();
        if ok {
            last_answer = Some(now);
        }
        (health.broker_reachable).store(reachable(last_answer, now), Ordering::Relaxed);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(if ok { 5 } else { 1 })) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One unanswered request does not make the broker unreachable; ten seconds of
    /// them do; nothing is reachable before a first answer.
    #[test]
    fn the_broker_is_unreachable_only_after_the_grace() {
        let t = Instant::now();
        assert!(!reachable(None, t));
        assert!(reachable(Some(t), t));
        assert!(reachable(Some(t), t + Duration::from_secs(4)));
        assert!(reachable(
            Some(t),
            t + UNANSWERED_GRACE - Duration::from_millis(1)
        ));
        assert!(!reachable(Some(t), t + UNANSWERED_GRACE));
    }

    /// A producer's fatal error takes `/readyz` down and stops the process, which then
    /// exits non-zero (`run` reads the same flag).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fatal_producer_error_stops_the_process_unready() {
        let mut cfg = rdkafka::ClientConfig::new();
        cfg.set("test.mock.num.brokers", "1");
        let producer = kafka::producer::build(cfg, Duration::from_secs(5)).expect("a producer");
        let health = Arc::new(Health::default());
        health.broker_reachable.store(true, Ordering::Relaxed);
        assert!(health.ready());
        let (stop, watching) = (CancellationToken::new(), CancellationToken::new());
        let watch = tokio::spawn(stop_on_fatal_error(
            producer.clone(),
            health.clone(),
            stop.clone(),
            watching.clone(),
        ));
        producer.fence_for_test(c"fenced by a newer producer");
        tokio::time::timeout(Duration::from_secs(30), stop.cancelled())
            .await
            .expect("the process is told to stop");
        assert_eq!(
            health.unready_because(),
            Some("the Kafka producer failed; stopping")
        );
        watch.await.expect("the watch ends");
    }

    /// Without a fatal error the watch ends with the admin listener, stopping nothing.
    #[tokio::test]
    async fn the_fatal_error_watch_ends_quietly_at_shutdown() {
        let mut cfg = rdkafka::ClientConfig::new();
        cfg.set("test.mock.num.brokers", "1");
        let producer = kafka::producer::build(cfg, Duration::from_secs(5)).expect("a producer");
        let health = Arc::new(Health::default());
        let (stop, watching) = (CancellationToken::new(), CancellationToken::new());
        watching.cancel();
        stop_on_fatal_error(producer, health.clone(), stop.clone(), watching).await;
        assert!(!stop.is_cancelled() && !health.producer_failed.load(Ordering::Relaxed));
    }
}
