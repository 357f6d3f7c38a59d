//! The SNS and EventBridge sinks of the event outbox.
//!
//! - SNS: `approval.requested` events are published to `approval_sns_topic_arn`, the message
//!   being the event's JSON (as the webhook body) and the subject
//!   `Approval requested: <topic>` (the event's `data.topic`, else its execution id), so an email
//!   subscription reads well.
//! - EventBridge: workflow events ([`is_workflow_event`]) are put on `event_bus_name` with
//!   `Source` = `event_source`, `DetailType` = the event kind and `Detail` = the event's JSON.
//!
//! Each sink is on only when its target is configured. Calls are async and made from the
//! notifier's task, so no blocking bridge is needed here.

use super::{Failure, SinkError, to_json};
use crate::aws::{AwsOptions, sdk_config};
use crate::config::NotificationsConfig;
use crate::store::WorkflowEvent;

/// The kind of the event that asks a person for an approval.
pub const APPROVAL_REQUESTED: &str = "approval.requested";

/// Whether `kind` goes to EventBridge: execution lifecycle (`execution.*`), and the workflow's
/// own milestones: started, approval requested, completed, failed, rejected.
pub fn is_workflow_event(kind: &str) -> bool {
    kind.starts_with("execution.")
        || matches!(
            kind,
            "workflow.started"
                | APPROVAL_REQUESTED
                | "workflow.completed"
                | "workflow.failed"
                | "workflow.rejected"
        )
}

/// SNS subjects: ASCII, no line breaks, at most 100 characters.
pub fn approval_subject(event: &WorkflowEvent) -> String {
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
    let topic = data
        .get("topic")
        .and_then(|t| t.as_str())
        .filter(|t| !t.trim().is_empty())
        .map_or_else(|| event.execution_id.to_string(), str::to_string);
    let subject: String = format!("Approval requested: {topic}")
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    subject.chars().take(100).collect()
}

pub struct AwsSinks {
    sns: Option<(aws_sdk_sns::Client, String)>,
    events: Option<(aws_sdk_eventbridge::Client, String, String)>,
}

impl AwsSinks {
    /// The sinks `config` turns on, or `None` when it turns on none.
    ///
    /// # Errors
    /// When a sink is configured but no AWS region can be found.
    pub async fn from_config(config: &NotificationsConfig) -> anyhow::Result<Option<Self>> {
        Self::connect(
            config,
            AwsOptions {
                endpoint_url: config.endpoint_url.clone().filter(|u| !u.is_empty()),
                region: config.region.clone(),
                credentials: None,
                ..AwsOptions::default()
            },
        )
        .await
    }

    /// As [`AwsSinks::from_config`], with explicit connection options.
    ///
    /// # Errors
    /// When a sink is configured but no AWS region can be found.
    pub async fn connect(
        config: &NotificationsConfig,
        aws: AwsOptions,
    ) -> anyhow::Result<Option<Self>> {
        let topic = config
            .approval_sns_topic_arn
            .clone()
            .filter(|t| !t.is_empty());
        let bus = config.event_bus_name.clone().filter(|b| !b.is_empty());
        if topic.is_none() && bus.is_none() {
            return Ok(None);
        }
        let sdk = sdk_config(&aws).await?;
        let source = if config.event_source.is_empty() {
            "aegis".to_string()
        } else {
            config.event_source.clone()
        };
        Ok(Some(Self {
            sns: topic.map(|t| (aws_sdk_sns::Client::new(&sdk), t)),
            events: bus.map(|b| (aws_sdk_eventbridge::Client::new(&sdk), b, source)),
        }))
    }

    /// Sends `event` (its JSON, bounded as [`to_json`] bounds it) to every sink that takes its
    /// kind.
    ///
    /// # Errors
    /// The first sink that refused it, and how.
    pub async fn deliver(&self, event: &WorkflowEvent) -> Result<(), SinkError> {
        let body = to_json(event).to_string();
        if let Some((client, topic)) = &self.sns
            && event.kind == APPROVAL_REQUESTED
        {
            client
                .publish()
                .topic_arn(topic)
                .subject(approval_subject(event))
                .message(&body)
                .send()
                .await
                .map_err(|e| {
                    let code = e.as_service_error().and_then(|s| {
                        aws_sdk_sns::error::ProvideErrorMetadata::code(s).map(str::to_string)
                    });
                    SinkError::new(
                        "sns",
                        sdk_failure(&e, code.as_deref()),
                        format!(
                            "SNS publish: {}",
                            aws_sdk_sns::error::DisplayErrorContext(e)
                        ),
                    )
                })?;
        }
        if let Some((client, bus, source)) = &self.events
            && is_workflow_event(&event.kind)
        {
            use aws_sdk_eventbridge::types::PutEventsRequestEntry;
            let entry = PutEventsRequestEntry::builder()
                .event_bus_name(bus)
                .source(source)
                .detail_type(&event.kind)
                .detail(&body)
                .build();
            let out = client
                .put_events()
                .entries(entry)
                .send()
                .await
                .map_err(|e| {
                    let code = e.as_service_error().and_then(|s| {
                        aws_sdk_eventbridge::error::ProvideErrorMetadata::code(s)
                            .map(str::to_string)
                    });
                    SinkError::new(
                        "eventbridge",
                        sdk_failure(&e, code.as_deref()),
                        format!(
                            "EventBridge PutEvents: {}",
                            aws_sdk_eventbridge::error::DisplayErrorContext(e)
                        ),
                    )
                })?;
            // PutEvents succeeds as a call while failing entries one by one.
            if out.failed_entry_count() > 0 {
                let failed: Vec<_> = out
                    .entries()
                    .iter()
                    .filter(|e| e.error_code().is_some() || e.error_message().is_some())
                    .collect();
                let why = failed
                    .iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e.error_code().unwrap_or("error"),
                            e.error_message().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                let failure = if failed
                    .iter()
                    .any(|e| e.error_code().is_some_and(is_invalid_entry))
                {
                    Failure::Permanent
                } else {
                    Failure::Retriable
                };
                return Err(SinkError::new(
                    "eventbridge",
                    failure,
                    format!("EventBridge refused the event: {why}"),
                ));
            }
        }
        Ok(())
    }
}

/// Whether an AWS error code says the entry itself is bad (invalid, malformed, too large), so
/// sending it again cannot help. Throttling, internal errors and access problems (a fault of
/// the configuration, not of the event) are not.
pub fn is_invalid_entry(code: &str) -> bool {
    let code = code.to_ascii_lowercase();
    !code.contains("throttl")
        && !code.contains("internal")
        && [
            "invalid",
            "malformed",
            "validation",
            "toolarge",
            "too large",
            "toolong",
        ]
        .iter()
        .any(|word| code.contains(word))
}

/// How an SDK call's failure counts: a request that never reached the service is an outage; a
/// service error whose code says the entry is bad is permanent; anything else is retried.
fn sdk_failure<E, R>(e: &aws_sdk_sns::error::SdkError<E, R>, code: Option<&str>) -> Failure {
    use aws_sdk_sns::error::SdkError;
    match e {
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => Failure::Unreachable,
        SdkError::ServiceError(_) if code.is_some_and(is_invalid_entry) => Failure::Permanent,
        _ => Failure::Retriable,
    }
}

#[cfg(test)]
mod tests;
