//! Project automation. `cargo xtask ci` runs every check CI runs, in order.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use xshell::{Shell, cmd};

/// The cargo-deny release xtask installs when none (or another) is present.
const CARGO_DENY_VERSION: &str = "0.20.2";
/// The folder name cargo-deny derives from the default advisory database URL.
const ADVISORY_DB_DIR: &str = "advisory-db-3157b0e258782691";

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci [--keep-going]   every check CI runs: fmt, clippy (all feature sets), nextest,
                      doctests, rustdoc, cargo-deny, the quickstart and the demo
  test                the quick loop: nextest over the workspace
  bench [--quick]     the benchmark suite against the emulator (release build);
                      writes target/bench/results.json
";

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sh = Shell::new()?;
    let root = workspace_root();
    sh.change_dir(&root);
    match args.first().map(String::as_str) {
        Some("ci") => ci(&sh, &root, args.iter().any(|a| a == "--keep-going")),
        Some("test") => Ok(cmd!(sh, "cargo nextest run --workspace --all-features").run()?),
        Some("bench") => {
            let quick: Vec<&str> = args
                .iter()
                .skip(1)
                .filter(|a| *a == "--quick")
                .map(String::as_str)
                .collect();
            Ok(cmd!(sh, "cargo run --release -p storage-bench -- {quick...}").run()?)
        }
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n{USAGE}"),
    }
}

fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// One CI step: what it runs, and what to do when it fails.
struct Step {
    name: &'static str,
    hint: &'static str,
    run: fn(&Shell, &Path) -> Result<()>,
}

const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        hint: "run `cargo fmt --all`",
        run: |sh, _| Ok(cmd!(sh, "cargo fmt --all --check").run()?),
    },
    Step {
        name: "clippy (workspace, all features)",
        hint: "fix the lints above; `cargo clippy --workspace --all-targets --all-features` shows them",
        run: |sh, _| {
            Ok(cmd!(
                sh,
                "cargo clippy --workspace --all-targets --all-features -- -D warnings"
            )
            .run()?)
        },
    },
    Step {
        name: "clippy (storage-factory feature sets)",
        hint: "a provider feature does not build alone: check the #[cfg(feature)] arms in storage-factory",
        run: |sh, _| {
            for features in FACTORY_FEATURE_SETS {
                let args: Vec<&str> = features.split_whitespace().collect();
                cmd!(
                    sh,
                    "cargo clippy -p storage-factory --all-targets {args...} -- -D warnings"
                )
                .run()?;
            }
            Ok(())
        },
    },
    Step {
        name: "nextest",
        hint: "a test failed: rerun it with `cargo nextest run -p <crate> <test name>`",
        run: |sh, _| Ok(cmd!(sh, "cargo nextest run --workspace --all-features --no-fail-fast").run()?),
    },
    Step {
        name: "tests (storage-factory feature sets)",
        hint: "a provider feature misbehaves alone: `cargo nextest run -p storage-factory --no-default-features --features <f>`",
        run: |sh, _| {
            for features in FACTORY_FEATURE_SETS {
                let args: Vec<&str> = features.split_whitespace().collect();
                cmd!(sh, "cargo nextest run -p storage-factory {args...}").run()?;
            }
            Ok(())
        },
    },
    Step {
        name: "doctests",
        hint: "a documentation example failed: `cargo test --doc -p <crate>`",
        run: |sh, _| Ok(cmd!(sh, "cargo test --doc --workspace --all-features").run()?),
    },
    Step {
        name: "rustdoc",
        hint: "fix the documentation warnings above (broken links, missing docs)",
        run: |sh, _| {
            Ok(cmd!(sh, "cargo doc --workspace --all-features --no-deps")
                .env("RUSTDOCFLAGS", "-D warnings")
                .run()?)
        },
    },
    Step {
        name: "cargo-deny",
        hint: "a dependency breaks deny.toml: see the diagnostics above; every advisory ignore needs a reason",
        run: deny,
    },
    Step {
        name: "quickstart example",
        hint: "the storage-core example fails: `cargo run --example quickstart -p storage-core`",
        run: |sh, _| Ok(cmd!(sh, "cargo run --quiet --example quickstart -p storage-core").run()?),
    },
    Step {
        name: "demo (README's main job)",
        hint: "the README's `run it` command fails: `cargo run --release -p storage-cli -- demo`",
        run: |sh, _| Ok(cmd!(sh, "cargo run --release -p storage-cli -- demo --quiet").run()?),
    },
];

/// The feature sets of `storage-factory` that must each build on their own.
const FACTORY_FEATURE_SETS: &[&str] = &[
    "--no-default-features",
    "--no-default-features --features gdrive",
    "--no-default-features --features onedrive",
    "",
];

fn ci(sh: &Shell, root: &Path, keep_going: bool) -> Result<()> {
    let started = Instant::now();
    let mut failed = Vec::new();
    for step in STEPS {
        eprintln!("\n==> xtask ci: {}", step.name);
        let t = Instant::now();
        match (step.run)(sh, root) {
            Ok(()) => eprintln!("==> ok: {} ({:.0?})", step.name, t.elapsed()),
            Err(e) => {
                eprintln!("==> FAILED: {} ({e:#})\n    hint: {}", step.name, step.hint);
                failed.push(step.name);
                if !keep_going {
                    break;
                }
            }
        }
    }
    eprintln!("\n==> xtask ci finished in {:.0?}", started.elapsed());
    if failed.is_empty() {
        eprintln!("==> every step passed");
        Ok(())
    } else {
        bail!("failed steps: {}", failed.join(", "))
    }
}

/// Runs `cargo deny --offline check` with the advisory database from the
/// shared offline bundle, installing the pinned cargo-deny when missing.
fn deny(sh: &Shell, root: &Path) -> Result<()> {
    let installed = cmd!(sh, "cargo deny --version")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_default();
    if !installed.contains(CARGO_DENY_VERSION) {
        eprintln!(
            "installing cargo-deny {CARGO_DENY_VERSION} (found: {:?})",
            installed.trim()
        );
        cmd!(sh, "cargo install --locked cargo-deny --version {CARGO_DENY_VERSION}").run()?;
    }
    let db = root.join("target/advisory-db").join(ADVISORY_DB_DIR);
    if !db.join(".git").exists() {
        let bundle = advisory_bundle(root)?;
        if db.exists() {
            sh.remove_path(&db)?;
        }
        cmd!(sh, "git -c init.defaultBranch=main clone -q {bundle} {db}").run()?;
    }
    cmd!(sh, "cargo fetch").run()?;
    cmd!(sh, "cargo deny --offline check").run()?;
    Ok(())
}

/// The advisory bundle: `$STORAGE_ADVISORY_BUNDLE`, or `../shared/advisory-db/` beside the checkout.
fn advisory_bundle(root: &Path) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("STORAGE_ADVISORY_BUNDLE") {
        return Ok(PathBuf::from(p));
    }
    let candidate = root.join("../shared/advisory-db/advisory-db.bundle");
    if candidate.exists() {
        return Ok(candidate);
    }
    Err(anyhow::anyhow!("no advisory database bundle"))
        .context("expected ../shared/advisory-db/advisory-db.bundle beside the checkout, or STORAGE_ADVISORY_BUNDLE")
}
