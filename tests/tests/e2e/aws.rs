//! The production backends end to end, on real servers speaking the AWS wire protocols (never a
//! mock inside the process):
//!
//! - the research pipeline with its checkpoints in DynamoDB, its artifacts in S3, the approval
//!   notification on SNS and its events on EventBridge, all on moto's server: the approval
//!   request is read at the topic (through a subscribed SQS queue), the report through its S3
//!   presigned URL, the events at the bus (through a rule that routes the host's source to a
//!   queue), and a second host with an empty data folder reads the finished run from the table;
//! - values too large for a DynamoDB item spilled to the bucket, not the table, and read back;
//! - presigned URL expiry on s3s-fs, which checks it (moto does not): a short-lived link to an
//!   artifact serves it, then answers 403 once its time is up, while a longer one still serves.
//!
//! Without moto (`AEGIS_DYNAMODB_ENDPOINT`, set by `.ci/with-dynamodb`) or s3s-fs the test says it
//! is skipped, unless CI requires the server (see `aegis_tests::aws`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aegis_tests::agents::{AgentsConfig, DemoAgents};
use aegis_tests::aws::{self, Moto, Queue, S3sFs, query_param};
use aegis_tests::pipeline::{self, STEPS};
use aegis_tests::{Client, HostOptions};
use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use crate::pipeline::check_report;
use crate::{DONE, guard, host_with, upload};

/// How long a whole pipeline run may take (the agents work in milliseconds; moto and the
/// notifier add a little).
const RUN: Duration = Duration::from_secs(90);
const TOPIC: &str = "durable execution on DynamoDB and S3";
/// The report's presigned URL lives 7 days, the longest SigV4 allows.
const REPORT_URL_SECONDS: &str = "604800";
/// With no approval timeout given, the review URL lives as long as the approval waits: 24 h.
const REVIEW_URL_SECONDS: &str = "86400";

/// What the pipeline test makes on moto before any host starts.
struct Resources {
    table_prefix: String,
    bucket: String,
    topic_arn: String,
    /// Subscribed to the topic.
    approvals: Queue,
    bus: String,
    /// The host's EventBridge `Source`.
    source: String,
    /// Gets every event of `source` on `bus`.
    events: Queue,
}

/// A bucket, a topic read through a queue, a bus whose events for this run's source go to a
/// second queue, and the checkpoint table; all named for this run alone.
async fn make_resources(moto: &Moto) -> Result<Resources> {
    let run = aws::unique("aegis-e2e");
    let r = Resources {
        table_prefix: format!("{run}-"),
        bucket: run.clone(),
        topic_arn: moto.create_topic(&format!("{run}-approvals")).await?,
        approvals: moto.create_queue(&format!("{run}-approvals")).await?,
        bus: format!("{run}-bus"),
        source: format!("aegis.e2e.{run}"),
        events: moto.create_queue(&format!("{run}-events")).await?,
    };
    moto.create_bucket(&r.bucket).await?;
    moto.subscribe(&r.topic_arn, &r.approvals).await?;
    moto.create_event_bus(&r.bus).await?;
    moto.route_events(&r.bus, "aegis-to-queue", &r.source, &r.events)
        .await?;
    let printed = aws::create_tables(moto.endpoint(), &r.table_prefix)?;
    ensure!(
        printed == format!("created table {}checkpoints", r.table_prefix),
        "aegis dynamodb create-tables printed {printed:?}"
    );
    Ok(r)
}

/// The host's configuration for these resources: the aliases the pipeline's users know where
/// there is one (`WORKFLOW_TABLE`, `ARTIFACT_BUCKET`, `APPROVAL_SNS_TOPIC_ARN`), `AEGIS_*`
/// otherwise; path-style S3 URLs (which a local server needs) from the config file.
fn host_options(moto: &Moto, r: &Resources, config: &AgentsConfig) -> HostOptions {
    let mut opts = HostOptions::default();
    opts.env.extend(aws::credentials_env());
    opts.extra_args
        .extend(config.args().expect("writing the host config"));
    let endpoint = moto.endpoint();
    opts.env("AEGIS_STORE_BACKEND", "dynamodb")
        .env("WORKFLOW_TABLE", &r.table_prefix)
        .env("AEGIS_DYNAMODB_ENDPOINT", endpoint)
        .env("AEGIS_ARTIFACTS_BACKEND", "s3")
        .env("ARTIFACT_BUCKET", &r.bucket)
        .env("AEGIS_S3_ENDPOINT", endpoint)
        .env("APPROVAL_SNS_TOPIC_ARN", &r.topic_arn)
        .env("AEGIS_EVENT_BUS_NAME", &r.bus)
        .env("AEGIS_EVENT_SOURCE", &r.source)
        .env("AEGIS_NOTIFICATIONS_ENDPOINT", endpoint)
}

/// Checks that `url` is a SigV4 presigned GET of `bucket/key` on `endpoint` (path style), living
/// `expires` seconds.
fn check_presigned(
    url: &str,
    endpoint: &str,
    bucket: &str,
    key: &str,
    expires: &str,
) -> Result<()> {
    let object = format!("{endpoint}/{bucket}/{key}?");
    ensure!(
        url.starts_with(&object),
        "{url} is not a presigned URL of {object}"
    );
    ensure!(
        query_param(url, "X-Amz-Algorithm") == Some("AWS4-HMAC-SHA256")
            && query_param(url, "X-Amz-Expires") == Some(expires)
            && query_param(url, "X-Amz-Credential")
                .is_some_and(|c| c.contains("%2Fus-east-1%2Fs3%2Faws4_request"))
            && query_param(url, "X-Amz-Signature")
                .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())),
        "{url} is not SigV4-presigned for {expires} s"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn research_pipeline_on_dynamodb_and_s3_notifies_sns_and_eventbridge() {
    let Some(endpoint) = aws::moto_endpoint("the pipeline on DynamoDB + S3 + SNS + EventBridge")
    else {
        return;
    };
    let moto = Moto::new(&endpoint);
    let r = guard(60, make_resources(&moto)).await;
    let agents = DemoAgents::start(None).await.expect("demo agents");
    let config = AgentsConfig::new()
        .raw("[artifacts]\nforce_path_style = true")
        .a2a("researcher", &agents.url("researcher"), "0.3")
        .a2a("analyst", &agents.url("analyst"), "1.0")
        .a2a("writer", &agents.url("writer"), "0.3");
    let host = host_with(host_options(&moto, &r, &config)).await;
    guard(240, async {
        let client = host.client();
        pipeline::upload(&client).await?;
        let parameters = json!({"depth": 2, "sources": 4, "word_limit": 400});
        let id = pipeline::start(&client, TOPIC, parameters.clone()).await?;
        let mut seen = Vec::new();
        let waiting = pipeline::poll_until(&client, &id, RUN, &mut seen, |v| {
            v["status"] == "AWAITING_APPROVAL"
        })
        .await?;

        // The approval request reached the SNS topic: once, as the event's JSON, with a subject
        // a person can read.
        let notes = moto
            .receive_until(&r.approvals, RUN, |got| !got.is_empty())
            .await?;
        ensure!(notes.len() == 1, "one approval notification: {notes:?}");
        let note = &notes[0];
        ensure!(
            note["Type"] == "Notification"
                && note["TopicArn"] == r.topic_arn.as_str()
                && note["Subject"] == format!("Approval requested: {TOPIC}"),
            "the SNS envelope: {note}"
        );
        let request: Value = serde_json::from_str(note["Message"].as_str().unwrap_or_default())
            .with_context(|| format!("the SNS message is the event's JSON: {note}"))?;
        ensure!(
            request["kind"] == "approval.requested"
                && request["execution_id"] == id.as_str()
                && request["data"]["topic"] == TOPIC
                && request["data"]["review_url"] == waiting["review_url"],
            "the approval request at SNS: {request}"
        );
        let tenant = request["tenant_id"]
            .as_str()
            .context("the event names its tenant")?
            .to_string();
        let prefix = format!("{tenant}/{id}/");

        // The review URL in it is S3's, and serves the analysis.
        let review_url = waiting["review_url"].as_str().unwrap_or_default();
        check_presigned(
            review_url,
            moto.endpoint(),
            &r.bucket,
            &format!("{prefix}analysis.json"),
            REVIEW_URL_SECONDS,
        )?;
        let (content_type, _) = pipeline::review_analysis(review_url).await?;
        ensure!(
            content_type.starts_with("application/json"),
            "the review URL serves {content_type}"
        );

        pipeline::decide(&client, &id, "approve", "ship it")
            .await?
            .expect(200, "approve")?;
        let view = pipeline::wait_ended(&client, &id, RUN, &mut seen).await?;
        ensure!(
            view["status"] == "COMPLETED" && pipeline::steps(&view) == STEPS,
            "the finished run: {view}"
        );

        // The report is in the bucket (and nowhere on disk), and its 7-day presigned URL serves
        // exactly it.
        let report_url = view["report_url"].as_str().context("a report_url")?;
        let report_key = format!("{prefix}report.md");
        check_presigned(
            report_url,
            moto.endpoint(),
            &r.bucket,
            &report_key,
            REPORT_URL_SECONDS,
        )?;
        let (status, content_type, body) = pipeline::fetch(report_url).await?;
        ensure!(
            status == 200 && content_type.starts_with("text/markdown"),
            "GET the report URL: HTTP {status}, {content_type}"
        );
        let report = String::from_utf8(body).context("the report is UTF-8")?;
        check_report(&report)?;
        ensure!(
            report.contains(TOPIC) || report.to_lowercase().contains("durable"),
            "the report is not about the topic:\n{report}"
        );
        let stored = moto.get_object(&r.bucket, &report_key).await?;
        ensure!(
            stored == report.as_bytes(),
            "the URL served something else than the stored report"
        );
        let run_objects: Vec<String> = moto
            .list_objects(&r.bucket)
            .await?
            .into_iter()
            .filter(|k| k.starts_with(&prefix))
            .collect();
        ensure!(
            run_objects == [format!("{prefix}analysis.json"), report_key.clone()],
            "the run's objects in the bucket: {run_objects:?}"
        );
        ensure!(
            !host.data_dir().join("aegis.db").exists()
                && !host.data_dir().join("artifacts").exists(),
            "the DynamoDB + S3 host wrote an embedded store or disk artifacts"
        );

        // The checkpoints are in the DynamoDB table.
        let table = format!("{}checkpoints", r.table_prefix);
        let items = moto.scan(&table).await?;
        let mentioning = items
            .iter()
            .filter(|item| item.to_string().contains(&id))
            .count();
        ensure!(
            mentioning >= 2,
            "{mentioning} of the {} items of {table} are about {id}",
            items.len()
        );

        // EventBridge got the run's milestones, in order, each once, each the event as the
        // host's event list has it; the step-by-step status events stay off the bus.
        let milestones = [
            "workflow.started",
            "approval.requested",
            "workflow.completed",
            "execution.succeeded",
        ];
        let mut got = moto
            .receive_until(&r.events, RUN, |got| got.len() >= milestones.len())
            .await?;
        // Anything more would arrive right behind.
        got.extend(moto.receive(&r.events).await?);
        got.sort_by_key(|e| e["detail"]["seq"].as_u64());
        let kinds: Vec<&str> = got
            .iter()
            .map(|e| e["detail-type"].as_str().unwrap_or("?"))
            .collect();
        ensure!(kinds == milestones, "events at the bus: {kinds:?}");
        let listed = pipeline::events(&client, &id).await?;
        for event in &got {
            let kind = event["detail-type"].as_str().unwrap_or("?");
            ensure!(
                event["source"] == r.source.as_str(),
                "the {kind} event's source: {event}"
            );
            let same = listed
                .iter()
                .find(|e| e["kind"] == kind)
                .with_context(|| format!("{kind} is not in GET /v1/events"))?;
            ensure!(
                &event["detail"] == same,
                "the {kind} event at the bus {} differs from the host's {same}",
                event["detail"]
            );
        }
        let detail = |kind: &str| &got[kinds.iter().position(|k| *k == kind).unwrap()]["detail"];
        ensure!(
            detail("workflow.started")["data"]["topic"] == TOPIC
                && detail("workflow.started")["data"]["parameters"]["depth"] == parameters["depth"],
            "workflow.started: {}",
            detail("workflow.started")
        );
        ensure!(
            detail("approval.requested") == &request,
            "the approval request differs between SNS ({request}) and EventBridge ({})",
            detail("approval.requested")
        );
        ensure!(
            detail("workflow.completed")["data"]["report_url"] == view["report_url"],
            "workflow.completed: {}",
            detail("workflow.completed")
        );

        // Another host, with an empty data folder, reads the same run from the table.
        let second = host_with(host_options(&moto, &r, &config)).await;
        let elsewhere = pipeline::view(&second.client(), &id).await?;
        ensure!(
            elsewhere["status"] == "COMPLETED"
                && elsewhere["report_url"] == view["report_url"]
                && pipeline::steps(&elsewhere) == STEPS,
            "the run as another host sees it: {elsewhere}"
        );
        Ok(())
    })
    .await;
    drop(agents);
}

/// Large values go to the artifact bucket, not the table, and the host reads them back: a
/// 200 KB input (the payload quota allows 256 KB) through three steps. The store keeps values
/// inline up to 100 KB, because one item holds several (DynamoDB's item limit is 400 KB).
#[tokio::test]
async fn values_too_large_for_an_item_spill_to_the_bucket() {
    let Some(endpoint) = aws::moto_endpoint("spilling large values to S3") else {
        return;
    };
    let moto = Moto::new(&endpoint);
    let r = guard(60, make_resources(&moto)).await;
    // The config file lives as long as `config` does.
    let config = AgentsConfig::new().raw("[artifacts]\nforce_path_style = true");
    let host = host_with(host_options(&moto, &r, &config)).await;
    guard(120, async {
        let client = host.client();
        upload(&client, &["steps3"]).await?;
        let input = "x".repeat(200 * 1024);
        let id = client.start("steps3", json!(input)).await?;
        let done = client.wait_done(&id, DONE).await?;
        ensure!(
            done["status"] == "SUCCEEDED" && done["result"] == json!(format!("{input}-a-b-c")),
            "the execution did not return its input with three suffixes: status {}",
            done["status"]
        );
        ensure!(
            client.get(&id).await?["input"] == json!(input),
            "the input read back differs"
        );

        let spilled: Vec<String> = moto
            .list_objects(&r.bucket)
            .await?
            .into_iter()
            .filter(|k| k.starts_with("_spill/"))
            .collect();
        // The input, three step results, their events and the result: at least 5 values.
        ensure!(spilled.len() >= 5, "spilled objects: {spilled:?}");
        let table = format!("{}checkpoints", r.table_prefix);
        let items = moto.scan(&table).await?;
        ensure!(
            !items.iter().any(|i| i["pk"]["S"]
                .as_str()
                .is_some_and(|pk| pk.starts_with("BLOB#"))),
            "chunk items were written to the table"
        );
        ensure!(
            items.iter().any(|i| i["input_ref"]["S"]
                .as_str()
                .is_some_and(|v| v == format!("s3://{}/{}", r.bucket, spilled_key(&input)))),
            "the execution item does not refer to the spilled input"
        );
        Ok(())
    })
    .await;
}

/// The object key of a spilled JSON value.
fn spilled_key(text: &str) -> String {
    use sha2::Digest;
    let json = serde_json::to_string(text).expect("a string is JSON");
    format!(
        "_spill/{}",
        hex::encode(sha2::Sha256::digest(json.as_bytes()))
    )
}

/// Seconds since the Unix epoch of a SigV4 `X-Amz-Date` (`20260101T120000Z`).
fn amz_date_seconds(date: &str) -> Option<u64> {
    let digits = |from: usize, to: usize| date.get(from..to)?.parse::<i64>().ok();
    let (y, m, d) = (digits(0, 4)?, digits(4, 6)?, digits(6, 8)?);
    let (hh, mm, ss) = (digits(9, 11)?, digits(11, 13)?, digits(13, 15)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Runs the `artifacts` fixture: stores `content` as `key` and presigns it for `expires` seconds;
/// returns the URL.
async fn presigned(client: &Client, key: &str, content: &str, expires: u64) -> Result<String> {
    let id = client
        .start(
            "artifacts",
            json!({"key": key, "content": content, "expires_in_seconds": expires}),
        )
        .await?;
    let result = client.result(&id, DONE).await?;
    ensure!(
        result["roundtrip"] == true,
        "the artifact read back: {result}"
    );
    Ok(result["url"]
        .as_str()
        .with_context(|| format!("the result has a url: {result}"))?
        .to_string())
}

#[test]
fn amz_dates_convert_to_epoch_seconds() {
    assert_eq!(amz_date_seconds("19700101T000000Z"), Some(0));
    assert_eq!(amz_date_seconds("20260101T120000Z"), Some(1_767_268_800));
    assert_eq!(amz_date_seconds("20240229T235959Z"), Some(1_709_251_199));
    assert_eq!(amz_date_seconds("2026"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_presigned_urls_serve_the_artifact_until_they_expire() {
    let Some(bin) = aws::s3s_fs_binary("the S3 presigned URL expiry test") else {
        return;
    };
    let bucket = "aegis-artifacts";
    let s3 = S3sFs::start(&bin, &[bucket]).await.expect("s3s-fs starts");
    let config = AgentsConfig::new().raw(&format!(
        "[artifacts]\nbackend = \"s3\"\nbucket = \"{bucket}\"\nendpoint_url = \"{}\"\n\
         force_path_style = true",
        s3.endpoint()
    ));
    let mut opts = HostOptions::default();
    opts.env.extend(aws::credentials_env());
    opts.extra_args
        .extend(config.args().expect("writing the host config"));
    let host = host_with(opts).await;
    guard(120, async {
        let client = host.client();
        upload(&client, &["artifacts"]).await?;
        let content = "# Report\n\nServed by S3 for a few seconds only.\n";
        // Long enough to fetch it once on a busy machine, short enough to watch it expire.
        let lifetime = 6;
        let url = presigned(&client, "report.md", content, lifetime).await?;
        ensure!(
            url.starts_with(&format!("{}/{bucket}/", s3.endpoint()))
                && query_param(&url, "X-Amz-Expires") == Some("6"),
            "not a 6-second S3 presigned URL: {url}"
        );
        let signed = query_param(&url, "X-Amz-Date")
            .and_then(amz_date_seconds)
            .with_context(|| format!("no X-Amz-Date in {url}"))?;
        let (status, content_type, body) = pipeline::fetch(&url).await?;
        ensure!(
            now_seconds() <= signed + lifetime,
            "the first fetch came after the URL expired: the machine is too slow for this test"
        );
        ensure!(
            status == 200
                && content_type.starts_with("text/markdown")
                && body == content.as_bytes(),
            "GET the fresh URL: HTTP {status}, {content_type}, {:?}",
            String::from_utf8_lossy(&body)
        );
        // The server checks signatures: a forged one is refused, fresh as the URL is.
        let signature = query_param(&url, "X-Amz-Signature").context("a signature")?;
        let other = if signature.starts_with('0') { "1" } else { "0" };
        let forged = url.replace(
            &format!("X-Amz-Signature={signature}"),
            &format!("X-Amz-Signature={other}{}", &signature[1..]),
        );
        let (status, _, body) = pipeline::fetch(&forged).await?;
        let text = String::from_utf8_lossy(&body);
        ensure!(
            status == 403 && text.contains("SignatureDoesNotMatch"),
            "GET with a forged signature: HTTP {status}: {text}"
        );

        // Once its time is up (a second's margin: X-Amz-Date is in whole seconds), it is refused
        // with S3's "Request has expired".
        let expired_at = signed + lifetime + 1;
        while now_seconds() <= expired_at {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let (status, _, body) = pipeline::fetch(&url).await?;
        let text = String::from_utf8_lossy(&body);
        ensure!(
            status == 403 && text.contains("AccessDenied") && text.contains("expired"),
            "GET the expired URL: HTTP {status}: {text}"
        );
        // The refusal is the expiry, not the server: a link to the same content made the same
        // way (by another run) but living an hour still serves it.
        let url = presigned(&client, "report.md", content, 3600).await?;
        ensure!(
            query_param(&url, "X-Amz-Expires") == Some("3600"),
            "not an hour-long URL: {url}"
        );
        let (status, _, body) = pipeline::fetch(&url).await?;
        ensure!(
            status == 200 && body == content.as_bytes(),
            "GET an hour-long URL after the short one expired: HTTP {status}"
        );
        Ok(())
    })
    .await;
}
