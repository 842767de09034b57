//! The six scenarios.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use storage_core::protocol::HttpVersion;
use storage_core::{ByteStream, Md5Hasher, ObjectKey, ObjectName, QuickXorHasher, StorageBackend};
use storage_emulator::{Emulator, EmulatorHandle, FaultAction, FaultRule, Origin};
use storage_factory::storage_gdrive::GoogleApp;
use storage_factory::storage_onedrive::MicrosoftApp;
use storage_factory::{Endpoints, MemoryCredentialStore, StorageFactory};

use crate::cpu::CoresBusy;
use crate::floor::Floor;
use crate::report::{Figure, median};
use crate::{R, s};

pub(crate) const MIB: usize = 1024 * 1024;
/// The library's default chunk sizes.
pub(crate) const DRIVE_CHUNK: usize = 8 * MIB;
pub(crate) const GRAPH_FRAGMENT: usize = 10 * MIB;

struct Sizes {
    runs: usize,
    big: usize,
    ops: usize,
    rss: [usize; 2],
    hash: usize,
}

fn sizes(quick: bool) -> Sizes {
    if quick {
        Sizes {
            runs: 3,
            big: 64 * MIB,
            ops: 400,
            rss: [64 * MIB, 256 * MIB],
            hash: 256 * MIB,
        }
    } else {
        Sizes {
            runs: 5,
            big: 256 * MIB,
            ops: 2000,
            rss: [256 * MIB, 1024 * MIB],
            hash: 1024 * MIB,
        }
    }
}

/// The benchmark's body: the conformance kit's deterministic bytes.
pub(crate) fn data(len: usize) -> Bytes {
    storage_core::testkit::payload(len, 0x2545_f491_4f6c_dd1d)
}

pub(crate) fn factory(emu: &EmulatorHandle) -> R<StorageFactory> {
    let g = emu.google_app();
    let m = emu.microsoft_app();
    let mut b = StorageFactory::builder();
    // `STORAGE_BENCH_BUDGET=BYTES` sets the upload memory budget, for comparing chunk sizes.
    if let Some(budget) = std::env::var("STORAGE_BENCH_BUDGET").ok().and_then(|v| v.parse().ok()) {
        b = b.upload_memory_budget(budget);
    }
    // The real services speak HTTP/2 to the library's API client (TLS
    // negotiates it); the emulator speaks it by prior knowledge.
    // `STORAGE_BENCH_HTTP=1` measures the library on HTTP/1.1 instead.
    let version = match std::env::var("STORAGE_BENCH_HTTP").as_deref() {
        Ok("1") => HttpVersion::Http1,
        _ => HttpVersion::H2c,
    };
    b.http_version(version)
        .endpoints(Endpoints::from_json(&serde_json::to_string(emu.endpoints()).map_err(s)?).map_err(s)?)
        .google_app(GoogleApp::new(g.client_id.clone(), g.client_secret.clone()))
        .microsoft_app(MicrosoftApp::new(m.client_id.clone(), m.client_secret.clone()))
        .build()
        .map_err(s)
}

pub(crate) fn grant(emu: &EmulatorHandle, provider: &str) -> serde_json::Value {
    if provider == "gdrive" {
        emu.google_grant()
    } else {
        emu.microsoft_grant()
    }
}

pub(crate) async fn managed(
    factory: &StorageFactory,
    emu: &EmulatorHandle,
    provider: &str,
) -> R<Arc<dyn StorageBackend>> {
    let store = Arc::new(MemoryCredentialStore::new());
    store.insert("bench", grant(emu, provider).to_string());
    factory.connect("bench", store).await.map_err(s)
}

pub(crate) async fn floor(emu: &EmulatorHandle) -> R<Floor> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    let mut floor = Floor {
        http,
        google_root: emu.endpoints().google.root.to_string(),
        graph: emu.endpoints().microsoft.graph.to_string(),
        google_token: emu.google_grant()["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        microsoft_token: emu.microsoft_grant()["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        drive_folder: String::new(),
        onedrive_folder: String::new(),
    };
    floor.make_drive_folder().await?;
    floor.make_onedrive_folder().await?;
    Ok(floor)
}

/// What the journal saw since it was last cleared: requests (token requests
/// left out) and distinct TCP connections per origin.
pub(crate) struct Traffic {
    pub(crate) requests: usize,
    pub(crate) api_connections: usize,
    pub(crate) content_connections: usize,
}

pub(crate) fn traffic(emu: &EmulatorHandle) -> Traffic {
    let journal = emu.journal();
    let connections = |origin: Origin| {
        journal
            .filter(|e| e.origin == origin)
            .iter()
            .map(|e| e.connection)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    Traffic {
        requests: journal.filter(|e| !e.path.ends_with("token")).len(),
        api_connections: connections(Origin::Api),
        content_connections: connections(Origin::Content),
    }
}

pub(crate) fn stream(body: &Bytes) -> ByteStream {
    storage_core::stream::from_bytes(body.clone(), 256 * 1024)
}

pub(crate) async fn drain(mut body: ByteStream) -> R<u64> {
    let mut n = 0;
    while let Some(p) = body.next().await {
        n += p.map_err(s)?.len() as u64;
    }
    Ok(n)
}

pub(crate) fn mibps(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / MIB as f64 / t.as_secs_f64()
}

/// The providers to run: both, or those in `STORAGE_BENCH_PROVIDERS` (for profiling one).
pub(crate) fn providers() -> Vec<&'static str> {
    let only = std::env::var("STORAGE_BENCH_PROVIDERS").unwrap_or_default();
    ["gdrive", "onedrive"]
        .into_iter()
        .filter(|p| only.is_empty() || only.split(',').any(|x| x.trim() == *p))
        .collect()
}

/// Runs every scenario and publishes the results.
pub async fn run_all(quick: bool) -> R<()> {
    let sz = sizes(quick);
    let emu = Emulator::start().await.map_err(s)?;
    let factory = factory(&emu)?;
    let fl = floor(&emu).await?;
    let mut figs = Vec::new();
    // `STORAGE_BENCH_ONLY=2,5` runs only those scenarios (for profiling one).
    let only = std::env::var("STORAGE_BENCH_ONLY").unwrap_or_default();
    let run = |n: &str| only.is_empty() || only.split(',').any(|x| x.trim() == n);
    if run("1") {
        eprintln!("storage-bench: scenario 1 (large transfers)");
        scenario1(&emu, &factory, &fl, &sz, &mut figs).await?;
    }
    if run("2") {
        eprintln!("storage-bench: scenario 2 (many small objects)");
        scenario2(&emu, &factory, &fl, &sz, &mut figs).await?;
    }
    if run("3") {
        eprintln!("storage-bench: scenario 3 (peak memory, child process)");
        scenario3(&emu, &sz, &mut figs).await?;
    }
    if run("4") {
        eprintln!("storage-bench: scenario 4 (expired token under load)");
        scenario4(&emu, &factory, &mut figs).await?;
    }
    if run("5") {
        eprintln!("storage-bench: scenario 5 (faults during a large upload)");
        scenario5(&emu, &factory, &sz, &mut figs).await?;
    }
    if run("6") {
        eprintln!("storage-bench: scenario 6 (hashes)");
        scenario6(&sz, &mut figs);
    }
    if run("link") || run("storm") {
        eprintln!("storage-bench: link (an emulated WAN: regional and far)");
        crate::link::run(quick, !run("link"), &mut figs).await?;
    }
    if run("fleet") {
        eprintln!("storage-bench: fleet (refresh latency, 4 processes)");
        crate::fleet::run(quick, &mut figs).await?;
    }
    emu.shutdown().await;
    let ok = crate::report::publish(&figs, &crate::report::machine(), quick)?;
    if ok {
        Ok(())
    } else {
        Err("some targets were missed (FAIL above)".into())
    }
}

async fn scenario1(
    emu: &EmulatorHandle,
    factory: &StorageFactory,
    fl: &Floor,
    sz: &Sizes,
    figs: &mut Vec<Figure>,
) -> R<()> {
    let body = data(sz.big);
    let name = ObjectName::new("bench", "big", ".bin").map_err(s)?;
    // The transport alone: the same chunks to a server that discards them.
    let sink = crate::sink::start().await.map_err(s)?;
    let mut sink_rates = Vec::new();
    for _ in 0..sz.runs {
        let t = Instant::now();
        for piece in body.chunks(DRIVE_CHUNK) {
            fl.http
                .put(&sink)
                .body(Bytes::copy_from_slice(piece))
                .send()
                .await
                .map_err(s)?;
        }
        sink_rates.push(mibps(body.len(), t.elapsed()));
    }
    figs.push(Figure::info(
        "1",
        "-",
        "loopback http sink, upload",
        median(sink_rates),
        "MiB/s",
    ));
    for provider in providers() {
        let lib = managed(factory, emu, provider).await?;
        let (mut lib_rates, mut floor_rates) = (Vec::new(), Vec::new());
        let (mut lib_put, mut lib_get, mut floor_put, mut floor_get): (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) =
            Default::default();
        // Cores busy in each phase: floor put, floor get, library put, library get.
        let mut cores: [Vec<f64>; 4] = Default::default();
        for run in 0..sz.runs {
            // Floor and library alternate within the run.
            let t = Instant::now();
            let busy = CoresBusy::start();
            let id = if provider == "gdrive" {
                fl.drive_put(&format!("floor-{run}.bin"), &body, DRIVE_CHUNK).await?
            } else {
                fl.onedrive_put(&format!("floor-{run}.bin"), &body, GRAPH_FRAGMENT)
                    .await?
            };
            let put_done = t.elapsed();
            cores[0].extend(busy.cores());
            let busy = CoresBusy::start();
            let n = if provider == "gdrive" {
                fl.drive_get(&id, false).await?
            } else {
                fl.onedrive_get(&id, false).await?
            };
            cores[1].extend(busy.cores());
            floor_rates.push(mibps(body.len() + n as usize, t.elapsed()));
            floor_put.push(mibps(body.len(), put_done));
            floor_get.push(mibps(n as usize, t.elapsed() - put_done));
            // The library starts on an empty drive too (see scenario 2).
            let raw = factory.open(&grant(emu, provider).to_string()).map_err(s)?;
            raw.delete_object(&ObjectKey::new(id)).await.map_err(s)?;
            let t = Instant::now();
            let busy = CoresBusy::start();
            let key = lib
                .put_stream(&name, stream(&body), body.len() as u64, "application/octet-stream")
                .await
                .map_err(s)?;
            let put_done = t.elapsed();
            cores[2].extend(busy.cores());
            let busy = CoresBusy::start();
            let n = drain(lib.get_stream(&key).await.map_err(s)?).await?;
            cores[3].extend(busy.cores());
            lib_rates.push(mibps(body.len() + n as usize, t.elapsed()));
            lib_put.push(mibps(body.len(), put_done));
            lib_get.push(mibps(n as usize, t.elapsed() - put_done));
            lib.delete_object(&key).await.map_err(s)?;
        }
        let (lib_rate, floor_rate) = (median(lib_rates), median(floor_rates));
        let [lib_put, lib_get, floor_put, floor_get] = [lib_put, lib_get, floor_put, floor_get].map(median);
        figs.push(
            Figure::info(
                "1",
                provider,
                format!("put_stream + get_stream {} MiB", sz.big / MIB),
                lib_rate,
                "MiB/s",
            )
            .against_floor(floor_rate, 0.85),
        );
        if provider == "gdrive" {
            // Every Drive byte is hashed with md5 on the way up and on the way
            // down (the floor hashes nothing), so the best the library can do each
            // way is the slower of the floor and md5; the two ways together, the
            // same bytes each way, at the harmonic mean of those.
            let md5 = md5_mib_per_s(&body);
            let up = floor_put.min(md5);
            let down = floor_get.min(md5);
            let bound = 2.0 / (1.0 / up + 1.0 / down);
            figs.push(against_bound(
                "1",
                format!(
                    "  put_stream + get_stream ÷ its bound, each way min(floor, md5 at {md5:.0} MiB/s): up {up:.0}, down {down:.0}"
                ),
                lib_rate,
                bound,
            ));
        }
        let [floor_put_cores, floor_get_cores, lib_put_cores, lib_get_cores] = cores;
        for (what, lib, floor, lib_cores, floor_cores) in [
            ("put_stream", lib_put, floor_put, lib_put_cores, floor_put_cores),
            ("get_stream", lib_get, floor_get, lib_get_cores, floor_get_cores),
        ] {
            let mut f = Figure::info("1", provider, format!("  of which {what}"), lib, "MiB/s");
            f.floor = Some(floor);
            f.ratio = f.floor.map(|fl| f.value / fl);
            figs.push(f);
            figs.extend(cores_figure(
                "1",
                provider,
                &format!("    cores busy during {what}"),
                lib_cores,
                floor_cores,
            ));
        }
    }
    Ok(())
}

/// Small objects in flight at once, in scenario 2 and the link part.
pub(crate) const IN_FLIGHT: usize = 32;

/// The floor's round of the small-object workload: `ops` puts, then `ops`
/// gets, [`IN_FLIGHT`] at a time; ops/s, the traffic, and the ids made.
pub(crate) async fn floor_round(
    emu: &EmulatorHandle,
    fl: &Floor,
    provider: &str,
    body: &Bytes,
    ops: usize,
    prefix: &str,
) -> R<(f64, Traffic, Vec<String>)> {
    emu.clear_journal();
    let t = Instant::now();
    let ids: Vec<String> = futures::stream::iter(0..ops)
        .map(|i| async move {
            let name = format!("{prefix}-{i}");
            if provider == "gdrive" {
                fl.drive_put_small(&name, body).await
            } else {
                fl.onedrive_put(&name, body, GRAPH_FRAGMENT).await
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<R<_>>()?;
    let gets: Vec<R<u64>> = futures::stream::iter(ids.iter())
        .map(|id| async move {
            if provider == "gdrive" {
                fl.drive_get(id, true).await
            } else {
                fl.onedrive_get(id, true).await
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    gets.into_iter().collect::<R<Vec<_>>>()?;
    let rate = 2.0 * ops as f64 / t.elapsed().as_secs_f64();
    Ok((rate, traffic(emu), ids))
}

/// The library's round of the same workload under `user`; ops/s, the
/// traffic, and the keys made.
pub(crate) async fn lib_round(
    emu: &EmulatorHandle,
    lib: &Arc<dyn StorageBackend>,
    body: &Bytes,
    ops: usize,
    user: &str,
    prefix: &str,
) -> R<(f64, Traffic, Vec<ObjectKey>)> {
    emu.clear_journal();
    let t = Instant::now();
    let keys: Vec<ObjectKey> = futures::stream::iter(0..ops)
        .map(|i| async move {
            let name = ObjectName::new(user, &format!("{prefix}-{i}"), ".bin").map_err(s)?;
            lib.put_object(&name, body.clone(), "application/octet-stream")
                .await
                .map_err(s)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<R<_>>()?;
    let gets: Vec<R<Bytes>> = futures::stream::iter(keys.iter())
        .map(|k| async move { lib.get_object(k).await.map_err(s) })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    gets.into_iter().collect::<R<Vec<_>>>()?;
    let rate = 2.0 * ops as f64 / t.elapsed().as_secs_f64();
    Ok((rate, traffic(emu), keys))
}

/// The median cores busy of the library's runs next to the floor's, as an
/// information line; none off Linux. Client and emulator share the machine, so a
/// figure near the core count means the machine, not the protocol, is the bound.
fn cores_figure(
    scenario: &'static str,
    provider: &'static str,
    what: &str,
    lib: Vec<f64>,
    floor: Vec<f64>,
) -> Option<Figure> {
    if lib.is_empty() {
        return None;
    }
    let mut f = Figure::info(scenario, provider, what, median(lib), "cores");
    f.floor = (!floor.is_empty()).then(|| median(floor));
    Some(f)
}

/// Drive's `lib` rate as a share of `bound`, the best its md5 allows (the
/// slower of the floor and md5), with the bound in the floor's column.
fn against_bound(scenario: &'static str, what: String, lib: f64, bound: f64) -> Figure {
    let mut f = Figure::info(scenario, "gdrive", what, lib / bound, "").at_least(0.85, "");
    f.floor = Some(bound);
    f
}

/// md5 over `body` in MiB/s, the best of three.
fn md5_mib_per_s(body: &Bytes) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let mut h = Md5Hasher::new();
        h.update(body);
        std::hint::black_box(h.finish());
        best = best.min(t.elapsed().as_secs_f64());
    }
    body.len() as f64 / MIB as f64 / best
}

/// Deletes `keys`, 32 at a time, outside any timing.
pub(crate) async fn remove_all(backend: &Arc<dyn StorageBackend>, keys: Vec<ObjectKey>) {
    futures::stream::iter(keys.iter())
        .for_each_concurrent(32, |k| async move {
            let _ = backend.delete_object(k).await;
        })
        .await;
}

async fn scenario2(
    emu: &EmulatorHandle,
    factory: &StorageFactory,
    fl: &Floor,
    sz: &Sizes,
    figs: &mut Vec<Figure>,
) -> R<()> {
    let body = data(64 * 1024);
    for provider in providers() {
        let lib = managed(factory, emu, provider).await?;
        let (mut lib_rates, mut floor_rates) = (Vec::new(), Vec::new());
        let (mut lib_traffic, mut floor_traffic) = (Vec::new(), Vec::new());
        let (mut lib_cores, mut floor_cores) = (Vec::new(), Vec::new());
        let side = std::env::var("STORAGE_BENCH_SIDE").unwrap_or_default();
        let raw = factory.open(&grant(emu, provider).to_string()).map_err(s)?;
        for run in 0..sz.runs {
            // Floor (`STORAGE_BENCH_SIDE=lib` leaves it out, for profiling the library alone).
            if side != "lib" {
                let busy = CoresBusy::start();
                let (rate, seen, ids) = floor_round(emu, fl, provider, &body, sz.ops, &format!("f{run}")).await?;
                floor_cores.extend(busy.cores());
                floor_rates.push(rate);
                floor_traffic.push(seen);
                // Each side starts on an empty drive: the emulator's lookups slow
                // down as it fills, which would tax whichever side runs second.
                remove_all(&raw, ids.into_iter().map(ObjectKey::new).collect()).await;
            }
            // Library (`STORAGE_BENCH_SIDE=floor` leaves it out).
            if side != "floor" {
                let busy = CoresBusy::start();
                let (rate, seen, keys) = lib_round(emu, &lib, &body, sz.ops, "bench-small", &format!("l{run}")).await?;
                lib_cores.extend(busy.cores());
                lib_rates.push(rate);
                lib_traffic.push(seen);
                remove_all(&raw, keys).await;
            }
        }
        let (lib_rate, floor_rate) = (median(lib_rates), median(floor_rates));
        figs.push(
            Figure::info(
                "2",
                provider,
                format!("{} put_object + {} get_object of 64 KiB, 32 in flight", sz.ops, sz.ops),
                lib_rate,
                "ops/s",
            )
            .against_floor(floor_rate, 0.85),
        );
        if provider == "gdrive" {
            // The bound for Drive, min(floor, md5), here in operations:
            // each put or get hashes its 64 KiB once. md5 alone allows far more
            // than the floor, so the bound is the floor: small objects are not
            // bound by md5's rate but by the CPU it takes from the rest.
            let md5 = md5_mib_per_s(&body) * MIB as f64 / body.len() as f64;
            figs.push(against_bound(
                "2",
                format!("  ÷ its bound, min(floor, md5 at {md5:.0} ops/s)"),
                lib_rate,
                floor_rate.min(md5),
            ));
        }
        figs.extend(cores_figure("2", provider, "  cores busy", lib_cores, floor_cores));
        let med = |t: &[Traffic], f: fn(&Traffic) -> usize| median(t.iter().map(|x| f(x) as f64).collect());
        let per_op = |t: &Traffic| t.requests;
        let mut r = Figure::info(
            "2",
            provider,
            "  requests per put_object + get_object",
            med(&lib_traffic, per_op) / sz.ops as f64,
            "",
        );
        r.floor = Some(med(&floor_traffic, per_op) / sz.ops as f64);
        figs.push(r);
        let total = |t: &Traffic| t.api_connections + t.content_connections;
        let mut c = Figure::info("2", provider, "tcp connections opened", med(&lib_traffic, total), "")
            .at_most(34.0, "connections");
        c.floor = Some(med(&floor_traffic, total));
        figs.push(c);
        for (what, f) in [
            (
                "  of which to the api origin",
                (|t: &Traffic| t.api_connections) as fn(&Traffic) -> usize,
            ),
            ("  of which to the upload/download origin", |t: &Traffic| {
                t.content_connections
            }),
        ] {
            let mut c = Figure::info("2", provider, what, med(&lib_traffic, f), "");
            c.floor = Some(med(&floor_traffic, f));
            figs.push(c);
        }
    }
    Ok(())
}

/// Peak RSS above idle, measured in a child process so that the emulator's
/// memory (which keeps every byte it receives) does not count.
async fn scenario3(emu: &EmulatorHandle, sz: &Sizes, figs: &mut Vec<Figure>) -> R<()> {
    let exe = std::env::current_exe().map_err(s)?;
    let dir = std::env::temp_dir().join(format!("storage-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(s)?;
    let endpoints = dir.join("endpoints.json");
    std::fs::write(&endpoints, serde_json::to_string(emu.endpoints()).map_err(s)?).map_err(s)?;
    for provider in providers() {
        for size in sz.rss {
            let creds = dir.join(format!("{provider}.json"));
            std::fs::write(&creds, grant(emu, provider).to_string()).map_err(s)?;
            let out = tokio::process::Command::new(&exe)
                .args([
                    "child-rss",
                    &endpoints.to_string_lossy(),
                    &creds.to_string_lossy(),
                    &size.to_string(),
                ])
                .output()
                .await
                .map_err(s)?;
            if !out.status.success() {
                return Err(format!("child failed: {}", String::from_utf8_lossy(&out.stderr)));
            }
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(s)?;
            let growth_mib = v["growth_kib"].as_f64().unwrap_or(f64::MAX) / 1024.0;
            // The default upload memory budget, plus 16 MiB.
            let limit = (64 * MIB + 16 * MIB) as f64 / MIB as f64;
            figs.push(
                Figure::info(
                    "3",
                    provider,
                    format!("peak rss growth, put_stream of {} MiB", size / MIB),
                    growth_mib,
                    "MiB",
                )
                .at_most(limit, "MiB (the 64 MiB budget + 16 MiB)"),
            );
            if let Some(key) = v["key"].as_str() {
                let f = factory(emu)?;
                let _ = f
                    .open(&grant(emu, provider).to_string())
                    .map_err(s)?
                    .delete_object(&ObjectKey::new(key))
                    .await;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The child of scenario 3: `child-rss ENDPOINTS CREDENTIALS SIZE`.
pub async fn child_rss(args: &[String]) -> R<()> {
    let [endpoints, creds, size] = args else {
        return Err("child-rss ENDPOINTS CREDENTIALS SIZE".into());
    };
    let size: u64 = size.parse().map_err(s)?;
    let factory = StorageFactory::builder()
        .endpoints(Endpoints::from_json(&std::fs::read_to_string(endpoints).map_err(s)?).map_err(s)?)
        .build()
        .map_err(s)?;
    let backend = factory.open(&std::fs::read_to_string(creds).map_err(s)?).map_err(s)?;
    backend.health_check().await.map_err(s)?;
    let idle = rss_kib("VmRSS:");
    const PIECE: u64 = 64 * 1024;
    // A generated stream: each piece is made when it is asked for.
    let pieces = futures::stream::iter(0..size / PIECE).map(|i| Ok(Bytes::from(vec![(i % 251) as u8; PIECE as usize])));
    let name = ObjectName::new("bench-rss", "big", ".bin").map_err(s)?;
    let key = backend
        .put_stream(&name, Box::pin(pieces), size, "application/octet-stream")
        .await
        .map_err(s)?;
    let peak = rss_kib("VmHWM:");
    println!(
        "{}",
        serde_json::json!({"idle_kib": idle, "peak_kib": peak, "growth_kib": peak.saturating_sub(idle), "key": key.as_str()})
    );
    Ok(())
}

async fn scenario4(emu: &EmulatorHandle, factory: &StorageFactory, figs: &mut Vec<Figure>) -> R<()> {
    for provider in providers() {
        let lib = managed(factory, emu, provider).await?;
        let name = ObjectName::new("bench", "token", ".bin").map_err(s)?;
        let key = lib
            .put_object(&name, Bytes::from_static(b"x"), "text/plain")
            .await
            .map_err(s)?;
        emu.expire_access_tokens();
        emu.clear_journal();
        let t = Instant::now();
        let results = futures::future::join_all((0..200).map(|_| lib.stat_object(&key))).await;
        let wall = t.elapsed();
        let failed = results.iter().filter(|r| r.is_err()).count();
        let tokens = emu.journal().token_requests().len();
        figs.push(
            Figure::info(
                "4",
                provider,
                "token requests for 200 concurrent calls",
                tokens as f64,
                "",
            )
            .at_most(1.0, "request"),
        );
        figs.push(Figure::info(
            "4",
            provider,
            format!("wall time to the last completion ({failed} failed)"),
            wall.as_secs_f64() * 1000.0,
            "ms",
        ));
        if failed > 0 {
            return Err(format!("{failed} of 200 calls failed on {provider}"));
        }
        lib.delete_object(&key).await.map_err(s)?;
    }
    Ok(())
}

async fn scenario5(emu: &EmulatorHandle, factory: &StorageFactory, sz: &Sizes, figs: &mut Vec<Figure>) -> R<()> {
    let body = data(sz.big);
    for provider in providers() {
        let lib = managed(factory, emu, provider).await?;
        let (chunk, unit, path) = if provider == "gdrive" {
            (DRIVE_CHUNK, 256 * 1024, "/upload/drive/v3/files")
        } else {
            (GRAPH_FRAGMENT, 320 * 1024, "/up/*")
        };
        // A fault about every 32 MiB: every 4th Drive chunk, every 3rd Graph fragment.
        let every = if provider == "gdrive" { 4 } else { 3 };
        let chunks = body.len().div_ceil(chunk);
        let mut ids = Vec::new();
        emu.faults().clear();
        for (n, i) in (every - 1..chunks - 1).step_by(every).enumerate() {
            let action = if n % 2 == 0 {
                FaultAction::AcceptPartialChunk { bytes: unit as u64 }
            } else {
                FaultAction::ResetBeforeResponse
            };
            // Each rule counts matching requests from its creation; earlier faults add requests,
            // so rule n skips the requests before chunk i plus one per earlier fault.
            ids.push(
                emu.faults().add(
                    FaultRule::new(action)
                        .origin(Origin::Content)
                        .method("PUT")
                        .path(path)
                        .skip((i + n) as u32)
                        .times(1),
                ),
            );
        }
        emu.clear_journal();
        let name = ObjectName::new("bench", "faulty", ".bin").map_err(s)?;
        let t = Instant::now();
        let key = lib
            .put_stream(&name, stream(&body), body.len() as u64, "application/octet-stream")
            .await
            .map_err(s)?;
        let took = t.elapsed();
        // Chunks grow on a fast link, so fewer requests are made than the
        // rules were placed for: count the faults that fired.
        let faults: u32 = ids.iter().map(|id| emu.faults().fired(*id)).sum();
        emu.faults().clear();
        let sent: u64 = emu
            .journal()
            .filter(|e| e.origin == Origin::Content && e.method == "PUT")
            .iter()
            .map(|e| e.body_len)
            .sum();
        let resent = sent.saturating_sub(body.len() as u64);
        figs.push(Figure::info(
            "5",
            provider,
            format!("upload of {} MiB with {faults} faults", sz.big / MIB),
            mibps(body.len(), took),
            "MiB/s",
        ));
        figs.push(
            Figure::info(
                "5",
                provider,
                "bytes re-sent per fault",
                resent as f64 / faults.max(1) as f64 / MIB as f64,
                "MiB",
            )
            .at_most(64.0, "MiB (one chunk of the 64 MiB budget)"),
        );
        lib.delete_object(&key).await.map_err(s)?;
    }
    Ok(())
}

fn scenario6(sz: &Sizes, figs: &mut Vec<Figure>) {
    let buf = data(sz.hash);
    let gb = sz.hash as f64 / 1e9;
    let mut best_md5 = f64::MAX;
    let mut best_qx = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let mut h = Md5Hasher::new();
        h.update(&buf);
        std::hint::black_box(h.finish());
        best_md5 = best_md5.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut q = QuickXorHasher::new();
        q.update(&buf);
        std::hint::black_box(q.finish());
        best_qx = best_qx.min(t.elapsed().as_secs_f64());
    }
    figs.push(
        Figure::info(
            "6",
            "-",
            format!("quickXorHash over {} MiB", sz.hash / MIB),
            gb / best_qx,
            "GB/s",
        )
        .at_least(1.0, "GB/s"),
    );
    figs.push(
        Figure::info(
            "6",
            "-",
            format!("md5 over {} MiB", sz.hash / MIB),
            gb / best_md5,
            "GB/s",
        )
        .at_least(0.5, "GB/s"),
    );
}
