//! SNS and EventBridge sinks against moto's server (the one the storage suite uses), never an
//! in-process mock: each test subscribes an SQS queue on moto and reads what arrived there.
//! Without a server they are skipped, saying so, unless `AEGIS_REQUIRE_DYNAMODB` is set.

use super::*;
use crate::ids::{ExecutionId, TenantId};
use serde_json::{Value, json};
use std::time::Duration;

fn event(seq: u64, kind: &str, data: Value) -> WorkflowEvent {
    WorkflowEvent {
        seq,
        tenant: TenantId::from_raw("t1"),
        execution_id: ExecutionId::from_raw("ex_1"),
        kind: kind.into(),
        data: data.to_string(),
        created_at: 1_764_000_000_000,
    }
}

#[test]
fn which_events_go_where() {
    for kind in [
        "execution.started",
        "execution.completed",
        "workflow.started",
        "approval.requested",
        "workflow.completed",
        "workflow.failed",
        "workflow.rejected",
    ] {
        assert!(is_workflow_event(kind), "{kind}");
    }
    for kind in ["workflow.status", "step.done", "approval"] {
        assert!(!is_workflow_event(kind), "{kind}");
    }
    let e = event(
        1,
        APPROVAL_REQUESTED,
        json!({"topic": "Quantum\nbatteries ü"}),
    );
    assert_eq!(
        approval_subject(&e),
        "Approval requested: Quantum batteries"
    );
    let e = event(1, APPROVAL_REQUESTED, json!({}));
    assert_eq!(approval_subject(&e), "Approval requested: ex_1");
    let e = event(1, APPROVAL_REQUESTED, json!({"topic": "x".repeat(300)}));
    assert_eq!(approval_subject(&e).len(), 100);
}

/// Talks to moto's SQS with its JSON protocol (moto does not check signatures; the
/// Authorization header only names the service).
struct Sqs {
    endpoint: String,
    http: reqwest::Client,
}

impl Sqs {
    async fn call(&self, action: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("AmazonSQS.{action}"))
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sqs/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "SQS {action}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A new queue: its URL and ARN. The policy lets SNS and EventBridge send to it.
    async fn queue(&self) -> (String, String) {
        let name = format!("aegis-test-{:016x}", rand::random::<u64>());
        let out = self.call("CreateQueue", json!({"QueueName": name})).await;
        let url = out["QueueUrl"].as_str().unwrap().to_string();
        let out = self
            .call(
                "GetQueueAttributes",
                json!({"QueueUrl": url, "AttributeNames": ["QueueArn"]}),
            )
            .await;
        let arn = out["Attributes"]["QueueArn"].as_str().unwrap().to_string();
        (url, arn)
    }

    /// The bodies that arrived within a few seconds.
    async fn receive(&self, url: &str) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let out = self
                .call(
                    "ReceiveMessage",
                    json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1}),
                )
                .await;
            let bodies: Vec<Value> = out["Messages"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .map(|m| {
                            serde_json::from_str(m["Body"].as_str().unwrap_or_default())
                                .unwrap_or(Value::Null)
                        })
                        .collect()
                })
                .unwrap_or_default();
            if !bodies.is_empty() || std::time::Instant::now() > deadline {
                return bodies;
            }
        }
    }
}

fn aws(endpoint: &str) -> AwsOptions {
    AwsOptions {
        endpoint_url: Some(endpoint.into()),
        region: Some("us-east-1".into()),
        credentials: Some(("test".into(), "test".into())),
        ..AwsOptions::default()
    }
}

fn moto() -> Option<String> {
    let endpoint = aegis_store_contract::dynamodb_local::endpoint();
    if endpoint.is_none() {
        eprintln!("skipping the SNS/EventBridge test: no moto server");
    }
    endpoint
}

#[test]
fn nothing_configured_means_no_sinks() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sinks = rt
        .block_on(AwsSinks::connect(
            &NotificationsConfig::default(),
            aws("http://127.0.0.1:9"),
        ))
        .unwrap();
    assert!(sinks.is_none());
}

#[tokio::test]
async fn approval_requests_reach_the_sns_topic() {
    let Some(endpoint) = moto() else { return };
    let sdk = sdk_config(&aws(&endpoint)).await.unwrap();
    let sns = aws_sdk_sns::Client::new(&sdk);
    let topic = sns
        .create_topic()
        .name(format!("approvals-{:016x}", rand::random::<u64>()))
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    let sqs = Sqs {
        endpoint: endpoint.clone(),
        http: reqwest::Client::new(),
    };
    let (queue_url, queue_arn) = sqs.queue().await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .send()
        .await
        .unwrap();

    let config = NotificationsConfig {
        approval_sns_topic_arn: Some(topic.clone()),
        ..NotificationsConfig::default()
    };
    let sinks = AwsSinks::connect(&config, aws(&endpoint))
        .await
        .unwrap()
        .unwrap();
    // Only the approval request is published.
    sinks
        .deliver(&event(1, "execution.started", json!({})))
        .await
        .unwrap();
    let approval = event(
        2,
        APPROVAL_REQUESTED,
        json!({"topic": "solid-state batteries", "review_url": "http://host/review"}),
    );
    sinks.deliver(&approval).await.unwrap();
    let got = sqs.receive(&queue_url).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let envelope = &got[0];
    assert_eq!(envelope["TopicArn"], topic.as_str());
    assert_eq!(
        envelope["Subject"],
        "Approval requested: solid-state batteries"
    );
    let message: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(message, crate::notifications::to_json(&approval));
    assert_eq!(message["data"]["review_url"], "http://host/review");

    // A topic that does not exist refuses: the event stays undelivered and is retried.
    let config = NotificationsConfig {
        approval_sns_topic_arn: Some(format!("{topic}-missing")),
        ..NotificationsConfig::default()
    };
    let broken = AwsSinks::connect(&config, aws(&endpoint))
        .await
        .unwrap()
        .unwrap();
    // A missing topic is the configuration's fault, not the event's: retried, never a dead
    // letter at once.
    let refused = broken.deliver(&approval).await.unwrap_err();
    assert_eq!(
        (refused.sink, refused.failure),
        ("sns", super::super::Failure::Retriable),
        "{refused:?}"
    );
}

#[tokio::test]
async fn workflow_events_reach_the_eventbridge_bus() {
    let Some(endpoint) = moto() else { return };
    let sdk = sdk_config(&aws(&endpoint)).await.unwrap();
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let bus = format!("aegis-{:016x}", rand::random::<u64>());
    events.create_event_bus().name(&bus).send().await.unwrap();
    let sqs = Sqs {
        endpoint: endpoint.clone(),
        http: reqwest::Client::new(),
    };
    let (queue_url, queue_arn) = sqs.queue().await;
    events
        .put_rule()
        .name("all-aegis")
        .event_bus_name(&bus)
        .event_pattern(json!({"source": ["aegis-test"]}).to_string())
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("all-aegis")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(&queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let config = NotificationsConfig {
        event_bus_name: Some(bus.clone()),
        event_source: "aegis-test".into(),
        ..NotificationsConfig::default()
    };
    let sinks = AwsSinks::connect(&config, aws(&endpoint))
        .await
        .unwrap()
        .unwrap();
    let sent = [
        event(1, "execution.started", json!({})),
        event(2, "workflow.status", json!({"stage": "research"})),
        event(3, APPROVAL_REQUESTED, json!({"topic": "t"})),
        event(4, "workflow.completed", json!({"report_url": "http://r"})),
    ];
    for e in &sent {
        sinks.deliver(e).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        let batch = sqs.receive(&queue_url).await;
        if batch.is_empty() {
            break;
        }
        got.extend(batch);
    }
    got.sort_by_key(|e| e["detail"]["seq"].as_u64());
    let kinds: Vec<_> = got.iter().map(|e| e["detail-type"].clone()).collect();
    assert_eq!(
        kinds,
        [
            "execution.started",
            "approval.requested",
            "workflow.completed"
        ],
        "{got:?}"
    );
    for e in &got {
        assert_eq!(e["source"], "aegis-test");
    }
    assert_eq!(got[2]["detail"], crate::notifications::to_json(&sent[3]));

    // A bus that does not exist refuses.
    let config = NotificationsConfig {
        event_bus_name: Some(format!("{bus}-missing")),
        ..NotificationsConfig::default()
    };
    let broken = AwsSinks::connect(&config, aws(&endpoint))
        .await
        .unwrap()
        .unwrap();
    let refused = broken.deliver(&sent[0]).await.unwrap_err();
    assert_eq!(
        (refused.sink, refused.failure),
        ("eventbridge", super::super::Failure::Retriable),
        "{refused:?}"
    );
}
