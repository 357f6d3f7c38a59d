//! AWS Signature Version 4 verification of a request as received: [`parse`] reads the
//! `Authorization: AWS4-HMAC-SHA256 ...` header, [`verify`] recomputes the signature with the
//! caller's secret access key and compares it in constant time. Pure: no I/O, the clock is a
//! parameter. Spec: <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>.
//!
//! **Why the canonical request is built here.** `aws-sigv4` (a dependency) signs requests the SDK
//! is about to send, and cannot be handed the exact request a client signed: it chooses the
//! signed headers itself (adding `x-amz-date`, the session token and the payload hash by its
//! settings) where a verifier must use the client's `SignedHeaders` list, it reads the query
//! with form-urlencoded rules (`+` becomes a space), and its canonical request is not public. So
//! the canonical request is written out here, and the key derivation and the final HMAC are the
//! crate's ([`aws_sigv4::sign::v4::generate_signing_key`], [`calculate_signature`]).
//!
//! The canonical request, as botocore (boto3) and the AWS test suite make it for services other
//! than S3:
//! - **URI**: the path as sent, dot segments and empty segments removed, then every byte other
//!   than `A-Za-z0-9-._~` and `/` percent-encoded. The path a client sends is already encoded,
//!   so this encodes it a second time: boto3's `lambda` client sends `arn%3Aaws%3A...` and signs
//!   `arn%253Aaws%253A...` (the fixture `sigv4_fixtures/boto3_get_durable_execution_history.json`
//!   holds one, with the canonical request botocore signed).
//! - **query**: each `name=value` pair percent-decoded, re-encoded with the same rule (so `+`
//!   is a literal plus, `%2B`), sorted by name and then value.
//! - **headers**: the `SignedHeaders` (lowercase), each one's values in the order received,
//!   trimmed, inner runs of spaces collapsed, joined with commas. `host` must be signed; its
//!   value falls back to the URI's authority when the request has no `Host` header (HTTP/2).
//!   A signed `x-amz-security-token` is signed like any header; its value is not otherwise used
//!   (the host issues no session credentials).
//! - **payload hash**: the SHA-256 of the body. A client may send it as `x-amz-content-sha256`;
//!   that header is then checked against the body (a signature over a header that does not
//!   match the body would let the body be swapped), and `UNSIGNED-PAYLOAD` is refused.
//!
//! The region is not checked (the host has none): it enters the key derivation only. The caller
//! finds the secret by `access_key_id` and must pass the whole body as received.
//!
//! Not supported: presigned URLs (`X-Amz-Signature` in the query), the `Date` header in place of
//! `X-Amz-Date`, chunked (streaming) payload signing, and SigV4a.

use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use http::{HeaderMap, Method, Uri};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

/// The only algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service requests must be signed for.
pub const SERVICE: &str = "lambda";
/// How far the signing time may be from the host's clock, either way (as AWS).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

const AMZ_DATE: &str = "x-amz-date";
const CONTENT_SHA256: &str = "x-amz-content-sha256";

/// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
/// Signature=...` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// The credential scope's date, `yyyymmdd`.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lowercase header names, in the order the client listed them.
    pub signed_headers: Vec<String>,
    /// 64 lowercase hex digits.
    pub signature: String,
}

/// Why a request's signature is refused. Each message says what the client can change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error(
        "malformed Authorization header: {0}; expected `AWS4-HMAC-SHA256 Credential=<access key \
         id>/<yyyymmdd>/<region>/lambda/aws4_request, SignedHeaders=<h1;h2;...>, \
         Signature=<64 hex digits>`"
    )]
    Malformed(String),
    #[error(
        "unsupported signing algorithm {0:?}: sign requests with AWS Signature Version 4 \
         (AWS4-HMAC-SHA256)"
    )]
    UnsupportedAlgorithm(String),
    #[error("missing X-Amz-Date header: a SigV4-signed request carries its signing time in it")]
    MissingDate,
    #[error("invalid X-Amz-Date {0:?}: expected the ISO 8601 basic form yyyymmddThhmmssZ")]
    BadDate(String),
    #[error(
        "signature expired or not yet valid: signed at {signed}, the host's time is {now}; a \
         request must be signed within 15 minutes of the host's clock (check the client's clock)"
    )]
    Skewed { signed: String, now: String },
    #[error(
        "the credential scope date {scope} is not the date of X-Amz-Date ({amz_date}): sign \
         with a scope for the day of the signing time"
    )]
    ScopeDate { scope: String, amz_date: String },
    #[error(
        "the credential scope names the service {actual:?}: sign requests for the service \
         {expected:?}"
    )]
    WrongService { expected: String, actual: String },
    #[error("the header {0:?} is listed in SignedHeaders but the request does not have it")]
    MissingSignedHeader(String),
    #[error(
        "x-amz-content-sha256 {0:?} is not the SHA-256 of the body: send the body's hash (or \
         leave the header out); unsigned and streaming payloads are not accepted"
    )]
    PayloadHash(String),
    #[error(
        "the request signature we calculated does not match the signature you provided: check \
         the secret access key and the signing method"
    )]
    Mismatch,
}

/// The `Authorization` header's SigV4 parts, or `None` when the request is not SigV4-signed
/// (no `Authorization` header, or another scheme such as `Bearer`).
///
/// # Errors
/// [`SigError::Malformed`] for a SigV4 header that does not parse, or several `Authorization`
/// headers; [`SigError::UnsupportedAlgorithm`] for another AWS algorithm (SigV4a, SigV2).
pub fn parse(headers: &HeaderMap) -> Result<Option<Authorization>, SigError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| malformed("not ASCII"))?.trim();
    let (scheme, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if scheme != ALGORITHM {
        if scheme.starts_with(ALGORITHM) {
            return Err(malformed("no space after AWS4-HMAC-SHA256"));
        }
        // `AWS4-ECDSA-P256-SHA256` (SigV4a), `AWS <id>:<sig>` (SigV2): signed, but not so that
        // this host can check; anything else is not an AWS signature at all.
        if scheme.starts_with("AWS4-") || scheme == "AWS" {
            return Err(SigError::UnsupportedAlgorithm(
                scheme.chars().take(40).collect(),
            ));
        }
        return Ok(None);
    }
    if values.next().is_some() {
        return Err(malformed("more than one Authorization header"));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| malformed(format!("{part:?} is not name=value")))?;
        let slot = match name.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            other => return Err(malformed(format!("unknown component {other:?}"))),
        };
        if slot.replace(value.trim()).is_some() {
            return Err(malformed(format!("{} appears twice", name.trim())));
        }
    }
    let credential = credential.ok_or_else(|| malformed("no Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| malformed("no SignedHeaders"))?;
    let signature = signature.ok_or_else(|| malformed("no Signature"))?;

    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err(malformed(
            "Credential is not <access key id>/<date>/<region>/<service>/aws4_request",
        ));
    };
    if terminator != "aws4_request" {
        return Err(malformed("Credential does not end with /aws4_request"));
    }
    if access_key_id.is_empty() || region.is_empty() || service.is_empty() {
        return Err(malformed("Credential has an empty part"));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(format!(
            "the credential scope date {date:?} is not yyyymmdd"
        )));
    }
    let signed_headers: Vec<String> = signed_headers.split(';').map(str::to_string).collect();
    if let Some(bad) = signed_headers.iter().find(|h| {
        h.is_empty()
            || h.bytes()
                .any(|b| b.is_ascii_uppercase() || b.is_ascii_whitespace())
    }) {
        return Err(malformed(format!(
            "SignedHeaders has {bad:?}: list lowercase header names separated by `;`"
        )));
    }
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(malformed("SignedHeaders must include host"));
    }
    if signed_headers.iter().any(|h| h == "authorization") {
        return Err(malformed("SignedHeaders cannot include authorization"));
    }
    if signature.len() != 64
        || !signature
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(malformed("Signature is not 64 lowercase hex digits"));
    }
    Ok(Some(Authorization {
        access_key_id: access_key_id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers,
        signature: signature.to_string(),
    }))
}

/// Recomputes the signature over the request as received (`uri`: the path and query still
/// percent-encoded, as on the request line) and compares it with `auth.signature` in constant
/// time. Checks first that the scope is for [`SERVICE`], that the scope date is X-Amz-Date's
/// and that X-Amz-Date is within [`MAX_SKEW`] of `now`.
///
/// # Errors
/// The first check that fails, [`SigError::Mismatch`] last.
pub fn verify(
    auth: &Authorization,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    secret_access_key: &str,
    now: SystemTime,
) -> Result<(), SigError> {
    verify_for(
        SERVICE,
        auth,
        method,
        uri,
        headers,
        body,
        secret_access_key,
        now,
    )
}

/// [`verify`] for requests signed for `service` (AWS's test suite signs for `service`).
#[allow(clippy::too_many_arguments)]
fn verify_for(
    service: &str,
    auth: &Authorization,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    secret_access_key: &str,
    now: SystemTime,
) -> Result<(), SigError> {
    if auth.service != service {
        return Err(SigError::WrongService {
            expected: service.to_string(),
            actual: auth.service.clone(),
        });
    }
    let amz_date = headers
        .get(AMZ_DATE)
        .ok_or(SigError::MissingDate)?
        .to_str()
        .map_err(|_| SigError::BadDate("(not ASCII)".into()))?
        .trim();
    let signed_at = parse_amz_date(amz_date)?;
    if amz_date[..8] != auth.date {
        return Err(SigError::ScopeDate {
            scope: auth.date.clone(),
            amz_date: amz_date.to_string(),
        });
    }
    let skew = now
        .duration_since(signed_at)
        .unwrap_or_else(|e| e.duration());
    if skew > MAX_SKEW {
        return Err(SigError::Skewed {
            signed: amz_date.to_string(),
            now: format_amz_date(now),
        });
    }
    let payload_hash = payload_hash(headers, body)?;
    let canonical = canonical_request(method, uri, headers, &auth.signed_headers, &payload_hash)?;
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(&canonical))
    );
    // The scope date is X-Amz-Date's (checked above), so the signing time gives the key's date.
    let key = generate_signing_key(secret_access_key, signed_at, &auth.region, &auth.service);
    let expected = calculate_signature(key, string_to_sign.as_bytes());
    if constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        Ok(())
    } else {
        Err(SigError::Mismatch)
    }
}

fn malformed(why: impl Into<String>) -> SigError {
    SigError::Malformed(why.into())
}

fn parse_amz_date(value: &str) -> Result<SystemTime, SigError> {
    let bad = || SigError::BadDate(value.chars().take(40).collect());
    let b = value.as_bytes();
    if b.len() != 16
        || b[8] != b'T'
        || b[15] != b'Z'
        || !b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| value[r].parse::<u16>().map_err(|_| bad());
    let month = time::Month::try_from(num(4..6)? as u8).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(i32::from(num(0..4)?), month, num(6..8)? as u8)
        .map_err(|_| bad())?;
    let at = date
        .with_hms(num(9..11)? as u8, num(11..13)? as u8, num(13..15)? as u8)
        .map_err(|_| bad())?;
    Ok(at.assume_utc().into())
}

fn format_amz_date(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// The body's SHA-256 (hex), which `x-amz-content-sha256`, when sent, must equal.
fn payload_hash(headers: &HeaderMap, body: &[u8]) -> Result<String, SigError> {
    let actual = hex::encode(Sha256::digest(body));
    match headers.get(CONTENT_SHA256) {
        None => Ok(actual),
        Some(sent) => {
            let sent = String::from_utf8_lossy(sent.as_bytes()).trim().to_string();
            if sent.eq_ignore_ascii_case(&actual) {
                Ok(sent)
            } else {
                Err(SigError::PayloadHash(sent.chars().take(80).collect()))
            }
        }
    }
}

/// The canonical request (bytes: header values need not be UTF-8).
fn canonical_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    signed_headers: &[String],
    payload_hash: &str,
) -> Result<Vec<u8>, SigError> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(uri.path()).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(uri.query().unwrap_or("")).as_bytes());
    out.push(b'\n');
    for name in signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let mut values = headers.get_all(name.as_str()).iter().peekable();
        if values.peek().is_none() {
            match (name.as_str(), uri.authority()) {
                ("host", Some(authority)) => out.extend_from_slice(authority.as_str().as_bytes()),
                _ => return Err(SigError::MissingSignedHeader(name.clone())),
            }
        }
        for (i, value) in values.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            trim_collapse(value.as_bytes(), &mut out);
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    Ok(out)
}

/// A header value with its ends trimmed and inner runs of spaces (and tabs) made one space.
fn trim_collapse(value: &[u8], out: &mut Vec<u8>) {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let mut pending_space = false;
    let start = out.len();
    for b in value {
        if blank(b) {
            pending_space = out.len() > start;
        } else {
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            out.push(*b);
        }
    }
}

/// The path as sent, normalized like botocore (dot and empty segments removed), each byte other
/// than unreserved characters and `/` percent-encoded (so `%3A` becomes `%253A`).
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut normalized = String::with_capacity(path.len() + 1);
    normalized.push('/');
    normalized.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normalized.push('/');
    }
    let mut out = String::with_capacity(normalized.len() + 16);
    encode_into(normalized.as_bytes(), true, &mut out);
    out
}

/// The query's pairs decoded, re-encoded per RFC 3986, sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let mut n = String::new();
            let mut v = String::new();
            encode_into(&percent_decode(name), false, &mut n);
            encode_into(&percent_decode(value), false, &mut v);
            (n, v)
        })
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(query.len() + 16);
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

fn encode_into(bytes: &[u8], keep_slash: bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
}

/// `%XX` decoded (RFC 3986: `+` stays a plus); a `%` not followed by two hex digits stays.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
