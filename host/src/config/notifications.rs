//! The `[notifications]` section: the optional AWS sinks for workflow events.

use serde::Deserialize;

/// The `[notifications]` section: each sink is on when its target is set.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// SNS topic that receives `approval.requested` events (alias `APPROVAL_SNS_TOPIC_ARN`).
    pub approval_sns_topic_arn: Option<String>,
    /// EventBridge bus that receives workflow events (started, approval requested, completed,
    /// failed, rejected).
    pub event_bus_name: Option<String>,
    /// The `Source` of those EventBridge events.
    pub event_source: String,
    /// SNS and EventBridge: a local server instead of AWS (plain `http://` works).
    pub endpoint_url: Option<String>,
    /// SNS and EventBridge: default `AWS_REGION` or the AWS profile.
    pub region: Option<String>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            approval_sns_topic_arn: None,
            event_bus_name: None,
            event_source: "aegis".into(),
            endpoint_url: None,
            region: None,
        }
    }
}
