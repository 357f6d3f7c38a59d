//! The `[server]` section: the HTTP server's own limits.

use serde::Deserialize;

/// The `[server]` section. Every limit here protects the host from callers it cannot identify:
/// a connection that never finishes its request, or a flood on the routes that need no key.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// A connection must send a request's whole header within this time, or it is closed. It
    /// also bounds how long an idle keep-alive connection is kept. Without it, connections that
    /// send a header byte by byte (slowloris) would hold the host's connections forever.
    pub header_read_timeout_ms: u64,
    /// A request's whole body must arrive within this time, counted from the end of its
    /// header; a later body is a 408. Large enough for the largest component upload on a slow
    /// link, small enough that a trickled body cannot hold a connection for long.
    pub body_timeout_ms: u64,
    /// Connections served at once. Past it, new connections wait in the listen backlog (and
    /// are refused by the kernel once that is full) instead of taking the host's file
    /// descriptors and memory.
    pub max_connections: u32,
    /// Heartbeats (and agents' progress updates) per second on one callback, and the burst
    /// above it: each is a durable write. A callback id is a capability, not an identity:
    /// whoever holds it may post, but not as fast as they can. Completions are not limited per
    /// callback (only one can win).
    pub callback_requests_per_second: u32,
    pub callback_request_burst: u32,
    /// Requests per second from one source address on the routes that take no API key, and
    /// the burst above it. Behind a proxy every request has the proxy's address: raise it.
    pub address_requests_per_second: u32,
    pub address_request_burst: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            body_timeout_ms: 120_000,
            max_connections: 1024,
            callback_requests_per_second: 20,
            callback_request_burst: 50,
            address_requests_per_second: 200,
            address_request_burst: 400,
        }
    }
}

impl ServerConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// A timeout under 100 ms or over an hour, no connections, or a rate or burst of 0; the
    /// message names the key.
    pub fn validate(&self) -> Result<(), String> {
        for (key, ms) in [
            ("server.header_read_timeout_ms", self.header_read_timeout_ms),
            ("server.body_timeout_ms", self.body_timeout_ms),
        ] {
            if !(100..=3_600_000).contains(&ms) {
                return Err(format!("{key} must be between 100 and 3600000, got {ms}"));
            }
        }
        for (key, n) in [
            ("server.max_connections", self.max_connections),
            (
                "server.callback_requests_per_second",
                self.callback_requests_per_second,
            ),
            ("server.callback_request_burst", self.callback_request_burst),
            (
                "server.address_requests_per_second",
                self.address_requests_per_second,
            ),
            ("server.address_request_burst", self.address_request_burst),
        ] {
            if n == 0 {
                return Err(format!("{key} must be at least 1, got 0"));
            }
        }
        Ok(())
    }
}
