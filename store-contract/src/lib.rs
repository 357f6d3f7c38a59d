//! The store contract: the behaviour every storage backend must show, run against the SQLite
//! store and the DynamoDB store (its tests), and the DynamoDB server those tests use
//! ([`dynamodb_local`]).
//!
//! This is the one crate that depends on both backends: a new backend is added here, and it
//! is done when the whole contract passes on it.

pub mod dynamodb_local;

#[cfg(test)]
mod contract;
