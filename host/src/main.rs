//! The `aegis` binary: `aegis serve` runs the host, `aegis demo` runs the example workflow end to
//! end against an in-process host. With the `pipeline` feature, the host serves the research
//! pipeline's routes and `aegis demo` exists; without it, neither does. The client commands
//! (`deploy`, `start`, `watch`, ...) talk to a running host; they live in `aegis::cli`.

use aegis::config::Config;
use aegis::server::Server;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

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

/// Flags that override the configuration file and the `AEGIS_*` environment variables.
#[derive(clap::Args, Clone)]
struct HostArgs {
    /// A TOML configuration file (see aegis.example.toml).
    #[arg(long, env = "AEGIS_CONFIG")]
    config: Option<PathBuf>,
    /// Folder that holds the embedded store, components and artifacts.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Default guest CPU time per activation, in milliseconds.
    #[arg(long)]
    cpu_deadline_ms: Option<u64>,
    /// Default linear memory cap per guest, in MiB.
    #[arg(long)]
    memory_limit_mb: Option<u32>,
    /// Base URL agents and presigned links use to reach this host.
    #[arg(long)]
    public_url: Option<String>,
    /// An agent, as name=url (repeatable).
    #[arg(long = "agent", value_parser = parse_agent)]
    agents: Vec<(String, String)>,
}

#[derive(Subcommand)]
enum Command {
    /// DynamoDB checkpoint store administration.
    Dynamodb {
        #[command(subcommand)]
        command: DynamodbCommand,
    },
    /// Run the host: the REST API, the scheduler and every execution.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Run the research pipeline end to end with the demo agents, on the embedded store.
    #[cfg(feature = "pipeline")]
    Demo {
        /// The research-pipeline component.
        #[arg(
            long,
            default_value = "guest-workflows/target/wasm32-wasip2/release/research_pipeline.wasm"
        )]
        component: PathBuf,
        /// The demo agents binary (default: `aegis-agents` beside this binary).
        #[arg(long)]
        agents_binary: Option<PathBuf>,
        /// Approve without asking (APPROVE=1 does the same).
        #[arg(long, env = "APPROVE", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
        approve: bool,
        /// The topic the pipeline researches.
        #[arg(
            long,
            default_value = "durable execution for long-running AI agent workflows"
        )]
        topic: String,
        #[command(flatten)]
        host: HostArgs,
    },
    #[command(flatten)]
    Client(aegis::cli::Command),
}

#[derive(Subcommand)]
enum DynamodbCommand {
    /// Create the checkpoint table and its indexes unless they exist, and wait until they are
    /// active (credentials and region from the AWS environment).
    CreateTables {
        /// A local server instead of AWS (e.g. http://127.0.0.1:5000).
        #[arg(long, env = "AEGIS_DYNAMODB_ENDPOINT")]
        endpoint_url: Option<String>,
        /// The table is <prefix>checkpoints.
        #[arg(long, env = "WORKFLOW_TABLE", default_value = "aegis-")]
        table_prefix: String,
        /// Default: AWS_REGION or the AWS profile.
        #[arg(long)]
        region: Option<String>,
    },
}

fn parse_agent(raw: &str) -> Result<(String, String), String> {
    let (name, url) = raw.split_once('=').ok_or("expected name=url")?;
    if name.is_empty() || !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("expected name=http(s)://...".into());
    }
    Ok((name.to_string(), url.to_string()))
}

/// The file, then the environment, then the flags.
fn config(listen: Option<SocketAddr>, host: HostArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(host.config.as_deref(), std::env::vars())?;
    check_feature_sections(&config)?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(dir) = host.data_dir {
        config.data_dir = dir;
    }
    if let Some(ms) = host.cpu_deadline_ms {
        config.quotas.cpu_deadline_ms = ms;
    }
    if let Some(mb) = host.memory_limit_mb {
        config.quotas.memory_limit_mb = mb;
    }
    if host.public_url.is_some() {
        config.public_url = host.public_url;
    }
    config.agents.extend(
        host.agents
            .into_iter()
            .map(|(name, url)| (name, aegis::agents::AgentConfig::Url(url))),
    );
    // Again: the flags may have changed what the file and the environment gave.
    config.validate()?;
    Ok(config)
}

/// Reads and checks the sections of the feature modules compiled in, as soon as the
/// configuration is loaded: a bad value stops `aegis serve` and `aegis demo` before anything
/// starts. (`Config::load` cannot do it: the generic configuration names no feature module.)
///
/// # Errors
/// When a module's section is invalid; the message names the key.
fn check_feature_sections(config: &Config) -> anyhow::Result<()> {
    #[cfg(feature = "pipeline")]
    aegis::pipeline::PipelineConfig::from_config(config)?;
    let _ = config;
    Ok(())
}

/// The feature modules' routes the host serves, with their sections of `config`.
///
/// # Errors
/// When a module's section is invalid.
fn extensions(config: &Config) -> anyhow::Result<Vec<Box<dyn aegis::api::Extension>>> {
    #[cfg(feature = "pipeline")]
    let extensions: Vec<Box<dyn aegis::api::Extension>> =
        vec![Box::new(aegis::pipeline::PipelineApi::new(config)?)];
    #[cfg(not(feature = "pipeline"))]
    let extensions = {
        let _ = config;
        Vec::new()
    };
    Ok(extensions)
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    // The demo prints its own progress; the host's log would drown it.
    let default_filter = match cli.command {
        #[cfg(feature = "pipeline")]
        Command::Demo { .. } => "warn",
        Command::Dynamodb { .. } | Command::Client(_) => "warn",
        Command::Serve { .. } => "info,wasmtime=warn,cranelift=warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AEGIS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
    match cli.command {
        // A client command's failure is its exit code, which says its class.
        Command::Client(command) => Ok(aegis::cli::run(command).await),
        Command::Dynamodb {
            command:
                DynamodbCommand::CreateTables {
                    endpoint_url,
                    table_prefix,
                    region,
                },
        } => {
            let options = aegis::store::dynamo::DynamoOptions {
                table_prefix,
                endpoint_url,
                region,
                credentials: None,
                spill_to: None,
            };
            let store = aegis::store::dynamo::DynamoStore::connect(&options).await?;
            let created = store.create_tables().await?;
            let table = store.table_name();
            if created {
                println!("created table {table}");
            } else {
                println!("table {table} exists");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { listen, host } => {
            let config = config(listen, host)?;
            let keyed = config.admin_key.is_some();
            let extensions = extensions(&config)?;
            let server = Server::start(config, extensions).await?;
            tracing::info!(
                recovered = server.recovered,
                keyed,
                "carrying on executions that were running"
            );
            // Tests and scripts wait for this exact line.
            println!("aegis listening on http://{}", server.addr);
            server.serve().await?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "pipeline")]
        Command::Demo {
            component,
            agents_binary,
            approve,
            topic,
            host,
        } => {
            let listen: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
            let mut config = config(Some(listen), host)?;
            // The demo drives its own in-process host without keys.
            config.admin_key = None;
            let agents_binary = match agents_binary {
                Some(path) => path,
                None => std::env::current_exe()?.with_file_name("aegis-agents"),
            };
            let demo = aegis::pipeline::demo::Demo {
                component,
                agents_binary,
                topic,
                approve,
            };
            aegis::pipeline::demo::run(config, demo).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

// Its one test checks the pipeline's section, so the module exists only with that feature.
#[cfg(all(test, feature = "pipeline"))]
mod tests {
    use super::*;

    #[test]
    fn a_bad_pipeline_value_is_refused_with_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aegis.toml");
        std::fs::write(&path, "[pipeline]\napproval_timeout_hours = 0\n").unwrap();
        let config = Config::load(Some(&path), Vec::new()).unwrap();
        let err = format!("{:#}", check_feature_sections(&config).unwrap_err());
        assert!(
            err.contains(
                "pipeline.approval_timeout_hours (APPROVAL_TIMEOUT_HOURS) must be between 1 and \
                 8784 (366 days), got 0"
            ),
            "{err}"
        );
        let env = vec![(
            "AEGIS_APPROVAL_TIMEOUT_HOURS".to_string(),
            "9000".to_string(),
        )];
        let config = Config::load(None, env).unwrap();
        let err = format!("{:#}", check_feature_sections(&config).unwrap_err());
        assert!(err.contains("got 9000"), "{err}");
        check_feature_sections(&Config::default()).unwrap();
    }
}
