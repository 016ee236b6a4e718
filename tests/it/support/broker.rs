//! The broker a test runs against. By default Apache Kafka 4 (KRaft, `cluster.rs`): one
//! node shared by every test of the binary, each test on its own topics and groups.
//! `HOOKBRIDGE_TEST_BOOTSTRAP=host:port` points the tests at an external cluster instead;
//! `HOOKBRIDGE_TEST_BROKER=tansu` runs them on Tansu, one broker per test (the
//! compatibility lane). A test that stops or restarts its broker asks for its own
//! ([`Broker::own`]); one that kills nodes of a 3-node cluster uses `cluster::Cluster`.

// Some helpers serve only the chaos suite or tests that kill brokers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::cluster::{self, Cluster};
use super::free_port;

/// A broker (or cluster) for one test.
pub struct Broker {
    /// The (first) client port; with an external cluster, the port of its address.
    pub port: u16,
    bootstrap: String,
    kind: Kind,
}

enum Kind {
    /// The binary's shared Apache Kafka node.
    Shared,
    /// `HOOKBRIDGE_TEST_BOOTSTRAP`.
    External,
    /// An Apache Kafka node of this test's own.
    Own(Cluster),
    Tansu(Tansu),
}

/// Which broker `Broker::start` gives.
fn use_tansu() -> bool {
    std::env::var("HOOKBRIDGE_TEST_BROKER").as_deref() == Ok("tansu")
}

fn external() -> Option<String> {
    std::env::var("HOOKBRIDGE_TEST_BOOTSTRAP")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

fn port_of(bootstrap: &str) -> u16 {
    bootstrap
        .split(',')
        .next()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(9092)
}

/// The binary's Apache Kafka node, started by the first test that needs it.
fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(|| Cluster::start_shared(1))
}

impl Broker {
    /// The broker for a test that does not stop it: shared, external or Tansu.
    pub fn start() -> Self {
        if use_tansu() {
            let t = Tansu::start();
            return Broker {
                port: t.port,
                bootstrap: format!("127.0.0.1:{}", t.port),
                kind: Kind::Tansu(t),
            };
        }
        if let Some(b) = external() {
            return Broker {
                port: port_of(&b),
                bootstrap: b,
                kind: Kind::External,
            };
        }
        let c = shared();
        Broker {
            port: c.port(0),
            bootstrap: c.bootstrap(),
            kind: Kind::Shared,
        }
    }

    /// A broker of this test's own, which it may [`stop`](Self::stop) and
    /// [`restart`](Self::restart): an Apache Kafka node whose data survives the restart
    /// (Tansu, in memory, with `HOOKBRIDGE_TEST_BROKER=tansu`).
    pub fn own() -> Self {
        if use_tansu() {
            return Self::start();
        }
        let c = Cluster::start(1);
        Broker {
            port: c.port(0),
            bootstrap: c.bootstrap(),
            kind: Kind::Own(c),
        }
    }

    /// A broker whose data survives [`stop`](Self::stop) + [`restart`](Self::restart).
    #[allow(dead_code)] // used by the chaos suite, which shares these fixtures
    pub fn start_durable() -> Self {
        if use_tansu() {
            let t = Tansu::start_durable();
            return Broker {
                port: t.port,
                bootstrap: format!("127.0.0.1:{}", t.port),
                kind: Kind::Tansu(t),
            };
        }
        Self::own()
    }

    /// Bootstrap servers for client configs (`127.0.0.1:PORT` for a local node).
    pub fn addr(&self) -> String {
        self.bootstrap.clone()
    }

    /// Starts the broker again after [`stop`](Self::stop); data survives (Tansu: unless
    /// in memory).
    pub fn restart(&mut self) {
        match &mut self.kind {
            Kind::Own(c) => c.restart(0),
            Kind::Tansu(t) => t.restart(),
            Kind::Shared | Kind::External => {
                panic!("a shared or external broker is never restarted: use Broker::own()")
            }
        }
    }

    /// Freezes (`-STOP`) or thaws (`-CONT`) the broker's process: it keeps its
    /// connections and answers nothing, like a broker stuck in a long pause.
    pub fn signal(&self, signal: &str) {
        match &self.kind {
            Kind::Own(c) => c.signal(0, signal),
            Kind::Tansu(t) => {
                let pid = t.child.as_ref().expect("tansu is running").id();
                let ok = Command::new("kill")
                    .args([signal, &pid.to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "kill {signal} {pid}");
            }
            Kind::Shared | Kind::External => {
                panic!("a shared or external broker is never frozen: use Broker::own()")
            }
        }
    }

    /// Kills the broker (as an outage would: kill -9).
    pub fn stop(&mut self) {
        match &mut self.kind {
            Kind::Own(c) => c.kill9(0),
            Kind::Tansu(t) => t.stop(),
            Kind::Shared | Kind::External => {
                panic!("a shared or external broker is never stopped: use Broker::own()")
            }
        }
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        match &self.kind {
            Kind::Tansu(t) => t.create_topic(name, partitions),
            _ => cluster::create_topic(&self.bootstrap, name, partitions),
        }
    }

    /// Deletes a topic (Apache Kafka only), waiting until it is gone.
    #[allow(dead_code)]
    pub fn delete_topic(&self, name: &str) {
        match &self.kind {
            Kind::Tansu(_) => panic!("the Tansu lane does not delete topics"),
            _ => cluster::delete_topic(&self.bootstrap, name),
        }
    }

    /// Whether the broker keeps commit metadata (Apache Kafka does, Tansu drops it).
    #[allow(dead_code)]
    pub fn keeps_commit_metadata(&self) -> bool {
        !matches!(self.kind, Kind::Tansu(_))
    }
}

/// A Tansu broker (Apache Kafka protocol) on a free port, for the compatibility lane.
struct Tansu {
    child: Option<Child>,
    port: u16,
    tansu: PathBuf,
    log: PathBuf,
    /// With durable storage: the directory holding the sqlite file.
    durable: Option<tempfile::TempDir>,
}

/// The Tansu binary: `$TANSU_BIN`, else what `scripts/ensure-tools.sh` installs.
fn tansu_path() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return PathBuf::from(p);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ensure-tools.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("run ensure-tools.sh");
    assert!(
        out.status.success(),
        "ensure-tools.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

impl Tansu {
    pub fn start() -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("tansu-{port}.log"));
        let mut b = Tansu {
            child: None,
            port,
            tansu: tansu_path(),
            log,
            durable: None,
        };
        b.restart();
        b
    }

    /// A broker whose data survives [`stop`](Self::stop) + [`restart`](Self::restart):
    /// Tansu with sqlite storage (`scripts/ensure-durable-tansu.sh`).
    #[allow(dead_code)] // used by the chaos suite, which shares these fixtures
    pub fn start_durable() -> Self {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/ensure-durable-tansu.sh"
        );
        let out = Command::new("bash")
            .arg(script)
            .output()
            .expect("run ensure-durable-tansu.sh");
        assert!(
            out.status.success(),
            "ensure-durable-tansu.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tansu = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let port = free_port();
        let log = std::env::temp_dir().join(format!("tansu-{port}.log"));
        let dir = tempfile::tempdir().expect("broker data dir");
        let mut b = Tansu {
            child: None,
            port,
            tansu,
            log,
            durable: Some(dir),
        };
        b.restart();
        b
    }

    /// Starts (again) on the same port. In memory unless durable: then data survives.
    pub fn restart(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("broker log file");
        let mut cmd = Command::new(&self.tansu);
        cmd.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ]);
        if let Some(dir) = &self.durable {
            cmd.args(["--storage-engine", "sqlite://tansu.db"])
                .current_dir(dir.path());
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker (as an outage would).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let out = Command::new(&self.tansu)
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
                "--broker",
                &url,
            ])
            .output()
            .expect("tansu topic create");
        assert!(
            out.status.success(),
            "topic create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}
