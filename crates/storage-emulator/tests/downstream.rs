//! The downstream examples in `downstream/`: the binary driven from Python
//! (standard library only), from a shell with curl, and by Google's official
//! Python client. They must keep working as the crate README shows them.
//!
//! Each skips with a printed reason when its interpreter is missing, and fails
//! instead under `CI=true`, where `cargo xtask ci` provides them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_storage-emulator");

fn downstream(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("downstream").join(rel)
}

/// Skips (or fails under CI) when `program` cannot be run.
fn available(program: &str, why: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} is missing under CI=true: {why}"
        );
        eprintln!("skipped: {program} is missing ({why})");
    }
    found
}

/// Runs `program script` against the binary; fails with both outputs unless it exits 0.
fn run(program: &str, script: &Path) {
    let out = Command::new(program)
        .arg(script)
        .env("STORAGE_EMULATOR", EXE)
        .output()
        .unwrap();
    let text = format!(
        "{} {}: {}\n--- stdout\n{}\n--- stderr\n{}",
        program,
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    eprintln!("{text}");
}

#[test]
fn python_standard_library_example() {
    if available("python3", "the machine's python3 runs the standard-library example") {
        run("python3", &downstream("python/test_stdlib.py"));
    }
}

#[test]
fn curl_example() {
    if available("curl", "install curl") && available("bash", "install bash") {
        run("bash", &downstream("curl/example.sh"));
    }
}

#[test]
fn google_api_python_client() {
    let Some(python) = std::env::var_os("STORAGE_TEST_GOOGLE_PYTHON") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "STORAGE_TEST_GOOGLE_PYTHON is unset under CI=true: `cargo xtask ci` makes the virtualenv"
        );
        eprintln!(
            "skipped: STORAGE_TEST_GOOGLE_PYTHON is unset (`cargo xtask test` makes a virtualenv with the pinned \
             downstream/python/requirements-google.txt and sets it)"
        );
        return;
    };
    run(python.to_str().unwrap(), &downstream("python/test_google_client.py"));
}
