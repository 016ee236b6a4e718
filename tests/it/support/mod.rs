//! Test fixtures: a real Apache Kafka broker (shared per test binary, or a test's own
//! node or 3-node cluster), the real `hookbridge` binary, an
//! independent Kafka client (Python confluent-kafka) and loopback HTTP receivers.

pub mod audit;
pub mod broker;
pub mod cluster;
pub mod connectors;
pub mod hookbridge;
pub mod kafka;
pub mod processes;
pub mod receiver;
pub mod scenario;

use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Waits until `condition` holds, asking again every 50 ms; panics naming `what` (and
/// what `condition` last said) after `timeout`. Tests synchronise on this, never on a
/// fixed sleep: on a loaded 2-core machine any fixed pause is sometimes too short, and a
/// condition also says what the test waited for. `timeout` is a bound for a loaded
/// machine, not an expectation.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A loopback port for a process the test starts (a broker, hookbridge), which binds it
/// later, and again after each restart. Taken below the kernel's ephemeral range, so an
/// outgoing connection of this or any process is never given it as its own port in the
/// meantime; each port is handed out once per test binary, starting at a place that
/// differs per process, and only if it can be bound now.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = below_ephemeral();
    let span = u32::from(high - low);
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = low + ((start + i) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// Ports from 10000 up to the first one the kernel hands out to outgoing connections
/// (`net.ipv4.ip_local_port_range`, 32768 by default).
fn below_ephemeral() -> (u16, u16) {
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|&p| p > 12_000)
        .unwrap_or(32_768);
    (10_000, first_ephemeral)
}

/// A TCP connection from `from` to the loopback `port` (any 127.0.0.0/8 address works as
/// a source on Linux loopback), so a test can speak as several client addresses.
pub async fn connect_from(from: Ipv4Addr, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((from, 0).into())?;
    socket.connect((Ipv4Addr::LOCALHOST, port).into()).await
}

/// `X-Hub-Signature-256` for `body`, computed here rather than by hookbridge's signer.
pub fn github_sig(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A topic name no other test uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Fresh differential vectors from `scripts/sdk-vectors.sh` (with `args` after the output
/// file), parsed; in a file of the calling test's own (`name`): tests run concurrently.
pub fn sdk_vectors<T: serde::de::DeserializeOwned>(name: &str, args: &[&str]) -> T {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sdk-vectors-{name}-{}.json", std::process::id()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sdk-vectors.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .arg(&out)
        .args(args)
        .status()
        .expect("run scripts/sdk-vectors.sh");
    assert!(status.success(), "generating SDK vectors failed");
    serde_json::from_slice(&std::fs::read(&out).expect("vectors file")).expect("vectors JSON")
}
