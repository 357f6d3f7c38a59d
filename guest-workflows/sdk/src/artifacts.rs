//! Artifacts: large payloads and reports kept in object storage, referenced from the journal.
//!
//! Why: a checkpointed result is limited in size, and reports are meant for people, not for the
//! workflow. So the bytes go to object storage and the workflow passes around a short reference
//! (and hands out presigned URLs). These calls answer at once, so they are plain methods, not
//! futures.

use std::time::Duration;

use crate::{Ctx, Error, host};

impl Ctx {
    /// Stores `content` under `key` (scoped to this execution) and returns its reference.
    ///
    /// # Errors
    ///
    /// Fails with the host's error if the artifact cannot be stored.
    pub fn put_artifact(
        &self,
        key: &str,
        content_type: &str,
        content: &[u8],
    ) -> Result<String, Error> {
        host::artifact_put(self.id(), key, content_type, content)
    }

    /// Reads the artifact that [`put_artifact`](Self::put_artifact) returned `reference` for.
    ///
    /// # Errors
    ///
    /// Fails with the host's error if the reference is unknown or the read fails.
    pub fn get_artifact(&self, reference: &str) -> Result<Vec<u8>, Error> {
        host::artifact_get(reference)
    }

    /// A URL that fetches the artifact without credentials until `expires_in` has passed
    /// (rounded up to whole seconds).
    ///
    /// # Errors
    ///
    /// Fails with the host's error if the reference is unknown or no URL can be made.
    pub fn presign(&self, reference: &str, expires_in: Duration) -> Result<String, Error> {
        let seconds = expires_in
            .as_secs()
            .saturating_add(u64::from(expires_in.subsec_nanos() > 0));
        host::artifact_presign(self.id(), reference, seconds)
    }
}
