//! Who a Lambda request acts for. AWS clients sign every request with SigV4; the host checks
//! the signature with the secret of the tenant key the access key id names: the access key id
//! is the key's id (`key_…`), the secret access key the API key itself (`aeg_…`). On a host
//! without tenant keys (no admin key) every request acts for the default tenant and a
//! signature, which clients always add, is not checked.

use super::AppState;
use super::error::{Exception, LambdaError};
use crate::api::sigv4;
use crate::ids::TenantId;
use axum::http::request::Parts;
use std::time::SystemTime;

/// The largest body read before the caller is known: AWS's 6 MB synchronous payload limit, or
/// the default tenant payload limit when that is larger, with room for the JSON around it.
/// Each route then holds the body to its tenant's own limit.
pub fn max_body(app: &AppState) -> usize {
    const AWS_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
    app.rt
        .tenancy()
        .defaults()
        .max_payload_bytes()
        .max(AWS_PAYLOAD_LIMIT)
        + crate::api::body::ENVELOPE
}

/// The tenant the request acts for, its signature checked, its tenant's request rate charged.
///
/// # Errors
/// An unsigned request on a host with keys, an unknown key, a signature that does not match,
/// or a rate over the tenant's quota.
pub async fn caller(app: &AppState, parts: &Parts, body: &[u8]) -> Result<TenantId, LambdaError> {
    let tenancy = app.rt.tenancy();
    let authorization = sigv4::parse(&parts.headers)
        .map_err(|e| LambdaError::new(Exception::InvalidSignature, e.to_string()))?;
    let tenant = match (tenancy.keyed(), authorization) {
        (false, _) => TenantId::default_tenant(),
        (true, None) => {
            return Err(LambdaError::new(
                Exception::MissingAuthenticationToken,
                "this host has tenant keys: sign requests with AWS Signature Version 4, with \
                 your API key's id (key_…) as the access key id and the API key (aeg_…) as \
                 the secret access key",
            ));
        }
        (true, Some(auth)) => {
            let (tenant, secret) = tenancy
                .signing_secret(&auth.access_key_id)
                .await
                .map_err(refused_key)?;
            sigv4::verify(
                &auth,
                &parts.method,
                &parts.uri,
                &parts.headers,
                body,
                &secret,
                SystemTime::now(),
            )
            .map_err(|e| LambdaError::new(Exception::InvalidSignature, e.to_string()))?;
            tenant
        }
    };
    if let Err(wait) = tenancy.check_rate(&tenant).await {
        let quotas = tenancy.quotas(&tenant).await;
        let mut e = LambdaError::new(
            Exception::TooManyRequests,
            format!(
                "request rate over the limit of {} per second (burst {}): retry after {} ms",
                quotas.requests_per_second,
                quotas.request_burst,
                wait.as_millis()
            ),
        );
        e.retry_after = Some(wait);
        return Err(e);
    }
    Ok(tenant)
}

/// A key that cannot sign: unknown or revoked (the client's credentials are wrong), or known
/// but without a secret the host can check a signature with (the message says why).
fn refused_key(e: crate::tenancy::Error) -> LambdaError {
    use crate::tenancy::Error as E;
    match e {
        E::UnknownAccessKey(_) | E::BadKey | E::MissingKey | E::KeyNotFound => LambdaError::new(
            Exception::UnrecognizedClient,
            "The security token included in the request is invalid: no such key (or it was \
             revoked)",
        ),
        E::Store(e) => e.into(),
        // Known but unable to sign (made before SigV4 support, or sealed under another key).
        other => LambdaError::new(Exception::AccessDenied, other.to_string()),
    }
}
