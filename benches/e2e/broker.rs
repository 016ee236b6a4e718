//! A Tansu broker: in memory, on a free loopback port, started with the command line
//! DESIGN.md gives. The egress targets share one; each ingress target gets its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{BenchError, Result};
use crate::process::{free_addr, Process};

pub struct Broker {
    tansu: PathBuf,
    addr: SocketAddr,
    process: Process,
}

impl Broker {
    /// Starts a broker logging to `log_dir/<name>.log`.
    pub async fn start(tansu: &Path, name: &str, log_dir: &Path) -> Result<Self> {
        let addr = free_addr()?;
        let url = format!("tcp://{addr}");
        let mut process = Process::start(
            name,
            tansu,
            &[
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ],
            &[],
            log_dir,
        )?;
        process.wait_port(addr, Duration::from_secs(30)).await?;
        Ok(Broker {
            tansu: tansu.to_path_buf(),
            addr,
            process,
        })
    }

    /// CPU seconds the broker has used so far (user + system, all threads).
    pub fn cpu_seconds(&self) -> Result<f64> {
        self.process.cpu_seconds()
    }

    /// `127.0.0.1:PORT`, for client configs.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<()> {
        let out = Command::new(&self.tansu)
            .args(["topic", "create", name, "--partitions"])
            .arg(partitions.to_string())
            .arg("--broker")
            .arg(format!("tcp://{}", self.addr))
            .output()
            .map_err(BenchError::io("tansu topic create"))?;
        if out.status.success() {
            return Ok(());
        }
        Err(BenchError::Tool(format!(
            "creating topic {name} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
