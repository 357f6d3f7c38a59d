use super::*;
use crate::agents::{AgentConfig, Agents, Endpoint, Protocol};
use crate::ids::CallbackId;
use crate::journal::Dispatch;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

// The credentials, scope and time of the AWS SigV4 test suite.
const SUITE_KEY: &str = "AKIDEXAMPLE";
const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn suite_time() -> SystemTime {
    // 2015-08-30T12:36:00Z
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
}

fn suite_authorization(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    token: Option<&str>,
) -> String {
    let credentials = AwsCredentials {
        access_key_id: SUITE_KEY.into(),
        secret_access_key: SUITE_SECRET.into(),
        session_token: token.map(str::to_owned),
    };
    let signer = Signer {
        credentials: &credentials,
        region: "us-east-1",
        service: "service",
    };
    let signed = signer
        .sign(method, url, headers, body, suite_time())
        .unwrap();
    let find = |name: &str| {
        signed
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(find("x-amz-date").as_deref(), Some("20150830T123600Z"));
    assert_eq!(find("x-amz-security-token").as_deref(), token);
    find("authorization").expect("an authorization header")
}

/// `aws-sig-v4-test-suite/get-vanilla/get-vanilla.authz`.
#[test]
fn sigv4_suite_get_vanilla() {
    assert_eq!(
        suite_authorization(
            "GET",
            "https://example.amazonaws.com/",
            &[("host", "example.amazonaws.com")],
            b"",
            None,
        ),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}

/// `aws-sig-v4-test-suite/post-vanilla-query/post-vanilla-query.authz`.
#[test]
fn sigv4_suite_post_vanilla_query() {
    assert_eq!(
        suite_authorization(
            "POST",
            "https://example.amazonaws.com/?Param1=value1",
            &[("host", "example.amazonaws.com")],
            b"",
            None,
        ),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"
    );
}

/// `aws-sig-v4-test-suite/post-x-www-form-urlencoded/post-x-www-form-urlencoded.authz`:
/// a signed body and a signed content type.
#[test]
fn sigv4_suite_post_x_www_form_urlencoded() {
    assert_eq!(
        suite_authorization(
            "POST",
            "https://example.amazonaws.com/",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("host", "example.amazonaws.com"),
            ],
            b"Param1=value1",
            None,
        ),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, \
         Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
    );
}

/// `v4/get-vanilla-with-session-token` of the AWS signing test suite (the CRT edition): the
/// session token is a signed header.
#[test]
fn sigv4_suite_get_vanilla_with_session_token() {
    assert_eq!(
        suite_authorization(
            "GET",
            "https://example.amazonaws.com/",
            &[("host", "example.amazonaws.com")],
            b"",
            Some("6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"),
        ),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date;x-amz-security-token, \
         Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
    );
}

#[test]
fn the_secret_is_redacted() {
    let c = AwsCredentials {
        access_key_id: "AKID".into(),
        secret_access_key: "secret".into(),
        session_token: Some("token".into()),
    };
    let shown = format!("{c:?}");
    assert!(shown.contains("AKID"), "{shown}");
    assert!(
        !shown.contains("\"secret\"") && !shown.contains("\"token\""),
        "{shown}"
    );
}

const ARN: &str = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/researcher-AbC123";
const ENCODED_PATH: &str = "/runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fresearcher-AbC123/invocations";

fn bedrock_endpoint(url: &str) -> Endpoint {
    Endpoint {
        url: url.into(),
        protocol: Protocol::Bedrock,
        agent_runtime_arn: Some(ARN.into()),
        ..Endpoint::default()
    }
}

#[test]
fn target_defaults_come_from_the_arn() {
    let t = Target::from_endpoint(&bedrock_endpoint("")).unwrap();
    assert_eq!(t.region, "us-east-1");
    assert_eq!(t.qualifier, "DEFAULT");
    assert_eq!(
        t.invocation_url(),
        format!(
            "https://bedrock-agentcore.us-east-1.amazonaws.com{ENCODED_PATH}?qualifier=DEFAULT"
        )
    );
    let t = Target::from_endpoint(&Endpoint {
        region: Some("eu-central-1".into()),
        qualifier: Some("prod".into()),
        ..bedrock_endpoint("http://127.0.0.1:9000/")
    })
    .unwrap();
    assert_eq!(
        t.invocation_url(),
        format!("http://127.0.0.1:9000{ENCODED_PATH}?qualifier=prod")
    );
    let err = Target::from_endpoint(&Endpoint {
        agent_runtime_arn: None,
        ..bedrock_endpoint("")
    })
    .unwrap_err();
    assert!(err.contains("agent_runtime_arn"), "{err}");
    let err = Target::from_endpoint(&Endpoint {
        agent_runtime_arn: Some("researcher".into()),
        ..bedrock_endpoint("")
    })
    .unwrap_err();
    assert!(err.contains("no region"), "{err}");
}

#[test]
fn session_ids_fit_agentcore_and_hide_the_callback_id() {
    let id = CallbackId::generate();
    let s = session_id(id.as_str());
    assert!((33..=256).contains(&s.len()), "{s}");
    assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    assert!(!s.contains(&id.as_str()[3..]));
    assert_eq!(s, session_id(id.as_str()), "stable across retries");
}

#[test]
fn replies_follow_the_convention() {
    let json = "application/json";
    assert_eq!(
        read_reply(json, br#"{"status":"accepted"}"#),
        Answer::Working
    );
    assert_eq!(
        read_reply(json, br#"{"status":"ACCEPTED","task":"t"}"#),
        Answer::Working
    );
    assert_eq!(
        read_reply(
            json,
            br#"{"status":"SUCCESS","result":{"r":1},"token":"t"}"#
        ),
        Answer::Done(json!({"r": 1}))
    );
    assert!(matches!(
        read_reply(json, br#"{"status":"FAILURE","result":"no corpus"}"#),
        Answer::Failed(e) if e.error_message == "no corpus"
    ));
    // A result that merely has a status of its own is the result.
    let own = json!({"status": "success", "findings": [1]});
    assert_eq!(
        read_reply(json, own.to_string().as_bytes()),
        Answer::Done(own)
    );
    assert_eq!(
        read_reply(json, b"plain words"),
        Answer::Done(json!("plain words"))
    );
    let sse = b"data: \"{\\\"a\\\": \"\n\ndata: \"1}\"\n\n";
    assert_eq!(
        read_reply("text/event-stream", sse),
        Answer::Done(json!({"a": 1}))
    );
    let sse = b"data: {\"a\": 1}\n\n";
    assert_eq!(
        read_reply("text/event-stream; charset=utf-8", sse),
        Answer::Done(json!({"a": 1}))
    );
}

// ---- an independent SigV4 verifier (hmac + sha2, no aws-sigv4), and a server using it ----

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// RFC 3986 encoding as SigV4 defines it, keeping `/` when asked.
fn uri_encode(raw: &[u8], keep_slash: bool) -> String {
    raw.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'_' | b'.' | b'~')
                || (keep_slash && b == b'/')
            {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn percent_decode(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&raw[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Recomputes the signature of a received request with `secret`: the canonical request
/// (path encoded once more, as AWS does for every service but S3), the string to sign, the
/// key chain and the HMAC, step by step.
fn verify(
    method: &str,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    body: &[u8],
    secret: &str,
) -> Result<(), String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(format!("missing {name}"))
    };
    let authorization = header("authorization")?;
    let fields = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let mut credential = "";
    let mut signed_headers = "";
    let mut signature = "";
    for field in fields.split(", ") {
        match field.split_once('=') {
            Some(("Credential", v)) => credential = v,
            Some(("SignedHeaders", v)) => signed_headers = v,
            Some(("Signature", v)) => signature = v,
            _ => return Err(format!("unexpected field {field:?}")),
        }
    }
    let scope_parts: Vec<&str> = credential.splitn(2, '/').collect();
    let [_key_id, scope] = scope_parts[..] else {
        return Err("bad credential".into());
    };
    let [date, region, service, terminator] = scope.split('/').collect::<Vec<_>>()[..] else {
        return Err("bad scope".into());
    };
    if terminator != "aws4_request" {
        return Err("bad scope terminator".into());
    }
    let amz_date = header("x-amz-date")?;
    if !amz_date.starts_with(date) {
        return Err("x-amz-date and the scope disagree".into());
    }
    let canonical_uri = uri_encode(uri.path().as_bytes(), true);
    let mut query: Vec<(String, String)> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| {
                v.to_str()
                    .unwrap_or_default()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(format!("signed header {name} is absent"));
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let canonical_request = format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{}",
        sha256_hex(body)
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date);
    let k_region = hmac(&k_date, region);
    let k_service = hmac(&k_region, service);
    let k_signing = hmac(&k_service, "aws4_request");
    let expected = hex::encode(hmac(&k_signing, &string_to_sign));
    if expected == signature {
        Ok(())
    } else {
        Err("The request signature we calculated does not match the signature you provided.".into())
    }
}

#[test]
fn the_verifier_accepts_the_suite_request() {
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("host", "example.amazonaws.com".parse().unwrap());
    headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
    headers.insert("authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31".parse().unwrap());
    let uri: axum::http::Uri = "/".parse().unwrap();
    assert_eq!(verify("GET", &uri, &headers, b"", SUITE_SECRET), Ok(()));
    assert!(verify("GET", &uri, &headers, b"", "another secret").is_err());
}

const SECRET: &str = "test/secret+key";
const TOKEN: &str = "session-token-example";

#[derive(Clone, Copy)]
enum Mode {
    /// Echo what was received.
    Echo,
    /// Throttle the first request, then accept the task for a later callback.
    ThrottleThenAccept,
}

#[derive(Clone)]
struct FakeAgentCore {
    mode: Mode,
    requests: Arc<AtomicUsize>,
}

async fn agentcore(
    axum::extract::State(fake): axum::extract::State<FakeAgentCore>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let n = fake.requests.fetch_add(1, Ordering::SeqCst);
    let aws_error = |status: u16, kind: &str, message: &str| {
        (
            axum::http::StatusCode::from_u16(status).unwrap(),
            [("x-amzn-errortype", kind.to_string())],
            axum::Json(json!({"message": message})),
        )
            .into_response()
    };
    if let Err(message) = verify(method.as_str(), &uri, &headers, &body, SECRET) {
        return aws_error(403, "InvalidSignatureException", &message);
    }
    let signed = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    for needed in [
        "content-type",
        "host",
        "x-amzn-bedrock-agentcore-runtime-session-id",
        "x-amz-security-token",
    ] {
        if !signed.contains(needed) {
            return aws_error(
                403,
                "AccessDeniedException",
                &format!("{needed} is not signed"),
            );
        }
    }
    if headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok())
        != Some(TOKEN)
    {
        return aws_error(403, "UnrecognizedClientException", "bad security token");
    }
    match fake.mode {
        Mode::ThrottleThenAccept if n == 0 => {
            aws_error(429, "ThrottlingException", "Rate exceeded")
        }
        Mode::ThrottleThenAccept => axum::Json(json!({"status": "accepted"})).into_response(),
        Mode::Echo => {
            let session = headers
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let received: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let key = signed
                .split("Credential=")
                .nth(1)
                .and_then(|c| c.split('/').next());
            axum::Json(json!({
                "path": uri.path(), "query": uri.query(), "session": session, "key": key,
                "accept": headers.get("accept").and_then(|v| v.to_str().ok()),
                "received": received,
            }))
            .into_response()
        }
    }
}

async fn start(mode: Mode) -> (String, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .fallback(agentcore)
        .with_state(FakeAgentCore {
            mode,
            requests: requests.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), requests)
}

fn agents_config(base: &str) -> BTreeMap<String, AgentConfig> {
    let mut config = BTreeMap::new();
    config.insert(
        "researcher".to_string(),
        AgentConfig::Endpoint(bedrock_endpoint(base)),
    );
    config
}

fn agents(base: &str, secret: &str) -> Agents {
    Agents::new(&agents_config(base), "http://aegis.test/".into()).with_aws_credentials(
        AwsCredentials {
            access_key_id: "AKIDTEST".into(),
            secret_access_key: secret.into(),
            session_token: Some(TOKEN.into()),
        },
    )
}

fn task() -> Dispatch {
    Dispatch {
        callback_id: CallbackId::generate(),
        agent: "researcher".into(),
        input: r#"{"topic": "durable execution"}"#.into(),
    }
}

#[tokio::test]
async fn a_signed_invocation_is_verified_and_its_result_returned() {
    let (base, requests) = start(Mode::Echo).await;
    let dispatch = task();
    let id = dispatch.callback_id.as_str().to_string();
    let answer = agents(&base, SECRET).dispatch(&dispatch).await.unwrap();
    let Answer::Done(echo) = answer else {
        panic!("expected a synchronous result, got {answer:?}");
    };
    assert_eq!(echo["path"], ENCODED_PATH);
    assert_eq!(echo["query"], "qualifier=DEFAULT");
    assert_eq!(echo["accept"], "application/json");
    assert_eq!(echo["session"], session_id(&id));
    assert_eq!(
        echo["received"],
        json!({
            "input": {"topic": "durable execution"},
            "callback_url": format!("http://aegis.test/v1/agents/callbacks/{id}"),
            "token": id,
        })
    );
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_with_the_403() {
    let (base, requests) = start(Mode::Echo).await;
    let err = agents(&base, "not the secret")
        .dispatch(&task())
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "Agent.DispatchFailed");
    assert!(
        err.error_message.contains("researcher"),
        "{}",
        err.error_message
    );
    assert!(err.error_message.contains("403"), "{}", err.error_message);
    assert!(
        err.error_message
            .contains("InvalidSignatureException: The request signature we calculated"),
        "{}",
        err.error_message
    );
    assert_eq!(requests.load(Ordering::SeqCst), 1, "a 4xx is not retried");
}

#[tokio::test]
async fn throttling_is_retried_and_an_accepted_task_waits_for_its_callback() {
    let (base, requests) = start(Mode::ThrottleThenAccept).await;
    let answer = agents(&base, SECRET).dispatch(&task()).await.unwrap();
    assert_eq!(answer, Answer::Working);
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_after_retries() {
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = agents(&base, SECRET).dispatch(&task()).await.unwrap_err();
    assert_eq!(err.error_type, "Agent.DispatchFailed");
    assert!(
        err.error_message.contains("after 3 attempts"),
        "{}",
        err.error_message
    );
}

#[tokio::test]
async fn credentials_are_kept_until_shortly_before_they_expire() {
    let fetch = |asked: Arc<AtomicUsize>, expires_in: Option<Duration>| {
        aws_credential_types::credential_fn::provide_credentials_fn(move || {
            let asked = asked.clone();
            async move {
                let n = asked.fetch_add(1, Ordering::SeqCst);
                Ok(Credentials::new(
                    format!("AKID{n}"),
                    SECRET,
                    Some(TOKEN.into()),
                    expires_in.map(|d| SystemTime::now() + d),
                    "test",
                ))
            }
        })
    };
    // An hour to go: asked once, then kept.
    let asked = Arc::new(AtomicUsize::new(0));
    let source =
        CredentialSource::from_provider(fetch(asked.clone(), Some(Duration::from_secs(3600))));
    for _ in 0..3 {
        assert_eq!(source.credentials().await.unwrap().access_key_id, "AKID0");
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    // Keys without an expiry (a file, the environment) are kept too.
    let asked = Arc::new(AtomicUsize::new(0));
    let source = CredentialSource::from_provider(fetch(asked.clone(), None));
    source.credentials().await.unwrap();
    source.credentials().await.unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    // A minute to go, inside the renewal margin: asked again each time.
    let asked = Arc::new(AtomicUsize::new(0));
    let source =
        CredentialSource::from_provider(fetch(asked.clone(), Some(Duration::from_secs(60))));
    assert_eq!(source.credentials().await.unwrap().access_key_id, "AKID0");
    assert_eq!(source.credentials().await.unwrap().access_key_id, "AKID1");
    // A provider with nothing to give fails the dispatch, saying why.
    let source = CredentialSource::from_provider(
        aws_credential_types::credential_fn::provide_credentials_fn(|| async {
            Err(aws_credential_types::provider::error::CredentialsError::not_loaded("no keys here"))
        }),
    );
    let err = source.credentials().await.unwrap_err();
    assert!(err.starts_with("no AWS credentials"), "{err}");
}

#[tokio::test]
// `ProfileFiles` is the name aws-config's builder takes; the type it aliases lives in
// aws-runtime, which the host does not depend on.
#[allow(deprecated)]
async fn a_profile_of_a_credentials_file_signs_the_invocation() {
    use aws_config::profile::ProfileFileCredentialsProvider;
    use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        format!(
            "[aegis-test]\naws_access_key_id = AKIDFROMFILE\naws_secret_access_key = {SECRET}\naws_session_token = {TOKEN}\n"
        ),
    )
    .unwrap();
    let files = ProfileFiles::builder()
        .include_default_config_file(false)
        .include_default_credentials_file(false)
        .with_file(ProfileFileKind::Credentials, &file)
        .build();
    let provider = ProfileFileCredentialsProvider::builder()
        .profile_files(files)
        .profile_name("aegis-test")
        .configure(&crate::aws::provider_config())
        .build();
    let (base, requests) = start(Mode::Echo).await;
    let answer = agents(&base, "unused")
        .with_aws_credential_source(CredentialSource::from_provider(provider))
        .dispatch(&task())
        .await
        .unwrap();
    let Answer::Done(echo) = answer else {
        panic!("expected a synchronous result, got {answer:?}");
    };
    // The fake checked the signature with the file's secret and its session token.
    assert_eq!(echo["key"], "AKIDFROMFILE");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

/// The variable that tells [`default_chain_in_this_process`] where the fake AgentCore is.
const CHILD_AGENTCORE: &str = "AEGIS_TEST_CHILD_AGENTCORE";

/// Runs [`default_chain_in_this_process`] in a child process of this test binary, with
/// `env` (and no other AWS settings): the default chain reads the process environment, which
/// a test must not change in its own process.
fn run_default_chain_child(agentcore: &str, env: &[(&str, String)]) {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "agents::bedrock::tests::default_chain_in_this_process",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_AGENTCORE, agentcore);
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_") {
            child.env_remove(name);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    child
        .env("AWS_CONFIG_FILE", &missing)
        .env("AWS_SHARED_CREDENTIALS_FILE", &missing)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1");
    for (name, value) in env {
        child.env(name, value);
    }
    let out = child.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the child ran no test: {text}");
}

#[test]
#[ignore = "run by the default-chain tests, in a child process with their environment"]
fn default_chain_in_this_process() {
    let base = std::env::var(CHILD_AGENTCORE).expect("started by a default-chain test");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let answer = runtime
        .block_on(Agents::new(&agents_config(&base), "http://aegis.test/".into()).dispatch(&task()))
        .unwrap();
    let Answer::Done(echo) = answer else {
        panic!("expected a synchronous result, got {answer:?}");
    };
    println!("signed with {}", echo["key"]);
}

#[tokio::test]
async fn the_default_chain_reads_a_shared_credentials_file() {
    let (base, requests) = start(Mode::Echo).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        format!(
            "[default]\naws_access_key_id = AKIDSHARED\naws_secret_access_key = {SECRET}\naws_session_token = {TOKEN}\n"
        ),
    )
    .unwrap();
    let file = file.display().to_string();
    tokio::task::spawn_blocking(move || {
        run_default_chain_child(&base, &[("AWS_SHARED_CREDENTIALS_FILE", file)])
    })
    .await
    .unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_default_chain_reads_the_container_credentials_endpoint() {
    // The ECS / EKS Pod Identity endpoint: the SDK allows a loopback address.
    const AUTH: &str = "container-auth-token";
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let endpoint = axum::Router::new().route(
        "/credentials",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let counter = counter.clone();
            async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(AUTH) {
                    return (axum::http::StatusCode::UNAUTHORIZED, axum::Json(json!({})));
                }
                counter.fetch_add(1, Ordering::SeqCst);
                (
                    axum::http::StatusCode::OK,
                    axum::Json(json!({
                        "AccessKeyId": "AKIDCONTAINER",
                        "SecretAccessKey": SECRET,
                        "Token": TOKEN,
                        "Expiration": "2099-01-01T00:00:00Z",
                    })),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/credentials", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, endpoint).await });
    let (base, requests) = start(Mode::Echo).await;
    tokio::task::spawn_blocking(move || {
        run_default_chain_child(
            &base,
            &[
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri),
                ("AWS_CONTAINER_AUTHORIZATION_TOKEN", AUTH.to_string()),
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(served.load(Ordering::SeqCst), 1);
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}
