//! A virtualenv with Google's official Python client, for the emulator's
//! downstream test (`crates/storage-emulator/tests/downstream.rs`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use xshell::{Shell, cmd};

/// The pinned requirements: google-api-python-client, google-auth-oauthlib and
/// every dependency.
const REQUIREMENTS: &str = "crates/storage-emulator/downstream/python/requirements-google.txt";

/// Makes (or reuses, while the requirements are unchanged) a virtualenv under
/// `target/python-google` and points `STORAGE_TEST_GOOGLE_PYTHON` at its
/// interpreter. A failure is only reported: the test then fails under
/// `CI=true`, naming what is missing, and skips elsewhere.
pub(crate) fn ensure_google_client(sh: &Shell, root: &Path) {
    if std::env::var_os("STORAGE_TEST_GOOGLE_PYTHON").is_some() {
        eprintln!("==> python: using STORAGE_TEST_GOOGLE_PYTHON");
        return;
    }
    let t = Instant::now();
    match virtualenv(sh, root) {
        Ok(python) => {
            eprintln!(
                "==> python: google-api-python-client in {} ({:.0?})",
                python.display(),
                t.elapsed()
            );
            sh.set_var("STORAGE_TEST_GOOGLE_PYTHON", python);
        }
        Err(e) => eprintln!("==> python: no virtualenv with google's client ({e:#}); the downstream test reports it"),
    }
}

fn virtualenv(sh: &Shell, root: &Path) -> Result<PathBuf> {
    let requirements = std::fs::read_to_string(root.join(REQUIREMENTS)).context("cannot read the requirements")?;
    let venv = root.join("target/python-google");
    let python = venv.join("bin/python");
    let marker = venv.join("requirements.txt");
    if python.is_file() && std::fs::read_to_string(&marker).is_ok_and(|m| m == requirements) {
        return Ok(python);
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv)?;
    }
    if cmd!(sh, "python3 -m venv {venv}").quiet().run().is_err() {
        // Debian's python3 keeps ensurepip in a package of its own.
        eprintln!("==> python: installing Debian's python3-venv");
        super::apt_install(sh, &["python3", "python3-venv"])?;
        cmd!(sh, "python3 -m venv {venv}").run()?;
    }
    let file = root.join(REQUIREMENTS);
    cmd!(
        sh,
        "{python} -m pip install --quiet --disable-pip-version-check --no-input -r {file}"
    )
    .run()
    .context("pip could not install the pinned requirements")?;
    std::fs::write(&marker, requirements)?;
    Ok(python)
}
