//! Assembles the host: store, engine, artifacts, scheduler, runtime and HTTP API, all under one
//! data folder.

use crate::agents::Agents;
use crate::api::{self, ApiLimits};
use crate::artifacts::DiskArtifacts;
use crate::engine::{Engine, Limits};
use crate::executions::Runtime;
use crate::scheduler::{self, Scheduler};
use crate::store::sqlite::SqliteStore;
use anyhow::Context;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything `aegis serve` can be told.
#[derive(Clone, Debug)]
pub struct Options {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub limits: Limits,
    pub api: ApiLimits,
    /// The base URL agents and presigned links use to reach this host; defaults to the bound
    /// address.
    pub public_url: Option<String>,
    /// Agent name → URL.
    pub agents: HashMap<String, String>,
}

/// A running host.
pub struct Server {
    pub addr: SocketAddr,
    pub runtime: Arc<Runtime>,
    pub recovered: usize,
    listener: tokio::net::TcpListener,
    router: axum::Router,
}

impl Server {
    /// Opens the data folder, recovers executions that were running, and binds the listener.
    ///
    /// # Errors
    /// When the data folder, the store or the port cannot be opened.
    pub async fn start(opts: Options) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&opts.data_dir)
            .with_context(|| format!("create data folder {}", opts.data_dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ =
                std::fs::set_permissions(&opts.data_dir, std::fs::Permissions::from_mode(0o700));
        }
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("bind {}", opts.listen))?;
        let addr = listener.local_addr()?;
        let public_url = opts
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));

        let store = Arc::new(
            SqliteStore::open(&opts.data_dir.join("aegis.db"))
                .context("open the embedded store")?,
        );
        let engine = Engine::new(&opts.data_dir.join("components"), &opts.limits)?;
        let artifacts = Arc::new(
            DiskArtifacts::open(&opts.data_dir.join("artifacts"), public_url.clone())
                .context("open the artifact store")?,
        );
        let agents = Arc::new(Agents::new(opts.agents.clone(), public_url));
        let (scheduler, inbox) = Scheduler::new();
        let runtime = Arc::new(Runtime::new(
            store,
            engine,
            artifacts,
            agents,
            opts.limits.clone(),
            scheduler,
        ));
        tokio::spawn(scheduler::run(Arc::downgrade(&runtime), inbox));
        let recovered = runtime.recover().context("recover executions")?;
        let router = api::router(runtime.clone(), opts.api.clone());
        Ok(Self {
            addr,
            runtime,
            recovered,
            listener,
            router,
        })
    }

    /// Serves requests until the process ends.
    ///
    /// # Errors
    /// When the listener fails.
    pub async fn serve(self) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router).await?;
        Ok(())
    }
}
