//! `hookbridge check`: the shipped configuration passes; broken files are named with
//! their key; secret values never appear.

use std::process::Command;

use crate::support::hookbridge::bin;

const SECRET_VALUES: [(&str, &str); 3] = [
    ("GITHUB_SECRET", "ghsecret-must-not-leak-9a8b"),
    ("STRIPE_SECRET", "whsec_stripe-must-not-leak-7c6d"),
    ("DEMO_WHSEC", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
];

fn check(config: &std::path::Path) -> (bool, String) {
    let mut cmd = Command::new(bin());
    cmd.args(["check", "--config"]).arg(config);
    for (k, v) in SECRET_VALUES {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn shipped_configuration_passes_and_redacts_secrets() {
    let (ok, text) =
        check(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hookbridge.toml"));
    assert!(ok, "{text}");
    for (_, v) in SECRET_VALUES {
        assert!(
            !text.contains(v),
            "secret value leaked into check output:\n{text}"
        );
    }
    assert!(
        text.contains("sources:") && text.contains("sinks:"),
        "{text}"
    );
}

/// Output nobody can take (a full disk, a reader gone: `check | head -1`) ends the
/// output, not the command in a panic; the exit code says it was lost.
#[test]
fn output_that_cannot_be_written_is_no_panic() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hookbridge.toml");
    let mut cmd = Command::new(bin());
    cmd.args(["check", "--config"]).arg(&config);
    for (k, v) in SECRET_VALUES {
        cmd.env(k, v);
    }
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = cmd.stdout(full).output().expect("run check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("the output could not be written whole"),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(1), "{err}");
}

#[test]
fn broken_connector_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("connectors")).unwrap();
    std::fs::write(dir.path().join("hookbridge.toml"), "").unwrap();
    std::fs::write(
        dir.path().join("connectors/github.toml"),
        "[source]\nname = \"github\"\npath = \"/gh\"\ntopic = \"t\"\nverify = { scheme = \"github\", secrets = [\"${GITHUB_SECRET}\"] }\nmax_bodyy = \"1MiB\"\n",
    )
    .unwrap();
    let (ok, text) = check(&dir.path().join("hookbridge.toml"));
    assert!(!ok);
    assert!(
        text.contains("github.toml") && text.contains("max_bodyy"),
        "{text}"
    );

    std::fs::write(
        dir.path().join("connectors/github.toml"),
        "[source]\nname = \"github\"\npath = \"/gh\"\ntopic = \"t\"\nverify = { scheme = \"github\", secrets = [\"${UNSET_SECRET_FOR_TEST}\"] }\nmax_body = \"1PiB\"\n",
    )
    .unwrap();
    let (ok, text) = check(&dir.path().join("hookbridge.toml"));
    assert!(!ok);
    assert!(
        text.contains("github.toml") && text.contains("source.max_body"),
        "{text}"
    );

    std::fs::write(
        dir.path().join("connectors/github.toml"),
        "[source]\nname = \"github\"\npath = \"/gh\"\ntopic = \"t\"\nverify = { scheme = \"github\", secrets = [\"${UNSET_SECRET_FOR_TEST}\"] }\n",
    )
    .unwrap();
    let (ok, text) = check(&dir.path().join("hookbridge.toml"));
    assert!(!ok);
    assert!(
        text.contains("github.toml") && text.contains("UNSET_SECRET_FOR_TEST"),
        "{text}"
    );
}

#[test]
fn literal_secret_is_accepted_with_a_warning_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("connectors")).unwrap();
    std::fs::write(dir.path().join("hookbridge.toml"), "").unwrap();
    std::fs::write(
        dir.path().join("connectors/gh.toml"),
        "[source]\nname = \"gh\"\npath = \"/gh\"\ntopic = \"t\"\nverify = { scheme = \"github\", secrets = [\"literal-secret-do-not-print\"] }\n",
    )
    .unwrap();
    let (ok, text) = check(&dir.path().join("hookbridge.toml"));
    assert!(ok, "{text}");
    assert!(
        text.contains("warning") && text.contains("literal secret"),
        "{text}"
    );
    assert!(!text.contains("literal-secret-do-not-print"), "{text}");

    std::fs::write(
        dir.path().join("hookbridge.toml"),
        "[admin.console]\ntoken = \"literal-console-token-do-not-print\"\n",
    )
    .unwrap();
    let (ok, text) = check(&dir.path().join("hookbridge.toml"));
    assert!(ok, "{text}");
    assert!(
        text.contains("key `admin.console.token` holds a literal secret"),
        "{text}"
    );
    assert!(
        !text.contains("literal-console-token-do-not-print"),
        "{text}"
    );

    // A Kafka credential written into the file is warned about too; a property that
    // only names where a key is, is not.
    std::fs::write(
        dir.path().join("hookbridge.toml"),
        "[kafka.properties]\n\"security.protocol\" = \"sasl_ssl\"\n\"sasl.mechanisms\" = \"PLAIN\"\n\"sasl.username\" = \"u\"\n\"sasl.password\" = \"literal-kafka-pass-do-not-print\"\n\"ssl.key.location\" = \"/etc/k.pem\"\n",
    )
    .unwrap();
    let (ok, text) = check(&dir.path().join("hookbridge.toml"));
    assert!(ok, "{text}");
    assert!(
        text.contains("key `kafka.properties.sasl.password` holds a literal secret"),
        "{text}"
    );
    assert!(
        !text.contains("`kafka.properties.ssl.key.location` holds"),
        "{text}"
    );
    assert!(!text.contains("literal-kafka-pass-do-not-print"), "{text}");

    // Set by the environment, the warning names the variable, not the file.
    std::fs::write(dir.path().join("hookbridge.toml"), "").unwrap();
    let var = "HOOKBRIDGE__ADMIN__CONSOLE__TOKEN";
    let (code, text) = run_in(
        dir.path(),
        "check",
        &[(var, "literal-env-token-do-not-print")],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "warning: environment variable {var}: key `admin.console.token` holds a literal secret"
        )),
        "{text}"
    );
    assert!(!text.contains("literal-env-token-do-not-print"), "{text}");

    // Written with single underscores, an override is not read, and `check` says so.
    let (code, text) = run_in(
        dir.path(),
        "check",
        &[("HOOKBRIDGE_KAFKA_BROKERS", "kafka-do-not-print:9092")],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("warning: environment variable HOOKBRIDGE_KAFKA_BROKERS is not read"),
        "{text}"
    );
    assert!(!text.contains("kafka-do-not-print"), "{text}");
}

#[test]
fn sink_timeout_must_fit_inside_the_drain_deadline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("connectors")).unwrap();
    std::fs::write(
        dir.path().join("hookbridge.toml"),
        "[shutdown]\ndrain_timeout = \"20s\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("connectors/slow.toml"),
        "[sink]\nname = \"slow\"\ntopics = [\"t\"]\nurl = \"http://127.0.0.1:1/hook\"\ntimeout = \"30s\"\n",
    )
    .unwrap();
    let (ok, text) = check(&dir.path().join("hookbridge.toml"));
    assert!(!ok);
    assert!(
        text.contains("slow.toml")
            && text.contains("sink.timeout")
            && text.contains("drain_timeout"),
        "{text}"
    );
}

/// `hookbridge COMMAND --config DIR/hookbridge.toml` with `env`; exit code and output.
fn run_in(dir: &std::path::Path, command: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin());
    cmd.args([command, "--config"])
        .arg(dir.join("hookbridge.toml"))
        .env_remove("KAFKA_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hookbridge");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// A config dir with `settings` as hookbridge.toml and `connector` (if any) in connectors/.
fn config_dir(settings: &str, connector: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("connectors")).unwrap();
    std::fs::write(dir.path().join("hookbridge.toml"), settings).unwrap();
    if let Some(text) = connector {
        std::fs::write(dir.path().join("connectors/gh.toml"), text).unwrap();
    }
    dir
}

const KAFKA_PASSWORD: &str = "kafka-pw-must-not-leak-31e7";

#[test]
fn misspelt_or_refused_secret_property_names_file_and_key_never_the_value() {
    let cases = [
        ("sasl.pasword", "${KAFKA_PASSWORD}"),
        ("security.protocol", "${KAFKA_PASSWORD}"),
        ("sasl.pasword", KAFKA_PASSWORD),
    ];
    for (key, value) in cases {
        let dir = config_dir(
            &format!("[kafka.properties]\n\"{key}\" = \"{value}\"\n"),
            None,
        );
        for command in ["check", "run"] {
            let (code, text) = run_in(dir.path(), command, &[("KAFKA_PASSWORD", KAFKA_PASSWORD)]);
            assert_eq!(code, Some(2), "{command} {key}: {text}");
            assert!(
                text.contains("hookbridge.toml")
                    && text.contains(&format!("kafka.properties.{key}")),
                "{command} {key}: {text}"
            );
            assert!(!text.contains(KAFKA_PASSWORD), "secret leaked:\n{text}");
        }
    }
}

#[test]
fn toml_error_on_a_line_with_a_literal_secret_never_prints_the_line() {
    let broken_settings = format!(
        "[kafka]\nbrokers = \"127.0.0.1:9092\"\n[kafka.properties]\n\"sasl.password\" = \"{KAFKA_PASSWORD}\n"
    );
    let dir = config_dir(&broken_settings, None);
    let (code, text) = run_in(dir.path(), "check", &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("hookbridge.toml") && text.contains("line 4"),
        "{text}"
    );
    assert!(!text.contains(KAFKA_PASSWORD), "secret leaked:\n{text}");

    // A connector file: a syntax error, then a type error on the secret's own line.
    for verify in [
        format!("verify = {{ scheme = \"github\", secrets = [\"{KAFKA_PASSWORD}\" }}"),
        format!("verify = {{ scheme = \"github\", secrets = \"{KAFKA_PASSWORD}\" }}"),
    ] {
        let connector =
            format!("[source]\nname = \"gh\"\npath = \"/gh\"\ntopic = \"t\"\n{verify}\n");
        let dir = config_dir("", Some(&connector));
        let (code, text) = run_in(dir.path(), "check", &[]);
        assert_eq!(code, Some(2), "{text}");
        assert!(
            text.contains("gh.toml") && text.contains("line 5"),
            "{text}"
        );
        assert!(!text.contains(KAFKA_PASSWORD), "secret leaked:\n{text}");
    }
}

#[test]
fn mistyped_secret_references_are_refused() {
    let dir = config_dir(
        "[kafka.properties]\n\"sasl.password\" = \"$KAFKA_PASSWORD\"\n",
        None,
    );
    let (code, text) = run_in(dir.path(), "check", &[("KAFKA_PASSWORD", KAFKA_PASSWORD)]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("kafka.properties.sasl.password") && text.contains("mistyped"),
        "{text}"
    );

    let connector = "[source]\nname = \"gh\"\npath = \"/gh\"\ntopic = \"t\"\nverify = { scheme = \"github\", secrets = [\"{GITHUB_SECRET}\"] }\n";
    let dir = config_dir("", Some(connector));
    let (code, text) = run_in(dir.path(), "check", &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("gh.toml") && text.contains("source.verify.secrets[0]"),
        "{text}"
    );
}

#[test]
fn settings_that_break_the_commit_promise_or_are_out_of_range_are_refused() {
    let cases = [
        (
            "[kafka]\ncommit_interval = \"0s\"\n",
            "kafka.commit_interval",
        ),
        (
            "[kafka.properties]\n\"enable.auto.commit\" = \"true\"\n",
            "kafka.properties.enable.auto.commit",
        ),
        (
            "[kafka.properties]\n\"enable.auto.offset.store\" = \"true\"\n",
            "kafka.properties.enable.auto.offset.store",
        ),
        (
            "[kafka.properties]\n\"auto.offset.reset\" = \"latest\"\n",
            "kafka.properties.auto.offset.reset",
        ),
        (
            "[kafka.properties]\n\"isolation.level\" = \"read_uncommitted\"\n",
            "kafka.properties.isolation.level",
        ),
        (
            "[kafka.properties]\n\"group.id\" = \"everyone\"\n",
            "kafka.properties.group.id",
        ),
        (
            "[kafka.properties]\n\"acks\" = \"1\"\n",
            "kafka.properties.acks",
        ),
        ("[http]\nmax_in_flight = 0\n", "http.max_in_flight"),
        ("[http]\nbody_timeout = \"0s\"\n", "http.body_timeout"),
        (
            "[http]\nmax_header_bytes = \"10GiB\"\n",
            "http.max_header_bytes",
        ),
    ];
    for (settings, key) in cases {
        let dir = config_dir(settings, None);
        let (code, text) = run_in(dir.path(), "check", &[]);
        assert_eq!(code, Some(2), "{settings}: {text}");
        assert!(
            text.contains("hookbridge.toml") && text.contains(key),
            "{settings}: {text}"
        );
    }
    // A source whose max_body cannot fit the process-wide body budget.
    let connector = "[source]\nname = \"gh\"\npath = \"/gh\"\ntopic = \"t\"\nverify = { scheme = \"none\" }\nmax_body = \"8MiB\"\n";
    let dir = config_dir(
        "[http]\nmax_body_bytes_in_flight = \"4MiB\"\n",
        Some(connector),
    );
    let (code, text) = run_in(dir.path(), "check", &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("gh.toml") && text.contains("max_body_bytes_in_flight"),
        "{text}"
    );
}

#[test]
fn sink_url_credentials_are_redacted_and_risky_settings_warned() {
    let dir = config_dir(
        "[http]\nlisten = \"0.0.0.0:8080\"\nmin_body_rate = 0\n",
        Some("[source]\nname = \"open\"\npath = \"/open\"\ntopic = \"t\"\nverify = { scheme = \"none\" }\n"),
    );
    std::fs::write(
        dir.path().join("connectors/short.toml"),
        "[source]\nname = \"short\"\npath = \"/short\"\ntopic = \"t\"\nverify = { scheme = \"github\", secret = \"${SHORT_SECRET}\" }\nkey = \"header:X-GitHub-Delivery\"\nforward_headers = [\"X-GitHub-Event\", \"X-GitHub-Delivery\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("connectors/sink.toml"),
        "[sink]\nname = \"out\"\ntopics = [\"t\"]\nurl = \"https://hook-user:url-pw-must-not-leak@dest.example/in?api_key=query-key-must-not-leak&page=2\"\n",
    )
    .unwrap();
    // Interactions under the default kafka.produce_timeout (5s): over Discord's 3 s.
    std::fs::write(
        dir.path().join("connectors/discord.toml"),
        "[source]\nname = \"bot\"\npath = \"/bot\"\ntopic = \"t\"\nverify = { scheme = \"discord\", public_keys = [\"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c\"] }\n",
    )
    .unwrap();
    let (code, text) = run_in(dir.path(), "check", &[("SHORT_SECRET", "tiny-9f")]);
    assert_eq!(code, Some(0), "{text}");
    for leak in [
        "hook-user",
        "url-pw-must-not-leak",
        "query-key-must-not-leak",
        "tiny-9f",
    ] {
        assert!(!text.contains(leak), "{leak} leaked:\n{text}");
    }
    assert!(
        text.contains("dest.example/in?api_key=redacted&page=2"),
        "{text}"
    );
    for warning in [
        "`source.verify.scheme` is \"none\"",
        "`http.min_body_rate` is 0",
        "`source.verify` holds a secret shorter than 16 bytes",
        "read x-github-delivery, x-github-event, which the github signature does not cover",
        "a `discord` source while kafka.produce_timeout is 5s",
    ] {
        assert!(text.contains(warning), "no warning {warning:?}:\n{text}");
    }
}

#[test]
fn fetched_key_schemes_show_where_their_keys_come_from() {
    for (connector, shown) in [
        (
            "[source]\nname = \"pubsub\"\npath = \"/p\"\ntopic = \"t\"\nverify = { scheme = \"google-pubsub\", audience = \"https://hooks.example.com/p?key=aud-must-not-leak-5e1\", email = \"push@p.iam.gserviceaccount.com\" }\n",
            [
                "jwks_url https://www.googleapis.com/oauth2/v3/certs",
                "email push@p.iam.gserviceaccount.com",
            ],
        ),
        (
            "[source]\nname = \"sns\"\npath = \"/s\"\ntopic = \"t\"\nverify = { scheme = \"aws-sns\", topics = [\"arn:aws:sns:us-east-1:123456789012:orders\"] }\n",
            [
                "topics arn:aws:sns:us-east-1:123456789012:orders",
                "cert_hosts sns.{region}.amazonaws.com, sns.{region}.amazonaws.com.cn",
            ],
        ),
    ] {
        let dir = config_dir("[kafka]\nbrokers = \"127.0.0.1:9\"\n", Some(connector));
        let (ok, text) = check(&dir.path().join("hookbridge.toml"));
        assert!(ok, "{text}");
        for line in shown {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        assert!(!text.contains("aud-must-not-leak"), "{text}");
    }
}

/// A flag set from the environment takes the usual spellings of yes and no (`1`, `yes`,
/// `on`, `0`, …), not only `true` and `false`; a connector that is not there is a usage
/// error (exit code 2).
#[test]
fn flags_from_the_environment_take_1_and_yes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("connectors")).unwrap();
    std::fs::write(dir.path().join("hookbridge.toml"), "").unwrap();
    for (var, value, args) in [
        ("HOOKBRIDGE_JSON", "1", &["dlq", "list"][..]),
        (
            "HOOKBRIDGE_JSON",
            "yes",
            &["dlq", "show", "--at", "0:0"][..],
        ),
        ("HOOKBRIDGE_DRY_RUN", "on", &["dlq", "redrive"][..]),
        ("HOOKBRIDGE_DRY_RUN", "0", &["dlq", "redrive"][..]),
    ] {
        let out = Command::new(bin())
            .args(args)
            .args(["--connector", "nope", "--config"])
            .arg(dir.path().join("hookbridge.toml"))
            .env(var, value)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no sink connector named \"nope\""),
            "{var}={value} is read as a flag: {err}"
        );
        assert_eq!(out.status.code(), Some(2), "a usage error: {err}");
    }
    let send = |args: &[&str]| {
        Command::new(bin())
            .args(["send", "--config"])
            .arg(dir.path().join("hookbridge.toml"))
            .args(args)
            .output()
            .expect("run send")
    };
    let out = send(&["--connector", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    std::fs::write(
        dir.path().join("connectors/gh.toml"),
        "[source]\nname = \"gh\"\npath = \"/gh\"\ntopic = \"t\"\nverify = { scheme = \"github\", secrets = [\"literal-secret-0123456789\"] }\n",
    )
    .unwrap();
    for url in ["not a url", "localhost:8080"] {
        let out = send(&["--connector", "gh", "--url", url]);
        assert_eq!(out.status.code(), Some(2), "{url}: {out:?}");
    }
    let out = send(&["--connector", "gh", "--url", "not a url"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--url"),
        "{out:?}"
    );
    let missing = dir.path().join("no-such-body.json");
    let out = send(&[
        "--connector",
        "gh",
        "--url",
        "http://127.0.0.1:9",
        "--body",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a body that cannot be read: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--body"),
        "{out:?}"
    );
}

/// The summary shows what changes how records are sent: batching and what becomes of a
/// tombstone.
#[test]
fn the_summary_shows_batching_and_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("connectors")).unwrap();
    std::fs::write(dir.path().join("hookbridge.toml"), "").unwrap();
    std::fs::write(
        dir.path().join("connectors/o.toml"),
        "[sink]\nname = \"o\"\ntopics = [\"t\"]\nurl = \"http://h/\"\ntombstones = \"skip\"\nbatch = { max_records = 50, format = \"ndjson\" }\n",
    )
    .unwrap();
    let (ok, text) = check(&dir.path().join("hookbridge.toml"));
    assert!(ok, "{text}");
    assert!(text.contains("tombstones: skip"), "{text}");
    assert!(
        text.contains("batch: up to 50 records or 1MiB, waiting up to 50ms, ndjson of data"),
        "{text}"
    );
}
