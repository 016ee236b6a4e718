//! `acks=all` shown on a 3-node Apache Kafka cluster: a single node cannot tell `acks=1`
//! from `acks=all`, three can. With a follower of the topic's partition frozen (still in
//! the in-sync set: its session and replica lag limits are raised for the test), the
//! leader holds the produce until every in-sync replica has the record, so a webhook is
//! not answered 2xx; once the follower runs again, it is.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::support::cluster::Cluster;
use crate::support::connectors::SourceToml;
use crate::support::hookbridge::{Config, Hookbridge};
use crate::support::kafka;
use crate::support::{github_sig, unique};

const SECRET: &str = "gh-acks-secret-5d1a";

/// The node indexes of the leader and the followers of `topic`'s partition 0.
fn replicas(cluster: &Cluster, topic: &str) -> (usize, Vec<usize>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .create()
        .expect("metadata client");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let node_of = |id: i32| {
        let broker = md.brokers().iter().find(|b| b.id() == id).expect("broker");
        cluster
            .index_of_port(broker.port() as u16)
            .expect("a node of the cluster")
    };
    let p = &md.topics()[0].partitions()[0];
    let leader = node_of(p.leader());
    let followers = p
        .replicas()
        .iter()
        .filter(|&&r| r != p.leader())
        .map(|&r| node_of(r))
        .collect();
    (leader, followers)
}

async fn post(hb: &Hookbridge, delivery: &str) -> reqwest::StatusCode {
    let body = format!("{{\"delivery\":\"{delivery}\"}}");
    reqwest::Client::new()
        .post(hb.url("/webhooks/github"))
        .header("X-Hub-Signature-256", github_sig(SECRET, body.as_bytes()))
        .header("X-GitHub-Delivery", delivery)
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("an answer")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_answered_2xx_only_once_every_in_sync_replica_has_it() {
    // A frozen broker stays registered and in sync: nothing but acks=all holds the answer.
    let cluster = Cluster::start_with(
        3,
        "broker.session.timeout.ms=120000\nreplica.lag.time.max.ms=120000",
    );
    let topic = unique("acks-all");
    cluster.create_topic(&topic, 1);
    let (_leader, followers) = replicas(&cluster, &topic);
    assert_eq!(followers.len(), 2, "replicated on all three nodes");
    let source = SourceToml::new("github", "/webhooks/github", &topic)
        .verify_secrets("github", &["${GH_SECRET}"])
        .key("header:X-GitHub-Delivery")
        .render();
    let mut hb = Hookbridge::start(
        &Config::new(&cluster.bootstrap())
            .connector("github.toml", &source)
            .env("GH_SECRET", SECRET),
    );
    hb.ready(Duration::from_secs(60)).await;
    assert!(post(&hb, "before").await.is_success());

    let frozen = followers[0];
    cluster.signal(frozen, "-STOP");
    // The leader has the record, one follower too: acks=1 would answer now. hookbridge
    // waits for the third, until kafka.produce_timeout (3 s in the tests), then 503.
    let status = post(&hb, "frozen").await;
    cluster.signal(frozen, "-CONT");
    assert_eq!(
        status,
        reqwest::StatusCode::SERVICE_UNAVAILABLE,
        "answered while an in-sync replica lacked the record"
    );

    // The follower runs again: the sender's retry is answered 2xx once it has it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = post(&hb, "frozen").await;
        if status.is_success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never answered 2xx after the follower came back: {status}"
        );
    }
    let records = kafka::read(&cluster.bootstrap(), &topic, Some(2), 30.0).await;
    let keys: Vec<&[u8]> = records.iter().filter_map(|r| r.key.as_deref()).collect();
    assert!(
        keys.contains(&&b"before"[..]) && keys.contains(&&b"frozen"[..]),
        "{keys:?}"
    );
}
