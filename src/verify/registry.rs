//! The one list of verification schemes. Each [`Scheme`] row says everything the rest
//! of hookbridge needs to know about a scheme: its name in config (and aliases), the
//! shape of its table, how its verifier is built, which request header carries a secret
//! itself, and the facts its tests use. Config parsing, `check` and the tests derive
//! from [`SCHEMES`]; a test fails, naming the place, when a scheme is missing from this
//! list, from the README's providers table or from the round-trip tests.
//!
//! Adding an HMAC provider is two files: its recipe (`registry/<name>.rs`, with its
//! sample body and test vectors) and its `mod` line and row here.

// The HMAC providers that are only a recipe.
pub mod calendly;
pub mod github;
pub mod hubspot;
pub mod paddle;
pub mod shopify;
pub mod slack;
pub mod square;
pub mod stripe;
pub mod workos;
pub mod zoom;

use super::config::build::{self, Build};
use super::config::table::Shape;
use super::gitlab;

/// The request header a scheme compares with a secret as is, which must never be copied
/// into a Kafka record or used as its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretHeader {
    /// No header carries a secret.
    None,
    /// This header.
    Fixed(&'static str),
    /// The table's `header`.
    Configured,
}

/// What the round-trip tests (`src/verify/tests.rs`) do with a scheme: sign a request
/// with its first secret and verify it, over awkward bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundTrip {
    /// The table's keys besides `scheme`, with two secrets (the first signs).
    Table(&'static str),
    /// `hookbridge send` cannot sign for this scheme; why.
    CannotSign(&'static str),
}

/// One verification scheme.
#[derive(Debug)]
pub struct Scheme {
    /// The name in config (`scheme = "…"`), in `check` output and metrics labels.
    pub name: &'static str,
    /// Other names accepted in config; they read back as `name`.
    pub aliases: &'static [&'static str],
    /// The keys its table takes.
    pub shape: Shape,
    /// How its verifier is built from a table.
    pub build: Build,
    /// The request header that carries a secret itself.
    pub secret_header: SecretHeader,
    /// Its round-trip test.
    pub round_trip: RoundTrip,
}

/// Two rotated literal secrets, the first signing.
const SECRETS: &str = r#"secrets = ["new-secret", "old-secret"]"#;
/// The URL the round-trip tests sign and send to.
pub const TEST_URL: &str = "https://hooks.example.com/in/source?tenant=a";

/// A row for an HMAC provider that is only a recipe, with a `tolerance` when it signs a
/// timestamp.
const fn recipe(
    recipe: &'static super::recipe::Recipe,
    shape: Shape,
    round_trip: &'static str,
) -> Scheme {
    Scheme {
        name: recipe.name,
        aliases: &[],
        shape,
        build: Build::Recipe(recipe),
        secret_header: SecretHeader::None,
        round_trip: RoundTrip::Table(round_trip),
    }
}

/// A row whose verifier is built by `build`.
const fn with(
    name: &'static str,
    shape: Shape,
    build: build::BuildFn,
    round_trip: RoundTrip,
) -> Scheme {
    Scheme {
        name,
        aliases: &[],
        shape,
        build: Build::With(build),
        secret_header: SecretHeader::None,
        round_trip,
    }
}

const fn signs(table: &'static str) -> RoundTrip {
    RoundTrip::Table(table)
}

/// Every scheme.
pub const SCHEMES: &[Scheme] = &[
    with("github", Shape::Github, build::github, signs(SECRETS)),
    recipe(&stripe::RECIPE, Shape::Timed, SECRETS),
    recipe(&slack::RECIPE, Shape::Timed, SECRETS),
    recipe(&shopify::RECIPE, Shape::Secrets, SECRETS),
    Scheme {
        aliases: &["svix"],
        ..with(
            "standard-webhooks",
            Shape::Timed,
            build::standard_webhooks,
            signs(
                r#"secrets = ["whsec_bmV3LXNlY3JldC1rZXktbWF0ZXJpYWw=", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]"#,
            ),
        )
    },
    Scheme {
        secret_header: SecretHeader::Fixed(gitlab::HEADER),
        ..with("gitlab", Shape::Secrets, build::gitlab, signs(SECRETS))
    },
    with(
        "twilio",
        Shape::Url,
        build::twilio,
        signs(concat!(
            r#"secrets = ["new-secret", "old-secret"]"#,
            "\npublic_url = \"https://hooks.example.com/in/source?tenant=a\""
        )),
    ),
    recipe(&paddle::RECIPE, Shape::Timed, SECRETS),
    recipe(
        &square::RECIPE,
        Shape::Url,
        concat!(
            r#"secrets = ["new-secret", "old-secret"]"#,
            "\ntrust_forwarded_from = [\"10.0.0.1\"]",
            "\ntrust_forwarded_headers = [\"X-Forwarded-Proto\", \"X-Forwarded-Host\"]"
        ),
    ),
    recipe(
        &hubspot::RECIPE,
        Shape::Url,
        concat!(
            r#"secrets = ["new-secret", "old-secret"]"#,
            "\npublic_url = \"https://hooks.example.com/in/source?tenant=a\""
        ),
    ),
    recipe(&zoom::RECIPE, Shape::Timed, SECRETS),
    with("linear", Shape::Timed, build::linear, signs(SECRETS)),
    with(
        "microsoft-graph",
        Shape::Secrets,
        build::microsoft_graph,
        RoundTrip::CannotSign("the clientState is inside the body (sign_body)"),
    ),
    Scheme {
        secret_header: SecretHeader::Configured,
        ..with(
            "azure-event-grid",
            Shape::EventGrid,
            build::azure_event_grid,
            signs(concat!(
                r#"secrets = ["new-secret", "old-secret"]"#,
                "\nheader = \"X-Event-Grid-Secret\"\ntopics = [\"/subscriptions/x\"]"
            )),
        )
    },
    with(
        "mailgun",
        Shape::Timed,
        build::mailgun,
        RoundTrip::CannotSign("the signature is inside the body (sign_body)"),
    ),
    recipe(&calendly::RECIPE, Shape::Timed, SECRETS),
    recipe(&workos::RECIPE, Shape::Timed, SECRETS),
    with("twitch", Shape::Timed, build::twitch, signs(SECRETS)),
    with(
        "hmac",
        Shape::Hmac,
        build::hmac,
        signs(concat!(
            r#"secrets = ["new-secret", "old-secret"]"#,
            "\nheader = \"X-Sig\"\nalgorithm = \"sha1\"\nencoding = \"base64\"",
            "\ntimestamp_header = \"X-Ts\"\ntemplate = \"{timestamp}|{url}|{header:X-Id}|{body}\"",
            "\npublic_url = \"https://hooks.example.com/in/source?tenant=a\""
        )),
    ),
    with(
        "meta",
        Shape::Meta,
        build::meta,
        signs(concat!(
            r#"secrets = ["new-secret", "old-secret"]"#,
            "\nverify_token = \"verify-me\""
        )),
    ),
    with(
        "discord",
        Shape::PublicKeys,
        build::discord,
        RoundTrip::CannotSign("hookbridge holds only the public key"),
    ),
    with(
        "discord-events",
        Shape::PublicKeys,
        build::discord_events,
        RoundTrip::CannotSign("hookbridge holds only the public key"),
    ),
    with(
        "sendgrid",
        Shape::PublicKeys,
        build::sendgrid,
        RoundTrip::CannotSign("hookbridge holds only the verification key"),
    ),
    Scheme {
        secret_header: SecretHeader::Configured,
        ..with(
            "token",
            Shape::Token,
            build::token,
            signs(concat!(
                r#"secrets = ["new-secret", "old-secret"]"#,
                "\nheader = \"X-Webhook-Token\""
            )),
        )
    },
    Scheme {
        secret_header: SecretHeader::Fixed("Authorization"),
        ..with("bearer", Shape::Secrets, build::bearer, signs(SECRETS))
    },
    Scheme {
        secret_header: SecretHeader::Fixed("Authorization"),
        ..with(
            "basic",
            Shape::Secrets,
            build::basic,
            signs(r#"secrets = ["new:secret", "old:secret"]"#),
        )
    },
    with(
        "none",
        Shape::None,
        build::none,
        RoundTrip::CannotSign("nothing is signed"),
    ),
];

/// The row for a name or alias as written in config.
pub fn find(name: &str) -> Option<&'static Scheme> {
    SCHEMES
        .iter()
        .find(|s| s.name == name || s.aliases.contains(&name))
}

/// Every name and alias, for the "expected one of" of an unknown scheme.
pub fn names() -> &'static [&'static str] {
    static NAMES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
        (SCHEMES.iter())
            .flat_map(|s| std::iter::once(s.name).chain(s.aliases.iter().copied()))
            .collect()
    });
    &NAMES
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README section that documents every scheme (it moves to `docs/` with the
    /// README split).
    const README: &str = "README.md";

    /// The first column of the README's providers table: `name` and `(alias \`x\`)`.
    fn readme_schemes() -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(README);
        let text = std::fs::read_to_string(&path).unwrap();
        let section = text
            .split("### Providers")
            .nth(1)
            .expect("a Providers section");
        let table = (section.lines())
            .skip_while(|l| !l.starts_with("| scheme |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'));
        table
            .flat_map(|row| {
                let cell = row.split('|').nth(1).unwrap_or_default();
                cell.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn every_scheme_is_in_the_readme_providers_table_and_back() {
        let documented = readme_schemes();
        for scheme in SCHEMES {
            for name in std::iter::once(&scheme.name).chain(scheme.aliases) {
                assert!(
                    documented.iter().any(|d| d == name),
                    "scheme {name} is missing from {README}'s providers table (### Providers)"
                );
            }
        }
        for name in &documented {
            assert!(
                find(name).is_some(),
                "{README}'s providers table lists {name}, which is missing from the registry (src/verify/registry.rs, SCHEMES)"
            );
        }
    }

    #[test]
    fn every_recipe_file_has_a_registry_row() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/verify/registry");
        let mut recipes = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if !(text.lines()).any(|l| l.starts_with("pub const RECIPE: Recipe")) {
                continue;
            }
            recipes += 1;
            let stem = path.file_stem().unwrap().to_string_lossy();
            assert!(
                find(&stem).is_some(),
                "src/verify/registry/{stem}.rs holds a recipe, but scheme {stem} is missing from the registry (src/verify/registry.rs, SCHEMES)"
            );
        }
        assert!(recipes >= 10, "found only {recipes} recipe files");
    }

    #[test]
    fn names_are_unique_and_every_row_builds_its_round_trip_table() {
        let names = names();
        for (i, name) in names.iter().enumerate() {
            assert!(!names[..i].contains(name), "{name} is listed twice");
        }
        for scheme in SCHEMES {
            if let Build::Recipe(recipe) = scheme.build {
                assert_eq!(recipe.name, scheme.name);
            }
        }
    }
}
