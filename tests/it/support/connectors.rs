//! Typed connector files for the integration tests, the chaos suite and the benches: a
//! test names what its sink or source does ([`SinkToml`], [`SourceToml`]) and `render`
//! writes the TOML the README documents, so a connector key is spelled in one place and a
//! quoting slip cannot turn into a test that checks another config than it means to.
//! A test that checks how one exact text is parsed (`check.rs`) keeps its literal TOML.
//!
//! Self-contained (no `super::`): `benches/e2e` includes this file alone by `#[path]`.

// Each consumer (it, chaos, bench) uses a different subset of the setters.
#![allow(dead_code)]

/// A TOML basic string: `"…"` with `\` and `"` escaped. `${ENV}` references and
/// `{placeholder}` templates pass through unchanged.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A TOML array of strings.
pub fn list(items: &[&str]) -> String {
    let items: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", items.join(", "))
}

/// `key = value` pairs in the order first set; setting a key again replaces its value.
#[derive(Debug, Clone, Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn set(&mut self, key: &str, value: String) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// As an inline table: `{ a = 1, b = "x" }`.
    fn inline(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        format!("{{ {} }}", pairs.join(", "))
    }

    fn lines(&self, out: &mut String) {
        for (k, v) in &self.0 {
            out.push_str(&format!("{k} = {v}\n"));
        }
    }
}

/// A `[sink]` connector file. [`SinkToml::new`] gives the tests' usual sink: name
/// `orders`, one topic, group `g-<topic>`, one URL; everything else is the product's
/// default until set.
#[derive(Debug, Clone)]
pub struct SinkToml {
    fields: Fields,
    retry: Fields,
    breaker: Fields,
    /// Verbatim lines after the keys (a shaping body, a TLS table under test).
    raw: Vec<String>,
}

impl SinkToml {
    pub fn new(topic: &str, url: &str) -> Self {
        SinkToml::bare("orders", &[topic])
            .group_id(&format!("g-{topic}"))
            .url(url)
    }

    /// Only `name` and `topics`: no group, no URL (for tests of what `check` refuses, or
    /// whose URL is a template set with [`url`](Self::url)).
    pub fn bare(name: &str, topics: &[&str]) -> Self {
        let mut fields = Fields::default();
        fields.set("name", quote(name));
        fields.set("topics", list(topics));
        SinkToml {
            fields,
            retry: Fields::default(),
            breaker: Fields::default(),
            raw: Vec::new(),
        }
    }

    /// Any key the typed setters do not cover, with its value as TOML (`status`, `auth`,
    /// `headers`, …).
    pub fn set(mut self, key: &str, toml_value: &str) -> Self {
        self.fields.set(key, toml_value.to_owned());
        self
    }

    fn string(self, key: &str, value: &str) -> Self {
        let v = quote(value);
        self.set(key, &v)
    }

    pub fn name(self, name: &str) -> Self {
        self.string("name", name)
    }

    pub fn group_id(self, group: &str) -> Self {
        self.string("group_id", group)
    }

    pub fn url(self, url: &str) -> Self {
        self.string("url", url)
    }

    pub fn timeout(self, d: &str) -> Self {
        self.string("timeout", d)
    }

    pub fn concurrency(self, n: usize) -> Self {
        self.set("concurrency", &n.to_string())
    }

    pub fn buffer(self, n: usize) -> Self {
        self.set("buffer", &n.to_string())
    }

    /// `"key"` (the default), `"partition"` or `"none"`.
    pub fn ordering(self, ordering: &str) -> Self {
        self.string("ordering", ordering)
    }

    /// `format = "cloudevents"` and the like.
    pub fn format(self, format: &str) -> Self {
        self.string("format", format)
    }

    /// `filter`: a jaq expression; a record for which it is false is not sent.
    pub fn filter(self, expr: &str) -> Self {
        self.string("filter", expr)
    }

    /// `transform`: a jaq expression whose result is the body sent.
    pub fn transform(self, expr: &str) -> Self {
        self.string("transform", expr)
    }

    /// `retry.max_attempts` (0: retry until delivered).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.retry.set("max_attempts", n.to_string());
        self
    }

    /// `retry.max_elapsed`.
    pub fn max_elapsed(mut self, d: &str) -> Self {
        self.retry.set("max_elapsed", quote(d));
        self
    }

    /// `retry.initial` and `retry.max`: the backoff's first and longest wait.
    pub fn backoff(mut self, initial: &str, max: &str) -> Self {
        self.retry.set("initial", quote(initial));
        self.retry.set("max", quote(max));
        self
    }

    /// `breaker.failures` (0: no breaker).
    pub fn breaker_failures(mut self, n: u32) -> Self {
        self.breaker.set("failures", n.to_string());
        self
    }

    /// `breaker.cooldown`.
    pub fn breaker_cooldown(mut self, d: &str) -> Self {
        self.breaker.set("cooldown", quote(d));
        self
    }

    /// `dlq = { topic = … }`.
    pub fn dlq(self, topic: &str) -> Self {
        let v = format!("{{ topic = {} }}", quote(topic));
        self.set("dlq", &v)
    }

    /// Standard Webhooks signing with `secret` (usually a `${ENV}` reference).
    pub fn sign_standard_webhooks(self, secret: &str) -> Self {
        let v = format!(
            "{{ scheme = \"standard-webhooks\", secret = {} }}",
            quote(secret)
        );
        self.set("sign", &v)
    }

    /// `rate_limit = { per_second = …, burst = … }`.
    pub fn rate_limit(self, per_second: u32, burst: u32) -> Self {
        let v = format!("{{ per_second = {per_second}, burst = {burst} }}");
        self.set("rate_limit", &v)
    }

    /// `tls = { ca = …, cert = …, key = … }`: PEM file paths by key.
    pub fn tls(self, files: &[(&str, &str)]) -> Self {
        let pairs: Vec<String> = files
            .iter()
            .map(|(k, path)| format!("{k} = {}", quote(path)))
            .collect();
        let v = format!("{{ {} }}", pairs.join(", "));
        self.set("tls", &v)
    }

    /// A verbatim line (or block) after the keys.
    pub fn raw(mut self, toml: &str) -> Self {
        self.raw.push(toml.to_owned());
        self
    }

    pub fn render(&self) -> String {
        let mut fields = self.fields.clone();
        if !self.retry.is_empty() {
            fields.set("retry", self.retry.inline());
        }
        if !self.breaker.is_empty() {
            fields.set("breaker", self.breaker.inline());
        }
        let mut out = String::from("[sink]\n");
        fields.lines(&mut out);
        for r in &self.raw {
            out.push_str(r);
            out.push('\n');
        }
        out
    }
}

/// A `[source]` connector file: a webhook path produced to a topic.
#[derive(Debug, Clone)]
pub struct SourceToml {
    fields: Fields,
    verify: Fields,
    raw: Vec<String>,
}

impl SourceToml {
    pub fn new(name: &str, path: &str, topic: &str) -> Self {
        let mut fields = Fields::default();
        fields.set("name", quote(name));
        fields.set("path", quote(path));
        fields.set("topic", quote(topic));
        SourceToml {
            fields,
            verify: Fields::default(),
            raw: Vec::new(),
        }
    }

    /// Any key the typed setters do not cover, with its value as TOML.
    pub fn set(mut self, key: &str, toml_value: &str) -> Self {
        self.fields.set(key, toml_value.to_owned());
        self
    }

    fn string(self, key: &str, value: &str) -> Self {
        let v = quote(value);
        self.set(key, &v)
    }

    /// `verify = { scheme = …, secrets = [...] }`.
    pub fn verify_secrets(mut self, scheme: &str, secrets: &[&str]) -> Self {
        self.verify = Fields::default();
        self.verify.set("scheme", quote(scheme));
        self.verify.set("secrets", list(secrets));
        self
    }

    /// `verify = { scheme = …, secret = … }` (the single-secret spelling).
    pub fn verify_secret(mut self, scheme: &str, secret: &str) -> Self {
        self.verify = Fields::default();
        self.verify.set("scheme", quote(scheme));
        self.verify.set("secret", quote(secret));
        self
    }

    /// `verify = { scheme = …, public_keys = [...] }`.
    pub fn verify_public_keys(mut self, scheme: &str, keys: &[&str]) -> Self {
        self.verify = Fields::default();
        self.verify.set("scheme", quote(scheme));
        self.verify.set("public_keys", list(keys));
        self
    }

    /// `verify = { scheme = "none" }`.
    pub fn verify_none(mut self) -> Self {
        self.verify = Fields::default();
        self.verify.set("scheme", quote("none"));
        self
    }

    /// Another key inside `verify` (`tolerance`, `header`, `topics`, …), value as TOML.
    pub fn verify_set(mut self, key: &str, toml_value: &str) -> Self {
        self.verify.set(key, toml_value.to_owned());
        self
    }

    /// `"header:NAME"`, `"json:/pointer"` or `"none"`.
    pub fn key(self, rule: &str) -> Self {
        self.string("key", rule)
    }

    pub fn max_body(self, size: &str) -> Self {
        self.string("max_body", size)
    }

    pub fn forward_headers(self, names: &[&str]) -> Self {
        let v = list(names);
        self.set("forward_headers", &v)
    }

    pub fn event_type(self, rule: &str) -> Self {
        self.string("event_type", rule)
    }

    /// `rate_limit = { per_second = …, burst = … }`.
    pub fn rate_limit(self, per_second: u32, burst: u32) -> Self {
        let v = format!("{{ per_second = {per_second}, burst = {burst} }}");
        self.set("rate_limit", &v)
    }

    /// `replay_guard = { id = …, window = … }`.
    pub fn replay_guard(self, id: &str, window: &str) -> Self {
        let v = format!("{{ id = {}, window = {} }}", quote(id), quote(window));
        self.set("replay_guard", &v)
    }

    pub fn topics_allowed(self, patterns: &[&str]) -> Self {
        let v = list(patterns);
        self.set("topics_allowed", &v)
    }

    /// A verbatim line (or block) after the keys.
    pub fn raw(mut self, toml: &str) -> Self {
        self.raw.push(toml.to_owned());
        self
    }

    pub fn render(&self) -> String {
        let mut fields = self.fields.clone();
        if !self.verify.is_empty() {
            fields.set("verify", self.verify.inline());
        }
        let mut out = String::from("[source]\n");
        fields.lines(&mut out);
        for r in &self.raw {
            out.push_str(r);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    // Paths rather than `use super::*`: a bench without the test harness compiles this
    // module with its tests left out, and the import would be unused there.

    #[test]
    fn a_sink_renders_the_documented_keys() {
        let toml = super::SinkToml::new("orders", "http://127.0.0.1:1/hook")
            .timeout("5s")
            .ordering("partition")
            .max_attempts(3)
            .backoff("50ms", "1s")
            .breaker_failures(0)
            .dlq("orders.dlq")
            .sign_standard_webhooks("${WHSEC}")
            .render();
        assert_eq!(
            toml,
            "[sink]\nname = \"orders\"\ntopics = [\"orders\"]\ngroup_id = \"g-orders\"\n\
             url = \"http://127.0.0.1:1/hook\"\ntimeout = \"5s\"\nordering = \"partition\"\n\
             dlq = { topic = \"orders.dlq\" }\n\
             sign = { scheme = \"standard-webhooks\", secret = \"${WHSEC}\" }\n\
             retry = { max_attempts = 3, initial = \"50ms\", max = \"1s\" }\n\
             breaker = { failures = 0 }\n"
        );
        toml::from_str::<toml::Table>(&toml).expect("valid TOML");
    }

    #[test]
    fn a_source_renders_the_documented_keys_and_quotes_values() {
        let toml = super::SourceToml::new("gh", "/gh", "t\"x")
            .verify_secrets("github", &["${GH}"])
            .verify_set("tolerance", "\"5m\"")
            .key("json:/id")
            .render();
        assert_eq!(
            toml,
            "[source]\nname = \"gh\"\npath = \"/gh\"\ntopic = \"t\\\"x\"\nkey = \"json:/id\"\n\
             verify = { scheme = \"github\", secrets = [\"${GH}\"], tolerance = \"5m\" }\n"
        );
        let parsed: toml::Table = toml::from_str(&toml).expect("valid TOML");
        assert_eq!(parsed["source"]["topic"].as_str(), Some("t\"x"));
    }
}
