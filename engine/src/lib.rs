//! The Wasm engine: wasmtime configured for many short activations of untrusted guests.
//!
//! Key items:
//! - [`Engine`]: one wasmtime engine with the component model, the pooling allocator (instances
//!   are carved out of pre-reserved slots, so instantiation takes microseconds) and epoch
//!   interruption (a background thread ticks every [`EPOCH_TICK`]).
//! - [`Engine::load`]: a component's ready-to-instantiate form, from the in-memory cache, else from
//!   its precompiled `.cwasm` on disk, else compiled from its `.wasm`. Start-up never recompiles a
//!   component whose `.cwasm` matches this engine.
//! - [`activation`]: one run of a guest against its journal.
//! - [`host`]: the imports the guest calls.
//! - [`trap`]: whose failure ended an execution, the host's ([`trap::Trap`]) or the guest's.

pub mod activation;
pub mod budget;
pub mod commit;
pub mod host;
mod limits;
pub mod trap;
mod wasi;

pub use limits::Limits;
use limits::{
    MAX_CORE_INSTANCES_PER_COMPONENT, MAX_MEMORIES_PER_COMPONENT, MAX_TABLES_PER_COMPONENT,
};

use aegis_core::ids::ComponentDigest;
use host::HostState;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

wasmtime::component::bindgen!({
    world: "workflow-component",
    path: "../wit/aegis-workflow@0.1.0",
    imports: { default: trappable },
});

/// How often the epoch advances; CPU deadlines are checked at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why a component was refused. `Clone`, so that every upload waiting on one compile of the
/// same bytes gets its outcome.
#[derive(Clone, Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("the component does not implement aegis:workflow/workflow-component: {0}")]
    Incompatible(String),
    /// More core instances, memories or tables than one component may have.
    #[error(
        "the component is over the host's per-component limits (at most {MAX_CORE_INSTANCES_PER_COMPONENT} core instances, {MAX_MEMORIES_PER_COMPONENT} memories and {MAX_TABLES_PER_COMPONENT} tables): {0}"
    )]
    OverLimits(String),
    #[error("component store: {0}")]
    Io(String),
}

/// A compiled, linked component that is not stored yet (see [`Engine::compile`]).
pub struct Compiled {
    pub digest: ComponentDigest,
    pre: WorkflowComponentPre<HostState>,
    cwasm: Vec<u8>,
}

pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<HostState>,
    dir: PathBuf,
    cache: Mutex<HashMap<ComponentDigest, WorkflowComponentPre<HostState>>>,
}

impl Engine {
    /// Builds the engine. Components are kept under `dir`.
    ///
    /// # Errors
    /// When wasmtime rejects the configuration or the directory cannot be created.
    pub fn new(dir: &Path, limits: &Limits) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(dir)?;
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // Replays must compute what the first run computed, NaN bits included.
        config.cranelift_nan_canonicalization(true);
        // One component may hold only so many core instances, memories and tables (a component
        // over these is refused at upload, naming the limit), and the pool has room for every
        // activation slot to hold that many at once: no tenant can take the slots of another.
        let slots = u32::try_from(limits.activation_slots()).unwrap_or(u32::MAX);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.max_instances);
        pool.max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT);
        pool.max_memories_per_component(MAX_MEMORIES_PER_COMPONENT);
        pool.max_tables_per_component(MAX_TABLES_PER_COMPONENT);
        pool.total_core_instances(slots.saturating_mul(MAX_CORE_INSTANCES_PER_COMPONENT));
        pool.total_memories(slots.saturating_mul(MAX_MEMORIES_PER_COMPONENT));
        pool.total_tables(slots.saturating_mul(MAX_TABLES_PER_COMPONENT));
        // Slots fit the largest memory any tenant may be given; each store enforces its own cap.
        pool.max_memory_size((aegis_core::quotas::MAX_MEMORY_MB as usize) << 20);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = wasmtime::Engine::new(&config).map_err(anyhow::Error::from)?;

        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
        WorkflowComponent::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;

        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("aegis-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;

        Ok(Arc::new(Self {
            engine,
            linker,
            dir: dir.to_path_buf(),
            cache: Mutex::new(HashMap::new()),
        }))
    }

    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// The folder components are kept in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn wasm_path(&self, digest: &ComponentDigest) -> PathBuf {
        self.dir.join(format!("{}.wasm", digest.hex()))
    }

    fn cwasm_path(&self, digest: &ComponentDigest) -> PathBuf {
        self.dir.join(format!("{}.cwasm", digest.hex()))
    }

    /// Validates `bytes` as a workflow component, then stores it and its precompiled form.
    /// Compiling is slow; call from a blocking thread.
    ///
    /// # Errors
    /// [`LoadError::NotAComponent`] or [`LoadError::Incompatible`] for bad input.
    pub fn install(&self, bytes: &[u8]) -> Result<ComponentDigest, LoadError> {
        let compiled = self.compile(bytes)?;
        self.keep(compiled, bytes)
    }

    /// Validates and compiles `bytes` without storing anything. Split from [`Engine::keep`] so
    /// that a caller bounding compile time can run this on a thread it may stop waiting for,
    /// and throw the result away: nothing is written until `keep`.
    ///
    /// # Errors
    /// [`LoadError::NotAComponent`] or [`LoadError::Incompatible`] for bad input.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, LoadError> {
        let digest = ComponentDigest::of(bytes);
        if !wasmparser_is_component(bytes) {
            return Err(LoadError::NotAComponent(
                "the bytes do not start with a component header (\\0asm, layer 1)".into(),
            ));
        }
        let component = Component::new(&self.engine, bytes).map_err(compile_error)?;
        let pre = self.prepare(&component)?;
        let cwasm = component
            .serialize()
            .map_err(|e| LoadError::Io(format!("serialize: {e:#}")))?;
        Ok(Compiled { digest, pre, cwasm })
    }

    /// Stores a component [`Engine::compile`] made from `bytes` (the `.wasm` and the `.cwasm`)
    /// and caches it, so later loads and uploads of the same bytes never compile again.
    ///
    /// # Errors
    /// [`LoadError::Io`] when the files cannot be written.
    pub fn keep(&self, compiled: Compiled, bytes: &[u8]) -> Result<ComponentDigest, LoadError> {
        let Compiled { digest, pre, cwasm } = compiled;
        write_durably(&self.wasm_path(&digest), bytes)?;
        write_durably(&self.cwasm_path(&digest), &cwasm)?;
        self.cache
            .lock()
            .expect("component cache poisoned")
            .insert(digest.clone(), pre);
        Ok(digest)
    }

    /// Whether `digest` is ready here without compiling: in the cache, or with a `.cwasm` on
    /// disk that this engine accepts (it is then cached). Unlike [`Engine::load`], this never
    /// compiles, so an upload can ask it before taking a compile slot. Blocks (reads a file).
    pub fn precompiled(&self, digest: &ComponentDigest) -> bool {
        if self
            .cache
            .lock()
            .expect("component cache poisoned")
            .contains_key(digest)
        {
            return true;
        }
        let cwasm = self.cwasm_path(digest);
        if !cwasm.exists() {
            return false;
        }
        // SAFETY: as in `load`: only `keep` writes .cwasm files here, from this engine's own
        // `serialize`; wasmtime checks the engine configuration on load.
        let Ok(component) = (unsafe { Component::deserialize_file(&self.engine, &cwasm) }) else {
            return false;
        };
        let Ok(pre) = self.prepare(&component) else {
            return false;
        };
        self.cache
            .lock()
            .expect("component cache poisoned")
            .insert(digest.clone(), pre);
        true
    }

    fn prepare(&self, component: &Component) -> Result<WorkflowComponentPre<HostState>, LoadError> {
        let instance_pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::Incompatible(format!("{e:#}")))?;
        WorkflowComponentPre::new(instance_pre)
            .map_err(|e| LoadError::Incompatible(format!("{e:#}")))
    }

    /// The ready-to-instantiate form of an installed component.
    ///
    /// # Errors
    /// When the component is not installed here or cannot be loaded.
    pub fn load(
        &self,
        digest: &ComponentDigest,
    ) -> Result<WorkflowComponentPre<HostState>, LoadError> {
        if let Some(pre) = self
            .cache
            .lock()
            .expect("component cache poisoned")
            .get(digest)
        {
            return Ok(pre.clone());
        }
        let cwasm = self.cwasm_path(digest);
        // SAFETY: the .cwasm files in our component folder are written only by `install`, from
        // this engine's own `serialize`; wasmtime checks the engine configuration on load.
        let component = match unsafe { Component::deserialize_file(&self.engine, &cwasm) } {
            Ok(component) => component,
            Err(e) => {
                tracing::info!(%digest, error = %e, "precompiled component unusable, compiling again");
                let bytes = std::fs::read(self.wasm_path(digest))
                    .map_err(|e| LoadError::Io(format!("read component {digest}: {e}")))?;
                let component = Component::new(&self.engine, &bytes)
                    .map_err(|e| LoadError::NotAComponent(format!("{e:#}")))?;
                if let Ok(serialized) = component.serialize() {
                    write_durably(&cwasm, &serialized)?;
                }
                component
            }
        };
        let pre = self.prepare(&component)?;
        self.cache
            .lock()
            .expect("component cache poisoned")
            .insert(digest.clone(), pre.clone());
        Ok(pre)
    }
}

/// Why wasmtime would not compile a component. The pooling allocator checks the per-component
/// limits at compile time and says so in its message; anything else is not a valid component.
fn compile_error(e: wasmtime::Error) -> LoadError {
    let text = format!("{e:#}");
    if text.contains("pooling allocator") {
        LoadError::OverLimits(text)
    } else {
        LoadError::NotAComponent(text)
    }
}

/// A component starts with `\0asm`, then version 0x0d and layer 1 (a core module has layer 0).
fn wasmparser_is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && &bytes[0..4] == b"\0asm" && bytes[6..8] == [1, 0]
}

/// Writes a file and fsyncs it and its folder, so that a crash never leaves a half file that
/// later loads.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    use std::io::Write;
    let io = |e: std::io::Error| LoadError::Io(format!("write {}: {e}", path.display()));
    // A name of its own: two activations on a host that did not have the component may fetch
    // and install it at once.
    let tmp = path.with_extension(format!("{:016x}.tmp", rand::random::<u64>()));
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_header_is_told_from_a_core_module() {
        assert!(wasmparser_is_component(b"\0asm\x0d\0\x01\0rest"));
        assert!(!wasmparser_is_component(b"\0asm\x01\0\0\0"));
        assert!(!wasmparser_is_component(b"hello world"));
    }

    #[test]
    fn junk_is_not_a_component() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(dir.path(), &Limits::default()).unwrap();
        let err = engine.install(b"definitely not wasm").unwrap_err();
        assert!(matches!(err, LoadError::NotAComponent(_)), "{err}");
        let err = engine.install(b"\0asm\x0d\0\x01\0garbage").unwrap_err();
        assert!(matches!(err, LoadError::NotAComponent(_)), "{err}");
    }
}
