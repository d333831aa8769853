//! `kubecur doctor` and `kubecur setup tags` as a user runs them without AWS access: one ✘ line per
//! check within seconds and a non-zero exit; bad arguments refused before any AWS call.
#![cfg(feature = "aws")]
// Built without the feature `aws`, these commands only name the rebuild (cli/tests/cli.rs).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A loopback port nothing listens on: connections are refused at once.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `kubecur ARGS` with no AWS configuration from this machine: no credentials or config files, no
/// instance metadata, AWS pointed at `endpoint`; `credentials` adds static keys.
fn kubecur_offline(args: &[&str], endpoint: &str, credentials: bool) -> (Output, Duration) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubecur"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/kubecur-test/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/kubecur-test/credentials",
        );
    if credentials {
        command
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "not-a-real-secret");
    }
    let started = Instant::now();
    let output = command.output().expect("kubecur runs");
    (output, started.elapsed())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const CHECKS: usize = 8;

#[test]
fn doctor_without_credentials_fails_every_check_within_seconds() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let (out, took) = kubecur_offline(&["doctor"], &endpoint, false);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), CHECKS, "{stdout}");
    for line in &lines {
        assert!(line.starts_with("✘ "), "{line}");
        assert!(line.contains(" → fix: "), "{line}");
    }
    assert!(
        lines[0].starts_with("✘ credentials: sts:GetCallerIdentity: no AWS credentials found"),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("8 of 8 checks failed"));
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn doctor_with_an_unreachable_endpoint_says_so_per_check_as_json() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let (out, took) = kubecur_offline(&["doctor", "--format", "json"], &endpoint, true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["ok"], false);
    let checks = report["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), CHECKS, "{report}");
    for check in checks {
        assert_eq!(check["status"], "fail", "{check}");
        let message = check["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("no answer from AWS"),
            "every check, the delivery one through the export's error: {check}"
        );
        assert!(check["fix"].is_string(), "{check}");
    }
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn setup_tags_refuses_a_bad_backfill_month_before_calling_aws() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    for month in ["2019-01", "2999-01", "June", "2024-13"] {
        let (out, _) = kubecur_offline(
            &["setup", "tags", "--apply", "--backfill", month],
            &endpoint,
            true,
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{month}: {stderr}");
        assert!(stderr.contains("--backfill"), "{month}: {stderr}");
        assert!(
            stderr.contains("previous twelve months"),
            "{month}: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "{month}: nothing listed before refusing"
        );
    }
}

#[test]
fn setup_tags_without_aws_access_fails_with_the_fix() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let (out, took) = kubecur_offline(&["setup", "tags"], &endpoint, true);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ce:ListCostAllocationTags"), "{stderr}");
    assert!(stderr.contains("no answer from AWS"), "{stderr}");
    assert!(stderr.contains("fix:"), "{stderr}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn doctor_refuses_a_bad_tag_mapping() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let (out, _) = kubecur_offline(&["doctor", "--tag-key", "planet=earth"], &endpoint, true);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("planet"),
        "{}",
        text(&out.stderr)
    );
}
