//! A Tansu broker (Apache Kafka protocol) started for one test on a free port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub struct Broker {
    child: Option<Child>,
    pub port: u16,
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

impl Broker {
    pub fn start() -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("tansu-{port}.log"));
        let mut b = Broker {
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
        let mut b = Broker {
            child: None,
            port,
            tansu,
            log,
            durable: Some(dir),
        };
        b.restart();
        b
    }

    /// `127.0.0.1:PORT` for client configs.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
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

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
