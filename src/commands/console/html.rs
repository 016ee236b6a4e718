//! HTML for the console, server-rendered. Every value that did not come from this file
//! goes through [`esc`]: record fields, headers, connector names, error messages. There
//! is no inline script or style (the CSP forbids both); behaviour lives in
//! `assets/console.js`.

use std::fmt::Write as _;

/// `text` safe inside HTML text and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as one URL path segment or query value.
pub fn url(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// What every page needs: the session's CSRF token and the connectors for the menu.
pub struct Frame<'a> {
    pub csrf: &'a str,
    pub read_only: bool,
    pub sources: &'a [String],
    pub sinks: &'a [String],
}

/// A whole page around `body`.
pub fn page(frame: &Frame<'_>, title: &str, body: &str) -> String {
    let mut nav = String::from("<a href=\"/console\">Overview</a>");
    for s in frame.sources {
        let _ = write!(
            nav,
            " <a href=\"/console/sources/{}\">{}</a>",
            url(s),
            esc(s)
        );
    }
    for s in frame.sinks {
        let _ = write!(nav, " <a href=\"/console/sinks/{}\">{}</a>", url(s), esc(s));
    }
    let mode = if frame.read_only {
        "<span class=\"badge\">read-only</span>"
    } else {
        ""
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · hookbridge</title>\
<link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
<script src=\"/console/assets/console.js\" defer></script></head>\
<body><header><strong>hookbridge</strong> {mode}<nav>{nav}</nav>\
<form method=\"post\" action=\"/console/logout\" class=\"logout\">{csrf}<button>Log out</button></form></header>\
<main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title),
        csrf = csrf_field(frame.csrf),
    )
}

/// The hidden field every POST form carries.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// The login page (also the body of every 401).
pub fn login(message: &str) -> String {
    let note = if message.is_empty() {
        String::new()
    } else {
        format!("<p class=\"error\">{}</p>", esc(message))
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log in · hookbridge</title>\
<link rel=\"stylesheet\" href=\"/console/assets/console.css\"></head>\
<body><main class=\"login\"><h1>hookbridge console</h1>{note}\
<form method=\"post\" action=\"/console/login\"><label>Token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" autofocus></label>\
<button>Log in</button></form></main></body></html>"
    )
}

/// A table with `head` columns and already-escaped cells.
pub fn table(class: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table class=\"{}\"><thead><tr>", esc(class));
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{c}</td>");
        }
        out.push_str("</tr>");
    }
    if rows.is_empty() {
        let _ = write!(
            out,
            "<tr><td colspan=\"{}\" class=\"empty\">nothing</td></tr>",
            head.len()
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// A figure the page script keeps current: `path` names it in `/console/api/overview`.
pub fn live(path: &str, now: impl std::fmt::Display) -> String {
    format!(
        "<span data-fig=\"{}\">{}</span>",
        esc(path),
        esc(&now.to_string())
    )
}

/// A per-second rate the page script computes from `path` between two polls.
pub fn rate(path: &str) -> String {
    format!("<span data-rate=\"{}\">–</span>", esc(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            esc("<script>alert(1)</script>\"'&"),
            "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"
        );
        assert_eq!(url("a b/c"), "a+b%2Fc");
    }
}
