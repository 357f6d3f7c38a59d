//! Large agent payloads travel as artifact references, never inline.
//!
//! Inbound: the host replaces an agent result over [`INLINE_LIMIT`] with
//! `{"$artifact": "artifact://...", "size": n, "content_type": "application/json"}`;
//! [`resolve`] turns such a reference back into the JSON it points to.
//!
//! Outbound: [`outbound`] stores an agent input over [`INLINE_LIMIT`] as an artifact and sends
//! `{"$artifact": reference, "url": presigned URL, "size": n}` in its place.

use std::time::Duration;

use aegis_sdk::{Ctx, Error};
use serde_json::{Value, json};

/// The largest payload that travels inline: 200 KB.
pub const INLINE_LIMIT: usize = 200 * 1024;

/// The error type of a payload that cannot be stored, read or understood.
pub const ARTIFACT_FAILED: &str = "Pipeline.ArtifactFailed";

/// The keys a reference object may carry besides `$artifact`.
const REFERENCE_KEYS: [&str; 4] = ["$artifact", "size", "content_type", "url"];

/// The artifact reference `value` stands for, if it is a reference object: an object whose
/// `$artifact` is an `artifact://` string and whose other keys are among `size`,
/// `content_type` and `url`.
pub fn artifact_reference(value: &Value) -> Option<&str> {
    let map = value.as_object()?;
    let reference = map.get("$artifact")?.as_str()?;
    let only_reference_keys = map.keys().all(|k| REFERENCE_KEYS.contains(&k.as_str()));
    (reference.starts_with("artifact://") && only_reference_keys).then_some(reference)
}

/// Whether a payload of `len` bytes may travel inline.
pub fn fits_inline(len: usize) -> bool {
    len <= INLINE_LIMIT
}

/// `value`, or, if it is a reference object, the JSON document the artifact holds.
///
/// # Errors
///
/// `Pipeline.ArtifactFailed` when the artifact cannot be read or is not JSON.
pub fn resolve(ctx: &Ctx, value: Value) -> Result<Value, Error> {
    let Some(reference) = artifact_reference(&value) else {
        return Ok(value);
    };
    let bytes = ctx.get_artifact(reference).map_err(|e| {
        Error::new(ARTIFACT_FAILED, format!("cannot read {reference}: {e}")).with_data(cause(&e))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(
            ARTIFACT_FAILED,
            format!("{reference} is not a JSON document: {e}"),
        )
    })
}

/// What to send an agent for `input`: the input itself when it fits inline, otherwise a reference
/// to an artifact `<step>.input.json` holding it, with a URL that lives as long as the agent may
/// take (`url_lifetime`).
///
/// # Errors
///
/// `Pipeline.ArtifactFailed` when the input cannot be stored or presigned.
pub fn outbound(
    ctx: &Ctx,
    step: &str,
    input: &Value,
    url_lifetime: Duration,
) -> Result<Value, Error> {
    let bytes = serde_json::to_vec(input)
        .map_err(|e| Error::new(ARTIFACT_FAILED, format!("cannot encode the input: {e}")))?;
    if fits_inline(bytes.len()) {
        return Ok(input.clone());
    }
    let key = format!("{step}.input.json");
    let reference = store(ctx, &key, "application/json", &bytes)?;
    let url = presign(ctx, &reference, url_lifetime)?;
    Ok(json!({"$artifact": reference, "url": url, "size": bytes.len()}))
}

/// [`Ctx::put_artifact`], failing with `Pipeline.ArtifactFailed`.
pub fn store(ctx: &Ctx, key: &str, content_type: &str, bytes: &[u8]) -> Result<String, Error> {
    ctx.put_artifact(key, content_type, bytes).map_err(|e| {
        Error::new(ARTIFACT_FAILED, format!("cannot store {key}: {e}")).with_data(cause(&e))
    })
}

/// [`Ctx::presign`], failing with `Pipeline.ArtifactFailed`.
pub fn presign(ctx: &Ctx, reference: &str, lifetime: Duration) -> Result<String, Error> {
    ctx.presign(reference, lifetime).map_err(|e| {
        Error::new(ARTIFACT_FAILED, format!("cannot presign {reference}: {e}")).with_data(cause(&e))
    })
}

/// An error as structured detail: `{"cause": {"error_type", "message", "data"?}}`.
pub fn cause(error: &Error) -> Value {
    json!({ "cause": error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_hosts_reference_objects() {
        let r = json!({"$artifact": "artifact://ex1/agents/r.json", "size": 300_000,
                       "content_type": "application/json"});
        assert_eq!(artifact_reference(&r), Some("artifact://ex1/agents/r.json"));
        // The shape the workflow itself sends is a reference too.
        let r = json!({"$artifact": "artifact://ex1/k", "url": "http://x", "size": 1});
        assert_eq!(artifact_reference(&r), Some("artifact://ex1/k"));
        assert_eq!(
            artifact_reference(&json!({"$artifact": "artifact://e/k"})),
            Some("artifact://e/k")
        );
    }

    #[test]
    fn ordinary_values_are_not_references() {
        for value in [
            json!(null),
            json!("artifact://e/k"),
            json!(["$artifact"]),
            json!({"passages": [], "sources": []}),
            json!({"$artifact": 3}),
            json!({"$artifact": "s3://bucket/key"}),
            // A result that merely mentions `$artifact` among other data is left alone.
            json!({"$artifact": "artifact://e/k", "findings": []}),
        ] {
            assert_eq!(artifact_reference(&value), None, "{value}");
        }
    }

    #[test]
    fn the_inline_limit_is_200_kb() {
        assert!(fits_inline(0));
        assert!(fits_inline(200 * 1024));
        assert!(!fits_inline(200 * 1024 + 1));
    }

    #[test]
    fn causes_carry_the_original_error() {
        let value = cause(&Error::new("Artifact.GetFailed", "gone"));
        assert_eq!(
            value,
            json!({"cause": {"error_type": "Artifact.GetFailed", "message": "gone"}})
        );
    }
}
