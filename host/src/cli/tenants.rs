//! `aegis tenants`: tenant administration with the host's admin key (`/v1/admin/tenants`):
//! list, create, show, set quotas, and a tenant's API keys. A tenant is named by its id
//! (`tn_...`) or by its name.

use super::client::{AdminConnection, Body, Client};
use super::exit::{Class, Failure, Outcome};
use super::{input, output};
use reqwest::Method;
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
pub struct TenantsArgs {
    #[command(subcommand)]
    pub command: TenantCommand,
    #[command(flatten)]
    pub conn: AdminConnection,
}

#[derive(clap::Subcommand, Debug)]
pub enum TenantCommand {
    /// Every tenant, with its quota overrides.
    List,
    /// Create a tenant; its first API key is printed, once.
    Create {
        /// The tenant's name: 1-64 characters of [A-Za-z0-9_-].
        name: String,
        /// Quota overrides: JSON, @FILE, or - for standard input (e.g. '{"max_running_executions": 10}').
        #[arg(long, value_name = "JSON|@FILE|-")]
        quotas: Option<String>,
    },
    /// One tenant with its effective quotas.
    Show {
        /// The tenant's id (`tn_...`) or name.
        tenant: String,
    },
    /// Replace a tenant's quota overrides (a quota left out goes back to the host's default).
    Quotas {
        /// The tenant's id (`tn_...`) or name.
        tenant: String,
        /// The overrides: JSON, @FILE, or - for standard input.
        #[arg(value_name = "JSON|@FILE|-")]
        overrides: String,
    },
    /// A tenant's API keys (never their secrets), revoked ones included.
    Keys {
        /// The tenant's id (`tn_...`) or name.
        tenant: String,
    },
    /// Make a new API key for a tenant; the key is printed, once.
    AddKey {
        /// The tenant's id (`tn_...`) or name.
        tenant: String,
    },
    /// Revoke one of a tenant's API keys.
    RevokeKey {
        /// The tenant's id (`tn_...`) or name.
        tenant: String,
        /// The key's id (`key_...`), as `keys` lists it.
        key_id: String,
    },
}

/// The id of the tenant `tenant` names: an id as it is, a name looked up in the list.
async fn tenant_id(client: &Client, tenant: &str) -> Outcome<String> {
    if tenant.starts_with("tn_") {
        return Ok(tenant.to_string());
    }
    let list = client.get(&["v1", "admin", "tenants"], &[]).await?;
    find_by_name(&list, tenant)
}

/// The id of the tenant called `name` in a tenant list.
fn find_by_name(list: &Value, name: &str) -> Outcome<String> {
    list["tenants"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == name)
        .and_then(|t| t["tenant_id"].as_str())
        .map(str::to_string)
        .ok_or_else(|| Failure::new(Class::NotFound, format!("no tenant is called {name:?}")))
}

/// `aegis tenants ...`.
///
/// # Errors
/// A request's failure.
pub async fn run(args: TenantsArgs) -> Outcome {
    let client = Client::new(&args.conn.url, args.conn.admin_key.as_deref())?;
    let json_out = args.conn.json;
    let tenants = ["v1", "admin", "tenants"];
    let (answer, text) = match &args.command {
        TenantCommand::List => {
            let list = client.get(&tenants, &[]).await?;
            let rows = list["tenants"].as_array().cloned().unwrap_or_default();
            let text = tenant_table(&rows);
            (list, text)
        }
        TenantCommand::Create { name, quotas } => {
            let mut body = json!({"name": name});
            if let Some(raw) = quotas {
                body["quotas"] = input::json(raw, "--quotas")?;
            }
            let created = client.post(&tenants, Body::Json(body)).await?.body;
            let text = format!(
                "created tenant {} ({})\nkey id  {}\napi key {}  (shown only now)\n",
                output::text(&created["name"]),
                output::text(&created["tenant_id"]),
                output::text(&created["key_id"]),
                output::text(&created["api_key"]),
            );
            (created, text)
        }
        TenantCommand::Show { tenant } => {
            let id = tenant_id(&client, tenant).await?;
            let shown = client.get(&["v1", "admin", "tenants", &id], &[]).await?;
            let text = describe(&shown);
            (shown, text)
        }
        TenantCommand::Quotas { tenant, overrides } => {
            let overrides = input::json(overrides, "OVERRIDES")?;
            let id = tenant_id(&client, tenant).await?;
            let path = ["v1", "admin", "tenants", &id, "quotas"];
            let set = client
                .send(Method::PUT, &path, &[], Body::Json(overrides))
                .await?
                .body;
            let text = describe(&set);
            (set, text)
        }
        TenantCommand::Keys { tenant } => {
            let id = tenant_id(&client, tenant).await?;
            let keys = client
                .get(&["v1", "admin", "tenants", &id, "keys"], &[])
                .await?;
            let rows = keys["keys"].as_array().cloned().unwrap_or_default();
            let text = key_table(&rows);
            (keys, text)
        }
        TenantCommand::AddKey { tenant } => {
            let id = tenant_id(&client, tenant).await?;
            let key = client
                .post(&["v1", "admin", "tenants", &id, "keys"], Body::None)
                .await?
                .body;
            let text = format!(
                "key id  {}\napi key {}  (shown only now)\n",
                output::text(&key["key_id"]),
                output::text(&key["api_key"]),
            );
            (key, text)
        }
        TenantCommand::RevokeKey { tenant, key_id } => {
            let id = tenant_id(&client, tenant).await?;
            let path = ["v1", "admin", "tenants", &id, "keys", key_id];
            let key = client
                .send(Method::DELETE, &path, &[], Body::None)
                .await?
                .body;
            let text = format!(
                "revoked {} (at {})\n",
                output::text(&key["key_id"]),
                output::text(&key["revoked_at"])
            );
            (key, text)
        }
    };
    if json_out {
        output::json(&answer)
    } else {
        output::print(&text)
    }
}

/// The table `tenants list` prints.
pub fn tenant_table(tenants: &[Value]) -> String {
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| {
            vec![
                output::text(&t["tenant_id"]),
                output::text(&t["name"]),
                output::text(&t["created_at"]),
                overrides(&t["overrides"]),
            ]
        })
        .collect();
    output::table(&["TENANT", "NAME", "CREATED", "OVERRIDES"], &rows)
}

/// A tenant's overrides in a cell: `-` for none.
fn overrides(value: &Value) -> String {
    match value.as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        _ => "-".to_string(),
    }
}

/// A tenant as `show` prints it: its fields, then each effective quota, overridden ones
/// marked.
pub fn describe(tenant: &Value) -> String {
    let mut out = format!(
        "tenant   {}\nname     {}\ncreated  {}\nquotas\n",
        output::text(&tenant["tenant_id"]),
        output::text(&tenant["name"]),
        output::text(&tenant["created_at"]),
    );
    let rows: Vec<Vec<String>> = tenant["quotas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let mark = if tenant["overrides"].get(k).is_some() {
                "(override)"
            } else {
                ""
            };
            vec![format!("  {k}"), output::text(v), mark.to_string()]
        })
        .collect();
    let table = output::table(&["", "", ""], &rows);
    // The table's header row is blank: drop it.
    out.extend(table.lines().skip(1).map(|l| format!("{l}\n")));
    out
}

/// The table `tenants keys` prints.
pub fn key_table(keys: &[Value]) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                output::text(&k["key_id"]),
                output::text(&k["created_at"]),
                output::text(&k["revoked_at"]),
            ]
        })
        .collect();
    output::table(&["KEY", "CREATED", "REVOKED"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_found_in_the_list() {
        let list = json!({"tenants": [
            {"tenant_id": "tn_1", "name": "acme"},
            {"tenant_id": "tn_2", "name": "globex"}]});
        assert_eq!(find_by_name(&list, "globex").unwrap(), "tn_2");
        let err = find_by_name(&list, "initech").unwrap_err();
        assert_eq!(err.class, Class::NotFound);
        assert_eq!(err.message, "no tenant is called \"initech\"");
    }

    #[test]
    fn show_marks_the_overridden_quotas() {
        let t = json!({"tenant_id": "tn_1", "name": "acme", "created_at": "t0",
            "overrides": {"max_running_executions": 5},
            "quotas": {"max_payload_kb": 256, "max_running_executions": 5}});
        let text = describe(&t);
        assert!(text.starts_with("tenant   tn_1\nname     acme\n"), "{text}");
        assert!(text.contains("  max_payload_kb          256\n"), "{text}");
        assert!(
            text.contains("  max_running_executions  5    (override)\n"),
            "{text}"
        );
    }

    #[test]
    fn lists_show_overrides_and_revocations() {
        let t = json!({"tenant_id": "tn_1", "name": "acme", "created_at": "t0",
                       "overrides": {"max_payload_kb": 64}});
        assert!(tenant_table(&[t]).contains("max_payload_kb=64"));
        let k = json!({"key_id": "key_1", "created_at": "t0", "revoked_at": null});
        assert!(key_table(&[k]).ends_with("key_1  t0       -\n"));
    }
}
