//! Shared AWS SDK setup for the DynamoDB store, the S3 artifact store and the SNS/EventBridge
//! notification sinks: rustls on ring (already built for reqwest), plain `http://` endpoints for
//! local servers such as moto, and no instance-metadata region probe when an endpoint override
//! is given.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::time::Duration;

/// Where an AWS service is and how to reach it.
#[derive(Clone, Debug, Default)]
pub struct AwsOptions {
    /// A local server (moto); plain `http://` works.
    pub endpoint_url: Option<String>,
    /// Default: `AWS_REGION` / the profile; with an endpoint override, `us-east-1` at worst.
    pub region: Option<String>,
    /// Access key id and secret; default: the AWS default credential chain.
    pub credentials: Option<(String, String)>,
    /// Retries; default: standard mode, 5 attempts.
    pub retry: Option<RetryConfig>,
    /// Longest single attempt; default: none.
    pub attempt_timeout: Option<Duration>,
}

/// Loads the SDK configuration.
///
/// # Errors
/// When no region can be found.
pub async fn sdk_config(options: &AwsOptions) -> anyhow::Result<SdkConfig> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut timeouts = TimeoutConfig::builder().connect_timeout(Duration::from_secs(3));
    if let Some(attempt) = options.attempt_timeout {
        timeouts = timeouts.operation_attempt_timeout(attempt);
    }
    let retry = options
        .retry
        .clone()
        .unwrap_or_else(|| RetryConfig::standard().with_max_attempts(5));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(retry)
        .timeout_config(timeouts.build());
    let region = options
        .region
        .clone()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            options.endpoint_url.as_ref().map(|_| {
                std::env::var("AWS_REGION")
                    .ok()
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "us-east-1".into())
            })
        });
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    }
    if let Some((id, secret)) = &options.credentials {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            id, secret, None, None, "aegis",
        ));
    }
    if let Some(url) = options.endpoint_url.as_ref().filter(|u| !u.is_empty()) {
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;
    anyhow::ensure!(
        config.region().is_some(),
        "no AWS region: set region in the configuration or AWS_REGION"
    );
    Ok(config)
}
