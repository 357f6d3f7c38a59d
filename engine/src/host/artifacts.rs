//! Artifacts a guest stores, reads and links: a `put` and a `presign` are recorded values (done
//! once, replayed after), a `get` reads again on every activation. The artifact store is async;
//! these imports run on the activation's blocking thread and wait on it with
//! [`wait`], as the journal commits do.

use super::{HostState, to_info};
use crate::aegis::workflow::artifacts;
use crate::aegis::workflow::types::ErrorInfo;
use crate::budget::Charge;
use aegis_core::artifacts::ArtifactRef;
use aegis_core::journal::ErrorRecord;
use aegis_core::store::wait;
use serde_json::Value;

impl artifacts::Host for HostState {
    fn put(
        &mut self,
        ctx: String,
        key: String,
        content_type: String,
        content: Vec<u8>,
    ) -> wasmtime::Result<Result<String, ErrorInfo>> {
        let a = &mut self.activation;
        let name = format!("$artifact.put:{key}");
        a.recorded_value(&ctx, &name, |a| {
            a.charge(Charge::Artifact(content.len()))?;
            let tenant = a.execution.tenant.clone();
            let execution = a.execution.id.clone();
            Ok(a.io(|a| {
                wait(
                    a.artifacts
                        .put(&tenant, &execution, &key, &content_type, &content),
                )
            })
            .map(|r| Value::String(r.to_string()).to_string())
            .map_err(|e| ErrorRecord::new(e.put_error_type(), e.to_string())))
        })
        .map(|r| r.map(|json| serde_json::from_str::<String>(&json).unwrap_or(json)))
    }

    fn get(&mut self, reference: String) -> wasmtime::Result<Result<Vec<u8>, ErrorInfo>> {
        let a = &mut self.activation;
        let parsed = ArtifactRef::parse(&reference)
            .map_err(|e| to_info(ErrorRecord::new("Artifact.BadReference", e.to_string())));
        Ok(parsed.and_then(|r| {
            a.io(|a| wait(a.artifacts.get(&a.execution.tenant, &r)))
                .map(|(bytes, _)| bytes)
                .map_err(|e| to_info(ErrorRecord::new("Artifact.GetFailed", e.to_string())))
        }))
    }

    fn presign(
        &mut self,
        ctx: String,
        reference: String,
        expires_in_seconds: u64,
    ) -> wasmtime::Result<Result<String, ErrorInfo>> {
        let a = &mut self.activation;
        a.recorded_value(&ctx, "$artifact.presign", |a| {
            // Like `put` and `get`: the store's time (S3's HEAD, the signing) is the host's,
            // not the guest's, and does not count against its wall-clock deadline.
            let url = ArtifactRef::parse(&reference)
                .and_then(|r| {
                    a.io(|a| {
                        wait(
                            a.artifacts
                                .presign(&a.execution.tenant, &r, expires_in_seconds),
                        )
                    })
                })
                .map(|url| Value::String(url).to_string())
                .map_err(|e| ErrorRecord::new("Artifact.PresignFailed", e.to_string()));
            Ok(url)
        })
        .map(|r| r.map(|json| serde_json::from_str::<String>(&json).unwrap_or(json)))
    }
}
