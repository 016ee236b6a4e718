//! The common preamble of a test as one fixture: a broker, the test's own topic (and its
//! DLQ topic when asked), a loopback receiver for a sink, and one hookbridge process
//! started with the given connectors and waited on until `/readyz` answers 200.
//!
//! ```ignore
//! let Scenario { broker, topic, dlq, rx, mut hb } = Setup::new("orders")
//!     .partitions(4)
//!     .dlq()
//!     .sink(|_| Answer::status(200), |n| SinkToml::new(&n.topic, &n.url).dlq(&n.dlq))
//!     .await;
//! ```
//!
//! A test that needs another shape (two processes, a broker it stops, several sinks) builds
//! the same pieces itself from `broker`, `receiver` and `hookbridge`.

use std::time::Duration;

use super::broker::Broker;
use super::connectors::{SinkToml, SourceToml};
use super::hookbridge::{Config, Hookbridge};
use super::receiver::{Answer, Received, Receiver};
use super::unique;

/// How long hookbridge may take to become ready: a first group assignment on a loaded
/// 2-core machine, with margin.
pub const READY_WITHIN: Duration = Duration::from_secs(40);

/// What a test's connectors are written against.
pub struct Names {
    pub topic: String,
    /// `<topic>.dlq`; created only after [`Setup::dlq`].
    pub dlq: String,
    /// The receiver's URL (empty for a source scenario).
    pub url: String,
}

/// A running scenario; destructure it into the test's locals. `rx` is the [`Receiver`]
/// of a sink scenario, `()` for a source one.
pub struct Scenario<R = ()> {
    pub broker: Broker,
    pub topic: String,
    pub dlq: String,
    pub rx: R,
    pub hb: Hookbridge,
}

/// What a scenario starts with, set before [`sink`](Setup::sink) or
/// [`source`](Setup::source) starts it.
pub struct Setup {
    broker: Option<Broker>,
    prefix: String,
    partitions: u32,
    dlq: bool,
    config: Box<dyn FnOnce(Config) -> Config>,
}

impl Setup {
    /// The shared broker, a topic `<prefix>-…` of one partition.
    pub fn new(prefix: &str) -> Self {
        Setup {
            broker: None,
            prefix: prefix.to_owned(),
            partitions: 1,
            dlq: false,
            config: Box::new(|c| c),
        }
    }

    /// On `broker` instead of the shared one (`Broker::own()` for a test that stops it).
    pub fn on(mut self, broker: Broker) -> Self {
        self.broker = Some(broker);
        self
    }

    pub fn partitions(mut self, n: u32) -> Self {
        self.partitions = n;
        self
    }

    /// Creates `<topic>.dlq` (one partition) too.
    pub fn dlq(mut self) -> Self {
        self.dlq = true;
        self
    }

    /// Anything else the process needs: environment, librdkafka properties, settings.
    pub fn config(mut self, f: impl FnOnce(Config) -> Config + 'static) -> Self {
        let before = self.config;
        self.config = Box::new(move |c| f(before(c)));
        self
    }

    /// Shorthand for one environment variable of the process (a connector's secret).
    pub fn env(self, k: &str, v: &str) -> Self {
        let (k, v) = (k.to_owned(), v.to_owned());
        self.config(move |c| c.env(&k, &v))
    }

    fn topics(&mut self) -> (Broker, Names) {
        let broker = self.broker.take().unwrap_or_else(Broker::start);
        let topic = unique(&self.prefix);
        broker.create_topic(&topic, self.partitions);
        let dlq = format!("{topic}.dlq");
        if self.dlq {
            broker.create_topic(&dlq, 1);
        }
        let names = Names {
            topic,
            dlq,
            url: String::new(),
        };
        (broker, names)
    }

    async fn run(self, broker: &Broker, file: &str, connector: String) -> Hookbridge {
        let cfg = (self.config)(Config::new(&broker.addr()).connector(file, &connector));
        let mut hb = Hookbridge::start(&cfg);
        hb.ready(READY_WITHIN).await;
        hb
    }

    /// A sink scenario: a receiver answering as `answer` scripts, and hookbridge running
    /// the sink `sink` writes.
    pub async fn sink(
        mut self,
        answer: impl Fn(&Received) -> Answer + Send + Sync + 'static,
        sink: impl FnOnce(&Names) -> SinkToml,
    ) -> Scenario<Receiver> {
        let (broker, mut names) = self.topics();
        let rx = Receiver::start(answer).await;
        names.url = rx.url.clone();
        let hb = self
            .run(&broker, "orders.toml", sink(&names).render())
            .await;
        Scenario {
            broker,
            topic: names.topic,
            dlq: names.dlq,
            rx,
            hb,
        }
    }

    /// A source scenario: hookbridge running the source `source` writes.
    pub async fn source(mut self, source: impl FnOnce(&Names) -> SourceToml) -> Scenario {
        let (broker, names) = self.topics();
        let hb = self
            .run(&broker, "github.toml", source(&names).render())
            .await;
        Scenario {
            broker,
            topic: names.topic,
            dlq: names.dlq,
            rx: (),
            hb,
        }
    }
}
