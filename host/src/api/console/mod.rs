//! The web console at `/ui`: plain HTML, CSS and JavaScript embedded in the binary, so it needs
//! no build step, no CDN and nothing from the network at run time.
//!
//! The console is a client of the REST API like any other: its script calls `/v1/...` with the
//! API key the user gives (kept in the browser's local storage), so it sees exactly what that
//! key's tenant sees; these routes serve only the files and take no key. Every page path under
//! `/ui/` answers the same shell (`index.html`), whose script draws the page the path names
//! (`/ui/executions/<id>`, `/ui/events`...), so a link to a page works when opened cold.
//!
//! Feature modules add pages as a script of their own ([`ConsoleScript`], through their
//! [`super::Extension`]); the shell loads them after the console's script.
//!
//! Assets are served under `/ui/assets/<tag>/<name>`, where the tag is a digest of all of them:
//! a build with other assets has other URLs, so browsers may keep them for a year. The shell
//! itself is `no-cache`. A content security policy lets pages run only these scripts: even if
//! some text slipped into the page as markup, no script of it would run.

use super::extension::ConsoleScript;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::sync::Arc;

const INDEX: &str = include_str!("assets/index.html");
const STYLE: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

/// What every console answer carries: its scripts are the console's own files, nothing loads
/// from elsewhere, and no other site may frame it.
const SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";
/// Assets' URLs change with their content.
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";
/// The shell names the current assets: always asked for again.
const SHELL_CACHE: &str = "no-cache";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// The console's files and the shell that names them.
struct Console {
    assets: Vec<Asset>,
    /// The digest of every asset, in their URLs.
    tag: String,
    /// `index.html` with the assets' URLs filled in.
    shell: String,
}

impl Console {
    fn new(scripts: &[ConsoleScript]) -> Self {
        let mut assets = vec![
            Asset {
                name: "console.css",
                content_type: "text/css; charset=utf-8",
                body: STYLE,
            },
            Asset {
                name: "console.js",
                content_type: "text/javascript; charset=utf-8",
                body: SCRIPT,
            },
        ];
        assets.extend(scripts.iter().map(|s| Asset {
            name: s.name,
            content_type: "text/javascript; charset=utf-8",
            body: s.source,
        }));
        let mut digest = Sha256::new();
        for asset in &assets {
            digest.update(asset.name.as_bytes());
            digest.update([0]);
            digest.update(asset.body.as_bytes());
        }
        let tag = hex::encode(&digest.finalize()[..6]);
        let base = format!("/ui/assets/{tag}");
        let extra: String = scripts
            .iter()
            .map(|s| format!("<script src=\"{base}/{}\" defer></script>\n", s.name))
            .collect();
        let shell = INDEX
            .replace("{{base}}", &base)
            .replace("{{scripts}}\n", &extra);
        Self { assets, tag, shell }
    }
}

/// The console's routes, with the pages `scripts` add.
pub(super) fn routes(scripts: &[ConsoleScript]) -> Router {
    let console = Arc::new(Console::new(scripts));
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(shell))
        .route("/ui/assets/{tag}/{name}", get(asset))
        .route("/ui/{*page}", get(page))
        .with_state(console)
}

fn with_headers(
    content_type: &'static str,
    cache: &'static str,
    body: impl IntoResponse,
) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn shell(State(console): State<Arc<Console>>) -> Response {
    with_headers(
        "text/html; charset=utf-8",
        SHELL_CACHE,
        console.shell.clone(),
    )
}

/// A page of the console: the shell, which draws it. Paths under `assets/` are files only.
async fn page(State(console): State<Arc<Console>>, Path(page): Path<String>) -> Response {
    if page == "assets" || page.starts_with("assets/") {
        return not_found();
    }
    shell(State(console)).await
}

async fn asset(
    State(console): State<Arc<Console>>,
    Path((tag, name)): Path<(String, String)>,
) -> Response {
    match console.assets.iter().find(|a| a.name == name) {
        Some(asset) if tag == console.tag => {
            with_headers(asset.content_type, ASSET_CACHE, asset.body)
        }
        // An older shell's asset: the current content, but not to be kept under that URL.
        Some(asset) => with_headers(asset.content_type, SHELL_CACHE, asset.body),
        None => not_found(),
    }
}

fn not_found() -> Response {
    super::ApiError::not_found(super::Code::RouteNotFound, "no such console file").into_response()
}

#[cfg(test)]
mod tests;
