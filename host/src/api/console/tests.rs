//! The console's routes: the shell for every page path, the assets with their types and cache
//! headers, and the security headers on all of them.

use super::{ASSET_CACHE, Console, SECURITY_POLICY, SHELL_CACHE, routes};
use crate::api::extension::ConsoleScript;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt as _;

const EXTRA: ConsoleScript = ConsoleScript {
    name: "extra.js",
    source: "Aegis.page({name: 'extra'});",
};

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn get(router: &Router, path: &str) -> Answer {
    let response = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("answer");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).expect("text"),
    }
}

fn header(answer: &Answer, name: header::HeaderName) -> &str {
    answer
        .headers
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test]
async fn every_page_path_answers_the_shell_uncached() {
    let router = routes(&[EXTRA]);
    for path in [
        "/ui/",
        "/ui/executions",
        "/ui/executions/ex_123",
        "/ui/events",
        "/ui/approvals/ex_1",
    ] {
        let answer = get(&router, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(
            header(&answer, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert_eq!(header(&answer, header::CACHE_CONTROL), SHELL_CACHE);
        assert_eq!(
            header(&answer, header::CONTENT_SECURITY_POLICY),
            SECURITY_POLICY
        );
        assert_eq!(header(&answer, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert!(answer.body.starts_with("<!doctype html>"), "{path}");
    }
    let bare = get(&router, "/ui").await;
    assert_eq!(bare.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header(&bare, header::LOCATION), "/ui/");
}

#[tokio::test]
async fn the_shell_names_each_asset_by_its_digest_and_each_is_served_with_its_type() {
    let console = Console::new(&[EXTRA]);
    let router = routes(&[EXTRA]);
    let shell = get(&router, "/ui/").await.body;
    assert!(
        !shell.contains("{{"),
        "a placeholder left in the shell: {shell}"
    );
    for (name, content_type, starts) in [
        ("console.css", "text/css; charset=utf-8", "/*"),
        ("console.js", "text/javascript; charset=utf-8", "//"),
        ("extra.js", "text/javascript; charset=utf-8", "Aegis.page"),
    ] {
        let path = format!("/ui/assets/{}/{name}", console.tag);
        assert!(shell.contains(&format!("\"{path}\"")), "{name} in {shell}");
        let answer = get(&router, &path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(header(&answer, header::CONTENT_TYPE), content_type);
        assert_eq!(header(&answer, header::CACHE_CONTROL), ASSET_CACHE);
        assert!(answer.body.starts_with(starts), "{name}");
    }
    // The extension's script comes after the console's, which defines what it calls.
    let own = shell.find("console.js").expect("console.js");
    let extra = shell.find("extra.js").expect("extra.js");
    assert!(own < extra);
    // Another build's URL still gets the file, but not for keeps.
    let stale = get(&router, "/ui/assets/000000000000/console.js").await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(header(&stale, header::CACHE_CONTROL), SHELL_CACHE);
}

#[tokio::test]
async fn other_extensions_give_other_asset_urls() {
    assert_ne!(Console::new(&[]).tag, Console::new(&[EXTRA]).tag);
    let shell = get(&routes(&[]), "/ui/").await.body;
    assert!(!shell.contains("extra.js"));
}

#[tokio::test]
async fn unknown_files_are_json_404s_not_the_shell() {
    let router = routes(&[]);
    let tag = Console::new(&[]).tag;
    for path in [
        format!("/ui/assets/{tag}/nope.js"),
        format!("/ui/assets/{tag}/../console.js"),
        "/ui/assets/console.js".to_string(),
    ] {
        let answer = get(&router, &path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(header(&answer, header::CONTENT_TYPE), "application/json");
        assert!(answer.body.contains("route_not_found"), "{}", answer.body);
    }
}
