//! `storage-emulator [OPTIONS]`: see `--help`.
//!
//! Prints the announcement as one JSON line on stdout, logs to stderr, and serves until Ctrl-C.

use std::io::Write as _;
use std::net::IpAddr;
use std::process::ExitCode;

use storage_emulator::{AppCredentials, Emulator, FaultRule, LinkProfile};

const USAGE: &str = "\
usage: storage-emulator [OPTIONS]

A local emulator of Google Drive v3, Microsoft Graph (OneDrive) and both OAuth
token endpoints. The first line on stdout is one JSON object naming every
origin, endpoint, accepted OAuth client and the control API; requests are logged
to stderr. Ctrl-C stops it.

options:
  --port N                    the API origin's port (default: a free one)
  --content-port N            the content origin's port: upload sessions and
                              download urls (default: a free one)
  --bind ADDR                 the address both listeners bind (default
                              127.0.0.1); the control API still answers only
                              loopback peers
  --google-client ID:SECRET   accept another Google OAuth client (repeatable)
  --microsoft-client ID:SECRET
                              accept another Microsoft OAuth client (repeatable)
  --any-client                accept any other client id, with any secret
  --consent-page              show a consent page (Allow, Cancel, a checkbox per
                              Google scope) at the authorize endpoints instead
                              of redirecting at once
  --faults FILE.json          start with these fault rules: a JSON array, or
                              an object {rules: [...], link: PROFILE}
  --link PROFILE              an emulated network link, such as
                              rtt=40ms,rate=400mbit,conn_rate=200mbit: half the
                              rtt before each request is handled and half before
                              its response; a new connection waits setup (default
                              2 x rtt); rate (whole link) and conn_rate (each
                              connection) shape bytes both ways (bit, kbit, mbit,
                              gbit)
  --lenient                   relax the upload rules (chunk and fragment sizes,
                              Authorization on upload urls, Content-Range)
  --no-control                turn the control API (/__emulator/) off
  -h, --help                  this text";

#[derive(Debug, Default)]
struct Args {
    port: u16,
    content_port: u16,
    bind: Option<IpAddr>,
    lenient: bool,
    /// Show a consent page at the authorize endpoints, for a browser.
    consent_page: bool,
    faults: Option<String>,
    link: Option<LinkProfile>,
    google_clients: Vec<AppCredentials>,
    microsoft_clients: Vec<AppCredentials>,
    any_client: bool,
    no_control: bool,
}

fn client(flag: &str, value: &str) -> Result<AppCredentials, String> {
    match value.split_once(':') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(AppCredentials::new(id, secret)),
        _ => Err(format!("{flag} needs ID:SECRET")),
    }
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
            "--bind" => {
                out.bind = Some(
                    value("--bind")?
                        .parse()
                        .map_err(|_| "--bind needs an ip address".to_owned())?,
                );
            }
            "--google-client" => out
                .google_clients
                .push(client("--google-client", &value("--google-client")?)?),
            "--microsoft-client" => out
                .microsoft_clients
                .push(client("--microsoft-client", &value("--microsoft-client")?)?),
            "--any-client" => out.any_client = true,
            "--no-control" => out.no_control = true,
            "--lenient" => out.lenient = true,
            "--consent-page" => out.consent_page = true,
            "--faults" => out.faults = Some(value("--faults")?),
            "--link" => out.link = Some(value("--link")?.parse().map_err(|e| format!("--link: {e}"))?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(out)
}

/// What `--faults` reads: a rule array, or an object with rules and a link.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum FaultsFile {
    Rules(Vec<FaultRule>),
    Config {
        #[serde(default)]
        rules: Vec<FaultRule>,
        link: Option<LinkProfile>,
    },
}

fn log(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if e.is_empty() {
                let _ = writeln!(std::io::stdout(), "{USAGE}");
            } else {
                log(&format!("storage-emulator: {e}"));
                log("usage: storage-emulator [OPTIONS]; --help lists them");
            }
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
        .accept_any_client(args.any_client)
        .control_api(!args.no_control)
        .log_requests(true);
    if let Some(address) = args.bind {
        builder = builder.bind_address(address);
    }
    for app in args.google_clients {
        builder = builder.extra_google_app(app);
    }
    for app in args.microsoft_clients {
        builder = builder.extra_microsoft_app(app);
    }
    if let Some(path) = &args.faults {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                log(&format!("storage-emulator: cannot read {path}: {e}"));
                return ExitCode::from(2);
            }
        };
        let config: FaultsFile = match serde_json::from_str(&text) {
            Ok(c) => c,
            Err(e) => {
                log(&format!("storage-emulator: invalid fault rules in {path}: {e}"));
                return ExitCode::from(2);
            }
        };
        let (rules, link) = match config {
            FaultsFile::Rules(rules) => (rules, None),
            FaultsFile::Config { rules, link } => (rules, link),
        };
        for rule in rules {
            builder = builder.fault(rule);
        }
        if let Some(link) = link {
            builder = builder.link(link);
        }
    }
    if let Some(link) = args.link {
        builder = builder.link(link);
    }
    let emulator = match builder.start().await {
        Ok(e) => e,
        Err(e) => {
            log(&format!("storage-emulator: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let line = match serde_json::to_string(&emulator.announcement()) {
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
        assert_eq!(a.link, None);
        let l = parse(&["--link", "rtt=40ms,rate=400mbit,conn_rate=200mbit"]).unwrap();
        assert_eq!(l.link.unwrap().rtt(), std::time::Duration::from_millis(40));
        assert!(parse(&["--link", "rate=1mbit"]).is_err(), "rtt is required");
        assert!(parse(&["--port"]).is_err());
        assert!(parse(&["--port", "x"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(!a.consent_page);
        assert!(parse(&["--consent-page"]).unwrap().consent_page);
        let c = parse(&[
            "--google-client",
            "g-id:g-secret",
            "--microsoft-client=m-id:m:secret",
            "--any-client",
            "--no-control",
            "--bind",
            "0.0.0.0",
        ])
        .unwrap();
        assert_eq!(c.google_clients, vec![AppCredentials::new("g-id", "g-secret")]);
        // Only the first colon separates: a secret may hold more.
        assert_eq!(c.microsoft_clients, vec![AppCredentials::new("m-id", "m:secret")]);
        assert!(c.any_client && c.no_control);
        assert_eq!(c.bind, Some("0.0.0.0".parse().unwrap()));
        for bad in [
            &["--google-client", "nocolon"][..],
            &["--google-client", ":s"],
            &["--bind", "host"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
