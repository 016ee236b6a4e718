//! A sink's jq programs (`filter`, `transform`), compiled once per sink with jaq and run
//! per record over the value parsed as JSON, with `$key`, `$headers`, `$topic` and
//! `$event_type` bound.
//!
//! Compiling at validation makes a syntax error or an unknown function a `check` error
//! naming the key; running never panics on input: every failure is an [`Error`].

use jaq_core::data::JustLut;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars};
pub use jaq_json::Val;

mod recursion;

/// The variables a program may use, in the order [`Program::run`] takes their values.
pub const VARS: [&str; 4] = ["$key", "$headers", "$topic", "$event_type"];

/// Functions a sink's programs cannot use, so using one is a `check` error: `halt` and
/// `halt_error` end the whole process, `env` reads its environment (secrets) into
/// bodies, `debug` and `stderr` write record values to the logs. (`input`, `inputs`
/// and `$ENV` are not in jaq's libraries to begin with.)
const REMOVED: [&str; 8] = [
    "halt",
    "halt_error",
    "env",
    "debug",
    "debug_empty",
    "stderr",
    "stderr_empty",
    "input",
];

/// A compiled jq program.
pub struct Program {
    /// The program as written (for `check`).
    pub text: String,
    filter: jaq_core::Filter<JustLut<Val>>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Program").field(&self.text).finish()
    }
}

/// Why a program failed on a record. The message is jq's, and may quote record values:
/// it goes to the DLQ envelope's `error` class only, never to logs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the record value is not JSON")]
    NotJson,
    #[error("jq error: {0}")]
    Jq(String),
}

impl Program {
    /// Parses and compiles `code`; `Err` says why (jq's own messages, shortened).
    pub fn compile(code: &str) -> Result<Program, String> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .filter(|d| !REMOVED.contains(&d.name));
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs())
            .filter(|(name, _, _)| !REMOVED.contains(name) && *name != "fromjson")
            .chain(own_funs());
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(&arena, File { code, path: () })
            .map_err(|errs| {
                let what: Vec<String> = errs
                    .into_iter()
                    .map(|(_, e)| match e {
                        jaq_core::load::Error::Io(_) => "modules cannot be imported".to_owned(),
                        jaq_core::load::Error::Lex(es) => es
                            .iter()
                            .map(|(expect, at)| {
                                format!("expected {} at `{}`", expect.as_str(), snippet(at))
                            })
                            .collect::<Vec<_>>()
                            .join("; "),
                        jaq_core::load::Error::Parse(es) => es
                            .iter()
                            .map(|(expect, at)| {
                                format!("expected {} at `{}`", expect.as_str(), snippet(at))
                            })
                            .collect::<Vec<_>>()
                            .join("; "),
                    })
                    .collect();
                format!("not a jq program: {}", what.join("; "))
            })?;
        // Loaded, so it parses as a module; as a term too, unless it has a `module`
        // line, which no sink needs: refused, so that nothing escapes the look below.
        let Some(term) = jaq_core::load::parse(code, |p| p.term()) else {
            return Err("not a jq program: `module` and `import` lines are not supported".into());
        };
        if let Some(name) = recursion::recursive_definition(&term) {
            return Err(format!(
                "`{name}` calls itself: a recursive definition can overflow the stack on a record that makes it deep, and that record is refused as crashed; loop with until, while, repeat, recurse, reduce or foreach instead"
            ));
        }
        let filter = Compiler::default()
            .with_funs(funs)
            .with_global_vars(VARS)
            .compile(modules)
            .map_err(|errs| {
                let what: Vec<String> = errs
                    .into_iter()
                    .flat_map(|(_, es)| es)
                    .map(|(name, kind)| format!("undefined {kind:?} `{name}`").to_lowercase())
                    .collect();
                format!("not a jq program: {}", what.join("; "))
            })?;
        Ok(Program {
            text: code.to_owned(),
            filter,
        })
    }

    /// The program's first output for `input` (`None`: it gave no output).
    pub fn run(&self, input: Val, vars: [Val; 4]) -> Result<Option<Val>, Error> {
        let ctx = Ctx::<JustLut<Val>>::new(&self.filter.lut, Vars::new(vars));
        let mut out = self.filter.id.run((ctx, input));
        match out.next() {
            None => Ok(None),
            Some(Ok(v)) => Ok(Some(v)),
            // Not `jaq_core::unwrap_valr`: it exits the process on `halt`. No program
            // here can reach `halt`, and should one, it is an error like any other.
            Some(Err(e)) => Err(Error::Jq(match e.get_err() {
                Ok(e) => e.to_string(),
                Err(_) => "halt".to_owned(),
            })),
        }
    }
}

/// Deepest nesting of arrays and objects a value may have (serde_json's own limit).
pub const MAX_DEPTH: usize = 128;

/// Parses a record value as JSON for a program. jaq's parser recurses once per level
/// without a limit, so a value nested deeper than [`MAX_DEPTH`] is refused before it
/// gets there: `[[[[…` a few hundred thousand deep would overflow the stack and crash
/// the worker evaluating it, where `not-json` says what is wrong with the record.
pub fn parse(value: &[u8]) -> Result<Val, Error> {
    if !shallow(value) {
        return Err(Error::NotJson);
    }
    jaq_json::read::parse_single(value).map_err(|_| Error::NotJson)
}

/// Whether `text` opens at most [`MAX_DEPTH`] arrays or objects at a time, brackets
/// inside strings not counted. A conservative scan: it does not check the JSON.
fn shallow(text: &[u8]) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// `fromjson` through [`parse`]: jaq's own would parse a string from the record
/// (`.payload | fromjson`) with no depth limit and overflow the stack.
fn own_funs<D: for<'a> jaq_core::DataT<V<'a> = Val>>(
) -> impl Iterator<Item = jaq_core::native::Fun<D>> {
    let funs: Box<[jaq_core::native::Filter<jaq_core::RunPtr<D>>]> =
        Box::new([("fromjson", jaq_core::native::v(0), |cv| {
            let parsed = match &cv.1 {
                Val::TStr(text) => parse(text).map_err(|_| {
                    jaq_core::Error::str(format_args!(
                        "cannot parse as JSON (or nested deeper than {MAX_DEPTH})"
                    ))
                }),
                _ => Err(jaq_core::Error::str("fromjson needs a string")),
            };
            jaq_core::native::bome(parsed)
        })]);
    funs.into_vec().into_iter().map(jaq_core::native::run::<D>)
}

/// Whether a filter's result lets the record through: not `false`, `null` or no output.
pub fn passes(result: &Option<Val>) -> bool {
    !matches!(result, None | Some(Val::Null) | Some(Val::Bool(false)))
}

/// A string value (a header value, a key) for a program variable; bytes that are not
/// UTF-8 are read lossily (U+FFFD): a jq byte string is not JSON, so one passed to the
/// output would make a body that is not JSON.
pub fn string(bytes: &[u8]) -> Val {
    Val::from(String::from_utf8_lossy(bytes).into_owned())
}

/// An object of string values.
pub fn object<'a>(pairs: impl Iterator<Item = (&'a str, &'a [u8])>) -> Val {
    let mut map = jaq_json::Map::default();
    for (k, v) in pairs {
        map.entry(Val::from(k.to_owned()))
            .or_insert_with(|| string(v));
    }
    Val::obj(map)
}

/// Writes a value as compact JSON; `None` when it has no JSON form. jaq values go
/// beyond JSON: `nan` and `infinite`, byte strings, text that is not UTF-8, keys that
/// are not strings, and any depth; jaq would write them anyway (`NaN`, `b"…"`), and
/// the receiver would get a body that is not the JSON its Content-Type says.
pub fn to_json(v: &Val) -> Option<Vec<u8>> {
    if !json_like(v, 0) {
        return None;
    }
    let text = v.to_string().into_bytes();
    // jaq's writer is not ours: what it wrote must read back as JSON.
    serde_json::from_slice::<serde::de::IgnoredAny>(&text).ok()?;
    Some(text)
}

/// Whether `v` is within JSON: no NaN or infinity, no byte string, only string keys,
/// at most [`MAX_DEPTH`] deep.
fn json_like(v: &Val, depth: usize) -> bool {
    match v {
        Val::Null | Val::Bool(_) => true,
        Val::Num(jaq_json::Num::Float(f)) => f.is_finite(),
        Val::Num(_) => true,
        Val::BStr(_) => false,
        Val::TStr(b) => std::str::from_utf8(b).is_ok(),
        Val::Arr(a) => depth < MAX_DEPTH && a.iter().all(|x| json_like(x, depth + 1)),
        Val::Obj(o) => {
            depth < MAX_DEPTH
                && o.iter().all(|(k, x)| {
                    matches!(k, Val::TStr(_)) && json_like(k, depth) && json_like(x, depth + 1)
                })
        }
    }
}

fn snippet(at: &str) -> String {
    at.chars().take(20).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> [Val; 4] {
        [
            string(b"k1"),
            object([("x-tenant", b"acme".as_slice())].into_iter()),
            string(b"orders"),
            Val::Null,
        ]
    }

    /// A definition that calls itself can be driven by a record deep enough to overflow
    /// the evaluating thread's stack, which crashes the worker process and costs the
    /// record: refused when compiled.
    #[test]
    fn a_definition_that_calls_itself_is_refused_and_builtin_loops_are_not() {
        let err = Program::compile("def f: if . > 0 then (. - 1 | f) + 1 else 0 end; .n | f")
            .expect_err("recursive");
        assert!(err.starts_with("`f` calls itself"), "{err}");
        let err =
            Program::compile("module {}; def f: if . > 0 then (. - 1 | f) + 1 else 0 end; .n | f")
                .expect_err("a module line hides nothing");
        assert!(err.contains("`module`"), "{err}");
        let err =
            Program::compile("def @d: if . > 0 then (@d \"\\(. - 1)\") + 1 else 0 end; .n | @d")
                .expect_err("a format calling itself");
        assert!(err.starts_with("`@d` calls itself"), "{err}");
        let p = Program::compile("def inc: . + 1; .n as $n | 0 | until(. >= $n; inc)")
            .expect("a builtin loop compiles");
        let out = p.run(parse(br#"{"n":100000}"#).unwrap(), vars()).unwrap();
        assert_eq!(out.and_then(|v| to_json(&v)), Some(b"100000".to_vec()));
    }

    #[test]
    fn filters_and_transforms_see_the_value_and_variables() {
        let p = Program::compile(r#".type == "order.created" and $headers["x-tenant"] == "acme""#)
            .unwrap();
        let yes = parse(br#"{"type":"order.created"}"#).unwrap();
        assert!(passes(&p.run(yes, vars()).unwrap()));
        let no = parse(br#"{"type":"order.paid"}"#).unwrap();
        assert!(!passes(&p.run(no, vars()).unwrap()));
        let t = Program::compile("{id: .id, total: .amount, key: $key, topic: $topic}").unwrap();
        let out = t
            .run(parse(br#"{"id":7,"amount":12.5}"#).unwrap(), vars())
            .unwrap()
            .unwrap();
        assert_eq!(
            String::from_utf8(to_json(&out).unwrap()).unwrap(),
            r#"{"id":7,"total":12.5,"key":"k1","topic":"orders"}"#
        );
        let empty = Program::compile("select(.x)").unwrap();
        assert!(!passes(&empty.run(parse(b"{}").unwrap(), vars()).unwrap()));
        assert!(
            passes(&Some(Val::from(0usize))),
            "only false and null filter out"
        );
    }

    #[test]
    fn bad_programs_and_inputs_are_errors_not_panics() {
        for code in [
            ".[",
            "nosuchfn(1)",
            "$nosuchvar",
            "import \"x\" as x; .",
            "halt",
            "halt_error",
            "halt_error(1)",
            "env.HOME",
            "$ENV.HOME",
            "debug",
            "debug(.)",
            "stderr",
            "input",
            "[inputs]",
        ] {
            let e = Program::compile(code).unwrap_err();
            assert!(e.starts_with("not a jq program"), "{code}: {e}");
        }
        let p = Program::compile(".a.b").unwrap();
        assert!(matches!(
            p.run(parse(b"[1]").unwrap(), vars()),
            Err(Error::Jq(_))
        ));
        assert!(matches!(parse(b"not json"), Err(Error::NotJson)));
        assert!(matches!(parse(b""), Err(Error::NotJson)));
    }

    #[test]
    fn deeply_nested_values_are_not_json_and_strings_do_not_count() {
        let deep = "[".repeat(200_000);
        assert!(matches!(parse(deep.as_bytes()), Err(Error::NotJson)));
        let limit = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(limit.as_bytes()).is_ok());
        let over = format!("{}{}", "{\"a\":".repeat(MAX_DEPTH + 1), "1");
        assert!(matches!(parse(over.as_bytes()), Err(Error::NotJson)));
        let quoted = format!("{{\"s\":\"\\\"{}\"}}", "[".repeat(1000));
        assert!(parse(quoted.as_bytes()).is_ok(), "{quoted}");
    }

    #[test]
    fn outputs_beyond_json_have_no_json_form() {
        let p = |code: &str, input: &[u8]| {
            let vars = [
                string(b"k\xff"),
                object(std::iter::empty()),
                Val::Null,
                Val::Null,
            ];
            let out = Program::compile(code)
                .unwrap()
                .run(parse(input).unwrap(), vars)
                .unwrap()
                .unwrap();
            to_json(&out)
        };
        for code in [
            "nan",
            "[infinite]",
            "{a: -infinite}",
            "\"x\" | tobytes",
            "{(1): 2}",
            "reduce range(200) as $i (.; [.])",
        ] {
            assert_eq!(p(code, b"{}"), None, "{code}");
        }
        let key = p("{k: $key}", b"{}").expect("a key that is not UTF-8 is text");
        let v: serde_json::Value = serde_json::from_slice(&key).unwrap();
        assert_eq!(v["k"], "k\u{fffd}");
        assert_eq!(
            p(".", b"[1e400, 2.5, 12345678901234567890123]").map(String::from_utf8),
            Some(Ok("[1e400,2.5,12345678901234567890123]".to_owned()))
        );
    }

    #[test]
    fn fromjson_refuses_deep_nesting_instead_of_overflowing() {
        let p = Program::compile(".s | fromjson | .a").unwrap();
        let deep = format!("{{\"s\":\"{}\"}}", "[".repeat(200_000));
        assert!(matches!(
            p.run(parse(deep.as_bytes()).unwrap(), vars()),
            Err(Error::Jq(_))
        ));
        let ok = parse(br#"{"s":"{\"a\":[1]}"}"#).unwrap();
        let out = p.run(ok, vars()).unwrap().unwrap();
        assert_eq!(to_json(&out).unwrap(), b"[1]");
    }

    #[test]
    fn programs_are_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Program>();
    }
}
