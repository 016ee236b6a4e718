//! The documentation keeps up with the code: every built-in setting in
//! `src/config/defaults.toml` is documented in `docs/configuration.md`, and every relative
//! link in `README.md` and `docs/*.md` reaches an existing file, and for `#anchor` links
//! a heading of that file. (The connector keys are checked by the kitchen-sink test in
//! `src/connectors/mod.rs`, which reads the same page.)
//!
//! No broker and no network: these run in a second or so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The keys in the first column of the tables in the `## hookbridge.toml` section; a cell
/// may name several (`` `http.tls.cert`, `http.tls.key` ``).
fn documented_settings(doc: &str) -> BTreeSet<String> {
    let start = doc
        .find("\n## hookbridge.toml")
        .expect("docs/configuration.md has a `## hookbridge.toml` section");
    let section = &doc[start + 1..];
    let end = section[1..].find("\n## ").map_or(section.len(), |i| i + 1);
    section[..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| l.split('|').nth(1).unwrap_or("").split(','))
        .map(|k| k.trim().trim_matches('`').to_owned())
        .collect()
}

/// The settings under `prefix` in `table` that the documentation does not name. A table
/// documented as a whole (`http.unverified_rate_limit`, `kafka.properties`) covers its
/// keys; any other table is documented key by key.
fn undocumented(prefix: &str, table: &toml::Table, documented: &BTreeSet<String>) -> Vec<String> {
    let mut missing = Vec::new();
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if documented.contains(&path) {
            continue;
        }
        match value {
            toml::Value::Table(inner) if !inner.is_empty() => {
                missing.extend(undocumented(&path, inner, documented));
            }
            _ => missing.push(path),
        }
    }
    missing
}

#[test]
fn every_default_setting_is_documented_in_the_configuration_page() {
    let defaults: toml::Table = read(&root().join("src/config/defaults.toml"))
        .parse()
        .expect("defaults.toml parses");
    let documented = documented_settings(&read(&root().join("docs/configuration.md")));
    assert!(
        documented.len() > 20,
        "settings table not found: {documented:?}"
    );
    let missing = undocumented("", &defaults, &documented);
    assert!(
        missing.is_empty(),
        "src/config/defaults.toml sets {missing:?}, which docs/configuration.md does not document"
    );
}

#[test]
fn an_omitted_setting_is_reported() {
    let doc = "# Configuration\n\n## hookbridge.toml\n\n| key | default | meaning |\n|---|---|---|\n\
               | `kafka.brokers` | x | y |\n| `http.tls.cert`, `http.unverified_rate_limit` | | |\n\n\
               ## Sources\n\n| `http.listen` | | |\n";
    let defaults: toml::Table = "[kafka]\nbrokers = \"b\"\nproduce_timeout = \"5s\"\n\
                                 [http]\nlisten = \"l\"\nunverified_rate_limit = { per_second = 1 }\n"
        .parse()
        .unwrap();
    let missing = undocumented("", &defaults, &documented_settings(doc));
    assert_eq!(missing, ["http.listen", "kafka.produce_timeout"]);
}

/// The paragraphs of `md` outside fenced code blocks, each with its inline code spans
/// removed (a span never crosses a blank line), with the line each starts on.
fn prose(md: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut fenced = false;
    let mut current: Option<(usize, String)> = None;
    for (n, line) in md.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.extend(current.take());
            continue;
        }
        if fenced || line.trim().is_empty() {
            out.extend(current.take());
            continue;
        }
        let paragraph = current.get_or_insert_with(|| (n + 1, String::new()));
        paragraph.1.push_str(line);
        paragraph.1.push('\n');
    }
    out.extend(current);
    out.into_iter()
        .map(|(n, text)| {
            let outside: String = text.split('`').step_by(2).collect();
            (n, outside)
        })
        .collect()
}

/// The `[text](target)` and `![alt](target)` targets in `md`, with their line.
fn links(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (line, text) in prose(md) {
        let mut rest = text.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            if let Some(end) = rest.find(')') {
                let target = &rest[..end];
                if !target.is_empty() && !target.contains(char::is_whitespace) {
                    out.push((line, target.to_owned()));
                }
            }
        }
    }
    out
}

/// GitHub's anchors for the headings of `md`: lower case, punctuation dropped, spaces
/// as `-`; a repeated heading gets `-1`, `-2`, ….
fn anchors(md: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut fenced = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut unique = slug.clone();
        let mut n = 0;
        while seen.contains(&unique) {
            n += 1;
            unique = format!("{slug}-{n}");
        }
        seen.insert(unique);
    }
    seen
}

/// The relative links of the Markdown file `path` (text `md`) that reach no file, or no
/// heading of the file they name.
fn broken_links(path: &Path, md: &str) -> Vec<String> {
    let dir = path.parent().expect("a file has a directory");
    let mut broken = Vec::new();
    for (line, target) in links(md) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
        let same_page = file.is_empty();
        let file: PathBuf = if same_page {
            path.to_owned()
        } else {
            dir.join(file)
        };
        let shown = path.strip_prefix(root()).unwrap_or(path);
        let at = format!("{}:{line}: {target}", shown.display());
        if !same_page && !file.exists() {
            broken.push(format!("{at} (no such file)"));
        } else if !anchor.is_empty() {
            let is_markdown = file.extension().is_some_and(|e| e == "md");
            let text = if same_page {
                md.to_owned()
            } else {
                std::fs::read_to_string(&file).unwrap_or_default()
            };
            if !is_markdown || !anchors(&text).contains(anchor) {
                broken.push(format!("{at} (no such heading)"));
            }
        }
    }
    broken
}

/// README.md and every page under docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).expect("docs/") {
        let path = entry.expect("docs/ entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages.sort();
    pages
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let pages = pages();
    assert!(pages.len() > 5, "docs/ pages not found: {pages:?}");
    let mut checked = 0;
    let mut broken = Vec::new();
    for page in &pages {
        let md = read(page);
        checked += links(&md).len();
        broken.extend(broken_links(page, &md));
    }
    assert!(checked > 20, "only {checked} links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn a_broken_link_is_reported() {
    let page = root().join("docs/example.md");
    let md = "# Example\n\n## A (b → c)\n\n[ok](#a-b--c), [file](configuration.md), \
              [gone](nowhere.md), `[code](nowhere.md)`,\n[no heading](configuration.md#nowhere) \
              and [web](https://example.com/x).\n\n```\n[fenced](nowhere.md)\n```\n";
    let broken = broken_links(&page, md);
    assert_eq!(broken.len(), 2, "{broken:?}");
    assert!(
        broken[0].ends_with("nowhere.md (no such file)"),
        "{broken:?}"
    );
    assert!(
        broken[1].ends_with("configuration.md#nowhere (no such heading)"),
        "{broken:?}"
    );
}
