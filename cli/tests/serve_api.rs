//! `kubecur serve --api URL` (issue 13) from the outside: what it refuses at start, and why. Its signing
//! and forwarding are tested in `cli/src/proxy.rs` and, with a browser, by `scripts/check_page.py`.
#![cfg(feature = "aws")]
// Built without the feature `aws`, these commands only name the rebuild (cli/tests/cli.rs).

use std::process::{Command, Output};

fn serve(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubecur"));
    command.arg("serve").args(args);
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "KUBECUR_API_TOKEN",
    ] {
        command.env_remove(name);
    }
    command
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("kubecur runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn serve_needs_a_cur_or_an_api_and_not_both() {
    let neither = serve(&[], &[]);
    assert_eq!(neither.status.code(), Some(2), "{}", stderr(&neither));
    assert!(stderr(&neither).contains("--cur"), "{}", stderr(&neither));
    let both = serve(&["--cur", "/nowhere", "--api", "https://x.example"], &[]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    assert!(
        stderr(&both).contains("cannot be used with"),
        "{}",
        stderr(&both)
    );
}

#[test]
fn serve_api_without_credentials_or_region_stops_at_start_naming_the_fix() {
    let no_credentials = serve(
        &[
            "--api",
            "https://abc.execute-api.eu-west-1.amazonaws.com",
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(no_credentials.status.code(), Some(2));
    let message = stderr(&no_credentials);
    assert!(message.contains("no AWS credentials"), "{message}");
    assert!(message.contains("KUBECUR_API_TOKEN"), "{message}");
    let no_region = serve(
        &[
            "--api",
            "https://cost.example.com",
            "--listen",
            "127.0.0.1:0",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ],
    );
    assert_eq!(no_region.status.code(), Some(2));
    assert!(
        stderr(&no_region).contains("--region"),
        "{}",
        stderr(&no_region)
    );
    let not_a_url = serve(&["--api", "abc123.execute-api.eu-west-1"], &[]);
    assert_eq!(not_a_url.status.code(), Some(2));
    assert!(
        stderr(&not_a_url).contains("give the API's URL"),
        "{}",
        stderr(&not_a_url)
    );
}
