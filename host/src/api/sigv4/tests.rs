use super::*;
use http::{HeaderName, HeaderValue};

const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// The AWS suite's cases this verifier must accept (see `sigv4_fixtures/aws/README.md`).
const AWS_CASES: &[&str] = &[
    "get-vanilla",
    "get-vanilla-query",
    "get-vanilla-empty-query-key",
    "get-vanilla-query-order-key-case",
    "get-vanilla-query-order-encoded",
    "get-vanilla-query-unreserved",
    "get-vanilla-utf8-query",
    "get-vanilla-with-session-token",
    "get-header-key-duplicate",
    "get-header-value-order",
    "get-header-value-trim",
    "get-unreserved",
    "get-relative-normalized",
    "get-relative-relative-normalized",
    "get-slash-normalized",
    "get-slash-dot-slash-normalized",
    "get-slash-pointless-dot-normalized",
    "get-slashes-normalized",
    "post-vanilla",
    "post-vanilla-query",
    "post-vanilla-empty-query-value",
    "post-header-key-case",
    "post-header-key-sort",
    "post-header-value-case",
    "post-sts-header-after",
    "post-sts-header-before",
    "post-x-www-form-urlencoded",
    "post-x-www-form-urlencoded-parameters",
];

struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/api/sigv4_fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A request in the suite's text form, as a server receives it: a request target with a raw
/// space or UTF-8 byte arrives percent-encoded, as a client sends it.
fn raw_request(text: &str) -> Request {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let mut request_line = lines.next().unwrap().split(' ');
    let method = Method::from_bytes(request_line.next().unwrap().as_bytes()).unwrap();
    let mut target = String::new();
    for &b in request_line.next().unwrap().as_bytes() {
        if b.is_ascii_graphic() {
            target.push(b as char);
        } else {
            target.push_str(&format!("%{b:02X}"));
        }
    }
    let mut headers = HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim_start()).unwrap(),
        );
    }
    Request {
        method,
        uri: target.parse().unwrap(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

fn at(amz_date: &str) -> SystemTime {
    parse_amz_date(amz_date).unwrap()
}

fn canonical(r: &Request, auth: &Authorization) -> String {
    let hash = payload_hash(&r.headers, &r.body).unwrap();
    let bytes = canonical_request(&r.method, &r.uri, &r.headers, &auth.signed_headers, &hash);
    String::from_utf8(bytes.unwrap()).unwrap()
}

fn verify_request(
    r: &Request,
    service: &str,
    secret: &str,
    now: SystemTime,
) -> Result<(), SigError> {
    let auth = parse(&r.headers)?.expect("signed");
    verify_for(
        service, &auth, &r.method, &r.uri, &r.headers, &r.body, secret, now,
    )
}

#[test]
fn aws_test_suite_requests_verify() {
    let now = at("20150830T123600Z");
    for case in AWS_CASES {
        let r = raw_request(&fixture(&format!("aws/{case}.txt")));
        let auth = parse(&r.headers).unwrap().expect("signed");
        assert_eq!(auth.access_key_id, "AKIDEXAMPLE", "{case}");
        assert_eq!(
            canonical(&r, &auth),
            fixture(&format!("aws/{case}.canonical.txt")),
            "{case}: canonical request"
        );
        assert_eq!(
            verify_request(&r, "service", AWS_SECRET, now),
            Ok(()),
            "{case}"
        );
        assert_eq!(
            verify_request(
                &r,
                "service",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ",
                now
            ),
            Err(SigError::Mismatch),
            "{case}: another secret"
        );
    }
}

#[test]
fn the_suite_s_lambda_request_verifies_with_its_double_encoded_path() {
    let r = raw_request(&fixture("aws/double-url-encode.txt"));
    let auth = parse(&r.headers).unwrap().unwrap();
    let canonical = canonical(&r, &auth);
    assert_eq!(canonical, fixture("aws/double-url-encode.canonical.txt"));
    assert!(canonical.contains("arn%253Aaws%253Alambda"));
    let now = at("20210511T154045Z");
    assert_eq!(
        verify(
            &auth, &r.method, &r.uri, &r.headers, &r.body, AWS_SECRET, now
        ),
        Ok(())
    );
}

#[test]
fn a_signature_for_another_service_is_refused() {
    let r = raw_request(&fixture("aws/get-vanilla.txt"));
    let auth = parse(&r.headers).unwrap().unwrap();
    let err = verify(
        &auth,
        &r.method,
        &r.uri,
        &r.headers,
        &r.body,
        AWS_SECRET,
        at("20150830T123600Z"),
    )
    .unwrap_err();
    assert_eq!(
        err,
        SigError::WrongService {
            expected: "lambda".into(),
            actual: "service".into()
        }
    );
}

/// A request boto3's `lambda` client signed (`tests/lambda/sign_fixture.py`).
struct Boto3 {
    request: Request,
    secret: String,
    now: SystemTime,
    canonical_request: String,
}

fn boto3(name: &str) -> Boto3 {
    let f: serde_json::Value = serde_json::from_str(&fixture(name)).unwrap();
    let s = |k: &str| f[k].as_str().unwrap().to_string();
    let url: Uri = s("url").parse().unwrap();
    let mut headers = HeaderMap::new();
    for pair in f["headers"].as_array().unwrap() {
        headers.append(
            HeaderName::from_bytes(pair[0].as_str().unwrap().as_bytes()).unwrap(),
            HeaderValue::from_str(pair[1].as_str().unwrap()).unwrap(),
        );
    }
    Boto3 {
        request: Request {
            method: Method::from_bytes(s("method").as_bytes()).unwrap(),
            // What the server reads from the request line: the origin form.
            uri: url.path_and_query().unwrap().as_str().parse().unwrap(),
            headers,
            body: s("body").into_bytes(),
        },
        secret: s("secret_access_key"),
        now: at(&s("time")),
        canonical_request: s("canonical_request"),
    }
}

const BOTO3: &[&str] = &[
    "boto3_get_durable_execution_history.json",
    "boto3_invoke.json",
];

fn check(b: &Boto3, secret: &str, now: SystemTime) -> Result<(), SigError> {
    verify_request(&b.request, SERVICE, secret, now)
}

#[test]
fn boto3_signed_requests_verify_and_match_botocore_s_canonical_request() {
    for name in BOTO3 {
        let b = boto3(name);
        let auth = parse(&b.request.headers).unwrap().unwrap();
        assert_eq!(auth.access_key_id, "key_0123456789abcdef");
        assert_eq!(auth.service, "lambda");
        assert_eq!(canonical(&b.request, &auth), b.canonical_request, "{name}");
        assert_eq!(
            verify(
                &auth,
                &b.request.method,
                &b.request.uri,
                &b.request.headers,
                &b.request.body,
                &b.secret,
                b.now
            ),
            Ok(()),
            "{name}"
        );
        // Within the allowed skew either way, and not past it.
        assert_eq!(check(&b, &b.secret, b.now + MAX_SKEW), Ok(()));
        assert_eq!(check(&b, &b.secret, b.now - MAX_SKEW), Ok(()));
        let late = check(&b, &b.secret, b.now + MAX_SKEW + Duration::from_secs(1));
        assert!(matches!(late, Err(SigError::Skewed { .. })), "{late:?}");
        let early = check(&b, &b.secret, b.now - MAX_SKEW - Duration::from_secs(1));
        assert!(matches!(early, Err(SigError::Skewed { .. })), "{early:?}");
    }
}

#[test]
fn boto3_double_encodes_the_path_it_sends_encoded() {
    let b = boto3("boto3_get_durable_execution_history.json");
    assert!(b.request.uri.path().contains("arn%3Aaws%3Alambda"));
    assert!(b.canonical_request.contains("arn%253Aaws%253Alambda"));
    assert!(
        b.canonical_request
            .contains("%252Fdurable-execution%252Fn1")
    );
    let invoke = boto3("boto3_invoke.json");
    assert!(invoke.canonical_request.contains("\nQualifier=%24LATEST\n"));
}

#[test]
fn a_wrong_secret_or_a_changed_request_is_refused() {
    let b = boto3("boto3_invoke.json");
    let other_key = b
        .secret
        .replace("aeg_0123456789abcdef_0", "aeg_0123456789abcdef_1");
    assert_eq!(check(&b, &other_key, b.now), Err(SigError::Mismatch));

    let mut tampered = boto3("boto3_invoke.json");
    tampered.request.body = br#"{"message": "hello, worle"}"#.to_vec();
    assert_eq!(check(&tampered, &b.secret, b.now), Err(SigError::Mismatch));

    let mut tampered = boto3("boto3_invoke.json");
    tampered.request.uri = "/2015-03-31/functions/other/invocations?Qualifier=%24LATEST"
        .parse()
        .unwrap();
    assert_eq!(check(&tampered, &b.secret, b.now), Err(SigError::Mismatch));

    let mut tampered = boto3("boto3_invoke.json");
    tampered.request.headers.insert(
        "x-amz-durable-execution-name",
        HeaderValue::from_static("n2"),
    );
    assert_eq!(check(&tampered, &b.secret, b.now), Err(SigError::Mismatch));

    // An unsigned header may change: only the signed ones count.
    let mut extra = boto3("boto3_invoke.json");
    extra
        .request
        .headers
        .insert("x-amz-user-agent", HeaderValue::from_static("other"));
    assert_eq!(check(&extra, &b.secret, b.now), Ok(()));
}

#[test]
fn a_content_hash_header_must_be_the_body_s() {
    let b = boto3("boto3_invoke.json");
    let body_hash = hex::encode(Sha256::digest(&b.request.body));
    let mut with_hash = boto3("boto3_invoke.json");
    with_hash
        .request
        .headers
        .insert(CONTENT_SHA256, HeaderValue::from_str(&body_hash).unwrap());
    // Unsigned here, and right: the signature still holds.
    assert_eq!(check(&with_hash, &b.secret, b.now), Ok(()));
    with_hash.request.body = b"{}".to_vec();
    assert_eq!(
        check(&with_hash, &b.secret, b.now),
        Err(SigError::PayloadHash(body_hash))
    );
    let mut unsigned = boto3("boto3_invoke.json");
    unsigned
        .request
        .headers
        .insert(CONTENT_SHA256, HeaderValue::from_static("UNSIGNED-PAYLOAD"));
    assert_eq!(
        check(&unsigned, &b.secret, b.now),
        Err(SigError::PayloadHash("UNSIGNED-PAYLOAD".into()))
    );
}

#[test]
fn the_date_is_required_and_must_be_the_scope_s() {
    let b = boto3("boto3_invoke.json");
    let mut no_date = boto3("boto3_invoke.json");
    no_date.request.headers.remove(AMZ_DATE);
    assert_eq!(
        check(&no_date, &b.secret, b.now),
        Err(SigError::MissingDate)
    );

    let mut bad = boto3("boto3_invoke.json");
    bad.request
        .headers
        .insert(AMZ_DATE, HeaderValue::from_static("2026-12-01T12:36:00Z"));
    assert!(matches!(
        check(&bad, &b.secret, b.now),
        Err(SigError::BadDate(_))
    ));

    // Signed a day later than its scope says.
    let mut next_day = boto3("boto3_invoke.json");
    next_day
        .request
        .headers
        .insert(AMZ_DATE, HeaderValue::from_static("20261202T123600Z"));
    assert_eq!(
        check(&next_day, &b.secret, at("20261202T123600Z")),
        Err(SigError::ScopeDate {
            scope: "20261201".into(),
            amz_date: "20261202T123600Z".into()
        })
    );
}

fn headers_with(authorization: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(authorization).unwrap(),
    );
    h
}

#[test]
fn unsigned_requests_parse_to_none() {
    assert_eq!(parse(&HeaderMap::new()), Ok(None));
    assert_eq!(parse(&headers_with("Bearer aeg_x_y")), Ok(None));
    assert_eq!(
        parse(&headers_with("AWS4-ECDSA-P256-SHA256 Credential=x")),
        Err(SigError::UnsupportedAlgorithm(
            "AWS4-ECDSA-P256-SHA256".into()
        ))
    );
}

#[test]
fn malformed_headers_say_what_is_wrong() {
    let sig = "a".repeat(64);
    let ok = format!(
        "AWS4-HMAC-SHA256 Credential=key_1/20261201/us-east-1/lambda/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature={sig}"
    );
    let auth = parse(&headers_with(&ok)).unwrap().unwrap();
    assert_eq!(
        auth,
        Authorization {
            access_key_id: "key_1".into(),
            date: "20261201".into(),
            region: "us-east-1".into(),
            service: "lambda".into(),
            signed_headers: vec!["host".into(), "x-amz-date".into()],
            signature: sig.clone(),
        }
    );
    let cases = [
        (ok.replace(", Signature=", ", Sig="), "unknown component"),
        (
            ok.replace(&format!(", Signature={sig}"), ""),
            "no Signature",
        ),
        (ok.replace("/aws4_request", "/aws5_request"), "aws4_request"),
        (ok.replace("key_1/", ""), "Credential is not"),
        (ok.replace("20261201", "2026-12-1"), "not yyyymmdd"),
        (ok.replace("host;", "Host;"), "lowercase"),
        (ok.replace("host;", ""), "must include host"),
        (ok.replace(&sig, "abc"), "64 lowercase hex"),
        (format!("{ok}, Signature={sig}"), "appears twice"),
        (ok.replace("SHA256 ", "SHA256"), "no space after"),
    ];
    for (header, expected) in cases {
        match parse(&headers_with(&header)) {
            Err(e @ SigError::Malformed(_)) => {
                assert!(e.to_string().contains(expected), "{header}: {e}");
            }
            other => panic!("{header}: {other:?}"),
        }
    }
}

#[test]
fn canonical_parts_follow_botocore() {
    assert_eq!(canonical_uri(""), "/");
    assert_eq!(canonical_uri("/a/./b/../c//d/"), "/a/c/d/");
    assert_eq!(canonical_uri("/f/arn%3Ax%2Fy"), "/f/arn%253Ax%252Fy");
    assert_eq!(canonical_uri("/a b/é"), "/a%20b/%C3%A9");
    assert_eq!(canonical_query(""), "");
    assert_eq!(canonical_query("b=2&a=3&a=1&c"), "a=1&a=3&b=2&c=");
    assert_eq!(canonical_query("q=a+b%2Bc%7e%zz"), "q=a%2Bb%2Bc~%25zz");
    let mut out = Vec::new();
    trim_collapse(b"  a   b \t c  ", &mut out);
    assert_eq!(out, b"a b c");
}
