//! The AWS Lambda durable-functions API driven by AWS's own clients: boto3's `lambda` client
//! and the AWS CLI, pointed at a keyed host with an endpoint URL and signing (SigV4) with a
//! tenant's key. `tests/lambda/drive.py` makes every call (Invoke in both modes, the reads, the
//! history pages, stop, the three callback operations, signature refusals, another tenant's
//! isolation) and checks each answer.
//!
//! It needs `python3` with boto3 and the AWS CLI that have the durable operations
//! (`make lambda-deps`). Without them it is skipped with a loud message, unless
//! `AEGIS_REQUIRE_AWS_CLIENTS` is set (CI sets it), in which case it fails.

use std::process::Command;

use anyhow::{Context as _, Result, ensure};
use serde_json::json;

use crate::{guard, keyed_host, new_tenant, upload};
use aegis_tests::HostOptions;

/// Whether python3 has a boto3 whose `lambda` client has the durable operations, and an AWS
/// CLI is on the path.
fn aws_clients() -> Result<(), String> {
    let boto3 = Command::new("python3")
        .args([
            "-c",
            "import boto3; assert 'GetDurableExecution' in \
             boto3.client('lambda', region_name='us-east-1').meta.service_model.operation_names",
        ])
        .output();
    match boto3 {
        Ok(out) if out.status.success() => {}
        Ok(out) => return Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => return Err(format!("cannot run python3: {e}")),
    }
    match Command::new("aws").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Err(format!("cannot run the AWS CLI (aws): {e}")),
    }
}

fn require_aws_clients() -> bool {
    std::env::var_os("AEGIS_REQUIRE_AWS_CLIENTS").is_some_and(|v| !v.is_empty() && v != "0")
}

fn driver() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lambda/drive.py")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_the_aws_cli_drive_executions_and_callbacks() {
    if let Err(why) = aws_clients() {
        assert!(
            !require_aws_clients(),
            "AEGIS_REQUIRE_AWS_CLIENTS is set, but boto3 or the AWS CLI is missing ({why}); \
             install them with `make lambda-deps`"
        );
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! SKIPPED boto3_and_the_aws_cli_drive_executions_and_callbacks:\n\
             !! boto3 with the durable operations, or the AWS CLI, is missing ({why}).\n\
             !! Run `make lambda-deps`, or set AEGIS_REQUIRE_AWS_CLIENTS=1 to make this a failure.\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        return;
    }
    let host = keyed_host(HostOptions::default()).await;
    guard(300, async {
        let a = new_tenant(&host, "lambda-a", json!({})).await?;
        let b = new_tenant(&host, "lambda-b", json!({})).await?;
        upload(&a.client, &["steps3", "callback"]).await?;
        let scratch = tempfile::tempdir()?;
        let base = host.base_url().to_string();
        let script = driver();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("python3")
                .arg(&script)
                .arg(scratch.path())
                .env("AEGIS_URL", base)
                .env("AWS_ACCESS_KEY_ID", &a.key_id)
                .env("AWS_SECRET_ACCESS_KEY", &a.key)
                .env("OTHER_ACCESS_KEY_ID", &b.key_id)
                .env("OTHER_SECRET_ACCESS_KEY", &b.key)
                // The host's, not a profile or endpoint from the machine's AWS configuration.
                .env("AWS_CONFIG_FILE", "/dev/null")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_ENDPOINT_URL")
                .env_remove("AWS_ENDPOINT_URL_LAMBDA")
                .env_remove("AWS_SESSION_TOKEN")
                .output()
        })
        .await?
        .context("running tests/lambda/drive.py")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success() && stdout.trim_end().ends_with("ok"),
            "drive.py failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    })
    .await;
}
