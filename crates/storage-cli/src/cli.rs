//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Store files in users' Google Drive or OneDrive, or try it all on the embedded emulator.
#[derive(Debug, Parser)]
#[command(name = "storage", version, after_help = crate::exit::EXIT_HELP)]
pub struct Cli {
    /// Endpoints JSON, as `storage emulator` prints it; production when absent.
    #[arg(long, global = true, value_name = "FILE")]
    pub endpoints: Option<PathBuf>,
    /// Credential JSON of the connection; refreshed tokens are written back to it.
    #[arg(long, global = true, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// A shared store of connections instead of --credentials: `postgres://…`
    /// (a PostgreSQL table) or `file:DIR` (one `ID.json` per connection); pick
    /// one with --connection. Refreshed tokens are written back to it. With
    /// STORAGE_SEAL_KEYS=kid:base64key[,kid:base64key…] set, credentials are
    /// sealed at rest (XChaCha20-Poly1305): the first key seals, all open.
    /// STORAGE_STORE_CA=FILE trusts only that PEM CA for PostgreSQL's TLS.
    #[arg(
        long,
        global = true,
        value_name = "URL|DIR",
        env = "STORAGE_STORE",
        hide_env_values = true,
        conflicts_with = "credentials"
    )]
    pub store: Option<String>,
    /// The connection id in --store.
    #[arg(long, global = true, value_name = "ID")]
    pub connection: Option<String>,
    /// Lets a `{"provider":"local","root":…}` connection open, with its root
    /// under DIR (an absolute path); without it no local connection opens, so
    /// that a tampered credential file cannot read the machine's files.
    #[arg(long, global = true, value_name = "DIR", env = "STORAGE_LOCAL_BASE")]
    pub local_base: Option<PathBuf>,
    #[command(flatten)]
    pub apps: Apps,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print the cause chain of errors, and info logs.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// OAuth application settings.
#[derive(Debug, Args, Clone)]
pub struct Apps {
    /// Google OAuth client id.
    #[arg(long, global = true, env = "STORAGE_GOOGLE_CLIENT_ID", hide_env_values = true)]
    pub google_client_id: Option<String>,
    /// Google OAuth client secret.
    #[arg(long, global = true, env = "STORAGE_GOOGLE_CLIENT_SECRET", hide_env_values = true)]
    pub google_client_secret: Option<String>,
    /// Microsoft application (client) id.
    #[arg(long, global = true, env = "STORAGE_MICROSOFT_CLIENT_ID", hide_env_values = true)]
    pub microsoft_client_id: Option<String>,
    /// Microsoft client secret (none for a public client).
    #[arg(long, global = true, env = "STORAGE_MICROSOFT_CLIENT_SECRET", hide_env_values = true)]
    pub microsoft_client_secret: Option<String>,
    /// Microsoft tenant: common, consumers, organizations or a tenant id.
    #[arg(long, global = true, env = "STORAGE_MICROSOFT_TENANT", default_value = "common")]
    pub microsoft_tenant: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the embedded emulator and run the whole lifecycle on gdrive, onedrive and local.
    Demo {
        /// Size of the generated file, in MiB.
        #[arg(long, default_value_t = 25)]
        size_mib: u64,
    },
    /// Serve the emulator; the first stdout line is its endpoints JSON.
    Emulator {
        /// API port (0 picks one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Accept what the real services refuse (for probing clients).
        #[arg(long)]
        lenient: bool,
        /// Show a consent page (Allow, Cancel, a checkbox per Google scope) at the
        /// authorize endpoints, for a browser, instead of answering at once.
        #[arg(long)]
        consent_page: bool,
    },
    /// Upload a file (or `-` for stdin); prints the object key.
    Put {
        /// The user the document belongs to.
        #[arg(long)]
        user: String,
        /// The document id.
        #[arg(long)]
        document: String,
        /// Extension, such as `.pdf`.
        #[arg(long, default_value = "")]
        ext: String,
        /// Media type.
        #[arg(long, default_value = "application/octet-stream")]
        content_type: String,
        /// The file, or `-` for stdin.
        path: String,
    },
    /// Download an object.
    Get {
        /// The object key `put` printed.
        /// Drive ids may begin with `-`; a key is taken as a value all the same.
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// Where to write it; `-` (the default) is stdout.
        #[arg(short, long, default_value = "-")]
        output: String,
        /// Only these bytes: `FIRST-LAST` (inclusive, as HTTP writes it), `FIRST-` or `-COUNT`.
        #[arg(long, allow_hyphen_values = true)]
        range: Option<String>,
    },
    /// List the objects stored for a user, page by page.
    Ls {
        /// The user whose objects to list.
        #[arg(long)]
        user: String,
        /// Objects per request (1 to 1000).
        #[arg(long, default_value_t = 100)]
        page_size: u32,
        /// Print one JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// The drive's total, used and remaining bytes (`-` where unknown or unlimited).
    Quota {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Size, media type and checksum of an object.
    Stat {
        /// The object key.
        /// Drive ids may begin with `-`; a key is taken as a value all the same.
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete an object (already gone is fine).
    Rm {
        /// The object key.
        /// Drive ids may begin with `-`; a key is taken as a value all the same.
        #[arg(allow_hyphen_values = true)]
        key: String,
    },
    /// Check that the connection works.
    Health,
    /// Pre-authenticated URLs.
    Presign {
        #[command(subcommand)]
        what: Presign,
    },
    /// Delete every object stored for one user, and the user's folder; prints what went.
    ///
    /// Asks for confirmation on a terminal; scripts pass --yes.
    Purge {
        /// The user whose objects go.
        #[arg(long)]
        user: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
    /// End the connection: optionally purge a user's objects, revoke the grant
    /// where the provider allows it, and delete the credentials (the file, or the
    /// connection in --store).
    ///
    /// Asks for confirmation on a terminal; scripts pass --yes. Running it again
    /// after a failure finishes the job.
    Disconnect {
        /// Delete the objects of --user first.
        #[arg(long, requires = "user")]
        purge: bool,
        /// The user whose objects --purge deletes.
        #[arg(long, requires = "purge")]
        user: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
    /// Connect an account: authorize URL, code exchange, or a loopback login.
    Auth {
        #[command(subcommand)]
        what: Auth,
    },
    /// The connections of a --store: list them, or import credential JSON.
    Connections {
        #[command(subcommand)]
        what: Connections,
    },
}

#[derive(Debug, Subcommand)]
pub enum Connections {
    /// Id, provider, status and access-token expiry of each connection; never a token or secret.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Store the credential JSON of FILE (from `auth exchange` or `auth login`) as --connection ID.
    Import {
        /// The credential JSON file.
        file: PathBuf,
        /// Overwrite an existing connection and mark it active again.
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum Presign {
    /// A URL that reads the object without credentials.
    Get {
        /// The object key.
        /// Drive ids may begin with `-`; a key is taken as a value all the same.
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// How long it must stay valid: `900`, `900s`, `15m`, `1h`.
        #[arg(long, default_value = "15m")]
        expires: String,
    },
}

/// The providers with OAuth.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Provider {
    /// Google Drive.
    Gdrive,
    /// OneDrive.
    Onedrive,
}

#[derive(Debug, Subcommand)]
pub enum Auth {
    /// Print the authorize URL; the PKCE verifier goes to stderr for `auth exchange`.
    Url {
        provider: Provider,
        /// Where the provider sends the user back.
        #[arg(long)]
        redirect_uri: String,
        /// The `state` value; random when absent.
        #[arg(long, allow_hyphen_values = true)]
        state: Option<String>,
    },
    /// Exchange an authorization code for credential JSON, written with mode 0600.
    Exchange {
        provider: Provider,
        /// The code from the redirect.
        #[arg(long, allow_hyphen_values = true)]
        code: String,
        /// The redirect URI used for the authorize URL.
        #[arg(long)]
        redirect_uri: String,
        /// The PKCE verifier `auth url` printed. A verifier is base64url and may
        /// begin with `-`; it is taken as a value all the same.
        #[arg(long, allow_hyphen_values = true)]
        verifier: String,
        /// Where to write the credential JSON.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Print the URL, wait for the redirect on a loopback port, write credential JSON.
    Login {
        provider: Provider,
        /// Where to write the credential JSON.
        #[arg(short, long)]
        output: PathBuf,
        /// Loopback port to listen on (0 picks one).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
}

/// Parses `900`, `900s`, `15m`, `2h`.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let (num, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("900").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("1h").unwrap().as_secs(), 3600);
        assert!(parse_duration("1d").is_none());
        assert!(parse_duration("m").is_none());
    }

    #[test]
    fn a_verifier_may_begin_with_a_hyphen() {
        use clap::Parser as _;
        // base64url verifiers begin with `-` one time in 64 (the CLI test met one).
        let cli = Cli::try_parse_from([
            "storage",
            "auth",
            "exchange",
            "gdrive",
            "--code",
            "-c1",
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--verifier",
            "-s0mething",
            "-o",
            "out.json",
        ]);
        assert!(cli.is_ok(), "{:?}", cli.err());
    }

    #[test]
    fn a_key_may_begin_with_a_hyphen() {
        use clap::Parser as _;
        // Drive file ids hold `-`, first character included (the cli test met one).
        for args in [
            vec!["storage", "--credentials", "c.json", "get", "-tK3y", "-o", "out"],
            vec!["storage", "--credentials", "c.json", "stat", "-tK3y"],
            vec!["storage", "--credentials", "c.json", "rm", "-tK3y"],
        ] {
            let cli = Cli::try_parse_from(&args);
            assert!(cli.is_ok(), "{args:?}: {:?}", cli.err());
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
