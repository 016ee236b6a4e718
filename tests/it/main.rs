//! hookbridge's integration tests: the real binary against a real Kafka-protocol broker
//! (Tansu) and real loopback HTTP servers, checked with an independent Kafka client.

mod acks;
mod batching;
mod check;
mod console;
mod console_browser;
mod dlq_inspect;
mod egress;
mod fetched_keys;
mod hostile;
mod ingress;
mod jq_workers;
mod operate;
mod ops;
mod pacing;
mod providers;
mod redelivery;
mod routing;
mod send;
mod shaping;
mod shares;
mod shutdown;
mod sink_auth;
mod support;
