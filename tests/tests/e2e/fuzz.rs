//! Property tests over request bodies, query strings and path parameters, against the real host
//! in keyed mode (one host per property): arbitrary JSON, valid bodies with a field of the wrong
//! type, extra fields, huge strings, deep nesting, invalid UTF-8 and truncated JSON. Whatever
//! arrives, the answer is never a 5xx, a 4xx always has the JSON error body, a 2xx only comes
//! for what is valid, and the host is healthy afterwards.
//!
//! Every request goes on a new connection ([`Client::unpooled`]): the host closes a connection
//! on which it refused a body unread, and a pooled client could send its next request on it.
//!
//! Cases per property: `AEGIS_FUZZ_CASES` (default 128). The seed is random per run and printed
//! on failure; `AEGIS_FUZZ_SEED=<n>` replays it. A failing case is shrunk (proptest's value
//! trees) before it is reported.

use std::fmt;
use std::future::Future;

use aegis_tests::{Client, HostOptions, Reply};
use anyhow::{Context as _, Result, anyhow, bail, ensure};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::{DONE, guard, keyed_host, new_tenant, upload};

/// The largest body `POST /v1/executions` and the callback routes read: the payload limit
/// (256 KiB by default) plus 16 KiB for the JSON around it.
const PAYLOAD_BODY_LIMIT: usize = 256 * 1024 + 16 * 1024;
/// The largest admin body.
const ADMIN_BODY_LIMIT: usize = 64 * 1024;

/// A request body: raw bytes, shown shortened when a case fails.
#[derive(Clone)]
struct Body(Vec<u8>);

impl Body {
    fn json(value: &Value) -> Body {
        Body(serde_json::to_vec(value).expect("a Value serialises"))
    }

    fn is_json(&self) -> bool {
        serde_json::from_slice::<Value>(&self.0).is_ok()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(300)];
        write!(
            f,
            "Body({} bytes: {:?}{})",
            self.0.len(),
            String::from_utf8_lossy(shown),
            if self.0.len() > 300 { "…" } else { "" }
        )
    }
}

fn cases() -> u32 {
    std::env::var("AEGIS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

fn seed() -> u64 {
    if let Some(seed) = std::env::var("AEGIS_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return seed;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

/// How many answers of each status a property saw (shrinking aside).
type Tally = std::collections::BTreeMap<u16, u32>;

/// Runs the async `property` (which answers the status it saw) on `cases()` values of
/// `strategy`. On the first failure, shrinks the value (simplify while it still fails,
/// complicate when it passes, as proptest does) and fails with the smallest failing value, its
/// error and the seed. Returns the statuses seen.
async fn check<S, F, Fut>(name: &str, strategy: S, mut property: F) -> Result<Tally>
where
    S: Strategy,
    S::Value: fmt::Debug,
    F: FnMut(S::Value) -> Fut,
    Fut: Future<Output = Result<u16>>,
{
    let mut tally = Tally::new();
    let seed = seed();
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let cases = cases();
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            ..Config::default()
        },
        rng,
    );
    for case in 0..cases {
        let mut tree = strategy
            .new_tree(&mut runner)
            .map_err(|e| anyhow!("generating a value: {e}"))?;
        let error = match property(tree.current()).await {
            Ok(status) => {
                *tally.entry(status).or_default() += 1;
                continue;
            }
            Err(error) => error,
        };
        let mut smallest = (format!("{:?}", tree.current()), error);
        let mut steps = 0;
        if tree.simplify() {
            while steps < 300 {
                steps += 1;
                let value = tree.current();
                let shown = format!("{value:?}");
                match property(value).await {
                    Err(e) => {
                        smallest = (shown, e);
                        if !tree.simplify() {
                            break;
                        }
                    }
                    Ok(_) => {
                        if !tree.complicate() {
                            break;
                        }
                    }
                }
            }
        }
        bail!(
            "property `{name}` failed on case {case} of {cases} (seed {seed}: rerun with \
             AEGIS_FUZZ_SEED={seed}); smallest failing input after {steps} shrink steps:\n  \
             {}\nerror: {:#}",
            smallest.0,
            smallest.1
        );
    }
    Ok(tally)
}

/// Checks a property was not vacuous: among its answers, some had a status in each of
/// `ranges` (e.g. `200..300` for any success).
fn saw(name: &str, tally: &Tally, ranges: &[std::ops::Range<u16>]) -> Result<()> {
    for range in ranges {
        ensure!(
            tally.range(range.clone()).any(|(_, n)| *n > 0),
            "`{name}` never got an HTTP status in {range:?}: {tally:?}"
        );
    }
    Ok(())
}

/// What holds for every answer: no 5xx; a 4xx is a JSON error; a 2xx with a body has JSON.
fn well_formed(reply: &Reply) -> Result<()> {
    ensure!(
        reply.status < 500,
        "a server error: HTTP {} {}",
        reply.status,
        reply.text()
    );
    if reply.status >= 400 {
        ensure!(
            reply.is_json_error(),
            "a {} without the JSON error body: {} (content-type {:?})",
            reply.status,
            reply.text(),
            reply.header("content-type")
        );
    } else if !reply.raw.is_empty() {
        ensure!(
            serde_json::from_slice::<Value>(&reply.raw).is_ok(),
            "a {} whose body is not JSON: {}",
            reply.status,
            reply.text()
        );
    }
    Ok(())
}

/// Checks a reply to a JSON body: well formed; an oversized body is a 413 and a body that is
/// not JSON a 400 `invalid_json`; the status is one of `allowed`.
fn judged(reply: &Reply, body: &Body, limit: usize, allowed: &[u16]) -> Result<()> {
    well_formed(reply)?;
    if body.0.len() > limit {
        reply.expect_error(413, "payload_too_large")?;
    } else if !body.0.is_empty() && !body.is_json() {
        reply.expect_error(400, "invalid_json")?;
    }
    ensure!(
        allowed.contains(&reply.status),
        "HTTP {} is not one of {allowed:?}: {}",
        reply.status,
        reply.text()
    );
    Ok(())
}

/// Text of any characters.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..max).prop_map(|c| c.into_iter().collect())
}

/// Object keys: the API's own field names, and anything.
fn key() -> BoxedStrategy<String> {
    prop_oneof![
        select(vec![
            "workflow",
            "input",
            "name",
            "version",
            "timeout_seconds",
            "error_type",
            "error_message",
            "error_data",
            "quotas",
            "max_payload_kb",
            "memory_limit_mb",
            "requests_per_second",
            "request_burst",
            "",
        ])
        .prop_map(String::from),
        text(12),
    ]
    .boxed()
}

/// Numbers around the limits the API checks.
fn edgy_number() -> impl Strategy<Value = Value> {
    select(vec![
        json!(0),
        json!(-1),
        json!(1),
        json!(8),
        json!(255),
        json!(256),
        json!(257),
        json!(4096),
        json!(4097),
        json!(u32::MAX),
        json!(u64::from(u32::MAX) + 1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.5),
        json!(1e300),
        json!(-0.0),
    ])
}

/// Any JSON value, a few levels deep.
fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        edgy_number(),
        text(24).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// `valid` with `field` set to a placeholder string, serialised, and the placeholder (with its
/// quotes when `quoted`) replaced by `raw` bytes.
fn splice(valid: &Value, field: &str, raw: &[u8], quoted: bool) -> Body {
    const MARK: &str = "@@AEGIS-FUZZ@@";
    let mut v = valid.clone();
    v[field] = json!(MARK);
    let bytes = serde_json::to_vec(&v).expect("serialises");
    let needle: Vec<u8> = if quoted {
        format!("\"{MARK}\"").into_bytes()
    } else {
        MARK.as_bytes().to_vec()
    };
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .expect("the placeholder is there");
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(raw);
    out.extend_from_slice(&bytes[at + needle.len()..]);
    Body(out)
}

/// Bodies derived from the valid body `valid` (an object), and arbitrary ones.
fn bodies(valid: Value) -> BoxedStrategy<Body> {
    let fields: Vec<String> = valid
        .as_object()
        .expect("a valid body is an object")
        .keys()
        .cloned()
        .collect();
    let (v1, v2, v3, v4, v5, v6, v7) = (
        valid.clone(),
        valid.clone(),
        valid.clone(),
        valid.clone(),
        valid.clone(),
        valid.clone(),
        Body::json(&valid),
    );
    let v8 = v7.clone();
    prop_oneof![
        // Arbitrary JSON.
        3 => json_value().prop_map(|v| Body::json(&v)),
        // The valid body itself.
        1 => Just(Body::json(&valid)),
        // A field of the wrong type (or a valid one by chance).
        4 => (select(fields.clone()), json_value()).prop_map(move |(f, x)| {
            let mut v = v1.clone();
            v[f.as_str()] = x;
            Body::json(&v)
        }),
        // An extra field.
        2 => (key(), json_value()).prop_map(move |(k, x)| {
            let mut v = v2.clone();
            v[k.as_str()] = x;
            Body::json(&v)
        }),
        // A field missing.
        1 => select(fields.clone()).prop_map(move |f| {
            let mut v = v3.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove(&f);
            }
            Body::json(&v)
        }),
        // A huge string.
        1 => (
            select(fields.clone()),
            // At most ~1.2 MB of JSON: a body far over every limit, yet small enough that the
            // client has written it all before the host answers and closes the connection (with
            // several MB, the client may get a broken pipe instead of reading the 413).
            select(vec![1_000usize, 60_000, 200_000, 262_000, 300_000]),
            prop_oneof![Just('x'), Just('é'), Just('\u{1F600}'), Just('"'), Just('\\')],
        )
            .prop_map(move |(f, n, c)| {
                let mut v = v4.clone();
                v[f.as_str()] = json!(std::iter::repeat_n(c, n).collect::<String>());
                Body::json(&v)
            }),
        // Deep nesting, within and far beyond what a parser should accept.
        2 => (select(fields.clone()), 1usize..5_000, any::<bool>()).prop_map(move |(f, depth, arrays)| {
            let (open, close) = if arrays { ("[", "]") } else { ("{\"a\":", "}") };
            let nested = format!("{}0{}", open.repeat(depth), close.repeat(depth));
            splice(&v5, &f, nested.as_bytes(), true)
        }),
        // Invalid UTF-8 inside a string.
        2 => (select(fields), prop::collection::vec(0x80u8..=0xff, 1..4)).prop_map(move |(f, bad)| {
            splice(&v6, &f, &bad, false)
        }),
        // Truncated JSON.
        2 => any::<Index>().prop_map(move |i| {
            let cut = i.index(v7.0.len().max(1));
            Body(v7.0[..cut].to_vec())
        }),
        // Random bytes spliced in.
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(move |(i, junk)| {
            let at = i.index(v8.0.len() + 1);
            let mut b = v8.0.clone();
            b.splice(at..at, junk);
            Body(b)
        }),
        // Not JSON at all.
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Body),
    ]
    .boxed()
}

/// The host is healthy: `/healthz` answers ok and `c` can still run a workflow (uploaded
/// again, in case a fuzzed request deleted it).
async fn still_healthy(c: &Client) -> Result<()> {
    upload(c, &["steps3"]).await?;
    let health = c.healthz().await?;
    ensure!(
        health.status == 200 && health.body == json!({"status": "ok"}),
        "healthz after fuzzing: {health:?}"
    );
    let id = c.start("steps3", json!("after")).await?;
    ensure!(
        c.result(&id, DONE).await? == json!("after-a-b-c"),
        "a workflow after fuzzing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_start_execution_bodies() {
    let host = keyed_host(HostOptions::default()).await;
    guard(240, async {
        let t = new_tenant(&host, "fuzz", json!({})).await?;
        upload(&t.client, &["steps3"]).await?;
        let valid = json!({
            "workflow": "steps3",
            "version": 1,
            "input": "x",
            "name": "fuzz-1",
            "timeout_seconds": 60
        });
        let c = t.client.unpooled();
        let tally = check("start execution bodies", bodies(valid), |body: Body| {
            let c = c.clone();
            async move {
                let reply = c
                    .send_json_bytes(Method::POST, "/v1/executions", body.0.clone())
                    .await?;
                judged(
                    &reply,
                    &body,
                    PAYLOAD_BODY_LIMIT,
                    &[200, 201, 400, 404, 409, 413],
                )?;
                if reply.is_success() {
                    ensure!(
                        reply.body["execution_id"].is_string(),
                        "a start answer without execution_id: {}",
                        reply.text()
                    );
                }
                Ok(reply.status)
            }
        })
        .await?;
        saw("start execution bodies", &tally, &[200..300, 400..401])?;
        still_healthy(&t.client).await
    })
    .await;
}

/// A callback to aim at: one of the real pending ones, an unknown well-formed id, or junk.
#[derive(Clone, Debug)]
enum Target {
    Real(Index),
    Unknown,
    Junk(String),
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        3 => any::<Index>().prop_map(Target::Real),
        1 => Just(Target::Unknown),
        1 => prop::collection::vec(select(vec!['a', 'c', 'b', '_', '0', 'f', '-']), 0..70)
            .prop_map(|c| Target::Junk(c.into_iter().collect())),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_callback_bodies() {
    let host = keyed_host(HostOptions::default()).await;
    guard(240, async {
        let t = new_tenant(&host, "fuzz", json!({})).await?;
        upload(&t.client, &["callback", "steps3"]).await?;
        let c = t.client.unpooled();
        let mut pending = Vec::new();
        for _ in 0..8 {
            let id = c
                .start("callback", json!({"timeout_seconds": 600, "heartbeat_seconds": null}))
                .await?;
            let cb = c
                .pending_callback(&id, "approval", std::time::Duration::from_secs(30))
                .await?;
            pending.push((id, cb));
        }
        let callbacks: Vec<String> = pending.iter().map(|(_, cb)| cb.clone()).collect();
        let unknown = format!("cb_{}", "0".repeat(64));
        let anon = host.client().unpooled();
        let succeed_valid = json!({"verdict": "ok", "score": 1});
        let fail_valid = json!({"error_type": "Review.Rejected", "error_message": "no", "error_data": {"by": "fuzz"}});
        let strategy = (
            select(vec!["succeed", "fail", "heartbeat", "approve"]),
            target(),
            prop_oneof![bodies(succeed_valid), bodies(fail_valid)],
        );
        let tally = check("callback bodies", strategy, |(action, target, body)| {
            let anon = anon.clone();
            let known = matches!(target, Target::Real(_));
            let id = match target {
                Target::Real(i) => callbacks[i.index(callbacks.len())].clone(),
                Target::Unknown => unknown.clone(),
                Target::Junk(s) => s,
            };
            async move {
                let path = if id.is_empty() {
                    format!("/v1/callbacks/x/{action}")
                } else {
                    format!("/v1/callbacks/{id}/{action}")
                };
                let reply = anon
                    .send_json_bytes(Method::POST, &path, body.0.clone())
                    .await?;
                // Only succeed and fail read the body, and only once the callback was found
                // waiting: an unknown one is a 404 and one that ended a 409, whatever the body.
                // A heartbeat ignores the body, and an unknown action is no route at all.
                match action {
                    "succeed" | "fail" if !known => {
                        well_formed(&reply)?;
                        ensure!(
                            [400, 404].contains(&reply.status),
                            "HTTP {} for an unknown callback: {}",
                            reply.status,
                            reply.text()
                        );
                    }
                    "succeed" | "fail" if reply.status == 409 => well_formed(&reply)?,
                    "succeed" | "fail" => {
                        judged(&reply, &body, PAYLOAD_BODY_LIMIT, &[200, 400, 404, 409, 413])?;
                    }
                    "heartbeat" => {
                        well_formed(&reply)?;
                        ensure!(
                            [200, 404, 409, 413].contains(&reply.status),
                            "HTTP {}: {}",
                            reply.status,
                            reply.text()
                        );
                    }
                    _ => reply.expect_error(404, "route_not_found")?,
                }
                if reply.status == 200 {
                    ensure!(
                        reply.body["callback_id"] == id.as_str(),
                        "a 200 for another callback: {}",
                        reply.text()
                    );
                }
                Ok(reply.status)
            }
        })
        .await?;
        saw("callback bodies", &tally, &[200..201, 400..401, 404..405, 409..410])?;

        // Every execution is consistent: its callback was completed once (so it ends), or it
        // is still pending and can still be completed (so it ends with that result).
        for (id, cb) in &pending {
            let exec = c.get(id).await?;
            let waiting: Vec<&str> = exec["pending_callbacks"]
                .as_array()
                .context("pending_callbacks")?
                .iter()
                .filter_map(|p| p["callback_id"].as_str())
                .collect();
            if waiting.is_empty() {
                let done = c.wait_done(id, DONE).await?;
                ensure!(
                    matches!(done["status"].as_str(), Some("SUCCEEDED" | "FAILED")),
                    "an execution in a strange state after fuzzing: {done}"
                );
            } else {
                ensure!(
                    exec["status"] == "RUNNING" && waiting == [cb.as_str()],
                    "{exec}"
                );
                anon.callback_succeed(cb, &json!("final"))
                    .await?
                    .expect(200, "the last completion")?;
                ensure!(c.result(id, DONE).await? == json!({"callback": "final"}));
            }
        }
        still_healthy(&t.client).await
    })
    .await;
}

/// Quota objects: the real names with numbers around their limits, sometimes an unknown one.
fn quota_objects() -> impl Strategy<Value = Value> {
    let name = select(vec![
        "max_running_executions",
        "max_component_mb",
        "memory_limit_mb",
        "cpu_deadline_ms",
        "max_payload_kb",
        "requests_per_second",
        "request_burst",
        "wall_deadline_ms",
        "max_activation_slots",
        "max_operations_per_activation",
        "max_log_lines_per_activation",
    ]);
    let value = prop_oneof![
        4 => edgy_number(),
        2 => (1u64..5000).prop_map(Value::from),
        1 => json_value(),
    ];
    prop::collection::vec((name, value), 0..8)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

/// Valid tenant names, often colliding.
fn tenant_name() -> impl Strategy<Value = String> {
    prop::collection::vec(select(vec!['a', 'b', 'z', '0', '9', '-', '_', 'Q']), 1..6)
        .prop_map(|c| c.into_iter().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_create_tenant_bodies() {
    let host = keyed_host(HostOptions::default()).await;
    guard(240, async {
        let admin = host.admin().unpooled();
        let anon = host.client().unpooled();
        let valid =
            json!({"name": "fuzz-tenant", "quotas": {"max_payload_kb": 8, "memory_limit_mb": 32}});
        let strategy = prop_oneof![
            3 => bodies(valid),
            2 => (tenant_name(), quota_objects())
                .prop_map(|(name, quotas)| Body::json(&json!({"name": name, "quotas": quotas}))),
        ];
        let tally = check("create tenant bodies", strategy, |body: Body| {
            let (admin, anon) = (admin.clone(), anon.clone());
            async move {
                let reply = admin
                    .send_json_bytes(Method::POST, "/v1/admin/tenants", body.0.clone())
                    .await?;
                judged(&reply, &body, ADMIN_BODY_LIMIT, &[201, 400, 409, 413])?;
                if reply.status == 201 {
                    // A tenant made is usable at once with its key.
                    let key = reply.body["api_key"].as_str().context("api_key")?;
                    let me = anon.with_key(key).whoami().await?;
                    ensure!(
                        me.status == 200 && me.body["tenant_id"] == reply.body["tenant_id"],
                        "the new tenant's key: {me:?}"
                    );
                }
                Ok(reply.status)
            }
        })
        .await?;
        saw("create tenant bodies", &tally, &[201..202, 400..401])?;
        let t = new_tenant(&host, "after-fuzz", json!({})).await?;
        upload(&t.client, &["steps3"]).await?;
        still_healthy(&t.client).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_quota_bodies() {
    let host = keyed_host(HostOptions::default()).await;
    guard(240, async {
        let admin = host.admin().unpooled();
        let t = new_tenant(&host, "fuzz", json!({})).await?;
        upload(&t.client, &["steps3"]).await?;
        let defaults = t.client.whoami().await?.expect(200, "whoami")?["quotas"].clone();
        let path = format!("/v1/admin/tenants/{}/quotas", t.id);
        let valid = json!({"max_payload_kb": 8, "memory_limit_mb": 32, "requests_per_second": 100});
        let strategy = prop_oneof![
            2 => bodies(valid),
            3 => quota_objects().prop_map(|q| Body::json(&q)),
        ];
        let tally = check("quota bodies", strategy, |body: Body| {
            let (admin, path, defaults) = (admin.clone(), path.clone(), defaults.clone());
            async move {
                let reply = admin
                    .send_json_bytes(Method::PUT, &path, body.0.clone())
                    .await?;
                judged(&reply, &body, ADMIN_BODY_LIMIT, &[200, 400, 413])?;
                if reply.status == 200 {
                    // The overrides replace the old ones (a null field is no override), and
                    // the quotas follow them.
                    let sent: Value = serde_json::from_slice(&body.0)?;
                    let named: Map<String, Value> = sent
                        .as_object()
                        .context("accepted overrides are an object")?
                        .iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    ensure!(
                        reply.body["overrides"] == Value::Object(named.clone()),
                        "overrides {} for {sent}",
                        reply.body["overrides"]
                    );
                    let quotas = defaults.as_object().context("quotas")?;
                    for (name, default) in quotas {
                        let want = named.get(name).unwrap_or(default);
                        ensure!(
                            &reply.body["quotas"][name] == want,
                            "{name}: {} for {sent}",
                            reply.body["quotas"][name]
                        );
                    }
                }
                Ok(reply.status)
            }
        })
        .await?;
        saw("quota bodies", &tally, &[200..201, 400..401])?;
        // Back to the defaults, the tenant works as before.
        admin
            .set_quotas(&t.id, &json!({}))
            .await?
            .expect(200, "reset")?;
        let me = t.client.whoami().await?.expect(200, "whoami")?;
        ensure!(me["quotas"] == defaults, "{me}");
        still_healthy(&t.client).await
    })
    .await;
}

/// Percent-encodes every byte but unreserved ASCII.
fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
                (*b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A path segment or query value: encoded arbitrary bytes, or raw oddities.
fn segment() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| encode(&b)),
        2 => select(vec![
            "RUNNING", "SUCCEEDED", "0", "-1", "1", "abc", "%zz", "%FF%FE", "%00", "..", ".",
            "%2F", "2024-01-01T00:00:00Z", "99999999999999999999", "ex_0", "cb_0", "steps3",
            "1e3", "+1", "",
        ])
        .prop_map(String::from),
    ]
    .boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_query_strings_and_path_ids() {
    let host = keyed_host(HostOptions::default()).await;
    guard(240, async {
        let t = new_tenant(&host, "fuzz", json!({})).await?;
        upload(&t.client, &["steps3"]).await?;
        let id = t.client.start("steps3", json!("q")).await?;
        t.client.result(&id, DONE).await?;
        let param = select(vec![
            "workflow",
            "status",
            "created_after",
            "created_before",
            "limit",
            "cursor",
            "after",
            "wait_ms",
            "x",
            "",
        ]);
        let query = prop::collection::vec((param, segment()), 0..5).prop_map(|kv| {
            kv.into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        });
        let route = select(vec![
            "list",
            "get",
            "history",
            "stop",
            "component",
            "version",
            "delete",
        ]);
        let strategy = (route, segment(), segment(), query);
        let c = t.client.unpooled();
        let known = id.clone();
        let tally = check(
            "query strings and path ids",
            strategy,
            |(route, seg, seg2, query)| {
                let c = c.clone();
                // Sometimes the real execution, so that queries reach a found one too.
                let seg = if seg == "ex_0" { known.clone() } else { seg };
                async move {
                    let (method, path) = match route {
                        "list" => (Method::GET, format!("/v1/executions?{query}")),
                        "get" => (Method::GET, format!("/v1/executions/{seg}?{query}")),
                        "history" => (Method::GET, format!("/v1/executions/{seg}/history?{query}")),
                        "stop" => (Method::POST, format!("/v1/executions/{seg}/stop")),
                        "component" => (Method::GET, format!("/v1/components/{seg}")),
                        "version" => (Method::GET, format!("/v1/components/{seg}/versions/{seg2}")),
                        _ => (
                            Method::DELETE,
                            format!("/v1/components/{seg}/versions/{seg2}"),
                        ),
                    };
                    let reply = c.send(method, &path, None).await?;
                    well_formed(&reply).with_context(|| path.clone())?;
                    // (A `.` or `..` segment is resolved away and may make another route: 405.
                    // A delete may hit the real component: 204.)
                    ensure!(
                        [200, 204, 400, 404, 405, 409].contains(&reply.status),
                        "{path}: HTTP {} {}",
                        reply.status,
                        reply.text()
                    );
                    if route == "list" && reply.status == 200 {
                        ensure!(
                            reply.body["executions"].is_array(),
                            "{path}: {}",
                            reply.text()
                        );
                    }
                    Ok(reply.status)
                }
            },
        )
        .await?;
        saw(
            "query strings and path ids",
            &tally,
            &[200..201, 400..401, 404..405],
        )?;
        still_healthy(&t.client).await
    })
    .await;
}
