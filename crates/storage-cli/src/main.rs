//! The `storage` command-line program.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod auth;
mod cli;
mod commands;
mod connect;
mod connections;
mod demo;
mod exit;
mod out;
mod progress;
mod purge;

use std::process::ExitCode;

use clap::Parser as _;
use storage_core::{ByteRange, ObjectKey, ObjectName};

use crate::cli::{Auth, Cli, Command, Connections, Presign};
use crate::exit::Failure;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let level = if cli.verbose { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("STORAGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return Failure::Other(format!("cannot start the runtime: {e}")).report(false),
    };
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report(cli.verbose),
    }
}

async fn run(cli: &Cli) -> Result<(), Failure> {
    let backend = || connect::backend(cli);
    match &cli.command {
        Command::Demo { size_mib } => demo::run(*size_mib, cli.quiet).await,
        Command::Emulator {
            port,
            lenient,
            consent_page,
        } => commands::emulator(*port, *lenient, *consent_page).await,
        Command::Put {
            user,
            document,
            ext,
            content_type,
            path,
        } => {
            let name = ObjectName::new(user, document, ext)?;
            commands::put(backend().await?, name, content_type, path, cli.quiet).await
        }
        Command::Get { key, output, range } => {
            let range = range.as_deref().map(str::parse::<ByteRange>).transpose()?;
            commands::get(backend().await?, key, output, range, cli.quiet).await
        }
        Command::Ls { user, page_size, json } => commands::ls(backend().await?, user, *page_size, *json).await,
        Command::Quota { json } => commands::quota(backend().await?, *json).await,
        Command::Stat { key, json } => commands::stat(backend().await?, key, *json).await,
        Command::Rm { key } => Ok(backend().await?.delete_object(&ObjectKey::new(key.clone())).await?),
        Command::Health => {
            backend().await?.health_check().await?;
            out::line("healthy");
            Ok(())
        }
        Command::Presign {
            what: Presign::Get { key, expires },
        } => {
            let expires = cli::parse_duration(expires)
                .ok_or_else(|| Failure::Usage("--expires takes 900, 900s, 15m or 1h".into()))?;
            let url = backend()
                .await?
                .presigned_get_url(&ObjectKey::new(key.clone()), expires)
                .await?;
            out::line(url.as_str());
            Ok(())
        }
        Command::Purge { user, yes } => purge::purge(cli, user, *yes).await,
        Command::Disconnect { purge: p, user, yes } => {
            let user = if *p { user.as_deref() } else { None };
            purge::disconnect(cli, user, *yes).await
        }
        Command::Connections { what } => {
            let spec = cli
                .store
                .as_deref()
                .ok_or_else(|| Failure::Usage("`connections` needs --store URL|DIR".into()))?;
            match what {
                Connections::List { json } => connections::list(spec, *json).await,
                Connections::Import { file, replace } => {
                    let id = cli
                        .connection
                        .as_deref()
                        .ok_or_else(|| Failure::Usage("`connections import` needs --connection ID".into()))?;
                    connections::import(spec, id, file, *replace).await
                }
            }
        }
        Command::Auth { what } => {
            let endpoints = connect::endpoints(cli.endpoints.as_deref()).await?;
            match what {
                Auth::Url {
                    provider,
                    redirect_uri,
                    state,
                } => auth::print_url(*provider, &endpoints, &cli.apps, redirect_uri, state.clone()),
                Auth::Exchange {
                    provider,
                    code,
                    redirect_uri,
                    verifier,
                    output,
                } => {
                    let pkce = storage_core::oauth::Pkce::from_verifier(verifier.clone());
                    auth::exchange(*provider, &endpoints, &cli.apps, code, redirect_uri, &pkce, output).await
                }
                Auth::Login { provider, output, port } => {
                    auth::login(*provider, &endpoints, &cli.apps, *port, output).await
                }
            }
        }
    }
}
