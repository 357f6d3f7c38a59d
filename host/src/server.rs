//! Assembles the host: store, engine, artifacts, tenancy, scheduler, runtime and HTTP API, all
//! under one data folder.

use crate::agents::Agents;
use crate::artifacts::s3::{Bucket, S3Artifacts, S3Options};
use crate::artifacts::{ArtifactStore, DiskArtifacts};
use crate::config::{
    ArtifactsBackend, ClusterConfig, Config, ServerConfig, StoreBackend, StoreConfig,
};
use crate::engine::{Engine, Limits};
use crate::executions::{Leasing, Runtime, Services};
use crate::notifications::aws::AwsSinks;
use crate::notifications::{Notifier, Webhook};
use crate::scheduler::{self, Scheduler};
use crate::store::Store;
use crate::store::dynamo::{DynamoOptions, DynamoStore};
use crate::store::sqlite::SqliteStore;
use crate::tenancy::Tenancy;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A running host.
pub struct Server {
    pub addr: SocketAddr,
    pub runtime: Arc<Runtime>,
    pub recovered: usize,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: ServerConfig,
}

/// The most a connection buffers while it reads a request's header (or a chunk of its body).
/// hyper's default is about 400 KiB; with `max_connections` connections each sending a large
/// header slowly, that would be hundreds of MiB. A longer header is refused with a 431.
const MAX_CONNECTION_BUFFER: usize = 64 * 1024;

impl Server {
    /// Opens the data folder, recovers executions that were running, and binds the listener.
    /// The API serves the routes of `extensions` (feature modules) beside its own.
    ///
    /// # Errors
    /// When the data folder, the store or the port cannot be opened.
    pub async fn start(
        config: Config,
        extensions: Vec<Box<dyn crate::api::Extension>>,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        create_data_folder(&config)?;
        // Counting starts with the host, not with the first scrape.
        crate::telemetry::recorder();
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("bind {}", config.listen))?;
        let addr = listener.local_addr()?;
        let (services, inbox) = build_services(&config, addr).await?;
        let runtime = Arc::new(Runtime::new(services));
        tracing::info!(host_id = %runtime.host_id(), "leases are taken as this host");
        spawn_background_tasks(&config, &runtime, inbox);
        let recovered = runtime.recover().await.context("recover executions")?;
        let router = crate::api::router_with_config(runtime.clone(), &config, &extensions);
        Ok(Self {
            addr,
            runtime,
            recovered,
            listener,
            router,
            limits: config.server.clone(),
        })
    }

    /// Serves requests until the process ends.
    ///
    /// Each connection is served by hyper's HTTP/1 connection builder with
    /// `server.header_read_timeout_ms`: a connection that does not send a whole request header
    /// in that time (a slowloris, or a keep-alive connection left idle) is closed. Each request
    /// body must arrive within `server.body_timeout_ms` ([`crate::api::Deadline`]). At most
    /// `server.max_connections` connections are served at once: past that, the loop stops
    /// accepting, and new connections wait in the kernel's backlog.
    ///
    /// # Errors
    /// When the listener fails.
    pub async fn serve(self) -> anyhow::Result<()> {
        use axum::extract::ConnectInfo;
        use hyper_util::rt::{TokioIo, TokioTimer};
        use tower::ServiceExt as _;

        let Self {
            listener,
            router,
            limits,
            ..
        } = self;
        let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections as usize));
        let body_timeout = Duration::from_millis(limits.body_timeout_ms);
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
            .max_buf_size(MAX_CONNECTION_BUFFER);
        loop {
            let permit = connections
                .clone()
                .acquire_owned()
                .await
                .context("the connection limit was closed")?;
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // keep serving the others, without spinning on the error.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let router = router.clone();
            let service = hyper::service::service_fn(
                move |request: axum::http::Request<hyper::body::Incoming>| {
                    let mut request = request.map(|body| {
                        if http_body::Body::is_end_stream(&body) {
                            axum::body::Body::new(body)
                        } else {
                            axum::body::Body::new(crate::api::Deadline::new(body, body_timeout))
                        }
                    });
                    // The routes that take no key are rate limited by source address.
                    request.extensions_mut().insert(ConnectInfo(peer));
                    router.clone().oneshot(request)
                },
            );
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                drop(permit);
            });
        }
    }
}

/// Creates the data folder, readable by this user only.
fn create_data_folder(config: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("create data folder {}", config.data_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// Everything the runtime is made of, with the scheduler's inbox (for its task): the stores,
/// the engine, tenancy, agents and the notifier, for a host listening on `addr`.
async fn build_services(
    config: &Config,
    addr: SocketAddr,
) -> anyhow::Result<(Services, scheduler::Inbox)> {
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let s3 = match config.artifacts.backend {
        ArtifactsBackend::S3 => Some(crate::artifacts::s3::options_from_config(
            &config.artifacts,
        )?),
        ArtifactsBackend::Disk => None,
    };
    let store = open_store(config, s3.as_ref()).await?;
    let limits = Limits {
        memory_bytes: (config.quotas.memory_limit_mb as usize) << 20,
        cpu_deadline: Duration::from_millis(config.quotas.cpu_deadline_ms),
        wall_deadline: Duration::from_millis(config.quotas.wall_deadline_ms),
        max_instances: config.max_instances,
    };
    let engine = Engine::new(&config.data_dir.join("components"), &limits)?;
    let tenancy = Arc::new(Tenancy::new(
        store.clone(),
        config.quotas.clone(),
        config.admin_key.clone(),
        config.credentials_key.clone(),
    ));
    let artifacts = open_artifacts(config, s3, public_url.clone(), tenancy.clone()).await?;
    let agents = Arc::new(Agents::new(&config.agents, public_url));
    let leasing = leasing(config, addr);
    let notifier = notifier(config, store.clone(), leasing.clone()).await?;
    let (scheduler, inbox) = Scheduler::new();
    let services = Services {
        store,
        engine,
        artifacts,
        agents,
        tenancy,
        notifier,
        limits,
        scheduler,
        agent_inline_limit: config.agent_inline_limit_kb as usize * 1024,
        leasing,
        lambda: config.lambda.clone(),
    };
    Ok((services, inbox))
}

/// The store of `[store]`: the embedded one in the data folder, or DynamoDB.
async fn open_store(config: &Config, s3: Option<&S3Options>) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match config.store.backend {
        StoreBackend::Embedded => Arc::new(
            SqliteStore::open(&config.data_dir.join("aegis.db"))
                .context("open the embedded store")?,
        ),
        // Values too large for an item spill to the artifact bucket when there is one.
        StoreBackend::Dynamodb => Arc::new(
            DynamoStore::open(&DynamoOptions {
                spill_to: match s3 {
                    Some(s3) => Some(Arc::new(
                        Bucket::connect(s3.clone())
                            .await
                            .context("the S3 bucket for large values")?,
                    )),
                    None => None,
                },
                ..dynamo_options(&config.store)
            })
            .await
            .context("open the DynamoDB store")?,
        ),
    })
}

/// The artifact store of `[artifacts]`: the data folder, or S3 (when `s3` is given). Each
/// tenant's artifact quota is the tenancy's, read at every put.
async fn open_artifacts(
    config: &Config,
    s3: Option<S3Options>,
    public_url: String,
    tenancy: Arc<Tenancy>,
) -> anyhow::Result<Arc<dyn ArtifactStore>> {
    let artifact_quota: Arc<dyn crate::artifacts::Quota> = tenancy;
    Ok(match s3 {
        None => Arc::new(
            DiskArtifacts::open(&config.data_dir.join("artifacts"), public_url)
                .context("open the artifact store")?
                .with_quota(artifact_quota),
        ),
        Some(s3) => Arc::new(
            S3Artifacts::open(s3)
                .await
                .context("open the S3 artifact store")?
                .with_quota(artifact_quota),
        ),
    })
}

/// The name this host takes leases as, and for how long (`[cluster]`).
fn leasing(config: &Config, addr: SocketAddr) -> Leasing {
    Leasing {
        host_id: config
            .cluster
            .host_id
            .clone()
            .unwrap_or_else(|| default_host_id(config.store.backend, addr.port())),
        ttl_ms: config
            .cluster
            .lease_ttl_ms
            .unwrap_or(ClusterConfig::DEFAULT_LEASE_TTL_MS),
    }
}

/// The notifier of the outbox, delivering to the webhook and the `[notifications]` sinks that
/// are configured.
async fn notifier(
    config: &Config,
    store: Arc<dyn Store>,
    leasing: Leasing,
) -> anyhow::Result<Arc<Notifier>> {
    let webhook = config
        .webhook_url
        .clone()
        .filter(|u| !u.is_empty())
        .map(|url| Webhook {
            url,
            secret: config.webhook_secret.clone().unwrap_or_default(),
        });
    let sinks = AwsSinks::from_config(&config.notifications)
        .await
        .context("configure the SNS/EventBridge notification sinks")?;
    Ok(Notifier::new(store, webhook, sinks, leasing))
}

/// The tasks that run beside the API until the process ends: the notifier's delivery loop, the
/// scheduler, and (when `[cluster]` or the store calls for it) the takeover sweep.
fn spawn_background_tasks(config: &Config, runtime: &Arc<Runtime>, inbox: scheduler::Inbox) {
    tokio::spawn(runtime.notifier().clone().run());
    tokio::spawn(scheduler::run(Arc::downgrade(runtime), inbox));
    let sweep_ms = config
        .cluster
        .sweep_interval_ms
        .unwrap_or(match config.store.backend {
            StoreBackend::Embedded => 0,
            StoreBackend::Dynamodb => ClusterConfig::DEFAULT_SWEEP_INTERVAL_MS,
        });
    if sweep_ms > 0 {
        tokio::spawn(crate::executions::sweep::run(
            Arc::downgrade(runtime),
            Duration::from_millis(sweep_ms),
        ));
    }
}

/// With the embedded store, `embedded`: one host owns the file, so whatever lease it finds at
/// start-up is its own from before a crash, taken back at once. With DynamoDB,
/// `<hostname>:<port>`: stable across restarts of one host, distinct between hosts (and between
/// hosts on one machine, by port).
fn default_host_id(backend: StoreBackend, port: u16) -> String {
    if backend == StoreBackend::Embedded {
        return "embedded".into();
    }
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "aegis".into());
    format!("{name}:{port}")
}

/// Where the DynamoDB store is, from the `[store]` section (here, not in `store`, so that the
/// store does not depend on the configuration).
fn dynamo_options(c: &StoreConfig) -> DynamoOptions {
    DynamoOptions {
        table_prefix: c.table_prefix.clone(),
        endpoint_url: c.endpoint_url.clone().filter(|u| !u.is_empty()),
        region: c.region.clone().filter(|r| !r.is_empty()),
        credentials: None,
        spill_to: None,
    }
}
