//! Finding a program's recursive definitions (`def f: … f …;`), which a sink refuses.
//!
//! jaq runs a function call on the native stack, so a recursive definition whose depth
//! follows the record (`def f: if . > 0 then (. - 1 | f) + 1 else 0 end; .n | f` on
//! `{"n": 1000000}`) overflows the stack of the thread evaluating it. That aborts the jq
//! worker process evaluating it, and the record is dead-lettered as `crashed`: every
//! record deep enough would cost a dead letter and a new worker. jaq's own iterating builtins (`until`, `while`,
//! `repeat`, `recurse`, `range`, `limit`, `reduce`, `foreach`) run iteratively, so
//! refusing definitions that call themselves leaves every loop a program needs. A jq
//! definition sees only itself and the definitions before it, so there is no mutual
//! recursion to look for, only a definition calling its own name — from its body or a
//! definition nested in it.

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{Pattern, Term};
use jaq_core::path::Part;

/// The name of the first definition in `program` that calls itself, if any.
pub fn recursive_definition<'s>(program: &Term<&'s str>) -> Option<&'s str> {
    let mut found = None;
    visit(program, &mut |t| {
        if let Term::Def(defs, _) = t {
            for d in defs {
                if found.is_none() && calls(&d.body, d.name) {
                    found = Some(d.name);
                }
            }
        }
    });
    found
}

/// Whether `term` calls `name` anywhere (a nested definition that shadows it is still
/// counted: refusing too much here is a `check` error, never a crash).
fn calls(term: &Term<&str>, name: &str) -> bool {
    let mut found = false;
    visit(term, &mut |t| match t {
        Term::Call(n, _) if *n == name => found = true,
        // `@fmt "…\(x)…"` calls the format `@fmt` (which a definition may be).
        Term::Str(Some(fmt), _) if *fmt == name => found = true,
        _ => {}
    });
    found
}

/// Calls `f` on `term` and every term inside it.
fn visit<'s>(term: &Term<&'s str>, f: &mut impl FnMut(&Term<&'s str>)) {
    f(term);
    let mut each = |t: &Term<&'s str>| visit(t, f);
    match term {
        Term::Id | Term::Recurse | Term::Num(_) | Term::Break(_) | Term::Var(_) => {}
        Term::Str(_, parts) => {
            for p in parts {
                if let StrPart::Term(t) = p {
                    each(t);
                }
            }
        }
        Term::Arr(t) => t.iter().for_each(|t| each(t)),
        Term::Obj(pairs) => {
            for (k, v) in pairs {
                each(k);
                v.iter().for_each(&mut each);
            }
        }
        Term::Neg(t) | Term::Label(_, t) => each(t),
        Term::BinOp(l, op, r) => {
            if let jaq_core::load::parse::BinaryOp::Pipe(Some(p)) = op {
                pattern(p, &mut each);
            }
            each(l);
            each(r);
        }
        Term::Fold(_, xs, p, args) => {
            each(xs);
            pattern(p, &mut each);
            args.iter().for_each(&mut each);
        }
        Term::TryCatch(t, c) => {
            each(t);
            c.iter().for_each(|c| each(c));
        }
        Term::IfThenElse(branches, otherwise) => {
            for (cond, then) in branches {
                each(cond);
                each(then);
            }
            otherwise.iter().for_each(|t| each(t));
        }
        Term::Def(defs, rest) => {
            defs.iter().for_each(|d| each(&d.body));
            each(rest);
        }
        Term::Call(_, args) => args.iter().for_each(&mut each),
        Term::Path(t, path) => {
            each(t);
            for (part, _) in &path.0 {
                match part {
                    Part::Index(i) => each(i),
                    Part::Range(from, to) => {
                        from.iter().chain(to.iter()).for_each(&mut each);
                    }
                }
            }
        }
    }
}

/// The terms inside an object destructuring pattern (`{(f): $x}`).
fn pattern<'s>(p: &Pattern<&'s str>, each: &mut impl FnMut(&Term<&'s str>)) {
    match p {
        Pattern::Var(_) => {}
        Pattern::Arr(ps) => ps.iter().for_each(|p| pattern(p, each)),
        Pattern::Obj(pairs) => {
            for (k, v) in pairs {
                each(k);
                pattern(v, each);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(code: &str) -> Option<String> {
        let term = jaq_core::load::parse(code, |p| p.term()).expect("parses");
        recursive_definition(&term).map(str::to_owned)
    }

    #[test]
    fn a_definition_calling_itself_is_found_wherever_it_is() {
        for (code, name) in [
            (
                "def f: if . > 0 then (. - 1 | f) + 1 else 0 end; .n | f",
                "f",
            ),
            ("def f: 1 + f; f", "f"),
            ("def g(x): [x, g(x)]; 1", "g"),
            ("def f: def h: f; h; f", "f"),
            ("def f: \"\\(f)\"; f", "f"),
            ("def f: {a: .} | .[f]; f", "f"),
            (".a | def f: [.[] | f]; f", "f"),
            ("reduce .[] as $x (0; def f: f; f)", "f"),
            ("def f: . as {(f): $v} | $v; f", "f"),
            ("def @d: @d \"\\(.)\"; 1", "@d"),
            (
                "def @d: if . > 0 then (@d \"\\(. - 1)\") + 1 else 0 end; .n | @d",
                "@d",
            ),
        ] {
            assert_eq!(found(code).as_deref(), Some(name), "{code}");
        }
    }

    #[test]
    fn definitions_that_do_not_call_themselves_and_builtin_loops_pass() {
        for code in [
            ".a.b != \"skip\"",
            "def double: . * 2; def quad: double | double; .n | quad",
            ".n as $n | 0 | until(. >= $n; . + 1)",
            "[limit(.n; repeat(1))] | length",
            "def f(g): g; f(.)",
            "reduce range(.n) as $i (0; . + $i)",
        ] {
            assert_eq!(found(code), None, "{code}");
        }
    }
}
