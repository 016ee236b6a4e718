//! Apache Kafka 4 in KRaft mode for tests: one node or a 3-node cluster on free loopback
//! ports, started from the jars `scripts/ensure-kafka.sh` caches, with single nodes
//! killed -9 and restarted on their own data. Each node runs under
//! `scripts/kafka-node.sh`, which kills it when the test binary exits, so a shared
//! cluster held in a static never outlives its tests.

// Some helpers serve only the chaos suite.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use super::free_port;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// The broker jars: `$HOOKBRIDGE_KAFKA_LIBS`, else what `scripts/ensure-kafka.sh` prints.
fn libs() -> PathBuf {
    if let Ok(p) = std::env::var("HOOKBRIDGE_KAFKA_LIBS") {
        return PathBuf::from(p);
    }
    let out = Command::new("bash")
        .arg(format!("{MANIFEST}/scripts/ensure-kafka.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/ensure-kafka.sh");
    assert!(out.status.success(), "scripts/ensure-kafka.sh failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// One KRaft node (broker and controller in one process).
struct Node {
    id: u32,
    port: u16,
    controller_port: u16,
    dir: PathBuf,
    launcher: Option<Child>,
}

/// A running cluster. Nodes are killed when it is dropped.
pub struct Cluster {
    nodes: Vec<Node>,
    libs: PathBuf,
    /// Holds every node's data; removed on drop (a shared cluster is never dropped: its
    /// launchers remove the data when the test binary exits).
    root: Option<tempfile::TempDir>,
}

/// A cluster id is 16 bytes in URL-safe base64 without padding: 22 characters.
fn cluster_id() -> String {
    use base64::Engine;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn server_properties(node: &Node, voters: &str, size: usize) -> String {
    let rf = size.min(3);
    let min_isr = rf.min(2);
    format!(
        "process.roles=broker,controller
node.id={id}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.quorum.voters={voters}
log.dirs={dir}/data
auto.create.topics.enable=true
# Records up to 8 MiB, as on a cluster set up for large webhooks (max_body above 1 MiB
# needs the topic's max.message.bytes raised; Kafka's default is 1 MiB + 12 bytes).
message.max.bytes=8388608
num.partitions=1
default.replication.factor={rf}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={rf}
offsets.topic.num.partitions=3
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={min_isr}
share.coordinator.state.topic.replication.factor={rf}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
group.consumer.min.session.timeout.ms=1000
group.consumer.session.timeout.ms=6000
group.consumer.min.heartbeat.interval.ms=500
group.consumer.heartbeat.interval.ms=1000
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
replica.lag.time.max.ms=5000
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=4194304
",
        id = node.id,
        port = node.port,
        cport = node.controller_port,
        dir = node.dir.display(),
    )
}

impl Cluster {
    /// Formats and starts `size` nodes (1 or 3) and waits until every one serves metadata.
    pub fn start(size: usize) -> Self {
        Self::start_in(size, None, "")
    }

    /// Like [`start`](Self::start), with more broker settings (`key=value` lines, which
    /// override the test defaults).
    pub fn start_with(size: usize, settings: &str) -> Self {
        Self::start_in(size, None, settings)
    }

    /// Like [`start`](Self::start), for a cluster kept in a static: its data lives in a
    /// plain directory that the node launchers remove when the test binary exits.
    pub fn start_shared(size: usize) -> Self {
        let dir = std::env::temp_dir().join(format!("hookbridge-kafka-{}", std::process::id()));
        Self::start_in(size, Some(dir), "")
    }

    fn start_in(size: usize, shared: Option<PathBuf>, settings: &str) -> Self {
        let libs = libs();
        // Ports are free when chosen, not reserved: another process may take one before
        // the JVM binds it. Then the node exits at once and the cluster starts again on
        // new ports.
        let mut last = String::new();
        for attempt in 0..3 {
            let (root, base) = match &shared {
                Some(dir) => {
                    // Named after this process's pid: a directory left by an earlier
                    // process with the same pid would hold another cluster's data.
                    let base = PathBuf::from(format!("{}-{attempt}", dir.display()));
                    let _ = std::fs::remove_dir_all(&base);
                    (None, base)
                }
                None => {
                    let t = tempfile::Builder::new()
                        .prefix("hookbridge-kafka-")
                        .tempdir()
                        .expect("kafka data dir");
                    let p = t.path().to_path_buf();
                    (Some(t), p)
                }
            };
            let mut nodes: Vec<Node> = (1..=size as u32)
                .map(|id| Node {
                    id,
                    port: free_port(),
                    controller_port: free_port(),
                    dir: base.join(format!("node-{id}")),
                    launcher: None,
                })
                .collect();
            let voters = nodes
                .iter()
                .map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port))
                .collect::<Vec<_>>()
                .join(",");
            let id = cluster_id();
            for n in &nodes {
                std::fs::create_dir_all(&n.dir).expect("node dir");
                std::fs::write(
                    n.dir.join("server.properties"),
                    format!("{}{settings}\n", server_properties(n, &voters, size)),
                )
                .expect("server.properties");
                std::fs::write(n.dir.join("cluster-id"), &id).expect("cluster-id");
            }
            for n in nodes.iter_mut() {
                n.launcher = Some(launch(&libs, &n.dir));
            }
            let mut c = Cluster {
                nodes,
                libs: libs.clone(),
                root,
            };
            match c.wait_serving(Duration::from_secs(90)) {
                Ok(()) => return c,
                // Dropping `c` kills whatever started.
                Err(e) => last = e,
            }
        }
        panic!("Apache Kafka did not start: {last}");
    }

    /// `host:port,…` of every node, for client configs.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client port of node `i` (0-based).
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// Node index (0-based) whose client port is `port`.
    pub fn index_of_port(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.port == port)
    }

    /// SIGKILL to node `i` (its JVM and launcher): no shutdown, no flush.
    pub fn kill9(&mut self, i: usize) {
        stop_node(&mut self.nodes[i]);
        // Wait until the port is closed, so "down" means down.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.nodes[i].port)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to node `i`'s JVM: a broker that is frozen,
    /// not gone (its connections stay open and answer nothing).
    pub fn signal(&self, i: usize, signal: &str) {
        let pid = std::fs::read_to_string(self.nodes[i].dir.join("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .filter(|&p| p > 1)
            .expect("the node's pid file");
        let ok = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {signal} {pid}");
    }

    /// Starts node `i` again on its data and ports; waits until the cluster lists it.
    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].launcher.is_none(), "node {i} is running");
        self.nodes[i].launcher = Some(launch(&self.libs, &self.nodes[i].dir));
        if let Err(e) = self.wait_serving(Duration::from_secs(90)) {
            panic!("node {} did not come back: {e}", self.nodes[i].id);
        }
    }

    /// Waits until every running node accepts connections and the metadata (asked of
    /// each running node) lists them all as live brokers.
    fn wait_serving(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].launcher.is_some())
            .collect();
        loop {
            for &i in &running {
                let n = &mut self.nodes[i];
                if let Some(status) = n
                    .launcher
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    n.launcher = None;
                    return Err(format!(
                        "node {} exited with {status}:\n{}",
                        n.id,
                        node_logs(&n.dir)
                    ));
                }
            }
            let live = running.iter().all(|&i| {
                let expected: Vec<i32> = running.iter().map(|&j| self.nodes[j].id as i32).collect();
                brokers_seen_by(self.nodes[i].port)
                    .is_some_and(|ids| expected.iter().all(|id| ids.contains(id)))
            });
            if live {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not serving metadata after {timeout:?}:\n{}",
                    node_logs(&self.nodes[running[0]].dir)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Creates `name` with `partitions` partitions (replicated on every node, up to 3)
    /// and waits until each partition has a leader.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        create_topic(&self.bootstrap(), name, partitions);
    }

    /// A broker's log (for a failing test's message).
    pub fn log(&self, i: usize) -> String {
        tail(&self.nodes[i].dir.join("broker.log"), 80)
    }
}

/// An admin client of the cluster, whose requests time out after 30 s.
fn admin(bootstrap: &str) -> (AdminClient<DefaultClientContext>, AdminOptions) {
    let admin = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    (admin, opts)
}

/// Runs an admin request to its end. Callers are sync (inside async tests): the future
/// runs on a runtime of its own, on a thread of its own.
fn finish<F>(request: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(request)
        })
        .join()
        .expect("admin thread")
    })
}

/// Creates a topic through rdkafka's admin API with the broker's default replication,
/// then waits until metadata shows a leader for every partition.
pub fn create_topic(bootstrap: &str, name: &str, partitions: u32) {
    let topic = NewTopic::new(name, partitions as i32, TopicReplication::Fixed(-1));
    let (admin, opts) = admin(bootstrap);
    let results = finish(admin.create_topics([&topic], &opts)).expect("create topic");
    for r in results {
        if let Err((t, e)) = r {
            assert!(
                e == rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
                "create topic {t}: {e}"
            );
        }
    }
    wait_for_metadata(bootstrap, &format!("topic {name} has no leaders"), |md| {
        md.topics().iter().any(|t| {
            t.name() == name
                && t.error().is_none()
                && t.partitions().len() == partitions as usize
                && t.partitions().iter().all(|p| p.leader() >= 0)
        })
    });
}

/// Asks the cluster for its metadata every 100 ms until `ready` says so; panics with
/// `failure` after 30 s.
fn wait_for_metadata(
    bootstrap: &str,
    failure: &str,
    ready: impl Fn(&rdkafka::metadata::Metadata) -> bool,
) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("metadata client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let md = consumer.fetch_metadata(None, Duration::from_secs(5)).ok();
        if md.as_ref().is_some_and(&ready) {
            return;
        }
        assert!(Instant::now() < deadline, "{failure}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Deletes a topic through rdkafka's admin API and waits until metadata no longer has
/// it, so a topic of the same name can be created anew.
#[allow(dead_code)] // used by some suites only
pub fn delete_topic(bootstrap: &str, name: &str) {
    let (admin, opts) = admin(bootstrap);
    let results = finish(admin.delete_topics(&[name], &opts)).expect("delete topic");
    for r in results {
        if let Err((t, e)) = r {
            panic!("delete topic {t}: {e}");
        }
    }
    wait_for_metadata(bootstrap, &format!("topic {name} is still listed"), |md| {
        md.topics().iter().all(|t| t.name() != name)
    });
}

/// The live broker ids one node reports, if it answers.
fn brokers_seen_by(port: u16) -> Option<Vec<i32>> {
    if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        return None;
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("log_level", "0")
        .create()
        .ok()?;
    let md = consumer.fetch_metadata(None, Duration::from_secs(2)).ok()?;
    Some(md.brokers().iter().map(|b| b.id()).collect())
}

/// The end of a node's launcher output (a Java too old, a storage format that failed)
/// and of its broker log, for a failing start's message.
fn node_logs(dir: &Path) -> String {
    format!(
        "launcher:\n{}\nbroker.log:\n{}",
        tail(&dir.join("launcher.log"), 20),
        tail(&dir.join("broker.log"), 30)
    )
}

fn launch(libs: &Path, dir: &Path) -> Child {
    use std::os::unix::process::CommandExt;
    let _ = std::fs::remove_file(dir.join("pid"));
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("launcher.log"))
        .expect("launcher.log");
    Command::new("bash")
        .arg(format!("{MANIFEST}/scripts/kafka-node.sh"))
        .arg(libs)
        .arg(dir)
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("launcher.log"))
        .stderr(out)
        // Its own process group: a Ctrl-C meant for the tests does not reach it first.
        .process_group(0)
        .spawn()
        .expect("start scripts/kafka-node.sh")
}

/// SIGKILL to a node's JVM (its pid file) and launcher. Never a process-group kill:
/// procps-ng 4.0.2's `kill -9 -PGID` signalled every process on the machine.
fn stop_node(node: &mut Node) {
    let Some(mut launcher) = node.launcher.take() else {
        return;
    };
    // The launcher outlives its JVM by at most a second: once it has exited, the pid in
    // the file may already belong to another process, so nothing is killed by it.
    let alive = matches!(launcher.try_wait(), Ok(None));
    let _ = launcher.kill();
    let _ = launcher.wait();
    if !alive {
        return;
    }
    if let Some(pid) = std::fs::read_to_string(node.dir.join("pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .filter(|&p| p > 1)
        .filter(|&p| is_node_jvm(p, &node.dir))
    {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// Whether `pid` is the JVM of the node in `dir` (its command line names the node's
/// server.properties).
fn is_node_jvm(pid: u32, dir: &Path) -> bool {
    let props = dir.join("server.properties");
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        c.split(|b| *b == 0)
            .any(|arg| arg == props.as_os_str().as_encoded_bytes())
    })
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            stop_node(&mut self.nodes[i]);
        }
        drop(self.root.take());
    }
}
