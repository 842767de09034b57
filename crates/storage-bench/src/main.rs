//! `cargo xtask bench`: the library against a raw-`reqwest` floor on the
//! emulator, scenario by scenario, with PASS or FAIL against the targets.
//!
//! `storage-bench [--quick]` runs the suite; `storage-bench child-rss …` is the
//! child process of scenario 3.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cpu;
mod fleet;
mod floor;
mod link;
mod report;
mod scenarios;
mod sink;

use std::process::ExitCode;

/// What every step of the suite returns: a failure is a message.
type R<T> = Result<T, String>;

/// An error as the message of [`R`].
fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("child-rss") => scenarios::child_rss(&args[1..]).await,
        Some("fleet") => fleet::main(&args[1..]).await,
        Some("--quick") => scenarios::run_all(true).await,
        None => scenarios::run_all(false).await,
        Some(other) => Err(format!("unknown argument {other}; usage: storage-bench [--quick]")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storage-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
