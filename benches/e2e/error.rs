//! Why a benchmark step failed. Every message names the process or file involved, so a
//! failed run says where to look (its log file).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} exited before it was ready (log: {log})")]
    Exited { name: String, log: PathBuf },
    #[error("{name} was not ready after {seconds} s (log: {log})")]
    NotReady {
        name: String,
        seconds: u64,
        log: PathBuf,
    },
    #[error("{0}")]
    Tool(String),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

impl BenchError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }
}

pub type Result<T> = std::result::Result<T, BenchError>;
