//! A loopback HTTP destination that records every request and answers as scripted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// One request the destination saw.
#[derive(Debug, Clone)]
pub struct Received {
    /// Path and query the request was sent to.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    /// 1 for the first request with this `webhook-id`, 2 for the second, …
    pub nth: usize,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }
}

/// What to answer: status, extra headers, delay before answering.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }
}

type Script = dyn Fn(&Received) -> (Answer, Option<String>) + Send + Sync;

#[derive(Clone)]
struct State {
    seen: Arc<Mutex<Vec<Received>>>,
    counts: Arc<Mutex<HashMap<String, usize>>>,
    answered: Arc<Mutex<super::audit::Finished>>,
    script: Arc<Script>,
}

pub struct Receiver {
    pub url: String,
    seen: Arc<Mutex<Vec<Received>>>,
    answered: Arc<Mutex<super::audit::Finished>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts on a free loopback port; `script` decides each answer.
    pub async fn start(script: impl Fn(&Received) -> Answer + Send + Sync + 'static) -> Self {
        Self::start_with_bodies(move |r| (script(r), None)).await
    }

    /// [`Receiver::start`] with a response body of the script's choosing.
    pub async fn start_with_bodies(
        script: impl Fn(&Received) -> (Answer, Option<String>) + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answered = Arc::new(Mutex::new(super::audit::Finished::new()));
        let state = State {
            seen: seen.clone(),
            counts: Arc::new(Mutex::new(HashMap::new())),
            answered: answered.clone(),
            script: Arc::new(script),
        };
        let app = Router::new().fallback(handle).with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url,
            seen,
            answered,
            task,
        }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Received> {
        self.seen.lock().expect("lock").clone()
    }

    /// The records answered 2xx so far, as `(partition, offset)` from their `webhook-id`
    /// with the moment of their first 2xx, for the commit auditor. A 2xx counts once its
    /// scripted delay is over and the handler returns it (hookbridge cannot have seen it
    /// earlier); a request cut off during its delay never counts.
    pub fn finished(&self) -> impl Fn() -> super::audit::Finished + Send + 'static {
        let answered = self.answered.clone();
        move || answered.lock().expect("lock").clone()
    }

    /// Waits until `pred` holds for the requests seen, or panics after `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Received]) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.seen()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; saw {} requests",
                self.seen().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The items of a batch body: a JSON array, or one JSON value per line.
pub fn batch_items(body: &[u8]) -> Vec<serde_json::Value> {
    if let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(body) {
        return items;
    }
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

async fn handle(
    axum::extract::State(s): axum::extract::State<State>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let nth = {
        let mut counts = s.counts.lock().expect("lock");
        let n = counts.entry(id.clone()).or_default();
        *n += 1;
        *n
    };
    let mut r = Received {
        uri: uri.to_string(),
        headers,
        body,
        at: Instant::now(),
        nth,
        status: 0,
    };
    let (answer, answer_body) = (s.script)(&r);
    r.status = answer.status;
    // A batch (`<first id>-batch<n>`) finishes the records its envelope items name.
    // With a per-item answer, only the items answered 2xx.
    let item_ok: Option<Vec<bool>> = answer_body
        .as_deref()
        .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .and_then(|v| {
            let results = v["results"].as_array()?;
            Some(
                results
                    .iter()
                    .map(|r| (200..300).contains(&r["status"].as_u64().unwrap_or(0)))
                    .collect(),
            )
        });
    let positions: Vec<(i32, i64)> = if id.contains("-batch") {
        batch_items(&r.body)
            .iter()
            .enumerate()
            .filter(|(i, _)| item_ok.as_ref().is_none_or(|ok| ok.get(*i) == Some(&true)))
            .filter_map(|(_, item)| super::audit::position(item["webhook_id"].as_str()?))
            .collect()
    } else {
        super::audit::position(&id).into_iter().collect()
    };
    s.seen.lock().expect("lock").push(r);
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    // Only now, as the answer leaves: a 2xx stored before the delay would let the auditor
    // accept a commit past a record whose 2xx hookbridge had not yet seen.
    if (200..300).contains(&answer.status) {
        let mut answered = s.answered.lock().expect("lock");
        for at in positions {
            answered.entry(at).or_insert_with(Instant::now);
        }
    }
    let mut resp = (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK),
        answer_body.unwrap_or_else(|| "answer".to_owned()),
    )
        .into_response();
    for (k, v) in answer.headers {
        if let Ok(v) = v.parse() {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A delayed 2xx is not finished while the delay runs: hookbridge has not seen it.
    #[tokio::test]
    async fn a_delayed_2xx_counts_only_once_answered() {
        let rx = Receiver::start(|_| Answer {
            status: 200,
            headers: Vec::new(),
            delay: Duration::from_millis(500),
        })
        .await;
        let finished = rx.finished();
        let url = rx.url.clone();
        let call = tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .header("webhook-id", "orders-0-5")
                .body("{}")
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        rx.wait_for(Duration::from_secs(5), "the request", |s| s.len() == 1)
            .await;
        assert!(finished().is_empty(), "a 2xx counted before it was sent");
        assert_eq!(call.await.expect("join").expect("answer"), 200);
        assert!(finished().contains_key(&(0, 5)));
    }
}
