//! `aegis components [NAME] [--version N]`: the tenant's components, the versions of one, or
//! one version (`/v1/components`). Uploading is `aegis deploy` (`deploy.rs`).

use super::client::{Client, Connection};
use super::exit::Outcome;
use super::output;
use serde_json::Value;

#[derive(clap::Args, Debug)]
pub struct ComponentsArgs {
    /// Show the versions of this component only.
    pub name: Option<String>,
    /// Show this version of the component only.
    #[arg(long, requires = "name")]
    pub version: Option<u32>,
    #[command(flatten)]
    pub conn: Connection,
}

/// `aegis components`.
///
/// # Errors
/// The request's failure.
pub async fn run(args: ComponentsArgs) -> Outcome {
    let client = Client::of(&args.conn)?;
    let answer = match (&args.name, args.version) {
        (None, _) => client.get(&["v1", "components"], &[]).await?,
        (Some(name), None) => client.get(&["v1", "components", name], &[]).await?,
        (Some(name), Some(version)) => {
            let version = version.to_string();
            client
                .get(&["v1", "components", name, "versions", &version], &[])
                .await?
        }
    };
    if args.conn.json {
        return output::json(&answer);
    }
    // A list (`components`), a component's versions (`versions`), or one version.
    let rows: Vec<Value> = answer["components"]
        .as_array()
        .or_else(|| answer["versions"].as_array())
        .cloned()
        .unwrap_or_else(|| vec![answer.clone()]);
    output::print(&table(&rows))
}

/// The table of component versions.
pub fn table(versions: &[Value]) -> String {
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                output::text(&v["name"]),
                output::text(&v["version"]),
                output::text(&v["digest"]),
                v["size"]
                    .as_u64()
                    .map_or_else(|| "-".to_string(), output::size),
                output::text(&v["created_at"]),
            ]
        })
        .collect();
    output::table(&["NAME", "VERSION", "DIGEST", "SIZE", "CREATED"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_show_a_line_each() {
        let v = json!({"name": "steps3", "version": 2, "digest": "sha256:ab", "size": 2048,
                       "created_at": "2025-11-26T05:00:00.123Z"});
        assert_eq!(
            table(&[v]),
            "NAME    VERSION  DIGEST     SIZE     CREATED\n\
             steps3  2        sha256:ab  2.0 KiB  2025-11-26T05:00:00.123Z\n"
        );
    }
}
