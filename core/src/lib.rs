//! The core of Aegis: the types and rules every other crate builds on, with no I/O of its own.
//!
//! - [`ids`], [`journal`] (operations, events, replay) and [`quotas`]: the domain's vocabulary.
//! - [`store`]: the storage roles (traits), their records and [`store::Batch`]es. The backends
//!   are separate crates that implement these traits.
//! - [`transitions`]: pure functions from an operation and an input to the batch that records it.
//! - [`artifacts`]: the artifact interface the engine writes through (the backends are the
//!   host's).
//! - [`backoff`] and [`task`]: small helpers with no domain knowledge.
//!
//! Nothing here knows wasmtime, HTTP, SQLite or AWS: the compiler keeps it that way, because
//! this crate does not depend on them.

pub mod artifacts;
pub mod backoff;
pub mod ids;
pub mod journal;
pub mod quotas;
pub mod store;
pub mod task;
pub mod transitions;
