//! The client commands of the `aegis` binary (`deploy`, `start`, `list`, `status`, `watch`,
//! `history`, `logs`, `stop`, `callbacks`, `approve`/`reject`, `components`, `tenants`): they
//! talk to any host by URL and key over the REST API, so an author or an operator needs no
//! curl and no JSON spelunking to find a callback id.
//!
//! The client names no other module of this crate: it knows the host only as a remote API,
//! through the JSON it answers, and so works against hosts of other versions and sits at the
//! bottom of the layers (`layers_tests.rs`). A file per group of commands; `client.rs` is the
//! HTTP client, `exit.rs` the failure classes and their exit codes, `output.rs` the text.
//!
//! Exit codes (README.md, "The CLI"): 0 success, 1 local failure (the build), 2 usage or a
//! request the API found malformed, 3 not found, 4 refused (conflict, too large, limits),
//! 5 authentication, 6 server failure or unavailable, 7 no connection, 8 the watched
//! execution ended without succeeding.

pub mod callbacks;
pub mod client;
pub mod components;
pub mod deploy;
pub mod events;
pub mod executions;
pub mod exit;
pub mod input;
pub mod output;
#[cfg(feature = "pipeline")]
pub mod pipeline;
pub mod tenants;
pub mod watch;

use exit::{Failure, Outcome};
use std::process::ExitCode;

/// The client commands, as `aegis` shows them beside `serve`.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Build a guest crate for wasm32-wasip2 and upload it as a component.
    Deploy(deploy::DeployArgs),
    /// Start an execution of a workflow.
    Start(executions::StartArgs),
    /// List executions, newest first.
    List(executions::ListArgs),
    /// An execution's status, input, result or error, and the callbacks it waits on.
    Status(executions::IdArgs),
    /// Follow an execution's operations live until it ends (exit 8 unless it SUCCEEDED).
    Watch(watch::WatchArgs),
    /// An execution's history events.
    History(executions::IdArgs),
    /// The lines an execution's workflow logged.
    Logs(executions::LogsArgs),
    /// Stop a running execution.
    Stop(executions::IdArgs),
    /// Complete, fail or heartbeat a callback an execution waits on.
    Callbacks(callbacks::CallbacksArgs),
    /// Approve a research-pipeline run waiting for review.
    #[cfg(feature = "pipeline")]
    Approve(pipeline::DecisionArgs),
    /// Reject a research-pipeline run waiting for review.
    #[cfg(feature = "pipeline")]
    Reject(pipeline::DecisionArgs),
    /// The tenant's components, the versions of one, or one version.
    Components(components::ComponentsArgs),
    /// Tenant administration, with the admin key.
    Tenants(tenants::TenantsArgs),
}

impl Command {
    /// Whether the command was asked for JSON, which its failure is printed as too.
    fn json(&self) -> bool {
        match self {
            Command::Deploy(a) => a.conn.json,
            Command::Start(a) => a.conn.json,
            Command::List(a) => a.conn.json,
            Command::Status(a) | Command::History(a) | Command::Stop(a) => a.conn.json,
            Command::Watch(a) => a.conn.json,
            Command::Logs(a) => a.conn.json,
            Command::Callbacks(a) => a.conn.json,
            #[cfg(feature = "pipeline")]
            Command::Approve(a) | Command::Reject(a) => a.conn.json,
            Command::Components(a) => a.conn.json,
            Command::Tenants(a) => a.conn.json,
        }
    }
}

/// Runs `command`; its exit code. A failure is printed on stderr: `error: ...` for people,
/// the error's JSON with `--json`.
pub async fn run(command: Command) -> ExitCode {
    let json = command.json();
    match dispatch(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            report(&failure, json);
            ExitCode::from(failure.class.code())
        }
    }
}

async fn dispatch(command: Command) -> Outcome {
    match command {
        Command::Deploy(args) => deploy::deploy(args).await,
        Command::Start(args) => executions::start(args).await,
        Command::List(args) => executions::list(args).await,
        Command::Status(args) => executions::status(args).await,
        Command::Watch(args) => watch::watch(args).await,
        Command::History(args) => executions::history(args).await,
        Command::Logs(args) => executions::logs(args).await,
        Command::Stop(args) => executions::stop(args).await,
        Command::Callbacks(args) => callbacks::run(args).await,
        #[cfg(feature = "pipeline")]
        Command::Approve(args) => pipeline::decide(pipeline::Decision::Approve, args).await,
        #[cfg(feature = "pipeline")]
        Command::Reject(args) => pipeline::decide(pipeline::Decision::Reject, args).await,
        Command::Components(args) => components::run(args).await,
        Command::Tenants(args) => tenants::run(args).await,
    }
}

fn report(failure: &Failure, json: bool) {
    if json {
        eprintln!("{}", failure.json());
    } else {
        eprintln!("error: {failure}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        let mut argv = vec!["aegis"];
        argv.extend(args);
        Cli::try_parse_from(argv).map(|c| c.command)
    }

    #[test]
    fn the_connection_flags_are_taken_by_every_command() {
        let commands: &[&[&str]] = &[
            &["deploy"],
            &["start", "w"],
            &["list"],
            &["status", "ex_1"],
            &["watch", "ex_1"],
            &["history", "ex_1"],
            &["logs", "ex_1", "--follow"],
            &["stop", "ex_1"],
            &["callbacks", "heartbeat", "cb_1"],
            &["components"],
            #[cfg(feature = "pipeline")]
            &["approve", "ex_1", "--comment", "ok"],
        ];
        for args in commands {
            let mut argv = args.to_vec();
            argv.extend(["--url", "http://h:1", "--api-key", "k", "--json"]);
            let command = parse(&argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(command.json(), "{args:?}");
        }
        let tenants = parse(&["tenants", "list", "--admin-key", "a", "--json"]).unwrap();
        assert!(tenants.json());
    }

    #[test]
    fn a_tenant_command_takes_no_tenant_key() {
        // Administration is the admin key's: a tenant key there is a mistake, said so.
        assert!(parse(&["tenants", "list", "--api-key", "k"]).is_err());
    }

    #[test]
    fn usage_errors_exit_with_the_usage_code() {
        let err = parse(&["start"]).unwrap_err();
        assert_eq!(err.exit_code(), i32::from(exit::Class::Usage.code()));
        let err = parse(&["list", "--status", "sleeping"]).unwrap_err();
        assert_eq!(err.exit_code(), i32::from(exit::Class::Usage.code()));
        let err = parse(&["start", "w", "--timeout", "0"]).unwrap_err();
        assert_eq!(err.exit_code(), i32::from(exit::Class::Usage.code()));
        let err = parse(&["components", "--version", "2"]).unwrap_err();
        assert_eq!(err.exit_code(), i32::from(exit::Class::Usage.code()));
    }
}
