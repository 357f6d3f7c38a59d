//! The small HTTP client the commands share: where the host is, which key to send, and the
//! one place an answer becomes either JSON or a [`Failure`] of the right class.
//!
//! It reads the API's answers as plain JSON (`serde_json::Value`), not through the server's
//! own types: the CLI is a client like any other, talks to hosts of other versions, and so
//! knows of the wire shapes only the fields it shows.

use super::exit::{Class, Failure, Outcome};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use std::time::Duration;

/// The URL of a host started with the default configuration (`listen = 127.0.0.1:8080`).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// How long to wait for a connection before calling the host unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one ordinary request may take. Long-polls ask for less than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an upload may take: the host compiles the component before it answers.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(900);

/// Where the host is and how to print: the flags every tenant command takes.
#[derive(clap::Args, Clone, Debug)]
pub struct Connection {
    /// The host's base URL.
    #[arg(long, env = "AEGIS_URL", default_value = DEFAULT_URL, global = true)]
    pub url: String,
    /// A tenant's API key, sent as a bearer token (a host without an admin key needs none).
    #[arg(long, env = "AEGIS_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Where the host is and the admin key: the flags of `aegis tenants`.
#[derive(clap::Args, Clone, Debug)]
pub struct AdminConnection {
    /// The host's base URL.
    #[arg(long, env = "AEGIS_URL", default_value = DEFAULT_URL, global = true)]
    pub url: String,
    /// The host's admin key (its `admin_key` setting).
    #[arg(long, env = "AEGIS_ADMIN_KEY", hide_env_values = true, global = true)]
    pub admin_key: Option<String>,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A successful answer: its status (201 and 200 can mean different things) and its JSON.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

/// A request body.
pub enum Body {
    None,
    Json(Value),
    /// A component's bytes.
    Wasm(Vec<u8>),
}

/// A client of one host with one key.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    key: Option<String>,
}

impl Client {
    /// A client of the host at `url`, sending `key` (if any) as a bearer token.
    ///
    /// # Errors
    /// A usage failure when `url` is not an http(s) URL.
    pub fn new(url: &str, key: Option<&str>) -> Outcome<Client> {
        let base = parse_base(url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("aegis-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::local(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            key: key.filter(|k| !k.is_empty()).map(str::to_string),
        })
    }

    /// The client of a [`Connection`].
    ///
    /// # Errors
    /// As [`Client::new`].
    pub fn of(conn: &Connection) -> Outcome<Client> {
        Client::new(&conn.url, conn.api_key.as_deref())
    }

    /// The host's base URL, for messages.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The URL of the path made of `segments` (each percent-encoded as one segment, so an id
    /// cannot reach another route) under the base URL, with `query`.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().expect("an http(s) URL has a path");
            path.pop_if_empty();
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (k, v.as_str())));
        }
        url
    }

    /// `GET` the path `segments` with `query`; the answer's JSON.
    ///
    /// # Errors
    /// The failure of the request, classed (see [`Client::send`]).
    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> Outcome<Value> {
        Ok(self
            .send(Method::GET, segments, query, Body::None)
            .await?
            .body)
    }

    /// `POST` `body` to the path `segments`.
    ///
    /// # Errors
    /// As [`Client::send`].
    pub async fn post(&self, segments: &[&str], body: Body) -> Outcome<Answer> {
        self.send(Method::POST, segments, &[], body).await
    }

    /// Sends one request and reads its answer: a 2xx answer's JSON, or the [`Failure`] its
    /// status and error body stand for; no answer at all is a connection failure naming the
    /// URL.
    ///
    /// # Errors
    /// As said.
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Body,
    ) -> Outcome<Answer> {
        let url = self.url(segments, query);
        let mut request = self.http.request(method, url.clone());
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        request = match body {
            Body::None => request.timeout(REQUEST_TIMEOUT),
            Body::Json(value) => request.json(&value).timeout(REQUEST_TIMEOUT),
            Body::Wasm(bytes) => request
                .header(reqwest::header::CONTENT_TYPE, "application/wasm")
                .body(bytes)
                .timeout(UPLOAD_TIMEOUT),
        };
        let response = request.send().await.map_err(|e| unreachable(&url, &e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| unreachable(&url, &e))?;
        if !status.is_success() {
            return Err(Failure::from_answer(status.as_u16(), &bytes));
        }
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|_| {
                Failure::new(
                    Class::Server,
                    format!(
                        "{url} answered HTTP {} with something that is not JSON: is it an \
                         Aegis host?",
                        status.as_u16()
                    ),
                )
            })?
        };
        Ok(Answer { status, body })
    }
}

/// `raw` as a base URL, or a usage failure that says what is wrong with it.
fn parse_base(raw: &str) -> Outcome<Url> {
    let url =
        Url::parse(raw).map_err(|e| Failure::usage(format!("--url {raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Failure::usage(format!(
            "--url {raw:?} must be an http:// or https:// URL"
        )));
    }
    Ok(url)
}

/// The failure of a request that got no (complete) answer.
fn unreachable(url: &Url, e: &reqwest::Error) -> Failure {
    let mut host = url.clone();
    host.set_path("");
    host.set_query(None);
    let what = if e.is_timeout() {
        "the request timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "the request failed".to_string()
    };
    // reqwest's own message is short; its sources say why (refused, DNS, TLS).
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    let cause = if cause.is_empty() {
        e.to_string()
    } else {
        cause
    };
    Failure::new(
        Class::Connection,
        format!("{what} to the host at {host}: {cause} (set --url or AEGIS_URL)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_joined_under_the_base_and_ids_stay_one_segment() {
        let c = Client::new("http://127.0.0.1:8080", None).unwrap();
        assert_eq!(
            c.url(&["v1", "executions", "ex_1", "history"], &[])
                .as_str(),
            "http://127.0.0.1:8080/v1/executions/ex_1/history"
        );
        // A base behind a proxy prefix keeps its prefix, with or without the slash.
        for base in ["https://h.example/aegis", "https://h.example/aegis/"] {
            let c = Client::new(base, None).unwrap();
            assert_eq!(
                c.url(&["v1", "tenant"], &[]).as_str(),
                "https://h.example/aegis/v1/tenant"
            );
        }
        // An id cannot climb out of its segment or add a query.
        let c = Client::new("https://h.example/aegis", None).unwrap();
        let url = c.url(&["v1", "executions", "../admin?x=1"], &[]);
        assert_eq!(url.path(), "/aegis/v1/executions/..%2Fadmin%3Fx=1");
        assert_eq!(url.query(), None);
        let url = c.url(
            &["v1", "executions"],
            &[("status", "RUNNING".into()), ("cursor", "a&b".into())],
        );
        assert_eq!(url.query(), Some("status=RUNNING&cursor=a%26b"));
    }

    #[test]
    fn a_url_that_is_not_http_is_a_usage_failure() {
        for bad in ["127.0.0.1:8080", "ftp://h/", "not a url", "mailto:a@b"] {
            let err = Client::new(bad, None).err().expect(bad);
            assert_eq!(err.class, Class::Usage, "{bad}");
            assert!(err.message.contains("--url"), "{}", err.message);
        }
    }

    #[test]
    fn an_empty_key_is_no_key() {
        let c = Client::new(DEFAULT_URL, Some("")).unwrap();
        assert!(c.key.is_none());
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connection_failure_naming_the_url() {
        // A port that was free a moment ago: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = Client::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
        let err = c.get(&["v1", "tenant"], &[]).await.unwrap_err();
        assert_eq!(err.class, Class::Connection);
        assert!(
            err.message
                .contains(&format!("to the host at http://127.0.0.1:{port}/")),
            "{}",
            err.message
        );
    }
}
