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
