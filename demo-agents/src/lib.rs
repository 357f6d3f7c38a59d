//! Aegis demo agents: a researcher, an analyst and a writer that do real text processing over a
//! local markdown corpus, served over A2A JSON-RPC (v0.3 and v1.0) and the Aegis simple
//! dispatch form. See the crate README for the wire shapes.
//!
//! Layering, bottom up: `corpus` (loading, tokenising) → `rank` (BM25) → `research`,
//! `analysis`, `writing` (the three roles' work, pure functions) → `agent` (role dispatch,
//! optional `llm`) → `tasks` (state), `runner` (background execution), `push` (delivery) →
//! `service` (protocol-neutral operations) → `a2a`, `simple` (wire formats) → `server`.

pub mod a2a;
pub mod agent;
pub mod analysis;
pub mod clock;
pub mod corpus;
pub mod llm;
pub mod push;
pub mod rank;
pub mod research;
pub mod runner;
pub mod server;
pub mod service;
pub mod simple;
pub mod tasks;
pub mod writing;
