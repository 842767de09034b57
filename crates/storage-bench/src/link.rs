//! The link part: the library and the floor over an emulated WAN, on two
//! profiles. On loopback every request is free; here each costs a round trip,
//! each new connection its handshakes, and each byte its share of a rate that
//! one connection cannot exceed.
//!
//! The floor sends the same requests with plain `reqwest`: one client (so one
//! reused connection per origin), one stream, fixed chunks of the library's
//! first size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use storage_core::{ObjectKey, ObjectName, StorageBackend};
use storage_emulator::{Emulator, EmulatorHandle, LinkProfile};
use storage_factory::{MemoryCredentialStore, StorageFactory};

use crate::floor::Floor;
use crate::report::Figure;
use crate::scenarios::{
    DRIVE_CHUNK, GRAPH_FRAGMENT, IN_FLIGHT, MIB, data, drain, factory, floor, floor_round, grant, lib_round, managed,
    mibps, providers, remove_all, stream, traffic,
};
use crate::{R, s};

/// The two links of the issue: a nearby region and another continent.
const PROFILES: [(&str, &str); 2] = [
    ("regional", "rtt=20ms,rate=1gbit,conn_rate=400mbit"),
    ("far", "rtt=80ms,rate=200mbit,conn_rate=100mbit"),
];

struct Sizes {
    big: usize,
    ops: usize,
}

fn sizes(quick: bool) -> Sizes {
    if quick {
        Sizes {
            big: 128 * MIB,
            ops: 400,
        }
    } else {
        Sizes {
            big: 1024 * MIB,
            ops: 2000,
        }
    }
}

/// Bits per second as MiB/s.
fn mib_per_s(bits: u64) -> f64 {
    bits as f64 / 8.0 / MIB as f64
}

/// Runs the link part on both profiles, then measures the shaping's own cost;
/// with `storm_only` (`STORAGE_BENCH_ONLY=storm`), only the token storm.
pub async fn run(quick: bool, storm_only: bool, figs: &mut Vec<Figure>) -> R<()> {
    let sz = sizes(quick);
    let body = data(sz.big);
    for (label, text) in PROFILES {
        let profile: LinkProfile = text.parse().map_err(s)?;
        eprintln!("storage-bench: link {label} ({profile})");
        let emu = Emulator::builder().link(profile).start().await.map_err(s)?;
        let f = factory(&emu)?;
        let fl = floor(&emu).await?;
        for provider in providers() {
            let at = Place {
                emu: &emu,
                factory: &f,
                floor: &fl,
                label,
                profile,
                provider,
            };
            if !storm_only {
                transfers(&at, &body, figs).await?;
                small_ops(&at, &sz, figs).await?;
            }
            token_storm(&at, figs).await?;
            refresh_window(&at, figs).await?;
        }
        emu.shutdown().await;
    }
    if storm_only {
        return Ok(());
    }
    shaping_cost(quick, figs).await
}

/// Where a measurement runs: the emulator behind a link, and one provider.
struct Place<'a> {
    emu: &'a EmulatorHandle,
    factory: &'a StorageFactory,
    floor: &'a Floor,
    label: &'a str,
    profile: LinkProfile,
    provider: &'static str,
}

fn scenario(label: &str) -> &'static str {
    if label == "far" { "L-far" } else { "L-regional" }
}

/// 1 GiB `put_stream` and `get_stream`, library and floor alternately.
async fn transfers(at: &Place<'_>, body: &Bytes, figs: &mut Vec<Figure>) -> R<()> {
    let Place {
        emu,
        factory: f,
        floor: fl,
        label,
        profile,
        provider,
    } = *at;
    let sc = scenario(label);
    let link = mib_per_s(profile.rate_bits().unwrap_or(u64::MAX));
    let conn = mib_per_s(profile.conn_rate_bits().unwrap_or(u64::MAX));
    let size_mib = body.len() / MIB;
    let lib = managed(f, emu, provider).await?;
    let raw = f.open(&grant(emu, provider).to_string()).map_err(s)?;

    // Floor: fixed chunks, one stream each way.
    let t = Instant::now();
    let id = if provider == "gdrive" {
        fl.drive_put("floor-link.bin", body, DRIVE_CHUNK).await?
    } else {
        fl.onedrive_put("floor-link.bin", body, GRAPH_FRAGMENT).await?
    };
    let floor_put = mibps(body.len(), t.elapsed());
    let t = Instant::now();
    let n = if provider == "gdrive" {
        fl.drive_get(&id, false).await?
    } else {
        fl.onedrive_get(&id, false).await?
    };
    let floor_get = mibps(n as usize, t.elapsed());
    raw.delete_object(&ObjectKey::new(id)).await.map_err(s)?;

    // Library.
    let name = ObjectName::new("bench-link", "big", ".bin").map_err(s)?;
    let t = Instant::now();
    let key = lib
        .put_stream(&name, stream(body), body.len() as u64, "application/octet-stream")
        .await
        .map_err(s)?;
    let lib_put = mibps(body.len(), t.elapsed());
    emu.clear_journal();
    let t = Instant::now();
    let n = drain(lib.get_stream(&key).await.map_err(s)?).await?;
    let lib_get = mibps(n as usize, t.elapsed());
    let get_connections = traffic(emu).content_connections + traffic(emu).api_connections;
    lib.delete_object(&key).await.map_err(s)?;

    let mut put = Figure::info(
        sc,
        provider,
        format!("put_stream {size_mib} MiB ÷ link rate"),
        lib_put / link,
        "",
    );
    put.target = format!("≥ 0.90 (one connection can carry {:.2} of the link)", conn / link);
    put.pass = Some(put.value >= 0.90);
    figs.push(put);
    let mut f = Figure::info(sc, provider, "  put_stream", lib_put, "MiB/s");
    f.floor = Some(floor_put);
    f.ratio = Some(lib_put / floor_put);
    figs.push(f);
    figs.push(Figure::info(
        sc,
        provider,
        "  put_stream ÷ one connection's rate",
        lib_put / conn.min(link),
        "",
    ));
    let mut get = Figure::info(
        sc,
        provider,
        format!("get_stream {size_mib} MiB ÷ link rate (parallel)"),
        lib_get / link,
        "",
    )
    .at_least(0.85, "");
    get.floor = Some(floor_get / link);
    get.ratio = Some(lib_get / floor_get);
    if label == "far" {
        get.target = "≥ 0.85, and ≥ 1.5 × the one-stream floor".into();
        get.pass = Some(get.value >= 0.85 && lib_get >= 1.5 * floor_get);
    }
    figs.push(get);
    let mut f = Figure::info(sc, provider, "  get_stream", lib_get, "MiB/s");
    f.floor = Some(floor_get);
    f.ratio = Some(lib_get / floor_get);
    figs.push(f);
    figs.push(Figure::info(
        sc,
        provider,
        "  connections opened by get_stream",
        get_connections as f64,
        "",
    ));
    Ok(())
}

/// 2,000 × 64 KiB put + get at 32 in flight: ops/s against the floor, and the
/// requests and connections each side used.
async fn small_ops(at: &Place<'_>, sz: &Sizes, figs: &mut Vec<Figure>) -> R<()> {
    let Place {
        emu,
        factory: f,
        floor: fl,
        label,
        provider,
        ..
    } = *at;
    let sc = scenario(label);
    let body = data(64 * 1024);
    let lib = managed(f, emu, provider).await?;
    let raw = f.open(&grant(emu, provider).to_string()).map_err(s)?;

    let (floor_rate, floor_traffic, ids) = floor_round(emu, fl, provider, &body, sz.ops, "lf").await?;
    remove_all(&raw, ids.into_iter().map(ObjectKey::new).collect()).await;
    let (lib_rate, lib_traffic, keys) = lib_round(emu, &lib, &body, sz.ops, "bench-link-small", "l").await?;
    dump_journal(emu, &format!("{label}-{provider}"));
    remove_all(&raw, keys).await;

    figs.push(
        Figure::info(
            sc,
            provider,
            format!("{} × 64 KiB put + get, {IN_FLIGHT} in flight", sz.ops),
            lib_rate,
            "ops/s",
        )
        .against_floor(floor_rate, 1.0),
    );
    let mut r = Figure::info(
        sc,
        provider,
        "  requests per put + get",
        lib_traffic.requests as f64 / sz.ops as f64,
        "",
    );
    r.floor = Some(floor_traffic.requests as f64 / sz.ops as f64);
    figs.push(r);
    for (what, lib, floor, cap) in [
        (
            "  connections to the api origin",
            lib_traffic.api_connections,
            floor_traffic.api_connections,
            IN_FLIGHT + 2,
        ),
        (
            "  connections to the content origin",
            lib_traffic.content_connections,
            floor_traffic.content_connections,
            IN_FLIGHT + 2,
        ),
    ] {
        let mut c = Figure::info(sc, provider, what, lib as f64, "").at_most(cap as f64, "(in flight + 2)");
        c.floor = Some(floor as f64);
        figs.push(c);
    }
    Ok(())
}

/// 200 concurrent calls on an expired token: one refresh, and the wall time
/// against 2 × RTT plus the token endpoint's own time.
async fn token_storm(at: &Place<'_>, figs: &mut Vec<Figure>) -> R<()> {
    let Place {
        emu,
        label,
        profile,
        provider,
        ..
    } = *at;
    let sc = scenario(label);
    // A connection of its own, whose token alone is expired: the floor's stay
    // valid. Its factory is new too, so that its token request opens a
    // connection, as the limit's token time does: the emulator serves both
    // identity providers on one origin, and a connection that the other
    // provider's refresh left open would not exist in production.
    let own = grant(emu, provider);
    let (lib, key) = own_connection(emu, &own, "token").await?;
    // A working connection whose token expires: the API's connection is warm
    // (the put above may have gone on a transfer connection).
    lib.stat_object(&key).await.map_err(s)?;
    let token_time = refresh_time(emu, provider).await?;
    emu.expire_access_token(own["access_token"].as_str().unwrap_or_default());
    emu.clear_journal();
    let t = Instant::now();
    let results = futures::future::join_all((0..200).map(|_| lib.stat_object(&key))).await;
    let wall = t.elapsed();
    dump_journal(emu, &format!("storm-{label}-{provider}"));
    let failed = results.iter().filter(|r| r.is_err()).count();
    if failed > 0 {
        return Err(format!("{failed} of 200 calls failed on {provider} ({label})"));
    }
    let tokens = emu.journal().token_requests().len();
    figs.push(
        Figure::info(
            sc,
            provider,
            "token requests for 200 calls on an expired token",
            tokens as f64,
            "",
        )
        .at_most(1.0, "request"),
    );
    let limit = 2 * profile.rtt() + token_time;
    figs.push(Figure::info(
        sc,
        provider,
        "  the token endpoint's time (a new connection)",
        ms(token_time),
        "ms",
    ));
    figs.push(
        Figure::info(
            sc,
            provider,
            "  wall time of the 200 calls",
            wall.as_secs_f64() * 1000.0,
            "ms",
        )
        .at_most(ms(limit), "ms (2 × rtt + the token request)"),
    );
    lib.delete_object(&key).await.map_err(s)?;
    Ok(())
}

/// 200 concurrent calls on a token that expires within the refresh window
/// (60 s) but still works: one refresh, and the calls' latencies against the
/// same calls a moment before, outside the window. The connection and its
/// factory are new, so that the refresh opens its connection.
async fn refresh_window(at: &Place<'_>, figs: &mut Vec<Figure>) -> R<()> {
    let Place {
        emu, label, provider, ..
    } = *at;
    let sc = scenario(label);
    let mut json = grant(emu, provider);
    // Outside the window by 2 s: long enough to warm the connections first.
    let expiry = chrono::Utc::now() + chrono::Duration::seconds(62);
    let field = if provider == "gdrive" { "expiry" } else { "expires_at" };
    json[field] = serde_json::json!(expiry.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let (lib, key) = own_connection(emu, &json, "window").await?;
    let timed = || async {
        let calls = (0..200).map(|_| async {
            let t = Instant::now();
            lib.stat_object(&key).await.map(|_| ms(t.elapsed()))
        });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .collect::<Result<Vec<f64>, _>>()
            .map_err(s)
    };
    // The first round opens the connections that 200 calls in flight need.
    timed().await?;
    let before = timed().await?;
    let wait = (expiry - chrono::Duration::seconds(60) - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(100)).await;
    emu.clear_journal();
    let inside = timed().await?;
    let tokens = emu.journal().token_requests().len();
    lib.delete_object(&key).await.map_err(s)?;
    figs.push(
        Figure::info(
            sc,
            provider,
            "token requests for 200 calls inside the refresh window",
            tokens as f64,
            "",
        )
        .at_most(1.0, "request"),
    );
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    for (what, lib_ms, plain_ms) in [
        (
            "p50",
            crate::report::median(inside.clone()),
            crate::report::median(before.clone()),
        ),
        ("max", max(&inside), max(&before)),
    ] {
        let mut f = Figure::info(
            sc,
            provider,
            format!("  {what} latency of those calls (floor: outside the window)"),
            lib_ms,
            "ms",
        );
        f.floor = Some(plain_ms);
        figs.push(f);
    }
    Ok(())
}

/// A managed connection of its own on `credentials`, from a new factory, and
/// the key of a one-byte document `doc` it stored.
async fn own_connection(
    emu: &EmulatorHandle,
    credentials: &serde_json::Value,
    doc: &str,
) -> R<(Arc<dyn StorageBackend>, ObjectKey)> {
    let store = Arc::new(MemoryCredentialStore::new());
    store.insert(doc, credentials.to_string());
    let lib = factory(emu)?.connect(doc, store).await.map_err(s)?;
    let name = ObjectName::new("bench-link", doc, ".bin").map_err(s)?;
    let key = lib
        .put_object(&name, Bytes::from_static(b"x"), "text/plain")
        .await
        .map_err(s)?;
    Ok((lib, key))
}

/// With `STORAGE_BENCH_DUMP=PREFIX`, writes the emulator's journal (every
/// request with its arrival time and connection) to `PREFIX-{what}.json`.
fn dump_journal(emu: &EmulatorHandle, what: &str) {
    if let Ok(prefix) = std::env::var("STORAGE_BENCH_DUMP") {
        let entries = serde_json::to_string(emu.journal().entries()).unwrap_or_default();
        if let Err(e) = std::fs::write(format!("{prefix}-{what}.json"), entries) {
            eprintln!("storage-bench: could not write the journal: {e}");
        }
    }
}

/// The token endpoint's time on this link: one refresh on a new connection
/// (its setup, then the round trip), with plain reqwest.
async fn refresh_time(emu: &EmulatorHandle, provider: &str) -> R<Duration> {
    let grant = grant(emu, provider);
    let refresh = grant["refresh_token"].as_str().unwrap_or_default();
    let (url, app) = if provider == "gdrive" {
        (emu.endpoints().google.token.to_string(), emu.google_app())
    } else {
        (
            emu.endpoints().microsoft.token("common").to_string(),
            emu.microsoft_app(),
        )
    };
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.as_str()),
    ];
    let t = Instant::now();
    let resp = reqwest::Client::new().post(url).form(&form).send().await.map_err(s)?;
    if !resp.status().is_success() {
        return Err(format!("refresh answered {}", resp.status()));
    }
    resp.bytes().await.map_err(s)?;
    Ok(t.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The emulator's own cost of shaping: the floor's 256 MiB upload with no
/// link, and with a link that neither waits nor limits (rtt 0, 100 Gbit/s),
/// so that only the shaping's bookkeeping differs.
async fn shaping_cost(quick: bool, figs: &mut Vec<Figure>) -> R<()> {
    let body = data(if quick { 64 * MIB } else { 256 * MIB });
    let mut rates = Vec::new();
    for link in [None, Some("rtt=0ms,setup=0ms,rate=100gbit,conn_rate=100gbit")] {
        let mut b = Emulator::builder();
        if let Some(l) = link {
            b = b.link(l.parse().map_err(s)?);
        }
        let emu = b.start().await.map_err(s)?;
        let fl = floor(&emu).await?;
        let mut best = 0.0f64;
        for run in 0..3 {
            let t = Instant::now();
            let id = fl
                .onedrive_put(&format!("cost-{run}.bin"), &body, GRAPH_FRAGMENT)
                .await?;
            let n = fl.onedrive_get(&id, false).await?;
            best = best.max(mibps(body.len() + n as usize, t.elapsed()));
        }
        rates.push(best);
        emu.shutdown().await;
    }
    let mut f = Figure::info(
        "L-cost",
        "onedrive",
        "floor put+get through an open link (rtt 0, 100 Gbit/s) ÷ no link",
        rates[1] / rates[0],
        "",
    );
    f.floor = Some(rates[0]);
    figs.push(f);
    Ok(())
}
