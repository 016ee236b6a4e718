//! librdkafka's own reports, its log lines and its global errors, written to hookbridge's
//! log as rust-rdkafka writes them (same levels and targets), but each kind at most once
//! per [`EVERY`], with the count of reports like it held back since ([`Repeats`]). A
//! kind is the error or log facility and the report's text up to the details librdkafka
//! adds in parentheses (`(after 0ms in state CONNECT)`, counts of errors it suppressed
//! itself): a failure that repeats is one kind, while a report naming another broker,
//! partition, topic or property is a kind of its own and written at once. Debug lines,
//! which an operator asks for with librdkafka's `debug` property, are all written.

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

pub use crate::telemetry::repeats::EVERY;
use crate::telemetry::reports::Reports;

/// The reports of one client (a sink's consumer, the producer).
#[derive(Debug, Default)]
pub struct ClientLog(Reports);

impl ClientLog {
    /// Whether a report of `kind` is written now: `Some` with how many like it were held
    /// back since the last one written.
    pub fn admit(&self, kind: &str) -> Option<u64> {
        self.0.admit(kind)
    }

    /// A global error (librdkafka's error callback).
    pub fn error(&self, error: &KafkaError, reason: &str) {
        if let Some(held_back) = self.admit(&format!("{error}: {}", kind_of(reason))) {
            let more = since(held_back);
            tracing::error!(target: "rdkafka::client", "librdkafka: {error}: {reason}{more}");
        }
    }

    /// A log line of librdkafka.
    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let held_back = match level {
            RDKafkaLogLevel::Debug => 0,
            _ => match self.admit(&format!("{fac} {}", kind_of(message))) {
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

/// What makes a report's text the same kind as another: all of it up to the details
/// librdkafka adds in parentheses, which change from one repeat to the next.
fn kind_of(text: &str) -> &str {
    text.split_once(" (").map_or(text, |(head, _)| head)
}

/// The end of a line written after others like it were held back.
fn since(held_back: u64) -> String {
    match held_back {
        0 => String::new(),
        n => format!(" ({n} more like it not written since the last)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_failure_is_one_kind_and_reports_naming_other_things_are_not() {
        let fail = |after: &str| {
            format!("[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after {after} in state CONNECT)")
        };
        assert_eq!(kind_of(&fail("0ms")), kind_of(&fail("12ms")));
        let other = "[thrd:10.0.0.2:9092/2]: 10.0.0.2:9092/2: Connect to ipv4#10.0.0.2:9092 failed: Connection refused (after 0ms in state CONNECT)";
        assert_ne!(kind_of(&fail("0ms")), kind_of(other));
        // One-time reports of the main thread, each about its own partition or property.
        let reset = |p: u32| {
            format!("[thrd:main]: orders [{p}]: offset reset (at offset 10) to END: fetch failed due to requested offset not available on the broker")
        };
        assert_ne!(kind_of(&reset(0)), kind_of(&reset(1)));
        assert_ne!(
            kind_of("[thrd:app]: Configuration property fetch.wait.max.ms is a consumer property and will be ignored by this producer instance"),
            kind_of("[thrd:app]: Configuration property session.timeout.ms is a consumer property and will be ignored by this producer instance"),
        );
        assert_eq!(kind_of("1/1 brokers are down"), "1/1 brokers are down");
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
