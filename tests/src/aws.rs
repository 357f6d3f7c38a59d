//! Servers that speak the AWS wire protocols, for the end-to-end tests of the production backends.
//! The tests talk to them over plain HTTP: no AWS SDK in this crate, so that it stays quick to
//! build (the host under test is the one that uses the SDK).
//!
//! - [`moto_endpoint`]: moto's standalone server, which `.ci/with-dynamodb` starts for a test run
//!   and names in `AEGIS_DYNAMODB_ENDPOINT`. It serves DynamoDB, S3, SNS, SQS and EventBridge on
//!   that one endpoint, and checks neither signatures nor the expiry of presigned URLs.
//! - [`Moto`]: the calls the tests make there: a bucket, a topic and a bus, each read through an
//!   SQS queue (a subscription, an event rule), and looks into S3 and DynamoDB.
//! - [`S3sFs`]: `s3s-fs`, an S3 server over a folder that does check SigV4 signatures and the
//!   expiry of presigned URLs; started per test on a free loopback port.
//! - [`create_tables`]: `aegis dynamodb create-tables`, as an operator runs it.
//!
//! A missing server skips the test, saying so, unless CI's variable says it must be there:
//! `AEGIS_REQUIRE_DYNAMODB` for moto (as in the store contract suite), `AEGIS_REQUIRE_S3S_FS`
//! for s3s-fs.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::agents::Process;

/// The region every test resource lives in.
pub const REGION: &str = "us-east-1";
/// Credentials for moto (which accepts any) and s3s-fs (which is started with these).
pub const ACCESS_KEY: &str = "aegis-e2e";
pub const SECRET_KEY: &str = "aegis-e2e-secret";

/// The environment a host (or `aegis dynamodb create-tables`) needs to reach the local servers:
/// credentials and region, as the AWS SDK's default chain reads them.
pub fn credentials_env() -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", REGION),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A name no other test or run has used: moto keeps its state for the whole test run.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{:x}-{:x}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff
    )
}

/// moto's endpoint (`AEGIS_DYNAMODB_ENDPOINT`), or `None` after saying that `what` is skipped.
///
/// # Panics
/// When there is none and `AEGIS_REQUIRE_DYNAMODB` is set.
pub fn moto_endpoint(what: &str) -> Option<String> {
    if let Ok(url) = std::env::var("AEGIS_DYNAMODB_ENDPOINT")
        && !url.is_empty()
    {
        return Some(url.trim_end_matches('/').to_string());
    }
    assert!(
        std::env::var_os("AEGIS_REQUIRE_DYNAMODB").is_none(),
        "AEGIS_REQUIRE_DYNAMODB is set but AEGIS_DYNAMODB_ENDPOINT names no server: run the tests \
         under .ci/with-dynamodb (as `make test` does) with moto installed"
    );
    eprintln!(
        "skipping {what}: no moto server (run under .ci/with-dynamodb, as `make test` does, with \
         `python3 -m pip install \"moto[server]\"`)"
    );
    None
}

/// A moto server of a test's own (`.ci/moto-server`, one request at a time), for tests whose
/// load would slow every other test sharing the run's server; stopped when dropped.
pub struct OwnMoto {
    endpoint: String,
    _process: Process,
}

impl OwnMoto {
    /// Starts one on a free loopback port.
    ///
    /// # Errors
    /// When it does not come up (moto not installed).
    pub async fn start() -> Result<OwnMoto> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/moto-server");
        let mut cmd = Command::new("python3");
        cmd.args([script, "0"]);
        let (process, endpoint) = Process::spawn(cmd, "moto", "moto listening on ").await?;
        Ok(OwnMoto {
            endpoint: endpoint.trim().to_string(),
            _process: process,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

/// An SQS queue: its URL to receive from, its ARN to subscribe or target.
#[derive(Clone, Debug)]
pub struct Queue {
    pub url: String,
    pub arn: String,
}

/// A client for moto's server.
pub struct Moto {
    endpoint: String,
    http: reqwest::Client,
}

/// The value of every `<tag>…</tag>` in `xml`, in order (moto's XML answers are flat enough).
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        rest = &rest[start + open.len()..];
        let Some(end) = rest.find(&close) else { break };
        out.push(rest[..end].to_string());
        rest = &rest[end + close.len()..];
    }
    out
}

impl Moto {
    pub fn new(endpoint: &str) -> Moto {
        Moto {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An Authorization header with no real signature: moto checks none, but its one endpoint
    /// tells the services apart by the credential scope.
    fn authorization(service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/{REGION}/{service}/aws4_request, \
             SignedHeaders=host, Signature=0"
        )
    }

    /// A call in the JSON protocol (`X-Amz-Target: <target>`); the answer's JSON.
    async fn json(&self, service: &str, version: &str, target: &str, body: Value) -> Result<Value> {
        let resp = self
            .http
            .post(&self.endpoint)
            .header("content-type", format!("application/x-amz-json-{version}"))
            .header("x-amz-target", target)
            .header("authorization", Self::authorization(service))
            .body(body.to_string())
            .send()
            .await
            .with_context(|| format!("{target} on moto"))?;
        let status = resp.status();
        let text = resp.text().await?;
        ensure!(status.is_success(), "{target}: HTTP {status}: {text}");
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// An SNS call in the query protocol; the answer's XML.
    async fn sns(&self, action: &str, params: &[(&str, &str)]) -> Result<String> {
        let mut form = vec![("Action", action), ("Version", "2010-03-31")];
        form.extend_from_slice(params);
        let resp = self
            .http
            .post(&self.endpoint)
            .header("authorization", Self::authorization("sns"))
            .form(&form)
            .send()
            .await
            .with_context(|| format!("SNS {action} on moto"))?;
        let status = resp.status();
        let text = resp.text().await?;
        ensure!(status.is_success(), "SNS {action}: HTTP {status}: {text}");
        Ok(text)
    }

    /// An S3 call (path-style); the status and the body.
    async fn s3(&self, method: reqwest::Method, path: &str) -> Result<(u16, Vec<u8>)> {
        let url = format!("{}/{path}", self.endpoint);
        let resp = self
            .http
            .request(method, &url)
            .header("authorization", Self::authorization("s3"))
            .send()
            .await
            .with_context(|| format!("S3 {url}"))?;
        Ok((resp.status().as_u16(), resp.bytes().await?.to_vec()))
    }

    /// Creates the bucket `name`.
    ///
    /// # Errors
    /// When moto refuses.
    pub async fn create_bucket(&self, name: &str) -> Result<()> {
        let (status, body) = self.s3(reqwest::Method::PUT, name).await?;
        ensure!(
            status == 200,
            "CreateBucket {name}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }

    /// The keys in `bucket`, in S3's (lexicographic) order.
    ///
    /// # Errors
    /// When the listing fails.
    pub async fn list_objects(&self, bucket: &str) -> Result<Vec<String>> {
        let (status, body) = self
            .s3(reqwest::Method::GET, &format!("{bucket}?list-type=2"))
            .await?;
        let xml = String::from_utf8_lossy(&body);
        ensure!(
            status == 200,
            "ListObjectsV2 {bucket}: HTTP {status}: {xml}"
        );
        Ok(xml_values(&xml, "Key"))
    }

    /// The content of `bucket/key`.
    ///
    /// # Errors
    /// Unless the object is there.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>> {
        let (status, body) = self
            .s3(reqwest::Method::GET, &format!("{bucket}/{key}"))
            .await?;
        ensure!(status == 200, "GetObject {bucket}/{key}: HTTP {status}");
        Ok(body)
    }

    /// Creates the queue `name`.
    ///
    /// # Errors
    /// When moto refuses.
    pub async fn create_queue(&self, name: &str) -> Result<Queue> {
        let out = self
            .json(
                "sqs",
                "1.0",
                "AmazonSQS.CreateQueue",
                json!({"QueueName": name}),
            )
            .await?;
        let url = out["QueueUrl"]
            .as_str()
            .with_context(|| format!("CreateQueue answered {out}"))?
            .to_string();
        let out = self
            .json(
                "sqs",
                "1.0",
                "AmazonSQS.GetQueueAttributes",
                json!({"QueueUrl": url, "AttributeNames": ["QueueArn"]}),
            )
            .await?;
        let arn = out["Attributes"]["QueueArn"]
            .as_str()
            .with_context(|| format!("GetQueueAttributes answered {out}"))?
            .to_string();
        Ok(Queue { url, arn })
    }

    /// Takes what is in `queue` now (waiting up to a second for something), deleting what it
    /// took so that it never comes back; each body parsed as JSON.
    ///
    /// # Errors
    /// When a call fails or a body is not JSON.
    pub async fn receive(&self, queue: &Queue) -> Result<Vec<Value>> {
        let out = self
            .json(
                "sqs",
                "1.0",
                "AmazonSQS.ReceiveMessage",
                json!({"QueueUrl": queue.url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1}),
            )
            .await?;
        let mut bodies = Vec::new();
        for message in out["Messages"].as_array().into_iter().flatten() {
            let body = message["Body"].as_str().unwrap_or_default();
            bodies.push(
                serde_json::from_str(body)
                    .with_context(|| format!("a message that is not JSON: {body}"))?,
            );
            self.json(
                "sqs",
                "1.0",
                "AmazonSQS.DeleteMessage",
                json!({"QueueUrl": queue.url, "ReceiptHandle": message["ReceiptHandle"]}),
            )
            .await?;
        }
        Ok(bodies)
    }

    /// Receives from `queue` until `done` holds for everything received so far; returns it all.
    ///
    /// # Errors
    /// When `done` does not hold within `timeout`.
    pub async fn receive_until(
        &self,
        queue: &Queue,
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Result<Vec<Value>> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while !done(&got) {
            if Instant::now() >= deadline {
                bail!(
                    "the queue {} did not get what was awaited within {timeout:?}; it got: {got:?}",
                    queue.url
                );
            }
            got.extend(self.receive(queue).await?);
        }
        Ok(got)
    }

    /// Creates the SNS topic `name`; returns its ARN.
    ///
    /// # Errors
    /// When moto refuses.
    pub async fn create_topic(&self, name: &str) -> Result<String> {
        let xml = self.sns("CreateTopic", &[("Name", name)]).await?;
        xml_values(&xml, "TopicArn")
            .into_iter()
            .next()
            .with_context(|| format!("CreateTopic answered {xml}"))
    }

    /// Subscribes `queue` to the topic: each message arrives as SNS's JSON envelope
    /// (`Type`, `TopicArn`, `Subject`, `Message`, ...).
    ///
    /// # Errors
    /// When moto refuses.
    pub async fn subscribe(&self, topic_arn: &str, queue: &Queue) -> Result<()> {
        self.sns(
            "Subscribe",
            &[
                ("TopicArn", topic_arn),
                ("Protocol", "sqs"),
                ("Endpoint", &queue.arn),
            ],
        )
        .await?;
        Ok(())
    }

    /// Creates the EventBridge bus `name`.
    ///
    /// # Errors
    /// When moto refuses.
    pub async fn create_event_bus(&self, name: &str) -> Result<()> {
        self.json(
            "events",
            "1.1",
            "AWSEvents.CreateEventBus",
            json!({"Name": name}),
        )
        .await?;
        Ok(())
    }

    /// Routes every event on `bus` whose `source` is `source` to `queue`, as a rule named `rule`
    /// with that event pattern: each arrives as the EventBridge event (`source`, `detail-type`,
    /// `detail`, ...).
    ///
    /// # Errors
    /// When moto refuses.
    pub async fn route_events(
        &self,
        bus: &str,
        rule: &str,
        source: &str,
        queue: &Queue,
    ) -> Result<()> {
        self.json(
            "events",
            "1.1",
            "AWSEvents.PutRule",
            json!({
                "Name": rule,
                "EventBusName": bus,
                "EventPattern": json!({"source": [source]}).to_string(),
                "State": "ENABLED",
            }),
        )
        .await?;
        let out = self
            .json(
                "events",
                "1.1",
                "AWSEvents.PutTargets",
                json!({"Rule": rule, "EventBusName": bus, "Targets": [{"Id": "queue", "Arn": queue.arn}]}),
            )
            .await?;
        ensure!(
            out["FailedEntryCount"].as_u64().unwrap_or(0) == 0,
            "PutTargets: {out}"
        );
        Ok(())
    }

    /// Every item of the DynamoDB table, in DynamoDB's JSON (`{"attr": {"S": "…"}}`).
    ///
    /// # Errors
    /// When the scan fails.
    pub async fn scan(&self, table: &str) -> Result<Vec<Value>> {
        self.scan_where(table, json!({})).await
    }

    /// The items of the DynamoDB table that a filter keeps: `filter` holds the request's
    /// `FilterExpression` and its `ExpressionAttributeNames` / `ExpressionAttributeValues`.
    ///
    /// # Errors
    /// When the scan fails.
    pub async fn scan_where(&self, table: &str, filter: Value) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut start: Option<Value> = None;
        loop {
            let mut request = filter.clone();
            request["TableName"] = json!(table);
            if let Some(key) = start.take() {
                request["ExclusiveStartKey"] = key;
            }
            let out = self
                .json("dynamodb", "1.0", "DynamoDB_20120810.Scan", request)
                .await?;
            items.extend(out["Items"].as_array().cloned().unwrap_or_default());
            match out.get("LastEvaluatedKey") {
                Some(key) if !key.is_null() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }
}

/// Runs `aegis dynamodb create-tables` against `endpoint` for the table prefix `prefix`, as an
/// operator would before the first host starts; returns what it printed.
///
/// # Errors
/// When the command fails.
pub fn create_tables(endpoint: &str, prefix: &str) -> Result<String> {
    let mut cmd = Command::new(crate::host::aegis_bin());
    cmd.args(["dynamodb", "create-tables", "--endpoint-url", endpoint])
        .args(["--table-prefix", prefix, "--region", REGION]);
    // Only the flags and the credentials configure it.
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str()
            && (name.starts_with("AEGIS_") || name == "WORKFLOW_TABLE")
        {
            cmd.env_remove(name);
        }
    }
    cmd.envs(credentials_env());
    let out = cmd
        .output()
        .context("running aegis dynamodb create-tables")?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    ensure!(
        out.status.success(),
        "aegis dynamodb create-tables failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// The `s3s-fs` binary: `$AEGIS_S3S_FS_BIN`, else `s3s-fs` on the `PATH` or in `~/.cargo/bin`
/// (where `make s3s-fs` installs it); `None` after saying that `what` is skipped.
///
/// # Panics
/// When there is none and `AEGIS_REQUIRE_S3S_FS` is set.
pub fn s3s_fs_binary(what: &str) -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("AEGIS_S3S_FS_BIN").filter(|b| !b.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    if let Some(bin) = dirs
        .into_iter()
        .map(|d| d.join("s3s-fs"))
        .find(|b| b.is_file())
    {
        return Some(bin);
    }
    assert!(
        std::env::var_os("AEGIS_REQUIRE_S3S_FS").is_none(),
        "AEGIS_REQUIRE_S3S_FS is set but there is no s3s-fs: `make s3s-fs` installs it, or set \
         AEGIS_S3S_FS_BIN"
    );
    eprintln!(
        "skipping {what}: no s3s-fs (`make s3s-fs` installs it: cargo install s3s-fs@0.14.1 \
         --features binary --locked)"
    );
    None
}

/// A running `s3s-fs` over a temp folder, with SigV4 authentication on ([`ACCESS_KEY`],
/// [`SECRET_KEY`]); killed on drop.
pub struct S3sFs {
    endpoint: String,
    _process: Process,
    _root: TempDir,
}

impl S3sFs {
    /// Starts `bin` on `127.0.0.1:0` with the buckets `buckets`. s3s-fs keeps a bucket as a
    /// folder under its root, so they are made as folders: no signed CreateBucket call is needed.
    ///
    /// # Errors
    /// When it does not come up.
    pub async fn start(bin: &std::path::Path, buckets: &[&str]) -> Result<S3sFs> {
        let root = tempfile::Builder::new()
            .prefix("aegis-e2e-s3s-")
            .tempdir()
            .context("creating the s3s-fs root")?;
        for bucket in buckets {
            std::fs::create_dir(root.path().join(bucket))
                .with_context(|| format!("creating the bucket folder {bucket}"))?;
        }
        let mut cmd = Command::new(bin);
        cmd.args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            // Its readiness line is an info-level log line on stdout.
            .env("RUST_LOG", "info");
        let (process, endpoint) = Process::spawn(cmd, "s3s-fs", "server is running at ").await?;
        Ok(S3sFs {
            endpoint,
            _process: process,
            _root: root,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

/// The query parameter `name` of `url`, as it appears there (still percent-encoded).
pub fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    url.split_once('?')?
        .1
        .split('&')
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
}
