//! hookbridge as the benchmark runs it: the release binary with a `hookbridge.toml` and
//! one connector file written to a fresh directory, every listener on a free loopback port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::connectors::{SinkToml, SourceToml};
use crate::error::{BenchError, Result};
use crate::process::{free_addr, Process};

/// The environment variable the GitHub source reads its secret from, so the config file
/// holds a reference rather than the secret.
pub const SECRET_ENV: &str = "BENCH_GITHUB_SECRET";

/// Where the webhook source listens.
pub const SOURCE_PATH: &str = "/webhooks/github";

pub struct Hookbridge {
    pub process: Process,
    pub webhooks: SocketAddr,
    pub admin: SocketAddr,
}

/// The counter of records a sink read again (polled while their partition was paused
/// past what a pause holds, or stale copies of the rewind). Older builds do not have it:
/// then the row shows `-`.
const REFETCHED: &str = "hookbridge_refetched_records_total";

impl Hookbridge {
    /// `REFETCHED` for `connector` from `/metrics`, or `None` when this build has no
    /// such metric (or the page cannot be read).
    pub async fn refetched(&self, connector: &str) -> Option<f64> {
        let page = reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        refetched_in(&page, connector)
    }
}

/// The sum of `REFETCHED` samples labelled with `connector` (0 when the metric is
/// described but has no sample yet), or `None` when the page does not name it.
fn refetched_in(page: &str, connector: &str) -> Option<f64> {
    if !page.contains(REFETCHED) {
        return None;
    }
    let label = format!("connector=\"{connector}\"");
    Some(
        page.lines()
            .filter(|l| l.starts_with(REFETCHED) && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

/// The connector file of the ingress run: a GitHub source, no key, no rate limit.
pub fn github_source(topic: &str) -> String {
    SourceToml::new("github", SOURCE_PATH, topic)
        .verify_secrets("github", &[&format!("${{{SECRET_ENV}}}")])
        .render()
}

/// The connector of an egress run: one sink to the receiver, no signing, no DLQ (a row
/// adds its filter, transform, batch or TLS before rendering it).
pub fn sink(name: &str, topic: &str, url: &str, concurrency: usize, ordering: &str) -> SinkToml {
    let sink = SinkToml::bare(name, &[topic])
        .group_id(name)
        .url(url)
        .concurrency(concurrency)
        .ordering(ordering);
    match sink_buffer() {
        Some(b) => sink.buffer(b),
        None => sink,
    }
}

/// `BENCH_SINK_BUFFER`: the `buffer` of every hookbridge sink the benchmark starts
/// (records held per partition before it pauses; the sink's default when unset), to see
/// what pausing costs; named in the report.
pub fn sink_buffer() -> Option<usize> {
    std::env::var("BENCH_SINK_BUFFER").ok()?.parse().ok()
}

/// Extra `[kafka.properties]` lines for every hookbridge the benchmark starts (TOML, e.g.
/// `"linger.ms" = "1"`), to compare settings against the defaults; named in the report.
pub const PROPERTIES_ENV: &str = "BENCH_HOOKBRIDGE_PROPERTIES";

fn settings(brokers: &str, webhooks: SocketAddr, admin: SocketAddr) -> String {
    let extra = std::env::var(PROPERTIES_ENV).unwrap_or_default();
    format!(
        "connectors_dir = \"connectors\"\n\n[kafka]\nbrokers = \"{brokers}\"\n\n\
         [kafka.properties]\n# A new group's first assignment takes ~3 s instead of ~23 s on Tansu.\n\
         \"session.timeout.ms\" = \"6000\"\n{extra}\n\n[http]\nlisten = \"{webhooks}\"\n\n\
         [admin]\nlisten = \"{admin}\"\n\n[log]\nlevel = \"warn\"\n"
    )
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(BenchError::io(format!("writing {}", path.display())))
}

/// Writes `dir/hookbridge.toml` + `dir/connectors/<name>.toml`, starts
/// `hookbridge run` and waits for `/readyz`.
pub async fn start(
    binary: &Path,
    dir: &Path,
    name: &str,
    brokers: &str,
    connector: &str,
    secret: &str,
) -> Result<Hookbridge> {
    let (webhooks, admin) = (free_addr()?, free_addr()?);
    let connectors: PathBuf = dir.join("connectors");
    std::fs::create_dir_all(&connectors)
        .map_err(BenchError::io(format!("creating {}", connectors.display())))?;
    let config = dir.join("hookbridge.toml");
    write(&config, &settings(brokers, webhooks, admin))?;
    write(&connectors.join(format!("{name}.toml")), connector)?;
    let config = config.to_string_lossy();
    let mut process = Process::start(
        name,
        binary,
        &["run", "--config", &config],
        &[(SECRET_ENV, secret)],
        dir,
    )?;
    process
        .wait_ready(&format!("http://{admin}/readyz"), Duration::from_secs(60))
        .await?;
    Ok(Hookbridge {
        process,
        webhooks,
        admin,
    })
}

#[cfg(test)]
mod tests {
    use super::refetched_in;

    #[test]
    fn refetched_records_are_summed_per_connector_and_absent_without_the_metric() {
        let page = "# TYPE hookbridge_refetched_records_total counter\n\
            hookbridge_refetched_records_total{connector=\"a\",partition=\"0\"} 3\n\
            hookbridge_refetched_records_total{connector=\"a\",partition=\"1\"} 4\n\
            hookbridge_refetched_records_total{connector=\"b\"} 9\n";
        assert_eq!(refetched_in(page, "a"), Some(7.0));
        assert_eq!(refetched_in(page, "c"), Some(0.0));
        assert_eq!(refetched_in("hookbridge_deliveries_total 1\n", "a"), None);
    }
}
