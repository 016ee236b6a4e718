//! The one list of verification schemes. Each [`Scheme`] row says everything the rest
//! of hookbridge needs to know about a scheme: its name in config (and aliases), the
//! shape of its table, how its verifier is built, which request header carries a secret
//! itself, and the facts its tests use. Config parsing, `check` and the tests derive
//! from [`SCHEMES`]; a test fails, naming the place, when a scheme is missing from this
//! list, from the providers table in `docs/providers.md` or from the round-trip tests.
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
    /// Build it from `secrets = [first, second]` and `keys` (its other keys, TOML), sign
    /// with the first secret; a verifier holding only the second must reject that.
    Signs {
        /// Two rotated secrets.
        secrets: [&'static str; 2],
        /// The table's other keys.
        keys: &'static str,
    },
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

/// The URL the round-trip tests sign and send to.
pub const TEST_URL: &str = "https://hooks.example.com/in/source?tenant=a";
/// `public_url` for the round-trip tests.
const PUBLIC_URL: &str = "public_url = \"https://hooks.example.com/in/source?tenant=a\"";

/// Signs with the first of two rotated literal secrets, given the table's other keys.
const fn signs(keys: &'static str) -> RoundTrip {
    RoundTrip::Signs {
        secrets: ["new-secret", "old-secret"],
        keys,
    }
}

/// A row for an HMAC provider that is only a recipe; `tolerance` applies when its shape
/// has it.
const fn recipe(
    recipe: &'static super::recipe::Recipe,
    shape: Shape,
    round_trip_keys: &'static str,
) -> Scheme {
    Scheme {
        name: recipe.name,
        aliases: &[],
        shape,
        build: Build::Recipe(recipe),
        secret_header: SecretHeader::None,
        round_trip: signs(round_trip_keys),
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

/// A row whose `header` (or the fixed one named) carries the secret itself.
const fn secret_in_header(header: SecretHeader, row: Scheme) -> Scheme {
    Scheme {
        secret_header: header,
        ..row
    }
}

/// Every scheme.
pub const SCHEMES: &[Scheme] = &[
    with("github", Shape::Github, build::github, signs("")),
    recipe(&stripe::RECIPE, Shape::Timed, ""),
    recipe(&slack::RECIPE, Shape::Timed, ""),
    recipe(&shopify::RECIPE, Shape::Secrets, ""),
    Scheme {
        aliases: &["svix"],
        ..with(
            "standard-webhooks",
            Shape::Timed,
            build::standard_webhooks,
            RoundTrip::Signs {
                secrets: [
                    "whsec_bmV3LXNlY3JldC1rZXktbWF0ZXJpYWw=",
                    "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                ],
                keys: "",
            },
        )
    },
    secret_in_header(
        SecretHeader::Fixed(gitlab::HEADER),
        with("gitlab", Shape::Secrets, build::gitlab, signs("")),
    ),
    with("twilio", Shape::Url, build::twilio, signs(PUBLIC_URL)),
    recipe(&paddle::RECIPE, Shape::Timed, ""),
    recipe(
        &square::RECIPE,
        Shape::Url,
        "trust_forwarded_from = [\"10.0.0.1\"]\ntrust_forwarded_headers = [\"X-Forwarded-Proto\", \"X-Forwarded-Host\"]",
    ),
    recipe(&hubspot::RECIPE, Shape::Url, PUBLIC_URL),
    recipe(&zoom::RECIPE, Shape::Timed, ""),
    with("linear", Shape::Timed, build::linear, signs("")),
    with(
        "microsoft-graph",
        Shape::Secrets,
        build::microsoft_graph,
        RoundTrip::CannotSign("the clientState is inside the body (sign_body)"),
    ),
    secret_in_header(
        SecretHeader::Configured,
        with(
            "azure-event-grid",
            Shape::EventGrid,
            build::azure_event_grid,
            signs("header = \"X-Event-Grid-Secret\"\ntopics = [\"/subscriptions/x\"]"),
        ),
    ),
    with(
        "mailgun",
        Shape::Timed,
        build::mailgun,
        RoundTrip::CannotSign("the signature is inside the body (sign_body)"),
    ),
    recipe(&calendly::RECIPE, Shape::Timed, ""),
    recipe(&workos::RECIPE, Shape::Timed, ""),
    with("twitch", Shape::Timed, build::twitch, signs("")),
    with(
        "hmac",
        Shape::Hmac,
        build::hmac,
        signs(concat!(
            "header = \"X-Sig\"\nalgorithm = \"sha1\"\nencoding = \"base64\"",
            "\ntimestamp_header = \"X-Ts\"\ntemplate = \"{timestamp}|{url}|{header:X-Id}|{body}\"",
            "\npublic_url = \"https://hooks.example.com/in/source?tenant=a\""
        )),
    ),
    with(
        "meta",
        Shape::Meta,
        build::meta,
        signs("verify_token = \"verify-me\""),
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
    // The bearer token is a credential a captured request could be replayed with.
    secret_in_header(
        SecretHeader::Fixed("Authorization"),
        with(
            "google-pubsub",
            Shape::PubSub,
            build::google_pubsub,
            RoundTrip::CannotSign("Google holds the signing key"),
        ),
    ),
    with(
        "aws-sns",
        Shape::Sns,
        build::aws_sns,
        RoundTrip::CannotSign("AWS holds the signing key"),
    ),
    secret_in_header(
        SecretHeader::Configured,
        with(
            "token",
            Shape::Token,
            build::token,
            signs("header = \"X-Webhook-Token\""),
        ),
    ),
    secret_in_header(
        SecretHeader::Fixed("Authorization"),
        with("bearer", Shape::Secrets, build::bearer, signs("")),
    ),
    secret_in_header(
        SecretHeader::Fixed("Authorization"),
        with(
            "basic",
            Shape::Secrets,
            build::basic,
            RoundTrip::Signs {
                secrets: ["new:secret", "old:secret"],
                keys: "",
            },
        ),
    ),
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

    /// The page that documents every scheme.
    const PROVIDERS: &str = "docs/providers.md";

    /// The first column of the providers table: `name` and `(alias \`x\`)`.
    fn documented_schemes() -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PROVIDERS);
        let text = std::fs::read_to_string(&path).unwrap();
        let section = text
            .split("# Providers")
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
    fn every_scheme_is_in_the_providers_table_and_back() {
        let documented = documented_schemes();
        for scheme in SCHEMES {
            for name in std::iter::once(&scheme.name).chain(scheme.aliases) {
                assert!(
                    documented.iter().any(|d| d == name),
                    "scheme {name} is missing from the providers table in {PROVIDERS}"
                );
            }
        }
        for name in &documented {
            assert!(
                find(name).is_some(),
                "the providers table in {PROVIDERS} lists {name}, which is missing from the registry (src/verify/registry.rs, SCHEMES)"
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
