//! Aegis: a durable workflow host for long-running AI-agent workflows.
//!
//! Workflows are WebAssembly components (see `wit/`). The host runs them on wasmtime, records
//! every durable result in a journal, and after a suspension or a crash runs them again,
//! replaying the journal deterministically. See ARCHITECTURE.md for the map.
//!
//! This crate is the host proper: executions, the scheduler, callbacks, agents, artifacts,
//! notifications, tenancy, the API and the server; the client commands of the `aegis` binary
//! (`cli`), which talk to a host over HTTP only; and, with the `pipeline` feature (on by
//! default), the research pipeline's own routes, section and demo, which the generic host does
//! not name. What it builds on is in crates of their
//! own, which cannot depend on it: `aegis-core` (ids, journal, storage roles, transitions),
//! the two stores, `aegis-aws` and `aegis-engine`. They are re-exported below under the names
//! the host's modules use.

pub mod agents;
pub mod api;
pub mod artifacts;
pub mod callbacks;
pub mod cli;
pub mod components;
pub mod config;
pub mod executions;
pub mod notifications;
#[cfg(feature = "pipeline")]
pub mod pipeline;
pub mod ratelimit;
pub mod scheduler;
pub mod server;
pub mod telemetry;
pub mod tenancy;

pub use aegis_aws as aws;
pub use aegis_core::{backoff, ids, journal, quotas, task, transitions};
pub use aegis_engine as engine;

/// The storage roles and records of the core, with the two backends beside them.
pub mod store {
    pub use aegis_core::store::*;
    pub use aegis_store_dynamo as dynamo;
    pub use aegis_store_sqlite as sqlite;
}

#[cfg(test)]
mod layers_tests;
