//! `storage-emulator [--port N] [--content-port N] [--lenient] [--consent-page] [--faults FILE.json]`
//!
//! Prints the endpoints as one JSON line on stdout, logs to stderr, and serves until Ctrl-C.

use std::io::Write as _;
use std::process::ExitCode;

use storage_emulator::Emulator;

const USAGE: &str =
    "usage: storage-emulator [--port N] [--content-port N] [--lenient] [--consent-page] [--faults FILE.json]";

#[derive(Debug, Default)]
struct Args {
    port: u16,
    content_port: u16,
    lenient: bool,
    /// Show a consent page at the authorize endpoints, for a browser.
    consent_page: bool,
    faults: Option<String>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut out = Args::default();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--port" => {
                out.port = value("--port")?
                    .parse()
                    .map_err(|_| "--port needs a number from 0 to 65535".to_owned())?;
            }
            "--content-port" => {
                out.content_port = value("--content-port")?
                    .parse()
                    .map_err(|_| "--content-port needs a number from 0 to 65535".to_owned())?;
            }
            "--lenient" => out.lenient = true,
            "--consent-page" => out.consent_page = true,
            "--faults" => out.faults = Some(value("--faults")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(out)
}

fn log(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                log(&format!("storage-emulator: {e}"));
            }
            log(USAGE);
            return if e.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    let mut builder = Emulator::builder()
        .port(args.port)
        .content_port(args.content_port)
        .lenient(args.lenient)
        .consent_page(args.consent_page)
        .log_requests(true);
    if let Some(path) = &args.faults {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                log(&format!("storage-emulator: cannot read {path}: {e}"));
                return ExitCode::from(2);
            }
        };
        let rules: Vec<storage_emulator::FaultRule> = match serde_json::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                log(&format!("storage-emulator: invalid fault rules in {path}: {e}"));
                return ExitCode::from(2);
            }
        };
        for rule in rules {
            builder = builder.fault(rule);
        }
    }
    let emulator = match builder.start().await {
        Ok(e) => e,
        Err(e) => {
            log(&format!("storage-emulator: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let line = match serde_json::to_string(emulator.endpoints()) {
        Ok(l) => l,
        Err(e) => {
            log(&format!("storage-emulator: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{line}").and_then(|()| stdout.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    log(&format!(
        "storage-emulator: serving (uploads and downloads on {}); Ctrl-C to stop",
        emulator.content_base()
    ));
    let _ = tokio::signal::ctrl_c().await;
    log("storage-emulator: stopping");
    emulator.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn parses_flags() {
        let a = parse(&["--port", "8080", "--lenient", "--faults=f.json"]).unwrap();
        assert_eq!(a.port, 8080);
        assert!(a.lenient);
        assert_eq!(a.faults.as_deref(), Some("f.json"));
        assert!(parse(&["--port"]).is_err());
        assert!(parse(&["--port", "x"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(!a.consent_page);
        assert!(parse(&["--consent-page"]).unwrap().consent_page);
    }
}
