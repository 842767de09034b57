//! Refresh latency under contention: 4 OS processes × 50 concurrent `stat`
//! calls on one OneDrive connection whose access token the emulator has just
//! expired, through a shared credential store (a directory of files, and
//! PostgreSQL when a database is given).
//!
//! The emulator runs in the parent; the processes are this binary started
//! again as `storage-bench fleet child …`. Each child times every call from its
//! start to its completion and prints the latencies as one JSON line; the
//! parent reports p50, p99 and max of the 200, and the token requests the
//! emulator journal counted (the target is exactly one per round). The token
//! endpoint is delayed by [`TOKEN_DELAY_MS`], a fast real one, so that every
//! process finds the token expired while the first refresh is in flight.
//!
//! `storage-bench fleet [--quick] [--database-url URL]` runs it alone;
//! `STORAGE_TEST_DATABASE_URL` also names the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use storage_core::{ObjectKey, ObjectName};
use storage_emulator::{Emulator, EmulatorHandle, FaultAction, FaultRule};
use storage_factory::storage_onedrive::MicrosoftApp;
use storage_factory::{CredentialStore, Endpoints, FileCredentialStore, PostgresCredentialStore, StorageFactory};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::report::{Figure, median};
use crate::{R, s};

const PROCESSES: usize = 4;
const OPS_PER_PROCESS: usize = 50;
/// Added to every token request.
const TOKEN_DELAY_MS: u64 = 50;
/// The database, when the caller gives none.
const DATABASE_ENV: &str = "STORAGE_TEST_DATABASE_URL";

// What the parent hands its children, in their environment.
const ENV_STORE: &str = "STORAGE_BENCH_FLEET_STORE";
const ENV_ENDPOINTS: &str = "STORAGE_BENCH_FLEET_ENDPOINTS";
const ENV_APP_ID: &str = "STORAGE_BENCH_FLEET_APP_ID";
const ENV_APP_SECRET: &str = "STORAGE_BENCH_FLEET_APP_SECRET";

const READY: &str = "fleet: ready";
const RESULT: &str = "fleet: result ";

/// The benchmark as a part of the suite: the file store, and PostgreSQL when
/// `STORAGE_TEST_DATABASE_URL` is set (a figure says why it was skipped otherwise).
pub async fn run(quick: bool, figs: &mut Vec<Figure>) -> R<()> {
    let url = std::env::var(DATABASE_ENV).ok().filter(|u| !u.is_empty());
    measure(quick, url, figs).await
}

/// `storage-bench fleet …`: `child ID KEY OPS` in a child process, else
/// `[--quick] [--database-url URL]` to run this benchmark alone.
pub async fn main(args: &[String]) -> R<()> {
    if args.first().map(String::as_str) == Some("child") {
        return child(&args[1..]).await;
    }
    let mut quick = false;
    let mut url = None;
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--database-url" => url = Some(rest.next().ok_or("--database-url needs a url")?.clone()),
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: storage-bench fleet [--quick] [--database-url URL]"
                ));
            }
        }
    }
    let mut figs = Vec::new();
    match url {
        Some(url) => measure(quick, Some(url), &mut figs).await?,
        None => run(quick, &mut figs).await?,
    }
    println!("| provider | metric | value | target | result |");
    println!("|---|---|---|---|---|");
    for f in &figs {
        println!(
            "| {} | {} | {:.2} {} | {} | {} |",
            f.provider,
            f.metric,
            f.value,
            f.unit,
            if f.target.is_empty() { "-" } else { &f.target },
            match f.pass {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "-",
            }
        );
    }
    if figs.iter().any(|f| f.pass == Some(false)) {
        return Err("a target was missed (FAIL above)".into());
    }
    Ok(())
}

/// One round's figures.
struct Round {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    tokens: usize,
}

async fn measure(quick: bool, url: Option<String>, figs: &mut Vec<Figure>) -> R<()> {
    let rounds = if quick { 3 } else { 7 };
    let dir = std::env::temp_dir().join(format!("storage-bench-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(s)?;
    let seed: Arc<dyn CredentialStore> = Arc::new(FileCredentialStore::in_dir(&dir));
    let spec = format!("file:{}", dir.display());
    let result = contend(&spec, seed, rounds).await;
    let _ = std::fs::remove_dir_all(&dir);
    push(figs, "onedrive, file store", &result?);
    match url {
        Some(url) => {
            let seed: Arc<dyn CredentialStore> = Arc::new(PostgresCredentialStore::connect(&url).await.map_err(s)?);
            let rounds_ = contend(&format!("postgres:{url}"), seed, rounds).await?;
            push(figs, "onedrive, postgresql", &rounds_);
        }
        None => {
            eprintln!("storage-bench: fleet on postgresql skipped: {DATABASE_ENV} is not set (or pass --database-url)");
            figs.push(Figure::info(
                "fleet",
                "onedrive, postgresql",
                format!("skipped: {DATABASE_ENV} is not set"),
                0.0,
                "",
            ));
        }
    }
    Ok(())
}

/// The baseline round, the medians over the other rounds, and their token requests.
fn push(figs: &mut Vec<Figure>, provider: &'static str, all: &[Round]) {
    let Some((baseline, rounds)) = all.split_first() else {
        return;
    };
    figs.push(Figure::info(
        "fleet",
        provider,
        format!(
            "baseline p50 with a valid token, {} ops over {PROCESSES} processes",
            PROCESSES * OPS_PER_PROCESS
        ),
        baseline.p50_ms,
        "ms",
    ));
    let what = format!(
        "{} ops over {PROCESSES} processes, token endpoint +{TOKEN_DELAY_MS} ms, median of {} rounds",
        PROCESSES * OPS_PER_PROCESS,
        rounds.len()
    );
    let med = |f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    for (stat, value) in [
        ("p50", med(|r| r.p50_ms)),
        ("p99", med(|r| r.p99_ms)),
        ("max", med(|r| r.max_ms)),
    ] {
        figs.push(Figure::info(
            "fleet",
            provider,
            format!("refresh latency {stat}, {what}"),
            value,
            "ms",
        ));
    }
    // Exactly one per round: none would mean no refresh was measured.
    let tokens = rounds.iter().map(|r| r.tokens).max().unwrap_or(0);
    let mut f = Figure::info(
        "fleet",
        provider,
        "token requests per round, most of any round",
        tokens as f64,
        "",
    );
    f.target = "= 1 request in every round".into();
    f.pass = Some(rounds.iter().all(|r| r.tokens == 1));
    figs.push(f);
}

/// Seeds a connection in `seed`, starts the children on `spec` and runs
/// `rounds` rounds of expiry and contention.
async fn contend(spec: &str, seed: Arc<dyn CredentialStore>, rounds: usize) -> R<Vec<Round>> {
    let emu = Emulator::builder()
        .invalidate_rotated_refresh_tokens(true)
        .start()
        .await
        .map_err(s)?;
    let result = contend_on(&emu, spec, seed, rounds).await;
    emu.shutdown().await;
    result
}

async fn contend_on(emu: &EmulatorHandle, spec: &str, seed: Arc<dyn CredentialStore>, rounds: usize) -> R<Vec<Round>> {
    let endpoints = serde_json::to_string(emu.endpoints()).map_err(s)?;
    let app = emu.microsoft_app();
    let factory = StorageFactory::builder()
        .endpoints(Endpoints::from_json(&endpoints).map_err(s)?)
        .microsoft_app(MicrosoftApp::new(app.client_id.clone(), app.client_secret.clone()))
        .build()
        .map_err(s)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let id = format!("bench-fleet-{}-{nanos:08x}", std::process::id());
    seed.save_credentials(&id, &emu.microsoft_grant().to_string().into())
        .await
        .map_err(s)?;
    let backend = factory.connect(&id, seed.clone()).await.map_err(s)?;
    let name = ObjectName::new("bench-fleet", "tiny", ".txt").map_err(s)?;
    let key = backend
        .put_object(&name, Bytes::from_static(b"x"), "text/plain")
        .await
        .map_err(s)?;
    emu.faults().add(
        FaultRule::new(FaultAction::Delay { millis: TOKEN_DELAY_MS })
            .method("POST")
            .path("*/oauth2/v2.0/token"),
    );

    let exe = std::env::current_exe().map_err(s)?;
    let mut children = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..PROCESSES {
        let mut child = tokio::process::Command::new(&exe)
            .args(["fleet", "child", &id, key.as_str(), &OPS_PER_PROCESS.to_string()])
            .env(ENV_STORE, spec)
            .env(ENV_ENDPOINTS, &endpoints)
            .env(ENV_APP_ID, &app.client_id)
            .env(ENV_APP_SECRET, app.client_secret.as_str())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start a fleet child: {e}"))?;
        let stdout = child.stdout.take().ok_or("a fleet child has no stdout")?;
        readers.push(BufReader::new(stdout).lines());
        children.push(child);
    }
    let mut out = Vec::new();
    // Round 0 keeps the token: the same load without a refresh, as a baseline
    // (and a warm-up of every child's connections).
    for round in 0..=rounds {
        for r in &mut readers {
            wait_line(r, READY).await?;
        }
        emu.clear_journal();
        if round > 0 {
            emu.expire_access_tokens();
        }
        for c in &mut children {
            go(c).await?;
        }
        let mut micros: Vec<u64> = Vec::with_capacity(PROCESSES * OPS_PER_PROCESS);
        for r in &mut readers {
            let line = wait_line(r, RESULT).await?;
            let v: serde_json::Value = serde_json::from_str(&line).map_err(s)?;
            if let Some(e) = v["error"].as_str() {
                return Err(format!("a fleet child's call failed: {e}"));
            }
            let lat = v["latencies_us"].as_array().ok_or("a fleet child sent no latencies")?;
            micros.extend(lat.iter().filter_map(serde_json::Value::as_u64));
        }
        if micros.len() != PROCESSES * OPS_PER_PROCESS {
            return Err(format!(
                "{} latencies came back, not {}",
                micros.len(),
                PROCESSES * OPS_PER_PROCESS
            ));
        }
        micros.sort_unstable();
        let ms = |q: f64| percentile(&micros, q) as f64 / 1000.0;
        out.push(Round {
            p50_ms: ms(0.50),
            p99_ms: ms(0.99),
            max_ms: ms(1.0),
            tokens: token_requests(emu),
        });
    }
    for c in &mut children {
        drop(c.stdin.take());
    }
    for c in &mut children {
        let status = tokio::time::timeout(Duration::from_secs(30), c.wait())
            .await
            .map_err(|_| "a fleet child did not exit".to_owned())?
            .map_err(s)?;
        if !status.success() {
            return Err(format!("a fleet child failed: {status}"));
        }
    }
    emu.faults().clear();
    let _ = backend.delete_object(&key).await;
    let _ = seed.delete(&id).await;
    Ok(out)
}

async fn go(child: &mut Child) -> R<()> {
    let stdin = child.stdin.as_mut().ok_or("a fleet child has no stdin")?;
    stdin.write_all(b"go\n").await.map_err(s)?;
    stdin.flush().await.map_err(s)
}

/// Reads lines until one starts with `marker`; returns the rest. A child that
/// goes quiet for a minute is an error.
async fn wait_line(reader: &mut Lines<BufReader<ChildStdout>>, marker: &str) -> R<String> {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), reader.next_line())
            .await
            .map_err(|_| "a fleet child went quiet".to_owned())?
            .map_err(s)?
            .ok_or("a fleet child ended early")?;
        if let Some(rest) = line.strip_prefix(marker) {
            return Ok(rest.to_owned());
        }
    }
}

/// Nearest-rank percentile of sorted values; `q = 1.0` is the max.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() as f64 * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn token_requests(emu: &EmulatorHandle) -> usize {
    emu.journal().token_requests().len()
}

/// A child: `fleet child ID KEY OPS`, the store and the app in its
/// environment. Prints `fleet: ready`, then per `go` line on stdin one
/// `fleet: result {json}` line, until stdin closes.
async fn child(args: &[String]) -> R<()> {
    let [id, key, ops] = args else {
        return Err("usage: storage-bench fleet child ID KEY OPS".into());
    };
    let ops: usize = ops.parse().map_err(s)?;
    let env = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
    let spec = env(ENV_STORE)?;
    let store: Arc<dyn CredentialStore> = match spec.split_once(':') {
        Some(("file", dir)) => Arc::new(FileCredentialStore::in_dir(dir)),
        Some(("postgres", url)) => Arc::new(PostgresCredentialStore::connect(url).await.map_err(s)?),
        _ => return Err("the fleet store is neither file:DIR nor postgres:URL".into()),
    };
    let factory = StorageFactory::builder()
        .endpoints(Endpoints::from_json(&env(ENV_ENDPOINTS)?).map_err(s)?)
        .microsoft_app(MicrosoftApp::new(env(ENV_APP_ID)?, env(ENV_APP_SECRET)?))
        .build()
        .map_err(s)?;
    let backend = factory.connect(id, store).await.map_err(s)?;
    let key = ObjectKey::new(key.clone());
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    loop {
        println!("{READY}");
        if stdin.next_line().await.map_err(s)?.is_none() {
            return Ok(());
        }
        let results = futures::future::join_all((0..ops).map(|_| {
            let backend = backend.clone();
            let key = &key;
            async move {
                let t = Instant::now();
                backend.stat_object(key).await.map(|_| t.elapsed())
            }
        }))
        .await;
        let mut micros = Vec::with_capacity(ops);
        let mut error = None;
        for r in results {
            match r {
                Ok(d) => micros.push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
                Err(e) => error = Some(e.to_string()),
            }
        }
        println!(
            "{RESULT}{}",
            serde_json::json!({"latencies_us": micros, "error": error})
        );
    }
}
