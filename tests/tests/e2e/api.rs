//! The REST API in keyed mode, route by route: the admin routes (tenants, quotas, keys), the
//! tenant routes (who am I, components, executions with listing, history and stop), callbacks
//! without a key, the JSON error shape for every class of bad request, and an idempotent start
//! under a race.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aegis_tests::{Client, HostOptions, Reply};
use anyhow::{Context as _, Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    DONE, check_history_shape, guard, host, host_with, keyed_host, new_tenant, of_type, types,
    upload,
};

/// How long a callback may take to show up as pending.
const PENDING: Duration = Duration::from_secs(30);

/// The quotas every tenant gets on a host with no quota settings (the documented defaults).
fn default_quotas() -> Value {
    json!({
        "max_running_executions": 10_000,
        "max_component_mb": 50,
        "memory_limit_mb": 64,
        "cpu_deadline_ms": 10_000,
        "max_payload_kb": 256,
        "requests_per_second": 1_000,
        "request_burst": 2_000,
        "wall_deadline_ms": 60_000,
        "max_activation_slots": 32,
        "max_operations_per_execution": 100_000,
        "max_operations_per_activation": 10_000,
        "max_pending_kb_per_activation": 16_384,
        "max_events_per_activation": 1_000,
        "max_event_kb_per_activation": 4_096,
        "max_log_lines_per_activation": 1_000,
        "max_log_kb_per_activation": 256,
        "max_log_lines_per_execution": 10_000,
        "max_log_kb_per_execution": 4_096,
        "max_callbacks_per_activation": 1_000,
        "max_timers_per_activation": 2_000,
        "max_agent_calls_per_activation": 100,
        "max_artifact_mb_per_activation": 256,
        "max_artifact_mb": 1024,
    })
}

/// The `execution_id` of a start answer.
pub fn exec_id(body: &Value) -> Result<String> {
    body["execution_id"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no execution_id in {body}"))
}

/// Starts `workflow` on `input` and checks the answer is 201; returns the answer's body.
pub async fn start_new(c: &Client, body: Value) -> Result<Value> {
    c.start_raw(&body)
        .await?
        .expect(201, &format!("start {body}"))
}

/// The ids of a list of executions, in order.
fn ids(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|e| e["execution_id"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_manage_tenants_quotas_and_keys() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let admin = host.admin();
        let anon = host.client();

        // The admin routes need the admin key, and only the admin key.
        anon.tenants().await?.expect_error(401, "unauthorized")?;
        anon.with_key("not-the-admin-key")
            .tenants()
            .await?
            .expect_error(401, "unauthorized")?;
        anon.create_tenant_raw(&json!({"name": "sneaky"}))
            .await?
            .expect_error(401, "unauthorized")?;

        let created = admin.create_tenant_raw(&json!({"name": "acme"})).await?;
        let body = created.clone().expect(201, "create acme")?;
        let tenant_id = body["tenant_id"].as_str().context("tenant_id")?.to_string();
        let key1 = body["api_key"].as_str().context("api_key")?.to_string();
        let key1_id = body["key_id"].as_str().context("key_id")?.to_string();
        ensure!(key1.starts_with("aeg_"), "a tenant key is aeg_…: {body}");
        ensure!(
            body["name"] == "acme"
                && body["quotas"] == default_quotas()
                && body["overrides"] == json!({})
                && body["created_at"].is_string(),
            "the new tenant: {body}"
        );
        let acme = anon.with_key(&key1);
        let me = acme.whoami().await?.expect(200, "whoami")?;
        ensure!(
            me["tenant_id"] == tenant_id.as_str()
                && me["name"] == "acme"
                && me["quotas"] == default_quotas(),
            "who am I: {me}"
        );
        // A tenant key is not the admin key, and the admin key is no tenant's key.
        acme.tenants().await?.expect_error(401, "unauthorized")?;
        acme.add_key(&tenant_id)
            .await?
            .expect_error(401, "unauthorized")?;
        admin.whoami().await?.expect_error(401, "unauthorized")?;

        // Refused tenants.
        admin
            .create_tenant_raw(&json!({"name": "acme"}))
            .await?
            .expect_error(409, "tenant_name_taken")?;
        for bad in ["", "no spaces", "dots.no", &"x".repeat(65)] {
            admin
                .create_tenant_raw(&json!({"name": bad}))
                .await?
                .expect_error(400, "invalid_name")?;
        }
        admin
            .create_tenant_raw(&json!({"name": "zero-mem", "quotas": {"memory_limit_mb": 0}}))
            .await?
            .expect_error(400, "invalid_quota")?;
        admin
            .create_tenant_raw(
                &json!({"name": "huge-payload", "quotas": {"max_payload_kb": 100_000}}),
            )
            .await?
            .expect_error(400, "invalid_quota")?;
        for bad in [
            json!({}),
            json!({"name": 7}),
            json!({"name": "extra", "plan": "gold"}),
            json!({"name": "bad-quota-field", "quotas": {"max_gpus": 1}}),
            json!({"name": "neg", "quotas": {"memory_limit_mb": -1}}),
        ] {
            admin
                .create_tenant_raw(&bad)
                .await?
                .expect_bad_body()
                .with_context(|| format!("create {bad}"))?;
        }

        // Listing and reading never shows a key again.
        let secret = &key1[key1.len() - 64..];
        let list = admin.tenants().await?;
        ensure!(
            !list.text().contains(secret),
            "the list shows a key: {}",
            list.text()
        );
        let list = list.expect(200, "list tenants")?;
        let names: Vec<&str> = list["tenants"]
            .as_array()
            .context("tenants")?
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        ensure!(
            names.iter().filter(|n| **n == "acme").count() == 1,
            "{list}"
        );
        for refused in ["zero-mem", "huge-payload", "extra", "neg", "sneaky"] {
            ensure!(!names.contains(&refused), "{refused} was created: {list}");
        }
        let one = admin.tenant(&tenant_id).await?;
        ensure!(!one.text().contains(secret), "GET shows the key");
        let one = one.expect(200, "get tenant")?;
        ensure!(
            one["tenant_id"] == tenant_id.as_str() && one["name"] == "acme",
            "{one}"
        );
        ensure!(one.get("api_key").is_none(), "{one}");
        admin
            .tenant("tn_0000000000000000")
            .await?
            .expect_error(404, "tenant_not_found")?;

        // Quotas: the overrides replace the defaults they name, at once.
        let overrides = json!({"max_payload_kb": 8, "memory_limit_mb": 32});
        let q = admin
            .set_quotas(&tenant_id, &overrides)
            .await?
            .expect(200, "set quotas")?;
        let mut expected = default_quotas();
        expected["max_payload_kb"] = json!(8);
        expected["memory_limit_mb"] = json!(32);
        ensure!(
            q["quotas"] == expected && q["overrides"] == overrides,
            "{q}"
        );
        let me = acme.whoami().await?.expect(200, "whoami")?;
        ensure!(me["quotas"] == expected, "the tenant sees its quotas: {me}");
        admin
            .set_quotas(&tenant_id, &json!({"max_payload_kb": 100_000}))
            .await?
            .expect_error(400, "invalid_quota")?;
        admin
            .set_quotas(&tenant_id, &json!({"max_payload_kb": "8"}))
            .await?
            .expect_bad_body()?;
        admin
            .set_quotas(&tenant_id, &json!({"unknown_quota": 8}))
            .await?
            .expect_bad_body()?;
        let one = admin.tenant(&tenant_id).await?.expect(200, "get")?;
        ensure!(
            one["quotas"] == expected,
            "refused changes change nothing: {one}"
        );
        admin
            .set_quotas("tn_0000000000000000", &json!({}))
            .await?
            .expect_error(404, "tenant_not_found")?;
        let reset = admin
            .set_quotas(&tenant_id, &json!({}))
            .await?
            .expect(200, "reset")?;
        ensure!(reset["quotas"] == default_quotas(), "{reset}");

        // Keys: a second key, listing, revoking.
        let added = admin.add_key(&tenant_id).await?;
        let added = added.expect(201, "add key")?;
        let key2 = added["api_key"].as_str().context("api_key")?.to_string();
        let key2_id = added["key_id"].as_str().context("key_id")?.to_string();
        ensure!(key2 != key1 && key2_id != key1_id, "{added}");
        let acme2 = anon.with_key(&key2);
        let me2 = acme2.whoami().await?.expect(200, "whoami key 2")?;
        ensure!(me2["tenant_id"] == tenant_id.as_str(), "{me2}");
        admin
            .add_key("tn_0000000000000000")
            .await?
            .expect_error(404, "tenant_not_found")?;

        let keys = admin.keys(&tenant_id).await?;
        ensure!(
            !keys.text().contains(secret) && !keys.text().contains(&key2[key2.len() - 64..]),
            "the key list shows secrets: {}",
            keys.text()
        );
        let keys = keys.expect(200, "list keys")?;
        let listed: HashSet<&str> = keys["keys"]
            .as_array()
            .context("keys")?
            .iter()
            .filter_map(|k| k["key_id"].as_str())
            .collect();
        ensure!(
            listed == HashSet::from([key1_id.as_str(), key2_id.as_str()]),
            "{keys}"
        );
        ensure!(
            keys["keys"]
                .as_array()
                .is_some_and(|ks| ks.iter().all(|k| k["revoked_at"].is_null())),
            "{keys}"
        );
        admin
            .keys("tn_0000000000000000")
            .await?
            .expect_error(404, "tenant_not_found")?;

        let revoked = admin
            .revoke_key(&tenant_id, &key1_id)
            .await?
            .expect(200, "revoke")?;
        ensure!(
            revoked["key_id"] == key1_id.as_str() && revoked["revoked_at"].is_string(),
            "{revoked}"
        );
        acme.whoami().await?.expect_error(401, "unauthorized")?;
        acme2
            .whoami()
            .await?
            .expect(200, "the other key still works")?;
        let again = admin
            .revoke_key(&tenant_id, &key1_id)
            .await?
            .expect(200, "revoke again")?;
        ensure!(
            again["revoked_at"] == revoked["revoked_at"],
            "revoking twice keeps the first time: {again} vs {revoked}"
        );
        let keys = admin.keys(&tenant_id).await?.expect(200, "keys")?;
        for k in keys["keys"].as_array().context("keys")? {
            let is_revoked = k["revoked_at"].is_string();
            ensure!(
                is_revoked == (k["key_id"] == key1_id.as_str()),
                "only key 1 is revoked: {keys}"
            );
        }
        admin
            .revoke_key(&tenant_id, "key_0000000000000000")
            .await?
            .expect_error_in(404, &["key_not_found", "tenant_not_found"])?;

        // A key can only be revoked through its own tenant.
        let other = new_tenant(&host, "other", json!({})).await?;
        admin
            .revoke_key(&other.id, &key2_id)
            .await?
            .expect_error_in(404, &["key_not_found", "tenant_not_found"])?;
        acme2.whoami().await?.expect(200, "key 2 still works")?;
        other.client.whoami().await?.expect(200, "other")?;
        Ok(())
    })
    .await;
}

/// Every tenant route, with a path that would otherwise be valid.
fn tenant_routes() -> Vec<(Method, &'static str)> {
    vec![
        (Method::GET, "/v1/tenant"),
        (Method::GET, "/v1/components"),
        (Method::POST, "/v1/components/steps3"),
        (Method::GET, "/v1/components/steps3"),
        (Method::GET, "/v1/components/steps3/versions/1"),
        (Method::DELETE, "/v1/components/steps3/versions/1"),
        (Method::POST, "/v1/executions"),
        (Method::GET, "/v1/executions"),
        (
            Method::GET,
            "/v1/executions/ex_00000000000000000000000000000000",
        ),
        (
            Method::GET,
            "/v1/executions/ex_00000000000000000000000000000000/history",
        ),
        (
            Method::POST,
            "/v1/executions/ex_00000000000000000000000000000000/stop",
        ),
        (Method::GET, "/v1/events"),
        (Method::POST, "/workflows"),
        (
            Method::GET,
            "/workflows/ex_00000000000000000000000000000000",
        ),
        (
            Method::POST,
            "/workflows/ex_00000000000000000000000000000000/approval",
        ),
    ]
}

/// Every admin route, with a path that would otherwise be valid.
fn admin_routes() -> Vec<(Method, &'static str)> {
    vec![
        (Method::GET, "/v1/admin/tenants"),
        (Method::POST, "/v1/admin/tenants"),
        (Method::GET, "/v1/admin/tenants/tn_0000000000000000"),
        (Method::PUT, "/v1/admin/tenants/tn_0000000000000000/quotas"),
        (Method::POST, "/v1/admin/tenants/tn_0000000000000000/keys"),
        (Method::GET, "/v1/admin/tenants/tn_0000000000000000/keys"),
        (
            Method::DELETE,
            "/v1/admin/tenants/tn_0000000000000000/keys/key_0000000000000000",
        ),
    ]
}

async fn all_unauthorized(c: &Client, what: &str) -> Result<()> {
    // The live event stream too: it is refused before it starts.
    let stream = (Method::GET, "/v1/events/stream");
    for (method, path) in tenant_routes().into_iter().chain([stream]) {
        let body = (method == Method::POST).then(|| (b"{}".to_vec(), "application/json"));
        let reply = c.send(method.clone(), path, body).await?;
        reply
            .expect_error(401, "unauthorized")
            .with_context(|| format!("{method} {path} with {what}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_the_admin_key() {
    let host = keyed_host(HostOptions::default()).await;
    guard(60, async {
        let t = new_tenant(&host, "not-admin", json!({})).await?;
        let anon = host.client();
        let admin_key = host.admin_key().context("keyed")?.to_string();
        let clients = [
            ("no key", anon.clone()),
            ("a tenant key", t.client.clone()),
            (
                "a wrong key",
                anon.with_key("aegis-e2e-admin-key-0123456789abcdeX"),
            ),
            (
                "a prefix of the admin key",
                anon.with_key(&admin_key[..admin_key.len() - 1]),
            ),
            (
                "the admin key and more",
                anon.with_key(&format!("{admin_key}0")),
            ),
        ];
        for (what, c) in &clients {
            for (method, path) in admin_routes() {
                let body = matches!(method, Method::POST | Method::PUT)
                    .then(|| (b"{\"name\": \"x\"}".to_vec(), "application/json"));
                c.send(method.clone(), path, body)
                    .await?
                    .expect_error(401, "unauthorized")
                    .with_context(|| format!("{method} {path} with {what}"))?;
            }
        }
        // Nothing was created by the refused requests.
        let list = host.admin().tenants().await?.expect(200, "tenants")?;
        let names: Vec<&str> = list["tenants"]
            .as_array()
            .context("tenants")?
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        ensure!(!names.contains(&"x"), "{list}");
        Ok(())
    })
    .await;
}

/// An all-digit admin key in the environment is a key, not a number: the host starts with it
/// (it used to fail to load) and takes exactly it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_digit_admin_key_is_a_key() {
    let key = "0123456789012345";
    let host = host_with(HostOptions::default().admin_key(key)).await;
    guard(60, async {
        host.client()
            .with_key("123456789012345")
            .tenants()
            .await?
            .expect_error(401, "unauthorized")?;
        host.client()
            .with_key(key)
            .tenants()
            .await?
            .expect(200, "tenants with the all-digit key")?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_routes_need_a_valid_key() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let anon = host.client();
        let t = new_tenant(&host, "keyholder", json!({})).await?;
        upload(&t.client, &["steps3"]).await?;

        all_unauthorized(&anon, "no key").await?;
        all_unauthorized(&anon.with_key("garbage"), "a garbage key").await?;
        let unknown = format!("aeg_{}_{}", "0".repeat(16), "0".repeat(64));
        all_unauthorized(&anon.with_key(&unknown), "a well-formed unknown key").await?;
        // The key's secret part must match, not only its id.
        let (prefix, _) = t.key.split_at(t.key.len() - 64);
        let forged = format!("{prefix}{}", "f".repeat(64));
        all_unauthorized(&anon.with_key(&forged), "a key with the wrong secret").await?;
        all_unauthorized(&host.admin(), "the admin key").await?;

        // Only the Bearer scheme carries a key (its name in any case).
        let raw = reqwest::Client::new();
        let url = format!("{}/v1/tenant", host.base_url());
        for (header, want) in [
            (format!("Basic {}", t.key), 401),
            (t.key.clone(), 401),
            (format!("Bearer{}", t.key), 401),
            (format!("bearer {}", t.key), 200),
            (format!("BEARER  {} ", t.key), 200),
        ] {
            let resp = raw
                .get(&url)
                .header("authorization", &header)
                .send()
                .await?;
            let status = resp.status().as_u16();
            ensure!(status == want, "Authorization: {header:?} gave {status}");
        }

        // A valid key works on every route (no 401 for any of them).
        for (method, path) in tenant_routes() {
            let body = (method == Method::POST).then(|| (b"{}".to_vec(), "application/json"));
            let reply = t.client.send(method.clone(), path, body).await?;
            ensure!(
                reply.status != 401,
                "{method} {path} with a valid key: {}",
                reply.text()
            );
        }

        // No key is needed for liveness and for callbacks (the id is the capability).
        let health = anon.healthz().await?;
        ensure!(
            health.status == 200 && health.body == json!({"status": "ok"}),
            "{health:?}"
        );
        let cb = format!("cb_{}", "0".repeat(64));
        anon.callback_succeed(&cb, &json!(1))
            .await?
            .expect_error(404, "callback_not_found")?;

        // Revoked: refused everywhere.
        host.admin()
            .revoke_key(&t.id, &t.key_id)
            .await?
            .expect(200, "revoke")?;
        all_unauthorized(&t.client, "a revoked key").await?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_needs_no_key_and_has_no_admin() {
    let host = host().await;
    guard(60, async {
        let c = host.client();
        let me = c.whoami().await?.expect(200, "whoami in open mode")?;
        ensure!(
            me["tenant_id"].is_string() && me["quotas"] == default_quotas(),
            "{me}"
        );
        // Any key is ignored: it is the same default tenant.
        let keyed = c
            .with_key("whatever")
            .whoami()
            .await?
            .expect(200, "whoami")?;
        ensure!(keyed["tenant_id"] == me["tenant_id"], "{keyed} vs {me}");
        c.tenants().await?.expect_error(401, "unauthorized")?;
        c.with_key("guess")
            .create_tenant_raw(&json!({"name": "x"}))
            .await?
            .expect_error(401, "unauthorized")?;
        upload(&c, &["steps3"]).await?;
        let list = c.list_executions("").await?.expect(200, "list")?;
        ensure!(
            list["executions"] == json!([]) && list["next_cursor"].is_null(),
            "{list}"
        );
        Ok(())
    })
    .await;
}

/// A component file with a custom section appended, so that it has other bytes (and another
/// digest) but is still a valid component.
pub fn with_custom_section(mut bytes: Vec<u8>, name: &str, payload_len: usize) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut content = Vec::new();
    leb(name.len(), &mut content);
    content.extend_from_slice(name.as_bytes());
    content.extend(std::iter::repeat_n(0xA5u8, payload_len));
    bytes.push(0);
    leb(content.len(), &mut bytes);
    bytes.extend(content);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_routes_upload_list_read_and_delete() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let t = new_tenant(&host, "builder", json!({})).await?;
        let c = &t.client;
        let empty = c.components().await?.expect(200, "empty list")?;
        ensure!(empty == json!({"components": []}), "{empty}");

        let v1_bytes = std::fs::read(aegis_tests::fixture("steps3"))?;
        let v2_bytes = with_custom_section(v1_bytes.clone(), "aegis-test", 16);
        let v1 = c
            .upload_bytes("flow", v1_bytes.clone())
            .await?
            .expect(201, "upload v1")?;
        ensure!(
            v1["name"] == "flow"
                && v1["version"] == 1
                && v1["size"] == v1_bytes.len()
                && v1["created_at"].is_string()
                && v1["digest"].as_str().is_some_and(|d| d.starts_with("sha256:")),
            "{v1}"
        );
        let again = c
            .upload_bytes("flow", v1_bytes.clone())
            .await?
            .expect(200, "same bytes")?;
        ensure!(again == v1, "same bytes, same version: {again} vs {v1}");
        let v2 = c
            .upload_bytes("flow", v2_bytes.clone())
            .await?
            .expect(201, "upload v2")?;
        ensure!(
            v2["version"] == 2 && v2["digest"] != v1["digest"],
            "{v2}"
        );
        upload(c, &["callback"]).await?;

        let list = c.components().await?.expect(200, "list")?;
        let listed: Vec<(String, u64)> = list["components"]
            .as_array()
            .context("components")?
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap_or("?").to_string(),
                    r["version"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        ensure!(
            listed
                == [
                    ("callback".to_string(), 1),
                    ("flow".to_string(), 1),
                    ("flow".to_string(), 2)
                ],
            "{list}"
        );
        let versions = c.component_versions("flow").await?.expect(200, "versions")?;
        ensure!(
            versions["name"] == "flow" && versions["versions"] == json!([v1, v2]),
            "{versions}"
        );
        let one = c
            .component_version("flow", "2")
            .await?
            .expect(200, "version 2")?;
        ensure!(one == v2, "{one} vs {v2}");

        // Not found, and bad parameters.
        c.component_versions("nope")
            .await?
            .expect_error(404, "component_not_found")?;
        c.component_version("flow", "3")
            .await?
            .expect_error(404, "component_not_found")?;
        c.component_version("nope", "1")
            .await?
            .expect_error(404, "component_not_found")?;
        c.component_version("flow", "two")
            .await?
            .expect_error(400, "bad_request")
            .context("a version that is not a number")?;
        for bad in ["bad.name", "a%20b", &"n".repeat(65)] {
            c.upload_bytes(bad, v1_bytes.clone())
                .await?
                .expect_error(400, "invalid_name")
                .with_context(|| format!("upload as {bad:?}"))?;
        }

        // Delete v1: 204, then it is gone; v2 stays and is what a start without a version runs.
        let deleted = c.delete_component("flow", "1").await?;
        ensure!(
            deleted.status == 204 && deleted.raw.is_empty(),
            "delete: {deleted:?}"
        );
        c.component_version("flow", "1")
            .await?
            .expect_error(404, "component_not_found")?;
        c.delete_component("flow", "1")
            .await?
            .expect_error(404, "component_not_found")?;
        let versions = c.component_versions("flow").await?.expect(200, "versions")?;
        ensure!(versions["versions"] == json!([v2]), "{versions}");
        c.start_raw(&json!({"workflow": "flow", "version": 1, "input": "x"}))
            .await?
            .expect_error(404, "workflow_not_found")?;
        let start = start_new(c, json!({"workflow": "flow", "input": "x"})).await?;
        ensure!(
            start["version"] == 2 && start["component_digest"] == v2["digest"],
            "{start}"
        );
        ensure!(c.result(&exec_id(&start)?, DONE).await? == json!("x-a-b-c"));

        // In use by a RUNNING execution: 409, and nothing is deleted.
        let waiting = start_new(
            c,
            json!({"workflow": "callback", "input": {"timeout_seconds": 60, "heartbeat_seconds": null}}),
        )
        .await?;
        let waiting = exec_id(&waiting)?;
        let cb = c.pending_callback(&waiting, "approval", PENDING).await?;
        c.delete_component("callback", "1")
            .await?
            .expect_error(409, "component_in_use")?;
        c.component_version("callback", "1")
            .await?
            .expect(200, "still there")?;
        c.callback_succeed(&cb, &json!("done"))
            .await?
            .expect(200, "complete")?;
        ensure!(c.result(&waiting, DONE).await? == json!({"callback": "done"}));
        let deleted = c.delete_component("callback", "1").await?;
        ensure!(deleted.status == 204, "once it ended: {deleted:?}");

        // The last version deleted: the name is gone.
        c.delete_component("flow", "2")
            .await?
            .expect(204, "delete v2")?;
        c.component_versions("flow")
            .await?
            .expect_error(404, "component_not_found")?;
        let list = c.components().await?.expect(200, "list")?;
        ensure!(list == json!({"components": []}), "{list}");
        c.start_raw(&json!({"workflow": "flow", "input": "x"}))
            .await?
            .expect_error(404, "workflow_not_found")?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_routes_start_read_and_refuse() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let t = new_tenant(&host, "runner", json!({})).await?;
        let c = &t.client;
        let up = c.upload_fixture("steps3").await?;

        let start = start_new(c, json!({"workflow": "steps3", "input": "a"})).await?;
        let id = exec_id(&start)?;
        ensure!(
            start["name"] == id.as_str()
                && start["workflow"] == "steps3"
                && start["version"] == 1
                && start["component_digest"] == up["digest"]
                && start["status"].is_string()
                && start["created_at"].is_string()
                && start["updated_at"].is_string(),
            "{start}"
        );
        let exec = c.wait_done(&id, DONE).await?;
        ensure!(
            exec["status"] == "SUCCEEDED"
                && exec["result"] == json!("a-a-b-c")
                && exec["input"] == json!("a")
                && exec["error"].is_null()
                && exec["pending_callbacks"] == json!([]),
            "{exec}"
        );

        // A named start, with a version and a timeout.
        let named = start_new(
            c,
            json!({"workflow": "steps3", "version": 1, "input": "b", "name": "order 1 (retry)", "timeout_seconds": 60}),
        )
        .await?;
        ensure!(named["name"] == "order 1 (retry)", "{named}");
        ensure!(c.result(&exec_id(&named)?, DONE).await? == json!("b-a-b-c"));
        // Without input, the input is null.
        let no_input = start_new(c, json!({"workflow": "steps3"})).await?;
        let exec = c.get(&exec_id(&no_input)?).await?;
        ensure!(exec["input"].is_null(), "{exec}");

        // Refused starts.
        c.start_raw(&json!({"workflow": "nope", "input": 1}))
            .await?
            .expect_error(404, "workflow_not_found")?;
        c.start_raw(&json!({"workflow": "steps3", "version": 9, "input": 1}))
            .await?
            .expect_error(404, "workflow_not_found")?;
        for timeout in [json!(0), json!(366 * 86_400 + 1)] {
            c.start_raw(&json!({"workflow": "steps3", "input": 1, "timeout_seconds": timeout}))
                .await?
                .expect_error(400, "invalid_request")?;
        }
        for name in [String::new(), "line\nbreak".into(), "n".repeat(257)] {
            c.start_raw(&json!({"workflow": "steps3", "input": 1, "name": name}))
                .await?
                .expect_error(400, "invalid_name")?;
        }
        for bad in [
            json!({"input": 1}),
            json!({"workflow": ["steps3"]}),
            json!({"workflow": "steps3", "version": "1"}),
            json!({"workflow": "steps3", "version": -1}),
            json!({"workflow": "steps3", "timeout_seconds": 1.5}),
            json!({"workflow": "steps3", "name": 5}),
            json!({"workflow": "steps3", "priority": "high"}),
            json!("steps3"),
            json!(null),
        ] {
            c.start_raw(&bad)
                .await?
                .expect_bad_body()
                .with_context(|| format!("start {bad}"))?;
        }

        // Reading what does not exist.
        for missing in [
            "ex_00000000000000000000000000000000".to_string(),
            "nope".to_string(),
            "x".repeat(200),
        ] {
            c.get_raw(&missing, None)
                .await?
                .expect_error(404, "execution_not_found")?;
            c.get_raw(&missing, Some(10))
                .await?
                .expect_error(404, "execution_not_found")?;
            c.history_page(&missing, None, None)
                .await?
                .expect_error(404, "execution_not_found")?;
            c.stop(&missing)
                .await?
                .expect_error(404, "execution_not_found")?;
        }
        let reply = c
            .get_path(&format!("/v1/executions/{id}?wait_ms=soon"))
            .await?;
        reply.expect_error(400, "bad_request")?;
        let reply = c.get_path(&format!("/v1/executions/{id}?colour=red")).await?;
        reply
            .expect_error(400, "bad_request")
            .context("an unknown query parameter")?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_an_execution_and_its_callbacks() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let t = new_tenant(&host, "stopper", json!({})).await?;
        let c = &t.client;
        upload(c, &["callback", "steps3", "sleep"]).await?;
        let input = json!({"timeout_seconds": 60, "heartbeat_seconds": null});
        let id = c.start("callback", input).await?;
        let cb = c.pending_callback(&id, "approval", PENDING).await?;

        let stopped = c.stop(&id).await?.expect(200, "stop")?;
        ensure!(
            stopped["execution_id"] == id.as_str() && stopped["status"] == "STOPPED",
            "{stopped}"
        );
        let exec = c.get(&id).await?;
        ensure!(
            exec["status"] == "STOPPED"
                && exec["result"].is_null()
                && exec["error"]["error_type"] == "Execution.Stopped",
            "{exec}"
        );
        // The stopped execution's callbacks can no longer be completed, and nothing changes.
        let history = c.history(&id).await?;
        check_history_shape(&history)?;
        ensure!(
            history
                .last()
                .is_some_and(|e| e["EventType"] == "ExecutionStopped"),
            "{:?}",
            types(&history)
        );
        c.callback_succeed(&cb, &json!("late"))
            .await?
            .expect_error(409, "execution_ended")?;
        c.callback_fail(&cb, "X.Late", "late")
            .await?
            .expect_error(409, "execution_ended")?;
        c.stop(&id)
            .await?
            .expect_error(409, "execution_not_running")?;
        let after = c.get(&id).await?;
        ensure!(
            after["status"] == "STOPPED" && after["result"].is_null(),
            "{after}"
        );
        ensure!(
            c.history(&id).await?.len() == history.len(),
            "no event after the stop"
        );
        // Heartbeating a callback of an ended execution is refused like completing it.
        c.callback_heartbeat(&cb)
            .await?
            .expect_error(409, "execution_ended")?;
        // A stopped execution has nothing pending any more.
        let after = c.get(&id).await?;
        ensure!(
            after["pending_callbacks"] == json!([]),
            "a STOPPED execution lists no pending callbacks: {after}"
        );

        // A finished execution cannot be stopped.
        let done = c.start("steps3", json!("s")).await?;
        c.result(&done, DONE).await?;
        c.stop(&done)
            .await?
            .expect_error(409, "execution_not_running")?;
        ensure!(c.get(&done).await?["status"] == "SUCCEEDED");

        // Stopping an execution in a durable wait clears its timer: it never resumes.
        // 3 s: long enough to stop it before it wakes, even on a loaded machine.
        let sleeping = c.start("sleep", json!({"seconds": 3})).await?;
        loop {
            let events = c.history(&sleeping).await?;
            if !of_type(&events, "WaitStarted").is_empty() {
                break;
            }
            ensure!(
                c.get(&sleeping).await?["status"] == "RUNNING",
                "the sleep ended before its wait"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        c.stop(&sleeping).await?.expect(200, "stop the sleeper")?;
        let before = c.history(&sleeping).await?;
        // Past the wait's end, the execution is still STOPPED with the same history.
        let exec = c.wait_done(&sleeping, DONE).await?;
        ensure!(exec["status"] == "STOPPED", "{exec}");
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let exec = c.get(&sleeping).await?;
        let events = c.history(&sleeping).await?;
        ensure!(
            exec["status"] == "STOPPED" && events.len() == before.len(),
            "the stopped sleeper resumed: {exec} {:?}",
            types(&events)
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_list_pages_newest_first_and_filters() {
    let host = keyed_host(HostOptions::default()).await;
    guard(120, async {
        let t = new_tenant(&host, "lister", json!({})).await?;
        let c = &t.client;
        upload(c, &["steps3", "callback"]).await?;

        // Seven executions, one at a time, a few ms apart so that each has its own created_at:
        // five steps3 and two that stay RUNNING on a callback.
        let waiting = json!({"timeout_seconds": 600, "heartbeat_seconds": null});
        let plan = [
            "steps3", "steps3", "callback", "steps3", "steps3", "callback", "steps3",
        ];
        let mut created: Vec<Value> = Vec::new();
        for (i, workflow) in plan.iter().enumerate() {
            let input = if *workflow == "callback" {
                waiting.clone()
            } else {
                json!(format!("i{i}"))
            };
            created.push(start_new(c, json!({"workflow": workflow, "input": input})).await?);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let all_ids: Vec<String> = created.iter().map(exec_id).collect::<Result<_>>()?;
        for (id, workflow) in all_ids.iter().zip(plan) {
            if workflow == "steps3" {
                c.result(id, DONE).await?;
            } else {
                c.pending_callback(id, "approval", PENDING).await?;
            }
        }
        let newest_first: Vec<String> = all_ids.iter().rev().cloned().collect();

        // Pages of 3: 3, 3, 1, and the last has no cursor.
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let q = match &cursor {
                Some(cur) => format!("limit=3&cursor={cur}"),
                None => "limit=3".into(),
            };
            let page = c.list_executions(&q).await?.expect(200, "page")?;
            let items = page["executions"].as_array().context("executions")?.clone();
            pages.push(items.len());
            ensure!(pages.len() <= 4, "too many pages: {pages:?}");
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        ensure!(pages == [3, 3, 1], "page sizes: {pages:?}");
        let paged = c.list_all_executions("", 3).await?;
        ensure!(
            ids(&paged) == newest_first,
            "pages of 3, newest first, nothing twice or missing:\n{:?}\nvs\n{newest_first:?}",
            ids(&paged)
        );
        for e in &paged {
            for field in [
                "execution_id",
                "name",
                "workflow",
                "version",
                "component_digest",
                "status",
                "created_at",
                "updated_at",
            ] {
                ensure!(
                    !e[field].is_null(),
                    "a listed execution without {field}: {e}"
                );
            }
        }
        let created_at: Vec<&str> = paged
            .iter()
            .map(|e| e["created_at"].as_str().unwrap_or(""))
            .collect();
        ensure!(
            created_at.windows(2).all(|w| w[0] > w[1]),
            "newest first: {created_at:?}"
        );
        // One page of everything; odd page sizes give the same sequence.
        let whole = c.list_executions("").await?.expect(200, "list")?;
        ensure!(
            ids(whole["executions"].as_array().context("executions")?) == newest_first
                && whole["next_cursor"].is_null(),
            "{whole}"
        );
        for limit in [1, 2, 7, 50] {
            let paged = c.list_all_executions("", limit).await?;
            ensure!(
                ids(&paged) == newest_first,
                "limit {limit}: {:?}",
                ids(&paged)
            );
        }

        // Filters, alone and together, also across pages.
        let of = |pred: &dyn Fn(usize) -> bool| -> Vec<String> {
            (0..plan.len())
                .rev()
                .filter(|i| pred(*i))
                .map(|i| all_ids[i].clone())
                .collect()
        };
        let steps3 = of(&|i| plan[i] == "steps3");
        let callbacks = of(&|i| plan[i] == "callback");
        let cases: Vec<(String, Vec<String>)> = vec![
            ("workflow=steps3".into(), steps3.clone()),
            ("workflow=callback".into(), callbacks.clone()),
            ("workflow=nope".into(), vec![]),
            ("status=RUNNING".into(), callbacks.clone()),
            ("status=SUCCEEDED".into(), steps3.clone()),
            ("status=FAILED".into(), vec![]),
            ("workflow=callback&status=SUCCEEDED".into(), vec![]),
            ("workflow=steps3&status=SUCCEEDED".into(), steps3.clone()),
            (
                format!(
                    "created_after={}",
                    created[2]["created_at"].as_str().unwrap_or("")
                ),
                of(&|i| i >= 2),
            ),
            (
                format!(
                    "created_before={}",
                    created[5]["created_at"].as_str().unwrap_or("")
                ),
                of(&|i| i < 5),
            ),
            (
                format!(
                    "created_after={}&created_before={}&workflow=steps3",
                    created[2]["created_at"].as_str().unwrap_or(""),
                    created[5]["created_at"].as_str().unwrap_or("")
                ),
                of(&|i| (2..5).contains(&i) && plan[i] == "steps3"),
            ),
            ("created_after=0".into(), newest_first.clone()),
            ("created_before=0".into(), vec![]),
            ("created_after=4102444800000".into(), vec![]),
            (
                "created_after=2000-01-01T00:00:00Z".into(),
                newest_first.clone(),
            ),
        ];
        for (query, want) in &cases {
            for limit in [2, 100] {
                let got = c.list_all_executions(query, limit).await?;
                ensure!(
                    &ids(&got) == want,
                    "?{query} (limit {limit}): got {:?}, want {want:?}",
                    ids(&got)
                );
            }
        }

        // Bad parameters.
        for (query, code) in [
            ("status=BOGUS", "invalid_request"),
            ("created_after=yesterday", "invalid_request"),
            ("created_before=2024-13-45", "invalid_request"),
            ("cursor=!!!", "invalid_cursor"),
            ("cursor=eA", "invalid_cursor"),
        ] {
            c.list_executions(query)
                .await?
                .expect_error(400, code)
                .with_context(|| format!("?{query}"))?;
        }
        for query in ["limit=abc", "limit=-1", "colour=red"] {
            let reply = c.list_executions(query).await?;
            reply
                .expect_error(400, "bad_request")
                .with_context(|| format!("?{query}"))?;
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_time_filters_take_rfc3339_offsets() {
    let host = keyed_host(HostOptions::default()).await;
    guard(60, async {
        let t = new_tenant(&host, "clock", json!({})).await?;
        let c = &t.client;
        upload(c, &["steps3"]).await?;
        let first = start_new(c, json!({"workflow": "steps3", "input": "1"})).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = start_new(c, json!({"workflow": "steps3", "input": "2"})).await?;
        let t2 = second["created_at"].as_str().context("created_at")?;
        let (first, second) = (exec_id(&first)?, exec_id(&second)?);
        // RFC 3339 allows any offset (section 5.6, `time-numoffset`); these name the same
        // instants as their UTC forms. Page size 10: one page.
        for (query, want) in [
            (
                format!("created_after={}", t2.replace('Z', "%2B00:00")),
                vec![second.clone()],
            ),
            (
                format!("created_before={}", t2.replace('Z', "%2B00:00")),
                vec![first.clone()],
            ),
            (
                "created_after=2000-01-01T02:00:00%2B02:00".to_string(),
                vec![second.clone(), first.clone()],
            ),
            (
                "created_before=1999-12-31T22:00:00-02:00".to_string(),
                vec![],
            ),
        ] {
            let got = c
                .list_all_executions(&query, 10)
                .await
                .with_context(|| format!("?{query}"))?;
            ensure!(
                ids(&got) == want,
                "?{query}: got {:?}, want {want:?}",
                ids(&got)
            );
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_with_after_and_limit() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let t = new_tenant(&host, "historian", json!({})).await?;
        let c = &t.client;
        upload(c, &["many_steps"]).await?;
        let id = c.start("many_steps", json!({"steps": 6})).await?;
        c.result(&id, DONE).await?;
        let full = c.history(&id).await?;
        check_history_shape(&full)?;
        let n = full.len() as u64;
        ensure!(
            n > 10,
            "many_steps(6) has more than 10 events: {:?}",
            types(&full)
        );
        let whole = c
            .history_page(&id, None, None)
            .await?
            .expect(200, "history")?;
        ensure!(whole["next_after"].is_null(), "{whole}");

        // Pages of 4 following next_after give the whole history, once.
        let mut paged: Vec<Value> = Vec::new();
        let mut after = 0;
        for _ in 0..n + 2 {
            let page = c
                .history_page(&id, Some(after), Some(4))
                .await?
                .expect(200, "page")?;
            let events = page["events"].as_array().context("events")?;
            ensure!(events.len() <= 4, "{page}");
            ensure!(
                events.iter().all(|e| e["EventId"].as_u64() > Some(after)),
                "after={after}: {page}"
            );
            paged.extend(events.iter().cloned());
            match page["next_after"].as_u64() {
                Some(next) => {
                    ensure!(
                        events.last().and_then(|e| e["EventId"].as_u64()) == Some(next),
                        "next_after is the last EventId of the page: {page}"
                    );
                    after = next;
                }
                None => break,
            }
        }
        ensure!(paged == full, "paged history differs from the whole");

        let mid = c
            .history_page(&id, Some(3), Some(2))
            .await?
            .expect(200, "after 3")?;
        let got: Vec<u64> = mid["events"]
            .as_array()
            .context("events")?
            .iter()
            .filter_map(|e| e["EventId"].as_u64())
            .collect();
        ensure!(got == [4, 5] && mid["next_after"] == 5, "{mid}");
        let tail = c
            .history_page(&id, Some(n - 1), None)
            .await?
            .expect(200, "tail")?;
        ensure!(
            tail["events"].as_array().map(Vec::len) == Some(1) && tail["next_after"].is_null(),
            "{tail}"
        );
        let end = c
            .history_page(&id, Some(n), Some(5))
            .await?
            .expect(200, "end")?;
        ensure!(
            end["events"] == json!([]) && end["next_after"].is_null(),
            "{end}"
        );
        for query in ["after=-1", "limit=many", "after=1&page=2"] {
            let reply = c
                .get_path(&format!("/v1/executions/{id}/history?{query}"))
                .await?;
            reply
                .expect_error(400, "bad_request")
                .with_context(|| format!("?{query}"))?;
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_need_no_key_in_keyed_mode() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let t = new_tenant(&host, "approver", json!({})).await?;
        let c = &t.client;
        let anon = host.client();
        upload(c, &["callback"]).await?;

        let input = json!({"timeout_seconds": 60, "heartbeat_seconds": 30});
        let id = c.start("callback", input.clone()).await?;
        let cb = c.pending_callback(&id, "approval", PENDING).await?;
        let beat = anon.callback_heartbeat(&cb).await?.expect(200, "heartbeat")?;
        ensure!(
            beat["callback_id"] == cb.as_str() && beat["execution_id"] == id.as_str(),
            "{beat}"
        );
        // Bad bodies and actions are refused and change nothing.
        let reply = anon
            .send_json_bytes(
                Method::POST,
                &format!("/v1/callbacks/{cb}/fail"),
                br#"{"error_type": 5}"#.to_vec(),
            )
            .await?;
        reply.expect_bad_body()?;
        let reply = anon
            .send_json_bytes(
                Method::POST,
                &format!("/v1/callbacks/{cb}/succeed"),
                b"{not json".to_vec(),
            )
            .await?;
        reply.expect_error(400, "invalid_json")?;
        anon.post_path(&format!("/v1/callbacks/{cb}/approve"), &json!(1))
            .await?
            .expect_error(404, "route_not_found")?;
        let big = json!("x".repeat(300 * 1024));
        // On its own connection, which the host closes after refusing the body unread.
        anon.unpooled()
            .callback_succeed(&cb, &big)
            .await?
            .expect_error(413, "payload_too_large")?;
        let exec = c.get(&id).await?;
        ensure!(
            exec["status"] == "RUNNING"
                && exec["pending_callbacks"][0]["callback_id"] == cb.as_str(),
            "{exec}"
        );
        let done = anon
            .callback_succeed(&cb, &json!({"ok": true}))
            .await?
            .expect(200, "succeed")?;
        ensure!(done["execution_id"] == id.as_str(), "{done}");
        ensure!(c.result(&id, DONE).await? == json!({"callback": {"ok": true}}));

        // Failing without a key, with an empty body (defaults) and with a full one.
        let id = c.start("callback", input.clone()).await?;
        let cb = c.pending_callback(&id, "approval", PENDING).await?;
        anon.send(Method::POST, &format!("/v1/callbacks/{cb}/fail"), None)
            .await?
            .expect(200, "fail with no body")?;
        let exec = c.wait_done(&id, DONE).await?;
        ensure!(
            exec["status"] == "FAILED" && exec["error"]["error_type"] == "Callback.Failed",
            "{exec}"
        );
        let id = c.start("callback", input).await?;
        let cb = c.pending_callback(&id, "approval", PENDING).await?;
        anon.post_path(
            &format!("/v1/callbacks/{cb}/fail"),
            &json!({"error_type": "Review.Rejected", "error_message": "no", "error_data": {"by": "qa"}}),
        )
        .await?
        .expect(200, "fail")?;
        let exec = c.wait_done(&id, DONE).await?;
        ensure!(
            exec["status"] == "FAILED"
                && exec["error"]["error_type"] == "Review.Rejected"
                && exec["error"]["error_message"] == "no",
            "{exec}"
        );
        Ok(())
    })
    .await;
}

/// A request (method, path, JSON body) and the error it must get (status, code).
type ErrorCase<'a> = (Method, String, Option<Vec<u8>>, u16, &'a [&'a str]);

/// Sends every request of `cases` and checks each is a JSON error with its status and code.
async fn expect_errors(c: &Client, cases: Vec<ErrorCase<'_>>) -> Result<()> {
    for (method, path, body, status, codes) in cases {
        let reply = c
            .send(method.clone(), &path, body.map(|b| (b, "application/json")))
            .await?;
        reply
            .expect_error_in(status, codes)
            .with_context(|| format!("{method} {path}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let t = new_tenant(&host, "errors", json!({})).await?;
        // New connections: see `an_oversized_body_answer_says_the_connection_closes`.
        let c = &t.client.unpooled();
        upload(c, &["steps3"]).await?;
        const NOT_JSON: &[&str] = &["invalid_json"];
        // A body that is JSON but does not match the schema.
        const BAD_BODY: &[&str] = &["invalid_request"];
        const TOO_LARGE: &[&str] = &["payload_too_large"];
        const NO_ROUTE: &[&str] = &["route_not_found"];
        const NO_METHOD: &[&str] = &["method_not_allowed"];
        let send = |method: Method, path: &str, body: Option<&[u8]>, status: u16, codes| {
            (
                method,
                path.to_string(),
                body.map(<[u8]>::to_vec),
                status,
                codes,
            )
        };
        let post = |path: &str, body: &[u8], status: u16, codes| {
            send(Method::POST, path, Some(body), status, codes)
        };
        let big_input =
            serde_json::to_vec(&json!({"workflow": "steps3", "input": "x".repeat(260 * 1024)}))?;
        let huge_body =
            serde_json::to_vec(&json!({"workflow": "steps3", "input": "x".repeat(400 * 1024)}))?;
        let execs = "/v1/executions";
        expect_errors(
            c,
            vec![
                post(execs, b"{", 400, NOT_JSON),
                post(execs, b"", 400, NOT_JSON),
                post(execs, b"{\"workflow\": \"steps3\",}", 400, NOT_JSON),
                post(
                    execs,
                    b"{\"workflow\": \"steps3\", \"input\": \"\xff\xfe\"}",
                    400,
                    NOT_JSON,
                ),
                post(execs, b"[]", 400, BAD_BODY),
                post(execs, b"{\"workflow\": 5}", 400, BAD_BODY),
                post(
                    execs,
                    b"{\"workflow\": \"steps3\", \"x\": 1}",
                    400,
                    BAD_BODY,
                ),
                post(execs, &big_input, 413, TOO_LARGE),
                post(execs, &huge_body, 413, TOO_LARGE),
                send(Method::GET, "/v1/nope", None, 404, NO_ROUTE),
                send(Method::GET, "/nope", None, 404, NO_ROUTE),
                send(Method::GET, "/", None, 404, NO_ROUTE),
                send(Method::GET, "/v1/executions/a/b/c", None, 404, NO_ROUTE),
                send(
                    Method::POST,
                    "/v1/callbacks/cb_1/retry",
                    None,
                    404,
                    NO_ROUTE,
                ),
                send(Method::DELETE, execs, None, 405, NO_METHOD),
                send(Method::PUT, "/healthz", None, 405, NO_METHOD),
                send(
                    Method::GET,
                    "/v1/callbacks/cb_1/succeed",
                    None,
                    405,
                    NO_METHOD,
                ),
                send(Method::PATCH, "/v1/components/steps3", None, 405, NO_METHOD),
                send(
                    Method::GET,
                    "/v1/executions/ex_1/stop",
                    None,
                    405,
                    NO_METHOD,
                ),
            ],
        )
        .await?;
        // Without any key: an unknown route is still a 404 and a route that needs no key
        // still a 405.
        let anon = host.client().unpooled();
        expect_errors(
            &anon,
            vec![
                send(Method::GET, "/v1/nope", None, 404, NO_ROUTE),
                send(Method::GET, "/v1/admin/nope", None, 404, NO_ROUTE),
                send(Method::PUT, "/healthz", None, 405, NO_METHOD),
                send(
                    Method::DELETE,
                    "/v1/callbacks/cb_1/fail",
                    None,
                    405,
                    NO_METHOD,
                ),
            ],
        )
        .await?;
        // A 405 says what is allowed.
        let reply = c.send(Method::DELETE, execs, None).await?;
        let allow = reply.header("allow").unwrap_or("").to_uppercase();
        ensure!(
            allow.contains("GET") && allow.contains("POST"),
            "Allow on a 405: {reply:?}"
        );
        // Admin bodies are checked the same way.
        let admin = host.admin().unpooled();
        let quotas = format!("/v1/admin/tenants/{}/quotas", t.id);
        expect_errors(
            &admin,
            vec![
                post("/v1/admin/tenants", b"{", 400, NOT_JSON),
                post("/v1/admin/tenants", b"\"acme\"", 400, BAD_BODY),
                post("/v1/admin/tenants", &vec![b' '; 100 * 1024], 413, TOO_LARGE),
                send(Method::PUT, &quotas, Some(b"[1]"), 400, BAD_BODY),
                send(Method::PATCH, "/v1/admin/tenants", None, 405, NO_METHOD),
                send(
                    Method::PUT,
                    &quotas,
                    Some(b"{\"max_payload_kb\": 8"),
                    400,
                    NOT_JSON,
                ),
            ],
        )
        .await?;
        // None of it hurt the host.
        let health = anon.healthz().await?;
        ensure!(health.status == 200, "{health:?}");
        let id = c.start("steps3", json!("z")).await?;
        ensure!(c.result(&id, DONE).await? == json!("z-a-b-c"));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_versions_are_never_reused() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let t = new_tenant(&host, "versions", json!({})).await?;
        let c = &t.client;
        let base = std::fs::read(aegis_tests::fixture("steps3"))?;
        let v1 = c
            .upload_bytes("flow", base.clone())
            .await?
            .expect(201, "v1")?;
        let v2_bytes = with_custom_section(base.clone(), "v", 2);
        let v2 = c.upload_bytes("flow", v2_bytes).await?.expect(201, "v2")?;
        let ran = start_new(c, json!({"workflow": "flow", "version": 2, "input": "a"})).await?;
        c.result(&exec_id(&ran)?, DONE).await?;
        c.delete_component("flow", "2")
            .await?
            .expect(204, "delete v2")?;

        // New bytes after a deletion get a new number: "version 2" keeps naming the bytes the
        // execution above ran, and never other ones.
        let v3_bytes = with_custom_section(base, "v", 3);
        let v3 = c.upload_bytes("flow", v3_bytes).await?.expect(201, "v3")?;
        ensure!(
            v3["version"] == 3,
            "a deleted version's number was given to other bytes: v2 was {v2}, now {v3}"
        );
        let exec = c.get(&exec_id(&ran)?).await?;
        ensure!(
            exec["version"] == 2 && exec["component_digest"] == v2["digest"],
            "{exec}"
        );
        c.component_version("flow", "2")
            .await?
            .expect_error(404, "component_not_found")?;
        let versions = c
            .component_versions("flow")
            .await?
            .expect(200, "versions")?;
        ensure!(versions["versions"] == json!([v1, v3]), "{versions}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_respect_max_running_executions() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let t = new_tenant(&host, "crowd", json!({"max_running_executions": 3})).await?;
        upload(&t.client, &["callback"]).await?;
        let barrier = Arc::new(tokio::sync::Barrier::new(12));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..12 {
            let (c, barrier) = (t.client.clone(), barrier.clone());
            tasks.spawn(async move {
                barrier.wait().await;
                let input = json!({"timeout_seconds": 600, "heartbeat_seconds": null, "n": i});
                c.start_raw(&json!({"workflow": "callback", "input": input}))
                    .await
            });
        }
        let mut statuses = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let reply = joined??;
            if reply.status == 429 {
                reply.expect_error(429, "quota_exceeded")?;
            }
            statuses.push(reply.status);
        }
        statuses.sort_unstable();
        ensure!(
            statuses == [201, 201, 201, 429, 429, 429, 429, 429, 429, 429, 429, 429],
            "exactly max_running_executions starts win: {statuses:?}"
        );
        let running = t.client.list_all_executions("status=RUNNING", 100).await?;
        ensure!(running.len() == 3, "{running:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tenant_creation_with_one_name_makes_one_tenant() {
    let host = keyed_host(HostOptions::default()).await;
    guard(60, async {
        let barrier = Arc::new(tokio::sync::Barrier::new(10));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let (admin, barrier) = (host.admin(), barrier.clone());
            tasks.spawn(async move {
                barrier.wait().await;
                admin.create_tenant_raw(&json!({"name": "contested"})).await
            });
        }
        let mut created = Vec::new();
        let mut statuses = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let reply = joined??;
            statuses.push(reply.status);
            match reply.status {
                201 => created.push(reply.body),
                _ => reply.expect_error(409, "tenant_name_taken")?,
            }
        }
        ensure!(created.len() == 1, "one winner: {statuses:?}");
        let list = host.admin().tenants().await?.expect(200, "tenants")?;
        let named = list["tenants"]
            .as_array()
            .context("tenants")?
            .iter()
            .filter(|t| t["name"] == "contested")
            .count();
        ensure!(named == 1, "{list}");
        let key = created[0]["api_key"].as_str().context("api_key")?;
        host.client()
            .with_key(key)
            .whoami()
            .await?
            .expect(200, "the winner's key")?;
        Ok(())
    })
    .await;
}

/// Reads one HTTP/1.1 response (head and a `Content-Length` body) from `stream`; returns its
/// head (lower case) and body, or `None` when the connection ends first.
async fn read_response(stream: &mut tokio::net::TcpStream) -> Result<Option<(String, Vec<u8>)>> {
    use tokio::io::AsyncReadExt as _;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Ok(Some((head, buf[end + 4..end + 4 + length].to_vec())));
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_answer_says_the_connection_closes() {
    use tokio::io::AsyncWriteExt as _;
    let host = keyed_host(HostOptions::default()).await;
    guard(60, async {
        let t = new_tenant(&host, "big-bodies", json!({})).await?;
        // A keep-alive client sends an oversized body, watching for an early answer (RFC 9112
        // section 9.5): the host answers 413 after the first 300 KiB. Unless that answer says
        // the connection ends (`Connection: close`), the client finishes the body it declared
        // and sends its next request on the same connection, which the host must then serve.
        let body = vec![b'x'; 400 * 1024];
        let (sent_first, rest) = body.split_at(300 * 1024);
        let mut first = format!(
            "POST /v1/executions HTTP/1.1\r\nHost: aegis\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            t.key,
            body.len()
        )
        .into_bytes();
        first.extend_from_slice(sent_first);
        let addr = host.base_url().trim_start_matches("http://").to_string();
        let mut stream = tokio::net::TcpStream::connect(&addr).await?;
        stream.write_all(&first).await?;
        let (head, answer) = read_response(&mut stream)
            .await?
            .context("no answer to the oversized body")?;
        ensure!(
            head.starts_with("http/1.1 413"),
            "the oversized body is refused: {head}"
        );
        let value: Value = serde_json::from_slice(&answer)?;
        ensure!(value["error"]["code"] == "payload_too_large", "{value}");
        if head.contains("\r\nconnection: close") {
            return Ok(());
        }
        // A client is not instant: a short pause before the rest of the body, so the outcome
        // does not depend on whether the host happens to find it already buffered.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut second = rest.to_vec();
        second.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: aegis\r\n\r\n");
        let sent = stream.write_all(&second).await;
        let next = match sent {
            Ok(()) => read_response(&mut stream).await?,
            Err(_) => None,
        };
        match next {
            Some((head, _)) => ensure!(head.starts_with("http/1.1 200"), "{head}"),
            None => anyhow::bail!(
                "the host closed the connection after its 413 without saying so \
                 (no `Connection: close`): the next request on it was lost. 413 head:\n{head}"
            ),
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_start_under_a_race() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let t = new_tenant(&host, "racer", json!({})).await?;
        upload(&t.client, &["steps3"]).await?;
        let body = json!({"workflow": "steps3", "name": "race-1", "input": "r1"});
        let barrier = Arc::new(tokio::sync::Barrier::new(20));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (c, body, barrier) = (t.client.clone(), body.clone(), barrier.clone());
            tasks.spawn(async move {
                barrier.wait().await;
                c.start_raw(&body).await
            });
        }
        let mut replies: Vec<Reply> = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            replies.push(joined??);
        }
        let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        ensure!(
            statuses.iter().all(|s| *s == 200 || *s == 201),
            "all 200/201: {statuses:?} {:?}",
            replies.iter().find(|r| !r.is_success())
        );
        ensure!(
            statuses.iter().filter(|s| **s == 201).count() == 1,
            "exactly one 201: {statuses:?}"
        );
        let ids: HashSet<String> = replies
            .iter()
            .map(|r| exec_id(&r.body))
            .collect::<Result<_>>()?;
        ensure!(
            ids.len() == 1,
            "one execution id among the answers: {ids:?}"
        );
        let id = ids.into_iter().next().context("one id")?;

        let listed = t.client.list_all_executions("", 100).await?;
        let named: Vec<&Value> = listed.iter().filter(|e| e["name"] == "race-1").collect();
        ensure!(
            named.len() == 1 && named[0]["execution_id"] == id.as_str(),
            "the list shows one execution named race-1: {listed:?}"
        );
        ensure!(listed.len() == 1, "and no other: {listed:?}");
        ensure!(t.client.result(&id, DONE).await? == json!("r1-a-b-c"));

        // The same name with other input, or another workflow: a conflict, nothing new.
        t.client
            .start_raw(&json!({"workflow": "steps3", "name": "race-1", "input": "r2"}))
            .await?
            .expect_error(409, "execution_name_conflict")?;
        upload(&t.client, &["sleep"]).await?;
        t.client
            .start_raw(&json!({"workflow": "sleep", "name": "race-1", "input": "r1"}))
            .await?
            .expect_error(409, "execution_name_conflict")?;
        let again = t.client.start_raw(&body).await?.expect(200, "same again")?;
        ensure!(again["execution_id"] == id.as_str(), "{again}");
        ensure!(
            t.client.list_all_executions("", 100).await?.len() == 1,
            "still one execution"
        );
        Ok(())
    })
    .await;
}
