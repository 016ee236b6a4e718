//! A sink's jq programs (`filter`, `transform`) run on one record, and where they run.
//!
//! A program can do what no check rules out: loop without end (`last(range(1e18))`), or
//! build a value nested as deep as a record says and overflow the stack, which aborts
//! the process that runs it. So the sink runs them in worker processes ([`Workers`]):
//! a runaway is killed at its deadline and a crash costs the worker and that one
//! record, never the sink. [`Evaluator::InProcess`] runs them on the caller's thread,
//! for where no worker binary exists (fuzzing, benchmarks, unit tests of shaping).

use std::sync::Arc;

use bytes::Bytes;

use crate::connectors::jq::{self, Program, Val};

pub mod frame;
pub mod pool;
pub mod worker;

pub use frame::{Class, Request, Stage, Verdict};
pub use pool::Workers;

/// The hidden subcommand that makes the binary a jq worker.
pub const WORKER_COMMAND: &str = "jq-worker";

/// Where a sink's programs run.
pub enum Evaluator {
    /// On the caller's thread, however long they take, and a stack overflow aborts the
    /// process: only where no worker can exist.
    InProcess,
    /// In worker processes of the sink, each record within [`pool::JQ_DEADLINE`].
    Workers(Workers),
}

/// A sink's filter and transform.
#[derive(Clone, Default)]
pub struct Programs {
    pub filter: Option<Arc<Program>>,
    pub transform: Option<Arc<Program>>,
}

impl Programs {
    pub fn is_empty(&self) -> bool {
        self.filter.is_none() && self.transform.is_none()
    }

    /// The program that runs first on a record.
    pub fn first_stage(&self) -> Stage {
        if self.filter.is_some() {
            Stage::Filter
        } else {
            Stage::Transform
        }
    }

    /// The programs as a worker's first frame.
    pub fn setup(&self) -> frame::Setup<'_> {
        frame::Setup {
            filter: self.filter.as_deref().map(|p| p.text.as_str()),
            transform: self.transform.as_deref().map(|p| p.text.as_str()),
        }
    }

    /// Compiles a worker's programs. They compiled when the sink was loaded, from the
    /// same text: an error here is a worker of another build.
    pub fn compile(setup: &frame::Setup<'_>) -> Result<Programs, String> {
        let compile = |code: Option<&str>| code.map(Program::compile).transpose();
        Ok(Programs {
            filter: compile(setup.filter)?.map(Arc::new),
            transform: compile(setup.transform)?.map(Arc::new),
        })
    }

    /// Runs the filter, then the transform, on `record`. `transform_starts` is called
    /// when the filter let the record through and the transform is about to run (only
    /// when the sink has both), so a deadline can name the program that ran over.
    pub fn evaluate(&self, record: &Request<'_>, mut transform_starts: impl FnMut()) -> Verdict {
        let mut input = None;
        if let Some(filter) = &self.filter {
            let refused = |class| Verdict::Refused(Stage::Filter, class);
            let Ok(value) = read_json(record.value) else {
                return refused(Class::NotJson);
            };
            let Ok(result) = filter.run(value.clone(), vars(record)) else {
                return refused(Class::JqError);
            };
            if !jq::passes(&result) {
                return Verdict::Filtered;
            }
            input = Some(value);
        }
        let Some(transform) = &self.transform else {
            return Verdict::Passed;
        };
        if input.is_some() {
            transform_starts();
        }
        let refused = |class| Verdict::Refused(Stage::Transform, class);
        let value = match input {
            Some(v) => v,
            None => match read_json(record.value) {
                Ok(v) => v,
                Err(_) => return refused(Class::NotJson),
            },
        };
        match transform.run(value, vars(record)) {
            Err(_) => refused(Class::JqError),
            Ok(None) => refused(Class::NoOutput),
            Ok(Some(out)) => match jq::to_json(&out) {
                Some(body) if body.len() > frame::MAX_OUTPUT => refused(Class::OutputTooLarge),
                Some(body) => Verdict::Transformed(Bytes::from(body)),
                None => refused(Class::NotJsonOutput),
            },
        }
    }
}

/// A record's value as the programs' input: only one JSON document in UTF-8 throughout,
/// the same rule as a batch item's ([`crate::egress::batch::can_be_item`]). jq's reader alone would also
/// take `NaN`, `+1`, `01` and invalid UTF-8, and such a value would pass a filter and be
/// sent on as JSON.
fn read_json(value: &[u8]) -> Result<Val, ()> {
    if !crate::egress::batch::can_be_item(value) {
        return Err(());
    }
    jq::parse(value).map_err(drop)
}

/// `$key`, `$headers`, `$topic`, `$event_type` (absent: `null`).
fn vars(record: &Request<'_>) -> [Val; 4] {
    [
        record.key.map_or(Val::Null, jq::string),
        jq::object(record.headers.iter().copied()),
        jq::string(record.topic.as_bytes()),
        record.event_type.map_or(Val::Null, jq::string),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programs(filter: Option<&str>, transform: Option<&str>) -> Programs {
        let setup = frame::Setup { filter, transform };
        Programs::compile(&setup).expect("programs compile")
    }

    fn request(value: &[u8]) -> Request<'_> {
        Request {
            value,
            key: Some(b"k1"),
            headers: vec![("x-t", b"a"), ("x-t", b"b")],
            topic: "orders",
            event_type: Some(b"o.c"),
        }
    }

    #[test]
    fn verdicts_name_the_program_and_the_class() {
        let both = programs(
            Some(".n > 1"),
            Some("{n, k: $key, h: $headers, t: $topic, e: $event_type}"),
        );
        let mut starts = 0;
        let v = both.evaluate(&request(br#"{"n":2}"#), || starts += 1);
        assert_eq!(
            v,
            Verdict::Transformed(Bytes::from_static(
                br#"{"n":2,"k":"k1","h":{"x-t":"a"},"t":"orders","e":"o.c"}"#
            ))
        );
        assert_eq!(starts, 1, "the transform's start is told once");
        let v = both.evaluate(&request(br#"{"n":1}"#), || starts += 1);
        assert_eq!((v, starts), (Verdict::Filtered, 1));
        for (value, verdict) in [
            (
                &b"nope"[..],
                Verdict::Refused(Stage::Filter, Class::NotJson),
            ),
            (b"[1]", Verdict::Refused(Stage::Filter, Class::JqError)),
        ] {
            assert_eq!(both.evaluate(&request(value), || {}), verdict);
        }
        let transform = |code| programs(None, Some(code));
        let mut told = false;
        let cases = [
            ("empty", Class::NoOutput),
            ("nan", Class::NotJsonOutput),
            ("error(\"x\")", Class::JqError),
        ];
        for (code, class) in cases {
            let v = transform(code).evaluate(&request(b"{}"), || told = true);
            assert_eq!(v, Verdict::Refused(Stage::Transform, class), "{code}");
        }
        assert!(!told, "no filter ran before");
        assert_eq!(
            transform(".").evaluate(&request(b"x"), || {}),
            Verdict::Refused(Stage::Transform, Class::NotJson)
        );
        assert_eq!(
            programs(Some("true"), None).evaluate(&request(b"{}"), || {}),
            Verdict::Passed
        );
        assert_eq!(programs(Some("true"), None).first_stage(), Stage::Filter);
        // What jq's reader alone would take is not JSON: it is refused, not passed on.
        let pass_all = programs(Some("true"), None);
        for lenient in [
            &br#"{"a":NaN}"#[..],
            br#"{"a":-Infinity}"#,
            br#"[Infinity]"#,
            br#"{"a":+1}"#,
            br#"{"a":01}"#,
            b"{\"a\":\"\xc0\xaf\"}",
            b"{\"\xff\":1}",
        ] {
            assert_eq!(
                pass_all.evaluate(&request(lenient), || {}),
                Verdict::Refused(Stage::Filter, Class::NotJson),
                "{}",
                String::from_utf8_lossy(lenient)
            );
            assert_eq!(
                transform(".").evaluate(&request(lenient), || {}),
                Verdict::Refused(Stage::Transform, Class::NotJson),
                "the input is blamed, not the transform"
            );
        }
        assert_eq!(transform(".").first_stage(), Stage::Transform);
    }
}
