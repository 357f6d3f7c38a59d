// SCRATCH: replaced by the i12-sigv4 branch; never committed.
#[derive(Debug)]
pub struct Authorization {
    pub access_key_id: String,
}
#[derive(Debug, thiserror::Error)]
#[error("sig")]
pub struct SigError;
pub fn parse(_h: &axum::http::HeaderMap) -> Result<Option<Authorization>, SigError> {
    Ok(None)
}
pub fn verify(
    _a: &Authorization,
    _m: &axum::http::Method,
    _u: &axum::http::Uri,
    _h: &axum::http::HeaderMap,
    _b: &[u8],
    _s: &str,
    _n: std::time::SystemTime,
) -> Result<(), SigError> {
    Err(SigError)
}
