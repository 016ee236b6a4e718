//! librdkafka's own reports, its log lines and its global errors, written to hookbridge's
//! log as rust-rdkafka writes them, but each kind at most once per [`EVERY`], with the
//! count of reports like it held back since ([`Repeats`]). A kind is the error or log
//! facility and what the text is about (the broker or thread it starts with), so a
//! second broker failing is written at once. Debug lines, which an operator asks for
//! with librdkafka's `debug` property, are all written.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

use super::repeats::Repeats;

/// At most one report of a kind per this long.
pub const EVERY: Duration = Duration::from_secs(30);

/// The reports of one client (a sink's consumer, the producer).
#[derive(Debug)]
pub struct ClientLog(Mutex<Repeats>);

impl Default for ClientLog {
    fn default() -> Self {
        ClientLog(Mutex::new(Repeats::new(EVERY)))
    }
}

impl ClientLog {
    /// Whether a report of `kind` is written now: `Some` with how many like it were held
    /// back since the last one written.
    pub fn admit(&self, kind: &str) -> Option<u64> {
        let mut repeats = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        repeats.admit(kind, Instant::now())
    }

    /// A global error (librdkafka's error callback).
    pub fn error(&self, error: &KafkaError, reason: &str) {
        if let Some(held_back) = self.admit(&format!("{error}: {}", about(reason))) {
            tracing::error!(target: "librdkafka", "librdkafka: {error}: {reason}{}", since(held_back));
        }
    }

    /// A log line of librdkafka.
    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let held_back = match level {
            RDKafkaLogLevel::Debug => 0,
            _ => match self.admit(&format!("{fac} {}", about(message))) {
                Some(n) => n,
                None => return,
            },
        };
        let more = since(held_back);
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "librdkafka: {fac} {message}{more}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", "librdkafka: {fac} {message}{more}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "librdkafka: {fac} {message}{more}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", "librdkafka: {fac} {message}")
            }
        }
    }
}

/// What a report's text is about: what it starts with before `": "` (a broker,
/// `host:port/id`, or librdkafka's thread, `[thrd:…]`), else nothing.
pub fn about(text: &str) -> &str {
    text.split_once(": ").map_or("", |(head, _)| head)
}

/// The end of a line written after others like it were held back.
pub fn since(held_back: u64) -> String {
    match held_back {
        0 => String::new(),
        n => format!(" ({n} more like it not written since the last)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_about_the_broker_or_thread_its_text_starts_with() {
        let fail = "[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed";
        assert_eq!(about(fail), "[thrd:127.0.0.1:1/bootstrap]");
        assert_eq!(about("10.0.0.2:9092/2: Disconnected"), "10.0.0.2:9092/2");
        assert_eq!(about("1/1 brokers are down"), "");
    }

    #[test]
    fn repeats_of_a_kind_are_held_back_and_counted_other_kinds_not() {
        let log = ClientLog::default();
        assert_eq!(log.admit("AllBrokersDown: "), Some(0));
        assert_eq!(log.admit("AllBrokersDown: "), None);
        assert_eq!(log.admit("AllBrokersDown: "), None);
        assert_eq!(
            log.admit("BrokerTransportFailure: 10.0.0.2:9092/2"),
            Some(0)
        );
        assert_eq!(since(0), "");
        assert_eq!(since(2), " (2 more like it not written since the last)");
    }
}
