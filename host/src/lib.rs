//! Aegis: a durable workflow host for long-running AI-agent workflows.
//!
//! Workflows are WebAssembly components (see `wit/`). The host runs them on wasmtime, records
//! every durable result in a journal, and after a suspension or a crash runs them again,
//! replaying the journal deterministically. See ARCHITECTURE.md for the map.

pub mod agents;
pub mod api;
pub mod artifacts;
pub mod aws;
pub mod backoff;
pub mod callbacks;
pub mod components;
pub mod config;
pub mod demo;
pub mod engine;
pub mod executions;
pub mod ids;
pub mod journal;
pub mod notifications;
pub mod quotas;
pub mod ratelimit;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod task;
pub mod tenancy;
pub mod transitions;

#[cfg(test)]
mod layers_tests;
