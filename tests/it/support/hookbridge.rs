//! The real `hookbridge` binary, started with a generated config in a temp dir.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// How to start one hookbridge process.
pub struct Config {
    pub brokers: String,
    pub connectors: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
    /// Extra lines for hookbridge.toml (appended; use full `[section]` tables).
    pub extra: String,
    /// librdkafka properties under `[kafka.properties]`.
    pub props: Vec<(String, String)>,
}

/// The tests' consumer session: a member killed -9 gives up its partitions in 6 s instead
/// of hookbridge's default 45 s.
const TEST_SESSION: (&str, &str) = ("session.timeout.ms", "6000");

impl Config {
    pub fn new(brokers: &str) -> Self {
        Config {
            brokers: brokers.to_owned(),
            connectors: Vec::new(),
            env: Vec::new(),
            extra: String::new(),
            props: vec![(TEST_SESSION.0.into(), TEST_SESSION.1.into())],
        }
    }

    /// hookbridge's own consumer session timeout instead of the tests' 6 s.
    #[allow(dead_code)] // used by the chaos suite, which shares these fixtures
    pub fn default_session(mut self) -> Self {
        self.props.retain(|(k, _)| k != TEST_SESSION.0);
        self
    }

    pub fn prop(mut self, k: &str, v: &str) -> Self {
        self.props.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn connector(mut self, file: &str, toml: &str) -> Self {
        self.connectors.push((file.to_owned(), toml.to_owned()));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    /// Writes the files into a new temp dir.
    pub fn write(&self, http: u16, admin: u16) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("connectors")).expect("connectors dir");
        for (name, text) in &self.connectors {
            std::fs::write(dir.path().join("connectors").join(name), text).expect("connector file");
        }
        let settings = format!(
            "[kafka]\nbrokers = \"{}\"\nproduce_timeout = \"3s\"\ncommit_interval = \"200ms\"\n[kafka.properties]\n{}[http]\nlisten = \"127.0.0.1:{http}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[log]\nformat = \"json\"\nlevel = \"info,hookbridge=debug\"\n[shutdown]\ndrain_timeout = \"20s\"\n{}",
            self.brokers,
            self.props.iter().map(|(k, v)| format!("\"{k}\" = \"{v}\"\n")).collect::<String>(),
            self.extra
        );
        std::fs::write(dir.path().join("hookbridge.toml"), settings).expect("settings file");
        dir
    }
}

/// A running hookbridge process. Killed on drop.
pub struct Hookbridge {
    child: Option<Child>,
    pub http: u16,
    pub admin: u16,
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    starts: u32,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hookbridge")
}

impl Hookbridge {
    pub fn start(cfg: &Config) -> Self {
        let (http, admin) = (free_port(), free_port());
        let dir = cfg.write(http, admin);
        let mut h = Hookbridge {
            child: None,
            http,
            admin,
            dir,
            env: cfg.env.clone(),
            starts: 0,
        };
        h.spawn();
        h
    }

    /// Starts the process (again) with the same files and ports.
    pub fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).expect("log file");
        let err = log.try_clone().expect("log file");
        let mut cmd = Command::new(bin());
        cmd.arg("run")
            .arg("--config")
            .arg(self.dir.path().join("hookbridge.toml"))
            .env_remove("RUST_LOG")
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        // A hangup drains hookbridge unless it was started with SIGHUP ignored (`nohup`),
        // which a child inherits: a suite run under nohup would change what a test's
        // SIGHUP does. Every process starts with the default, as from a shell.
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec only `signal`, which is async-signal-safe, runs.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGHUP, libc::SIG_DFL);
                Ok(())
            });
        }
        self.child = Some(cmd.spawn().expect("start hookbridge"));
    }

    /// This start's log file (stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("hookbridge-{}.log", self.starts))
    }

    /// Every log line of every start so far.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                std::fs::read_to_string(self.dir.path().join(format!("hookbridge-{n}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.http, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.admin, path)
    }

    /// Waits until `/readyz` answers 200 (broker reachable, sinks assigned).
    pub async fn ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(self.admin_url("/readyz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("hookbridge exited with {status}:\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "hookbridge not ready in {timeout:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The exit status once the process has exited on its own, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("running")
    }

    /// SIGKILL: no drain, no commit.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit status.
    pub async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.terminate_by("TERM", timeout).await
    }

    /// [`Hookbridge::terminate`] with another signal (`HUP`, `INT`).
    pub async fn terminate_by(&mut self, signal: &str, timeout: Duration) -> ExitStatus {
        let pid = self.pid();
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "hookbridge did not exit within {timeout:?} of SIG{signal}:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs another hookbridge command (`check`, `send`, `dlq redrive`, …) with this
    /// process's config and environment; returns success and stdout+stderr.
    pub async fn command(&self, args: &[&str]) -> (bool, String) {
        let (code, text) = self.command_code(args).await;
        (code == 0, text)
    }

    /// Runs a hookbridge command with this process's config and environment: its exit
    /// code (-1 when killed by a signal) and its stdout and stderr together.
    pub async fn command_code(&self, args: &[&str]) -> (i32, String) {
        let mut cmd = tokio::process::Command::new(bin());
        cmd.args(args)
            .arg("--config")
            .arg(self.dir.path().join("hookbridge.toml"));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().await.expect("run hookbridge command");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// The Prometheus text from `/metrics`.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

/// Sum of a metric's samples whose label set contains every `labels` pair.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric_name, label_text) = series.split_once('{').unwrap_or((series, ""));
            (metric_name == name
                && labels
                    .iter()
                    .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

impl Drop for Hookbridge {
    fn drop(&mut self) {
        // HOOKBRIDGE_TEST_BACKTRACE=1: a failing test also shows every thread's stack.
        if std::thread::panicking() && std::env::var_os("HOOKBRIDGE_TEST_BACKTRACE").is_some() {
            if let Some(c) = &self.child {
                let _ = Command::new("gdb")
                    .args([
                        "-p",
                        &c.id().to_string(),
                        "-batch",
                        "-ex",
                        "thread apply all bt 12",
                    ])
                    .status();
            }
        }
        self.kill9();
        // A failing test shows what the process said; its temp dir is gone afterwards.
        if std::thread::panicking() {
            let logs = self.logs();
            let tail: Vec<&str> = logs.lines().rev().take(60).collect();
            eprintln!("--- last hookbridge log lines ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
