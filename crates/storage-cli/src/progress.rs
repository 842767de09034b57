//! Progress bars on a terminal, and nothing elsewhere.

use std::io::IsTerminal as _;

use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use storage_core::ByteStream;

/// A bar of `total` bytes on stderr, hidden when stderr is not a terminal or `quiet`.
pub fn bar(total: u64, label: &str, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_owned());
    bar
}

/// Counts the bytes of `stream` on `bar` as they pass.
pub fn track(stream: ByteStream, bar: ProgressBar) -> ByteStream {
    Box::pin(stream.inspect(move |item| {
        if let Ok(b) = item {
            bar.inc(b.len() as u64);
        }
    }))
}
