//! Test harness for Aegis: starts the real `aegis` binary and talks to it over HTTP.
//!
//! - [`fixtures`]: paths of the compiled guest fixture components;
//! - [`host`]: [`Host`] spawns `aegis serve` on port 0 in a temp data dir, waits for its
//!   readiness line, and can be killed with SIGKILL and restarted on the same data dir;
//! - [`client`]: [`Client`], a small REST client with the calls the tests and the bench make.
//! - [`agents`]: the demo agents, the Python A2A SDK agent, a simple-protocol test agent and a
//!   webhook receiver, plus agent configuration files;
//! - [`pipeline`]: the research pipeline's REST calls (`/workflows`) and the event list.
//! - [`aws`]: servers that speak the AWS wire protocols (moto, s3s-fs), reached over plain HTTP,
//!   and `aegis dynamodb create-tables`;
//! - [`fairness`]: one tenant floods the host while another runs short workflows (a bench);
//! - [`faults`]: a proxy that makes a DynamoDB-protocol server throttle, fail and lose replies.
//! - [`hostile`]: the hostile-guest suite: the attacks, the bystander's canaries, the host's RSS;
//! - [`wat`]: hand-written hostile components (many memories, many instances).
//! - [`checks`]: checks on a history (its shape, waits and callbacks ended once, no succeeded
//!   step run again) that the crash tests and the crash loop share;
//! - [`crashloop`]: the crash loop: the host SIGKILLed and restarted again and again under a mix
//!   of executions, then every execution checked.
//!
//! The end-to-end tests live in `tests/e2e/`; the benchmark driver in `src/bin/aegis-bench.rs`;
//! the crash-loop soak driver in `src/bin/aegis-crashloop.rs`.

pub mod agents;
pub mod aws;
pub mod checks;
pub mod client;
pub mod crashloop;
pub mod fairness;
pub mod faults;
pub mod fixtures;
pub mod host;
pub mod hostile;
pub mod pipeline;
pub mod wat;

pub use client::{Client, Reply};
pub use fixtures::fixture;
pub use host::{Host, HostOptions, TEST_ADMIN_KEY};
