//! `aegis-agents`: serves the demo researcher, analyst and writer.
//!
//! Prints exactly one line to stdout once the socket is bound,
//! `aegis-agents listening on http://ADDR`, so tests and scripts can wait for it and read the
//! port; everything else goes to stderr through `tracing` (`RUST_LOG` adjusts the level).

use aegis_demo_agents::agent::Agents;
use aegis_demo_agents::corpus::{Corpus, DEFAULT_CORPUS_DIR};
use aegis_demo_agents::llm::{LlmClient, LlmConfig};
use aegis_demo_agents::research::Researcher;
use aegis_demo_agents::server::{self, Mode, Settings};
use anyhow::Context;
use clap::Parser;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "aegis-agents",
    version,
    about = "Offline demo agents for the Aegis research pipeline, over A2A JSON-RPC"
)]
struct Args {
    /// researcher, analyst, writer, or all (all three under /researcher, /analyst, /writer).
    #[arg(long, env = "AEGIS_AGENT_ROLE")]
    role: Mode,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "AEGIS_AGENTS_LISTEN", default_value = "127.0.0.1:0")]
    listen: String,
    /// Folder of .md/.txt documents to research.
    #[arg(long, env = "AEGIS_CORPUS", default_value = DEFAULT_CORPUS_DIR)]
    corpus: PathBuf,
    /// Artificial delay before each task's work, in milliseconds.
    #[arg(long, env = "AEGIS_AGENT_DELAY_MS", default_value_t = 0)]
    delay_ms: u64,
    /// Folder to keep the tasks in (one folder per role under it), so that a restart loses no
    /// task a host waits for: unfinished tasks run again and undelivered pushes are sent again.
    /// Without it, tasks live in memory only.
    #[arg(long, env = "AEGIS_AGENT_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Attempts per push notification / callback delivery.
    #[arg(long, env = "AEGIS_AGENT_PUSH_ATTEMPTS", default_value_t = 5)]
    push_attempts: u32,
    /// Delay before the first push retry; doubles each retry (capped at 8 s).
    #[arg(long, env = "AEGIS_AGENT_PUSH_BACKOFF_MS", default_value_t = 250)]
    push_backoff_ms: u64,
    /// OpenAI-compatible base URL (e.g. http://127.0.0.1:8000/v1); enables the model path of
    /// the analyst and writer.
    #[arg(long, env = "OPENAI_BASE_URL")]
    llm_base_url: Option<String>,
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    llm_api_key: Option<String>,
    #[arg(long, env = "OPENAI_MODEL", default_value = "gpt-4o-mini")]
    llm_model: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();

    let corpus = Corpus::load(&args.corpus)
        .with_context(|| format!("loading the corpus from {}", args.corpus.display()))?;
    tracing::info!(
        documents = corpus.documents.len(),
        folder = %args.corpus.display(),
        "corpus loaded"
    );
    let llm = args
        .llm_base_url
        .filter(|u| !u.trim().is_empty())
        .map(|base_url| {
            tracing::info!(%base_url, model = %args.llm_model, "model path enabled for analyst and writer");
            LlmClient::new(LlmConfig {
                base_url,
                api_key: args.llm_api_key.filter(|k| !k.is_empty()),
                model: args.llm_model.clone(),
            })
        });
    let agents = Arc::new(Agents::new(Researcher::new(Arc::new(corpus)), llm));
    let settings = Settings {
        delay: Duration::from_millis(args.delay_ms),
        push_attempts: args.push_attempts,
        push_backoff: Duration::from_millis(args.push_backoff_ms),
        state_dir: args.state_dir.filter(|d| !d.as_os_str().is_empty()),
    };
    if let Some(dir) = &settings.state_dir {
        tracing::info!(folder = %dir.display(), "tasks are kept on disk");
    }
    let app = server::app(args.role, agents, &settings).map_err(anyhow::Error::msg)?;

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    for role in args.role.roles() {
        tracing::info!(%role, base_url = %format!("http://{addr}/{role}"), "serving");
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "aegis-agents listening on http://{addr}")?;
        out.flush()?;
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .context("serving")?;
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
