//! Project automation. `cargo xtask ci` runs every check CI runs, in order.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use xshell::{Shell, cmd};

mod python;

/// The cargo-deny release xtask installs when none (or another) is present.
const CARGO_DENY_VERSION: &str = "0.20.2";
/// The folder name cargo-deny derives from the default advisory database URL.
const ADVISORY_DB_DIR: &str = "advisory-db-3157b0e258782691";

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci [--keep-going]   every check CI runs: fmt, clippy (all feature sets), nextest,
                      doctests, rustdoc, cargo-deny, the quickstart and the demo;
                      installs postgresql, chromium and chromium-driver if missing,
                      and google's python client in a virtualenv under target/;
                      builds without incremental state, with line tables only
  test [ARGS]         the quick loop: nextest over the workspace (ARGS go to
                      nextest), with a throwaway postgresql; installs Debian's
                      chromium and chromium-driver for the browser test
  bench [--quick]     the benchmark suite against the emulator (release build);
                      writes target/bench/results.json; then the criterion
                      hash micro-benchmarks (target/criterion/)
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
        Some("test") => {
            let _postgres =
                start_throwaway_postgres(&sh, false).context("failed to start a throwaway postgresql for the tests")?;
            ensure_chromium(&sh);
            python::ensure_google_client(&sh, &root);
            let mut nextest_args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
            if nextest_args.is_empty() {
                nextest_args.push("--workspace");
            }
            Ok(cmd!(sh, "cargo nextest run --all-features {nextest_args...}").run()?)
        }
        Some("bench") => {
            let quick: Vec<&str> = args
                .iter()
                .skip(1)
                .filter(|a| *a == "--quick")
                .map(String::as_str)
                .collect();
            let quick_hash = quick.clone();
            // The fleet benchmark measures the refresh through PostgreSQL too.
            let _postgres = start_throwaway_postgres(&sh, true)
                .context("failed to start a throwaway postgresql for the fleet benchmark")?;
            let suite = cmd!(sh, "cargo run --release -p storage-bench -- {quick...}").run();
            // The hash micro-benchmarks run even when a target above was missed.
            cmd!(sh, "cargo bench -p storage-core --bench hash -- {quick_hash...}").run()?;
            Ok(suite?)
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
        run: |sh, _| Ok(cmd!(sh, "cargo run --release -p storage-cli -- demo").run()?),
    },
];

/// The feature sets of `storage-factory` that must each build on their own.
const FACTORY_FEATURE_SETS: &[&str] = &[
    "--no-default-features",
    "--no-default-features --features gdrive",
    "--no-default-features --features onedrive",
    // The connect flow with one provider: its cfg gates.
    "--no-default-features --features gdrive,sealed",
    "",
];

fn ci(sh: &Shell, root: &Path, keep_going: bool) -> Result<()> {
    let started = Instant::now();
    frugal_builds(sh);
    report_free_space(root, "at the start");
    let _postgres =
        start_throwaway_postgres(sh, false).context("failed to start a throwaway postgresql for the tests")?;
    ensure_chromium(sh);
    python::ensure_google_client(sh, root);
    let mut failed = Vec::new();
    for step in STEPS {
        eprintln!("\n==> xtask ci: {}", step.name);
        let t = Instant::now();
        match (step.run)(sh, root) {
            Ok(()) => {
                eprintln!("==> ok: {} ({:.0?})", step.name, t.elapsed());
                report_free_space(root, "after it");
            }
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

/// Builds without incremental state and with line tables only, unless the caller chose otherwise.
///
/// CI builds a clean clone once, for several feature sets, so incremental state is never reused,
/// and full debug info makes each test binary several times larger. Together they filled a CI
/// machine's disk before the last feature set was built ("No space left on device"). Panics and
/// backtraces keep their file and line numbers.
fn frugal_builds(sh: &Shell) {
    for (key, value) in [
        ("CARGO_INCREMENTAL", "0"),
        ("CARGO_PROFILE_DEV_DEBUG", "line-tables-only"),
    ] {
        if std::env::var_os(key).is_none() {
            sh.set_var(key, value);
        }
    }
}

/// Prints the free space on the disk that holds `target/`, so a CI log shows how close a run came
/// to filling it. Prints nothing when `df` cannot tell.
fn report_free_space(root: &Path, when: &str) {
    if let Some(gib) = free_gib(root) {
        eprintln!("==> disk: {gib:.1} GiB free {when}");
    }
}

/// Free space in GiB on the file system of `path`, read from POSIX `df -Pk`.
fn free_gib(path: &Path) -> Option<f64> {
    let out = std::process::Command::new("df").arg("-Pk").arg(path).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    // The second line: file system, 1024-blocks, used, available, capacity, mount point.
    let available_kib: f64 = text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()?;
    Some(available_kib / (1024.0 * 1024.0))
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

/// Installs Debian packages without a prompt, refreshing the package lists
/// once when the first attempt fails (a bare machine has none).
fn apt_install(sh: &Shell, packages: &[&str]) -> Result<()> {
    let install = || {
        cmd!(sh, "apt-get install -y {packages...}")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
    };
    if install().is_err() {
        cmd!(sh, "apt-get update").run()?;
        install()?;
    }
    Ok(())
}

/// Installs Debian's `chromium` and `chromium-driver` for the web example's
/// browser test when either program is missing. A failed install is only
/// reported: the test itself then fails under `CI=true`, naming what is
/// missing, and skips elsewhere.
fn ensure_chromium(sh: &Shell) {
    let present = |var: &str, program: &str| {
        std::env::var_os(var).is_some_and(|p| Path::new(&p).is_file()) || which(program).is_some()
    };
    if present("STORAGE_TEST_CHROMIUM", "chromium") && present("STORAGE_TEST_CHROMEDRIVER", "chromedriver") {
        return;
    }
    eprintln!("==> chromium: installing Debian's chromium and chromium-driver packages");
    if let Err(e) = apt_install(sh, &["chromium", "chromium-driver"]) {
        eprintln!("==> chromium: the install failed ({e:#}); the browser test reports it");
    }
}

/// The first `program` on `PATH`.
fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// A PostgreSQL cluster in a temporary folder for the tests, on 127.0.0.1 and a
/// free port; dropping it stops the server and deletes the folder.
struct ThrowawayPostgres {
    bin: PathBuf,
    dir: PathBuf,
    /// `initdb` refuses root: run the server's programs as the `postgres` user.
    as_postgres: bool,
}

/// Starts a throwaway cluster and points `STORAGE_TEST_DATABASE_URL` at it for
/// every later command, installing Debian's `postgresql` when `initdb` is
/// missing. A URL the user already set is used instead (`None`). `durable`
/// keeps fsync on (for benchmarks); tests run without it.
fn start_throwaway_postgres(sh: &Shell, durable: bool) -> Result<Option<ThrowawayPostgres>> {
    if std::env::var_os("STORAGE_TEST_DATABASE_URL").is_some_and(|u| !u.is_empty()) {
        eprintln!("==> postgresql: using STORAGE_TEST_DATABASE_URL");
        return Ok(None);
    }
    let t = Instant::now();
    let bin = match postgres_bin_dir() {
        Some(bin) => bin,
        None => {
            eprintln!("==> postgresql: installing Debian's postgresql package");
            apt_install(sh, &["postgresql"])?;
            postgres_bin_dir().context("initdb is still missing after installing postgresql")?
        }
    };
    let as_postgres = cmd!(sh, "id -u").quiet().read()?.trim() == "0";
    let dir = std::env::temp_dir().join(format!("storage-xtask-pg-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pg = ThrowawayPostgres { bin, dir, as_postgres };
    let tls = server_certificate(sh, &pg.dir).context("failed to make a tls certificate for postgresql (openssl)")?;
    if as_postgres {
        let dir = &pg.dir;
        cmd!(sh, "chown -R postgres: {dir}").run()?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port()
        .to_string();
    let data = pg.dir.join("data");
    let data = data.to_str().context("a non-utf-8 temporary folder")?;
    let sockets = pg.dir.to_str().context("a non-utf-8 temporary folder")?;
    let log = pg.dir.join("server.log");
    let log = log.to_str().context("a non-utf-8 temporary folder")?;
    let fsync = if durable { "on" } else { "off" };
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync={fsync} -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
        tls.cert.display(),
        tls.key.display()
    );
    // The postgres user may not be able to enter the workspace.
    let _cwd = sh.push_dir(&pg.dir);
    pg.run(
        sh,
        "initdb",
        &["-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
    )?;
    pg.run(sh, "pg_ctl", &["-D", data, "-o", &options, "-l", log, "-w", "start"])?;
    pg.run(
        sh,
        "createdb",
        &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "storage_test"],
    )?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/storage_test?sslmode=disable");
    eprintln!("==> postgresql: {url} ({:.0?})", t.elapsed());
    sh.set_var("STORAGE_TEST_DATABASE_URL", url);
    // The server also speaks TLS, with a certificate from this throwaway CA.
    sh.set_var("STORAGE_TEST_DATABASE_CA", &tls.ca);
    Ok(Some(pg))
}

/// A throwaway CA and a server certificate for `127.0.0.1` it signed.
struct ServerCertificate {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// Makes a P-256 CA and a server certificate for the IP address `127.0.0.1`
/// in `dir` with the `openssl` program (Debian's `postgresql` depends on it).
fn server_certificate(sh: &Shell, dir: &Path) -> Result<ServerCertificate> {
    let _cwd = sh.push_dir(dir);
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    cmd!(
        sh,
        "openssl req -x509 {ec...} -keyout ca.key -out ca.pem -days 2 -subj /CN=storage-test-ca"
    )
    .quiet()
    .ignore_stderr()
    .run()?;
    cmd!(
        sh,
        "openssl req {ec...} -keyout server.key -out server.csr -subj /CN=127.0.0.1"
    )
    .quiet()
    .ignore_stderr()
    .run()?;
    sh.write_file(
        "server.ext",
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )?;
    cmd!(
        sh,
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext"
    )
    .quiet()
    .ignore_stderr()
    .run()?;
    // PostgreSQL refuses a key that others can read.
    std::fs::set_permissions(
        dir.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    Ok(ServerCertificate {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    })
}

/// Debian's newest `/usr/lib/postgresql/*/bin`, else the folder of `initdb` on `PATH`.
fn postgres_bin_dir() -> Option<PathBuf> {
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("initdb").is_file())
}

impl ThrowawayPostgres {
    fn run(&self, sh: &Shell, program: &str, args: &[&str]) -> Result<()> {
        let exe = self.bin.join(program);
        if self.as_postgres {
            cmd!(sh, "runuser -u postgres -- {exe} {args...}")
                .quiet()
                .ignore_stdout()
                .run()?;
        } else {
            cmd!(sh, "{exe} {args...}").quiet().ignore_stdout().run()?;
        }
        Ok(())
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.join("data");
        if data.join("postmaster.pid").exists() {
            let mut stop = if self.as_postgres {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
                c
            } else {
                std::process::Command::new(&pg_ctl)
            };
            let _ = stop
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
                .current_dir(&self.dir)
                .stdout(std::process::Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_for_the_workspace() {
        let gib = free_gib(&workspace_root()).expect("df reports the workspace's disk");
        assert!(gib > 0.0, "a disk with {gib} GiB free could not hold target/");
    }
}
