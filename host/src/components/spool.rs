//! Spooling an upload to disk: the body goes to a temporary file as it arrives, hashed on the
//! way, and the size limit is checked on every chunk.
//!
//! Buffering a body whole would let each upload in flight hold up to `max_component_mb` of the
//! host's memory before anything was checked; spooled, an upload holds one chunk, and one over
//! the limit is refused as soon as it crosses it. The digest comes out of the same pass, so
//! bytes that are already installed are recognised without reading them again.

use crate::ids::ComponentDigest;
use bytes_like::Chunk;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// The extension of spool files; anything with it in the spool folder at start-up is left over
/// from a crash.
const EXT: &str = "upload";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the component is over the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the request body could not be read: {0}")]
    Body(String),
    #[error("cannot spool the upload: {0}")]
    Io(#[from] std::io::Error),
}

/// An upload on disk; the file is removed when this drops.
#[derive(Debug)]
pub struct Spooled {
    pub digest: ComponentDigest,
    pub size: u64,
    path: PathBuf,
}

impl Spooled {
    /// The spooled bytes. Blocks.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        std::fs::read(&self.path)
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes what a crash left in `dir`. Best effort: a file that stays costs only disk.
pub fn clean(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == EXT) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Writes `body` to a new file in `dir`, refusing it once it is over `limit` bytes.
///
/// # Errors
/// [`SpoolError::TooLarge`] past the limit, [`SpoolError::Body`] when the client's body
/// fails, [`SpoolError::Io`] when the file cannot be written. The file is removed on error.
pub async fn spool<S, B, E>(dir: &Path, body: S, limit: u64) -> Result<Spooled, SpoolError>
where
    S: Stream<Item = Result<B, E>>,
    B: Chunk,
    E: std::fmt::Display,
{
    tokio::fs::create_dir_all(dir).await?;
    let path = dir.join(format!("{:032x}.{EXT}", rand::random::<u128>()));
    let file = tokio::fs::File::create(&path).await?;
    // From here on the guard removes the file, whatever happens.
    let mut spooled = Spooled {
        digest: ComponentDigest::of(b""),
        size: 0,
        path,
    };
    let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    let mut hasher = Sha256::new();
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| SpoolError::Body(e.to_string()))?;
        let bytes = chunk.as_bytes();
        spooled.size += bytes.len() as u64;
        if spooled.size > limit {
            return Err(SpoolError::TooLarge { limit });
        }
        hasher.update(bytes);
        out.write_all(bytes).await?;
    }
    out.flush().await?;
    spooled.digest =
        ComponentDigest::from_raw(format!("sha256:{}", hex::encode(hasher.finalize())));
    Ok(spooled)
}

/// Chunks of a body: anything that is a byte slice (`Bytes` from axum, `Vec<u8>` in tests).
mod bytes_like {
    pub trait Chunk {
        fn as_bytes(&self) -> &[u8];
    }

    impl<T: AsRef<[u8]>> Chunk for T {
        fn as_bytes(&self) -> &[u8] {
            self.as_ref()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Chunks = futures_util::stream::Iter<std::vec::IntoIter<Result<Vec<u8>, String>>>;

    fn chunks(parts: &[&str]) -> Chunks {
        let owned: Vec<Result<Vec<u8>, String>> =
            parts.iter().map(|p| Ok(p.as_bytes().to_vec())).collect();
        futures_util::stream::iter(owned)
    }

    #[tokio::test]
    async fn spools_hashes_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let spooled = spool(dir.path(), chunks(&["ab", "c"]), 3).await.unwrap();
        assert_eq!(spooled.digest, ComponentDigest::of(b"abc"));
        assert_eq!(spooled.size, 3);
        assert_eq!(spooled.read().unwrap(), b"abc");
        drop(spooled);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn refuses_past_the_limit_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let err = spool(dir.path(), chunks(&["ab", "cd"]), 3)
            .await
            .unwrap_err();
        assert!(matches!(err, SpoolError::TooLarge { limit: 3 }), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_broken_body_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let body = futures_util::stream::iter(vec![Ok(b"ab".to_vec()), Err("reset".to_string())]);
        let err = spool(dir.path(), body, 100).await.unwrap_err();
        assert!(matches!(err, SpoolError::Body(_)), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn clean_removes_only_spool_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.upload"), b"1").unwrap();
        std::fs::write(dir.path().join("keep.wasm"), b"1").unwrap();
        clean(dir.path());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("keep.wasm")]);
    }
}
