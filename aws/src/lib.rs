//! Shared AWS SDK setup for the DynamoDB store, the S3 artifact store and the SNS/EventBridge
//! notification sinks: rustls on ring (already built for reqwest), plain `http://` endpoints for
//! local servers such as moto, and no instance-metadata region probe when an endpoint override
//! is given. Bedrock agents, which sign their own requests, take their credentials from the
//! same default chain ([`default_credentials`]).

pub mod s3;

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::SharedHttpClient;
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

/// The HTTP client of every AWS call: rustls on ring, as reqwest already builds it (the SDK's
/// default client would bring aws-lc-rs).
fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// aws-config's default credential chain, in its order: the `AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` variables; the shared config and credentials
/// files (`AWS_PROFILE`, with assumed roles, SSO and `credential_process` profiles); web
/// identity (EKS service accounts); the ECS or EKS container credentials endpoint; the EC2
/// instance role. It does not cache: each call may reach a service.
pub async fn default_credentials() -> DefaultCredentialsChain {
    DefaultCredentialsChain::builder()
        .configure(provider_config())
        .build()
        .await
}

/// What aws-config's credential providers need to reach their services (STS, SSO, the
/// container endpoint, the instance metadata service): our HTTP client. Without one, building
/// a provider panics, since the default HTTPS client feature is off.
pub fn provider_config() -> ProviderConfig {
    ProviderConfig::without_region().with_http_client(http_client())
}

/// Loads the SDK configuration.
///
/// # Errors
/// When no region can be found.
pub async fn sdk_config(options: &AwsOptions) -> anyhow::Result<SdkConfig> {
    let http = http_client();
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
