//! Keys' secrets sealed at rest, for SigV4.
//!
//! A bearer key is checked against the SHA-256 of its secret, which is all the store keeps for
//! that. A SigV4 signature is an HMAC keyed from the secret itself (`"AWS4" + secret`), so the
//! host must be able to get the secret back: each key made since SigV4 support also stores its
//! whole key string (`aeg_<id>_<secret>`, the secret access key) sealed with AES-256-GCM.
//!
//! - The sealing key is HMAC-SHA256(host secret, a fixed label): the host secret is the
//!   `credentials_key` setting when set, else the admin key. A leaked store alone therefore still
//!   leaks no key; the store and the host secret together do.
//! - Each value gets a fresh random 96-bit nonce, and the key record's id is the associated data:
//!   a sealed value copied onto another key record does not open.
//! - Stored as `v1:` + base64(nonce ‖ ciphertext ‖ tag).
//!
//! Changing the host secret (a new admin key with no `credentials_key` set, or a new
//! `credentials_key`) leaves existing keys sealed under the old one: their SigV4 requests are
//! refused with a message saying to issue a new key, while their bearer use goes on (it needs only
//! the hash). To rotate the admin key and keep the keys' SigV4, first set `credentials_key` to
//! the current admin key.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: &str = "v1:";
const LABEL: &[u8] = b"aegis/api-key-sealing/v1";
const NONCE_LEN: usize = 12;

/// Seals and opens keys' secrets with the key derived from the host secret.
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl Sealer {
    /// The sealer of the host secret (`credentials_key`, else the admin key).
    pub fn new(host_secret: &str) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(host_secret.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(LABEL);
        let key = mac.finalize().into_bytes();
        Self {
            cipher: Aes256Gcm::new_from_slice(&key).expect("HMAC-SHA256 gives 32 bytes"),
        }
    }

    /// `secret` sealed for the key record `key_id`.
    pub fn seal(&self, key_id: &str, secret: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce[..]);
        let aad = associated_data(key_id);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("AES-GCM seals any message this short");
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        format!("{VERSION}{}", STANDARD.encode(blob))
    }

    /// The secret sealed for `key_id`, or `None` when `sealed` was sealed with another key, for
    /// another key record, or is not a sealed value at all.
    pub fn open(&self, key_id: &str, sealed: &str) -> Option<String> {
        let blob = STANDARD.decode(sealed.strip_prefix(VERSION)?).ok()?;
        if blob.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let aad = associated_data(key_id);
        let secret = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .ok()?;
        String::from_utf8(secret).ok()
    }
}

fn associated_data(key_id: &str) -> Vec<u8> {
    [LABEL, b"\0", key_id.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_host_secret_and_key_id() {
        let sealer = Sealer::new("admin-1");
        let sealed = sealer.seal("key_1", "aeg_1_s3cret");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("s3cret"));
        assert_eq!(
            sealer.open("key_1", &sealed).as_deref(),
            Some("aeg_1_s3cret")
        );
        // Moved to another record, or opened after the host secret changed.
        assert_eq!(sealer.open("key_2", &sealed), None);
        assert_eq!(Sealer::new("admin-2").open("key_1", &sealed), None);
        // Tampered with, cut short, or not a sealed value.
        let mut blob = STANDARD.decode(&sealed[3..]).unwrap();
        *blob.last_mut().unwrap() ^= 1;
        let tampered = format!("v1:{}", STANDARD.encode(&blob));
        assert_eq!(sealer.open("key_1", &tampered), None);
        assert_eq!(sealer.open("key_1", "v1:AAAA"), None);
        assert_eq!(sealer.open("key_1", &sealed[3..]), None);
        assert_eq!(sealer.open("key_1", "v2:xyz"), None);
    }

    #[test]
    fn each_seal_has_its_own_nonce() {
        let sealer = Sealer::new("admin");
        let (a, b) = (sealer.seal("key_1", "x"), sealer.seal("key_1", "x"));
        assert_ne!(a, b);
        assert_eq!(sealer.open("key_1", &a), sealer.open("key_1", &b));
    }
}
