//! The `storage` command-line program. A skeleton until its issue lands.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "storage: the command-line program is not built yet; run `cargo run --example quickstart -p storage-core`"
    );
    ExitCode::from(2)
}
