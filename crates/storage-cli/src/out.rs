//! Writing to stdout and stderr without panicking on a closed pipe.

use std::io::Write as _;

/// A line on stdout.
pub fn line(text: &str) {
    let _ = writeln!(std::io::stdout(), "{text}");
}

/// A line on stderr.
pub fn err(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}
