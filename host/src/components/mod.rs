//! Components: validate an uploaded workflow, store it by digest, give it a version.
//!
//! Validation compiles the component and links it against our world, so a file that is not a
//! component, or a component that does not export `aegis:workflow/workflow`, is refused at
//! upload rather than failing its first execution.
//!
//! Uploads are what a hostile caller can make the host compile, so [`Uploads`] keeps them
//! cheap to refuse and costly work rare:
//! - the body is spooled to a file under the data folder as it arrives ([`spool`]), its size
//!   checked on every chunk and its digest computed on the way;
//! - bytes already installed here (cached, or with a valid `.cwasm`) are not compiled again,
//!   and uploads of the same bytes at once share one compile (single flight, by digest);
//! - compiles pass the [`Gate`]: bounded concurrency, a bounded queue (429 past it) and a
//!   time limit.

mod gate;
pub mod spool;

pub use gate::{Gate, GateError};
pub use spool::{SpoolError, Spooled};

use crate::artifacts::ArtifactStore;
use crate::config::UploadsConfig;
use crate::engine::host::HostState;
use crate::engine::{Engine, LoadError, WorkflowComponentPre};
use crate::ids::ComponentDigest;
use crate::ids::TenantId;
pub use crate::ids::valid_name;
use crate::journal::now_ms;
use crate::store::{self, Catalog, ComponentRecord};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What an upload needs from the host: the catalog that records its version, the engine that
/// compiles it and the artifact store that shares it with other hosts. Declared here, and
/// implemented by `executions::Runtime`, so that uploads depend on these parts and not on the
/// runtime that owns them, nor on the store's other roles.
pub trait Host: Send + Sync + 'static {
    fn catalog(&self) -> &Arc<dyn Catalog>;
    fn engine(&self) -> &Arc<Engine>;
    fn artifacts(&self) -> &Arc<dyn ArtifactStore>;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid workflow name {0:?}: use 1-64 characters of [A-Za-z0-9_-]")]
    BadName(String),
    #[error("the component is over the limit of {limit} bytes (max_component_mb)")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Load(#[from] LoadError),
    #[error("cannot store the component for the other hosts: {0}")]
    Share(String),
    #[error(
        "the host is compiling as many components as it accepts at once; retry after \
         {retry_after_secs} s"
    )]
    Busy { retry_after_secs: u64 },
    #[error(
        "compiling the component took longer than {limit_ms} ms (uploads.compile_timeout_ms); \
         it is refused"
    )]
    CompileTimeout { limit_ms: u64 },
    #[error("the request body could not be read: {0}")]
    Body(String),
    #[error("upload: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl From<SpoolError> for Error {
    fn from(e: SpoolError) -> Self {
        match e {
            SpoolError::TooLarge { limit } => Error::TooLarge { limit },
            SpoolError::Body(m) => Error::Body(m),
            SpoolError::Io(e) => Error::Internal(format!("spool: {e}")),
        }
    }
}

/// What a compile ended with, for every upload that waited on it.
#[derive(Clone, Debug)]
enum Shared {
    Load(LoadError),
    Share(String),
    Gate(GateError),
    Internal(String),
}

impl From<Shared> for Error {
    fn from(s: Shared) -> Self {
        match s {
            Shared::Load(e) => Error::Load(e),
            Shared::Share(m) => Error::Share(m),
            Shared::Gate(GateError::Busy { retry_after_secs }) => Error::Busy { retry_after_secs },
            Shared::Gate(GateError::TimedOut { limit_ms }) => Error::CompileTimeout { limit_ms },
            Shared::Gate(GateError::Failed(m)) | Shared::Internal(m) => Error::Internal(m),
        }
    }
}

type Outcome = Option<Result<(), Shared>>;

/// Uploads in progress on this host: the spool folder, the compile gate, and the compiles in
/// flight by digest.
pub struct Uploads {
    spool_dir: PathBuf,
    gate: Gate,
    in_flight: Mutex<HashMap<ComponentDigest, watch::Receiver<Outcome>>>,
}

impl Uploads {
    /// Spools into `spool_dir` (emptied of what a crash left there) and compiles as `config`
    /// says.
    pub fn new(config: &UploadsConfig, spool_dir: &Path) -> Self {
        spool::clean(spool_dir);
        Self {
            spool_dir: spool_dir.to_path_buf(),
            gate: Gate::new(
                config.compile_concurrency as usize,
                config.compile_queue as usize,
                Duration::from_millis(config.compile_timeout_ms),
            ),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// Where bodies are spooled.
    pub fn spool_dir(&self) -> &Path {
        &self.spool_dir
    }

    /// Compiles started since the host started (each logs `component compiled` when it ends
    /// well).
    pub fn compiles_started(&self) -> u64 {
        self.gate.compiles_started()
    }

    /// Makes the spooled component ready to run here and reachable by the other hosts, then
    /// records it as the next version of `name` (or finds the version that has these bytes).
    ///
    /// # Errors
    /// [`Error`]: a bad name, a file that is not a workflow component, a full compile queue, a
    /// compile over the time limit, or a storage failure.
    pub async fn upload(
        self: &Arc<Self>,
        rt: &Arc<impl Host>,
        tenant: &TenantId,
        name: &str,
        spooled: Spooled,
    ) -> Result<(ComponentRecord, bool), Error> {
        if !valid_name(name) {
            return Err(Error::BadName(name.chars().take(100).collect()));
        }
        let digest = spooled.digest.clone();
        let size = spooled.size;
        let mut outcome = self.prepare(rt, spooled);
        let result = outcome
            .wait_for(Option::is_some)
            .await
            // Only a panic ends the compile task without an outcome: raise it here too, so the
            // upload answers 500 like any panic in request handling.
            .unwrap_or_else(|_| panic!("the compile task of {digest} panicked"))
            .clone()
            .expect("waited for Some");
        result.map_err(Error::from)?;
        rt.catalog()
            .put_component(tenant, name, &digest, size, now_ms())
            .await
            .map_err(Error::from)
    }

    /// The outcome to wait for: that of a compile of the same bytes already in flight, else of
    /// one started now. The work runs in a task of its own, so an upload whose client goes away
    /// never leaves the others that wait on it without an outcome.
    fn prepare(
        self: &Arc<Self>,
        rt: &Arc<impl Host>,
        spooled: Spooled,
    ) -> watch::Receiver<Outcome> {
        let mut in_flight = self.in_flight.lock().expect("upload map poisoned");
        if let Some(rx) = in_flight.get(&spooled.digest) {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(None);
        in_flight.insert(spooled.digest.clone(), rx.clone());
        drop(in_flight);
        let (this, rt) = (self.clone(), rt.clone());
        tokio::spawn(async move {
            // Leaves the map however the work ends: after a panic in it, a later upload of the
            // same bytes compiles them again rather than wait on a compile that is gone.
            let entry = InFlight {
                uploads: this.clone(),
                digest: spooled.digest.clone(),
            };
            let outcome = this.install(&rt, spooled).await;
            // The component is in the engine's cache before it leaves the map, so an upload
            // that arrives after this finds it installed and does not compile it again.
            drop(entry);
            let _ = tx.send(Some(outcome));
        });
        rx
    }

    /// Installs the spooled component unless it is already, and shares it.
    async fn install(&self, rt: &Arc<impl Host>, spooled: Spooled) -> Result<(), Shared> {
        let digest = spooled.digest.clone();
        let spooled = Arc::new(spooled);
        let read = |s: &Spooled| {
            s.read()
                .map_err(|e| Shared::Internal(format!("read the spooled upload: {e}")))
        };
        let (engine, probe) = (rt.engine().clone(), spooled.clone());
        let installed = blocking(move || Ok(engine.precompiled(&probe.digest))).await?;
        let bytes = if installed {
            tracing::info!(%digest, "component already installed, not compiled again");
            let input = spooled.clone();
            blocking(move || read(&input)).await?
        } else {
            let (engine, input) = (rt.engine().clone(), spooled.clone());
            let began = Instant::now();
            // The bytes are read on the compile thread, so only admitted compiles hold them in
            // memory.
            let (compiled, bytes) = self
                .gate
                .run(move || {
                    let bytes = read(&input)?;
                    let compiled = engine.compile(&bytes).map_err(Shared::Load)?;
                    Ok((compiled, bytes))
                })
                .await
                .map_err(|e| {
                    tracing::warn!(%digest, error = %e, "component compile refused");
                    Shared::Gate(e)
                })??;
            tracing::info!(
                %digest,
                ms = began.elapsed().as_millis() as u64,
                "component compiled"
            );
            let engine = rt.engine().clone();
            blocking(move || {
                engine.keep(compiled, &bytes).map_err(Shared::Load)?;
                Ok(bytes)
            })
            .await?
        };
        // Shared before any version is recorded, so no host ever finds a version it cannot
        // fetch. Also when it was installed here already: an earlier upload may have compiled
        // it and then failed to share it.
        let artifacts = rt.artifacts().clone();
        blocking(move || {
            artifacts
                .put_component(&digest, &bytes)
                .map_err(|e| Shared::Share(e.to_string()))
        })
        .await
    }
}

/// A compile in flight, taken out of [`Uploads`]' map when dropped.
struct InFlight {
    uploads: Arc<Uploads>,
    digest: ComponentDigest,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut in_flight) = self.uploads.in_flight.lock() {
            in_flight.remove(&self.digest);
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Shared> + Send + 'static,
) -> Result<T, Shared> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(crate::task::rethrow)
}

/// A tenant's components, every version, by name then version; only those named `name` when
/// given.
///
/// # Errors
/// When the store cannot be read.
pub async fn list(
    rt: &impl Host,
    tenant: &TenantId,
    name: Option<&str>,
) -> Result<Vec<ComponentRecord>, store::Error> {
    rt.catalog().components(tenant, name).await
}

/// One version of a component, or its latest when `version` is `None`.
///
/// # Errors
/// When the store cannot be read.
pub async fn find(
    rt: &impl Host,
    tenant: &TenantId,
    name: &str,
    version: Option<u32>,
) -> Result<Option<ComponentRecord>, store::Error> {
    rt.catalog().find_component(tenant, name, version).await
}

/// Deletes a component version, unless a running execution is pinned to it.
///
/// # Errors
/// When the store fails.
pub async fn delete(
    rt: &impl Host,
    tenant: &TenantId,
    name: &str,
    version: u32,
) -> Result<store::Deleted, store::Error> {
    rt.catalog().delete_component(tenant, name, version).await
}

/// The ready-to-run form of a component: from this host's cache or folder, else fetched from
/// the artifact store where the host that received the upload put it (hosts sharing a DynamoDB
/// table share an S3 bucket), checked against its digest and installed here. Blocks.
///
/// # Errors
/// When no host stored it, the bytes do not match the digest, or they do not load.
pub fn load(
    engine: &Engine,
    artifacts: &dyn ArtifactStore,
    digest: &ComponentDigest,
) -> Result<WorkflowComponentPre<HostState>, LoadError> {
    let local = match engine.load(digest) {
        Ok(pre) => return Ok(pre),
        Err(e) => e,
    };
    let bytes = match artifacts.get_component(digest) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(local),
        Err(e) => return Err(LoadError::Io(format!("fetch component {digest}: {e}"))),
    };
    if ComponentDigest::of(&bytes) != *digest {
        return Err(LoadError::Io(format!(
            "the stored bytes of component {digest} do not match its digest"
        )));
    }
    tracing::info!(%digest, "component fetched from the artifact store");
    engine.install(&bytes)?;
    engine.load(digest)
}
