//! How artifact content is answered, on every route that serves it.
//!
//! The content and its content type are the guest's: a tenant could store HTML with script and
//! send someone a link to it on the API's origin. So an artifact is always an attachment (the
//! browser saves it, never renders it), `nosniff` stops a browser from guessing a more active
//! type than the one given, and `Content-Security-Policy: sandbox` makes it inert even where a
//! client renders it anyway (an opaque origin, no script, no forms, nothing loaded).

use crate::artifacts::attachment;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// Sent with every artifact; see the module doc.
pub const CONTENT_SECURITY_POLICY: &str = "sandbox; default-src 'none'";

/// The response for artifact `key` with `content` of `content_type`. A content type that is not
/// a valid header value (the guest's choice) is served as `application/octet-stream`.
pub fn serve(key: &str, content: Vec<u8>, content_type: &str) -> Response {
    let content_type = HeaderValue::from_str(content_type)
        .ok()
        .filter(|_| plausible_media_type(content_type))
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    let disposition = HeaderValue::from_str(&attachment(key))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
        ],
        content,
    )
        .into_response()
}

/// `type/subtype[; params]` in printable ASCII, at most 255 bytes.
fn plausible_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    value.len() <= 255
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && essence
            .split_once('/')
            .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && !s.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_an_inert_attachment() {
        let response = serve(
            "site/index.html",
            b"<script>1</script>".to_vec(),
            "text/html",
        );
        let h = response.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/html");
        assert_eq!(
            h[header::CONTENT_DISPOSITION],
            "attachment; filename=\"index.html\"; filename*=UTF-8''index.html"
        );
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
    }

    #[test]
    fn a_bad_content_type_is_served_as_bytes() {
        for bad in ["text/html\r\nSet-Cookie: a=b", "html", "", "a/b/c"] {
            let response = serve("k", Vec::new(), bad);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/octet-stream",
                "{bad:?}"
            );
        }
        let response = serve("k", Vec::new(), "text/markdown; charset=utf-8");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/markdown; charset=utf-8"
        );
    }
}
