//! Guards of the routes that take no API key (callbacks and agent answers): rate limits per
//! source address and per callback.
//!
//! These routes cannot charge a tenant's request rate before they know the callback, and the
//! callback id is a capability anyone who holds it may use. So the address is limited first
//! (before the callback is even looked up: a flood of made-up ids costs one bucket check each),
//! and then what can repeat on one live callback: heartbeats and agents' progress updates, each
//! a durable write (checked once the callback is known to exist, so made-up ids never take a
//! bucket). Both limiters keep a bounded number of keys ([`crate::ratelimit::Keyed`]).

use super::{ApiError, AppState};
use crate::config::ServerConfig;
use crate::ratelimit::{Keyed, Rate};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};

/// Keys each limiter remembers: about 100 bytes each, so a few MiB at most.
const MAX_KEYS: usize = 16_384;

pub struct Guards {
    by_address: Keyed<IpAddr>,
    by_callback: Keyed<String>,
}

impl Guards {
    pub fn new(config: &ServerConfig) -> Self {
        Self {
            by_address: Keyed::new(
                Rate {
                    per_second: config.address_requests_per_second,
                    burst: config.address_request_burst,
                },
                MAX_KEYS,
            ),
            by_callback: Keyed::new(
                Rate {
                    per_second: config.callback_requests_per_second,
                    burst: config.callback_request_burst,
                },
                MAX_KEYS,
            ),
        }
    }

    /// Takes one heartbeat (or agent progress update) from the callback's bucket.
    ///
    /// # Errors
    /// A 429 naming the limit, with `Retry-After`.
    pub fn check_callback(&self, callback_id: &str) -> Result<(), ApiError> {
        self.by_callback
            .check(callback_id.to_string())
            .map_err(|wait| {
                let rate = self.by_callback.rate();
                ApiError::rate_limited(
                    wait,
                    format!(
                        "heartbeats on this callback are over the limit of {} per second (burst \
                     {}, server.callback_requests_per_second): retry after {} ms",
                        rate.per_second,
                        rate.burst,
                        wait.as_millis()
                    ),
                )
            })
    }

    fn check_address(&self, address: IpAddr) -> Result<(), ApiError> {
        self.by_address.check(address).map_err(|wait| {
            let rate = self.by_address.rate();
            ApiError::rate_limited(
                wait,
                format!(
                    "requests from {address} to routes without an API key are over the limit of \
                     {} per second (burst {}, server.address_requests_per_second): retry after \
                     {} ms",
                    rate.per_second,
                    rate.burst,
                    wait.as_millis()
                ),
            )
        })
    }
}

/// The key of a source address: an IPv4 address, or an IPv6 address's /64 (one host usually
/// has a whole /64 to pick addresses from).
fn source(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
        v4 => v4,
    }
}

/// Middleware: the source address's rate, before anything else is done for the request. A
/// request with no known address (the router used without the server, as in unit tests) is
/// not limited here.
pub async fn limit_address(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| source(peer.ip()));
    let has_body = !http_body::Body::is_end_stream(request.body());
    let mut response = match address.map(|a| s.guards.check_address(a)) {
        Some(Err(e)) => e.into_response(),
        _ => next.run(request).await,
    };
    // A refusal is usually given before the body is read; the rest of it is not read either,
    // and the connection ends. Saying so lets a pooled client open a new one for its next
    // request instead of losing it.
    if has_body && response.status().is_client_error() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sources_are_their_64_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source(a), source(b));
        assert_ne!(source(a), source(c));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(source(mapped), "10.0.0.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_flooded_callback_gets_429_with_retry_after() {
        let guards = Guards::new(&ServerConfig {
            callback_requests_per_second: 1,
            callback_request_burst: 3,
            ..ServerConfig::default()
        });
        for _ in 0..3 {
            guards.check_callback("cb_1").unwrap();
        }
        let err = guards.check_callback("cb_1").unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.code, crate::api::Code::RateLimited);
        assert!(err.retry_after.is_some());
        assert!(
            err.message.contains("callback_requests_per_second"),
            "{}",
            err.message
        );
        let response = err.into_response();
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "1");
        // Another callback is not affected.
        guards.check_callback("cb_2").unwrap();
    }
}
