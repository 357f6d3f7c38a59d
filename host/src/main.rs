//! The `aegis` binary: `aegis serve` runs the host, `aegis demo` runs the example workflow end to
//! end against an in-process host.

use aegis::api::ApiLimits;
use aegis::engine::Limits;
use aegis::server::{Options, Server};
use clap::{Parser, Subcommand};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "aegis",
    version,
    about = "Durable workflow host for WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct HostArgs {
    /// Folder that holds the embedded store, components and artifacts.
    #[arg(long, env = "AEGIS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Guest CPU time one activation may use, in milliseconds.
    #[arg(long, env = "AEGIS_CPU_DEADLINE_MS", default_value_t = 10_000)]
    cpu_deadline_ms: u64,
    /// Linear memory cap per guest, in MiB.
    #[arg(long, env = "AEGIS_MEMORY_LIMIT_MB", default_value_t = 64)]
    memory_limit_mb: usize,
    /// Largest component upload, in MiB.
    #[arg(long, env = "AEGIS_MAX_COMPONENT_MB", default_value_t = 50)]
    max_component_mb: usize,
    /// Base URL agents and presigned links use to reach this host (default: the bound address).
    #[arg(long, env = "AEGIS_PUBLIC_URL")]
    public_url: Option<String>,
    /// An agent, as name=url (repeatable).
    #[arg(long = "agent", value_parser = parse_agent)]
    agents: Vec<(String, String)>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host: the REST API, the scheduler and every execution.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, env = "AEGIS_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Run the example workflow end to end, with its approval callback.
    Demo {
        /// The demo workflow component.
        #[arg(
            long,
            default_value = "guest-workflows/target/wasm32-wasip2/release/demo.wasm"
        )]
        component: PathBuf,
        /// Approve without asking.
        #[arg(long, env = "APPROVE")]
        approve: bool,
        /// The topic the demo works on.
        #[arg(
            long,
            default_value = "durable execution for long running agent workflows"
        )]
        topic: String,
        #[command(flatten)]
        host: HostArgs,
    },
}

fn parse_agent(raw: &str) -> Result<(String, String), String> {
    let (name, url) = raw.split_once('=').ok_or("expected name=url")?;
    if name.is_empty() || !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("expected name=http(s)://...".into());
    }
    Ok((name.to_string(), url.to_string()))
}

fn options(listen: SocketAddr, host: HostArgs) -> Options {
    Options {
        listen,
        data_dir: host.data_dir,
        limits: Limits {
            memory_bytes: host.memory_limit_mb << 20,
            cpu_deadline: Duration::from_millis(host.cpu_deadline_ms),
            ..Limits::default()
        },
        api: ApiLimits {
            max_component_bytes: host.max_component_mb << 20,
            ..ApiLimits::default()
        },
        public_url: host.public_url,
        agents: host.agents.into_iter().collect::<HashMap<_, _>>(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AEGIS_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
            }),
        )
        .init();
    match Cli::parse().command {
        Command::Serve { listen, host } => {
            let server = Server::start(options(listen, host)).await?;
            tracing::info!(
                recovered = server.recovered,
                "carrying on executions that were running"
            );
            // Tests and scripts wait for this exact line.
            println!("aegis listening on http://{}", server.addr);
            server.serve().await
        }
        Command::Demo {
            component,
            approve,
            topic,
            host,
        } => {
            let listen: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
            aegis::demo::run(options(listen, host), &component, &topic, approve).await
        }
    }
}
