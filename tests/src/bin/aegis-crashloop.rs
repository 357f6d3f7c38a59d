//! `aegis-crashloop`: the crash-loop soak. Starts the real `aegis serve` on one data dir, runs a
//! mix of executions (steps, retries, durable waits, callbacks, agent calls) and SIGKILLs the
//! host at random moments, restarting it each time, until `--kills` is reached; then lets every
//! execution finish and checks that none was lost and no succeeded step ran twice
//! (`aegis_tests::crashloop` describes it all).
//!
//! Prints the numbers (kills, executions, lost executions, steps run twice, the slowest
//! recovery) on stderr, and one JSON line with them on stdout. Exits 1 when an execution was
//! lost, a succeeded step ran twice or a history is unsound; 2 when the harness itself failed.
//!
//! `make soak` runs it with 1,000 kills across 100 executions on a release host
//! (`SOAK_ARGS="--kills 200"` changes the arguments). It uses the `aegis` binary of its own
//! profile (or `$AEGIS_BIN`), and runs `cargo build -p aegis` in that profile first when run
//! through `cargo run`, so it never kills a stale host.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use aegis_tests::crashloop::{self, Config};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Kills the aegis host at random moments under load, then checks every execution")]
struct Args {
    /// SIGKILLs in total.
    #[arg(long, default_value_t = 1000)]
    kills: usize,
    /// Executions started (across the first 80 % of the kills).
    #[arg(long, default_value_t = 100)]
    executions: usize,
    /// Seeds the mix and every delay; a random one (printed) when absent.
    #[arg(long)]
    seed: Option<u64>,
    /// The host's data dir (must be empty or absent); a temp dir when absent.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The shortest wait, in ms, from the host being ready to the next kill.
    #[arg(long, default_value_t = 20)]
    min_delay_ms: u64,
    /// The longest wait, in ms, from the host being ready to the next kill.
    #[arg(long, default_value_t = 500)]
    max_delay_ms: u64,
    /// How long, in seconds, the executions may take to finish after the last kill.
    #[arg(long, default_value_t = 300)]
    finish_timeout_s: u64,
    /// The host's RUST_LOG.
    #[arg(long, default_value = "warn")]
    host_log: String,
    /// Prints a progress line every this many kills (0: never).
    #[arg(long, default_value_t = 50)]
    progress_every: usize,
}

/// Under `cargo run`, brings the `aegis` binary of this profile up to date first.
fn build_host() -> anyhow::Result<()> {
    if std::env::var_os("AEGIS_BIN").is_some() || std::env::var_os("CARGO").is_none() {
        return Ok(());
    }
    let mut cmd = std::process::Command::new(std::env::var_os("CARGO").expect("CARGO is set"));
    cmd.args(["build", "-p", "aegis"]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "cargo build -p aegis failed: {status}");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(rand::random);
    if let Err(e) = build_host() {
        eprintln!("aegis-crashloop: {e:#}");
        return ExitCode::from(2);
    }
    eprintln!(
        "aegis-crashloop: {} kills across {} executions, seed {seed}, host {}",
        args.kills,
        args.executions,
        aegis_tests::host::aegis_bin().display()
    );
    let cfg = Config {
        kills: args.kills,
        executions: args.executions,
        seed,
        data_dir: args.data_dir,
        min_delay: Duration::from_millis(args.min_delay_ms),
        max_delay: Duration::from_millis(args.max_delay_ms),
        finish_timeout: Duration::from_secs(args.finish_timeout_s),
        host_log: args.host_log,
        progress_every: args.progress_every,
    };
    match crashloop::run(cfg).await {
        Ok(report) => {
            eprintln!("{report}");
            println!("{}", report.to_json());
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("aegis-crashloop (seed {seed}) failed: {e:?}");
            ExitCode::from(2)
        }
    }
}
