//! Newtypes for the ids that cross module boundaries, so that an execution id is never passed
//! where a callback id was meant.

use rand::RngExt;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an id that was read back from storage or a trusted source.
            pub fn from_raw(raw: impl Into<String>) -> Self {
                Self(raw.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// The tenant that owns a resource.
    TenantId
);
string_id!(
    /// One run of a workflow.
    ExecutionId
);
string_id!(
    /// The capability that completes one callback. Long and random: knowing it is the only
    /// authority an agent needs.
    CallbackId
);
string_id!(
    /// `sha256:<hex>` of a component's bytes.
    ComponentDigest
);

/// The tenant used when the host runs without tenancy configured.
pub const DEFAULT_TENANT: &str = "default";

impl TenantId {
    pub fn default_tenant() -> Self {
        Self(DEFAULT_TENANT.to_string())
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    hex::encode(buf)
}

impl ExecutionId {
    /// A fresh id: 128 random bits.
    pub fn generate() -> Self {
        Self(format!("ex_{}", random_hex(16)))
    }
}

impl CallbackId {
    /// A fresh id: 256 random bits, so it cannot be guessed.
    pub fn generate() -> Self {
        Self(format!("cb_{}", random_hex(32)))
    }

    /// Whether `raw` has the shape of a callback id (cheap rejection of junk before any lookup).
    pub fn is_well_formed(raw: &str) -> bool {
        raw.len() == 67 && raw.starts_with("cb_") && raw[3..].bytes().all(|b| b.is_ascii_hexdigit())
    }
}

impl ComponentDigest {
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(bytes))
        ))
    }

    /// The hex part, safe to use as a file name.
    pub fn hex(&self) -> &str {
        self.0.trim_start_matches("sha256:")
    }
}

/// Whether `name` may name a component or a tenant: 1-64 characters of `[A-Za-z0-9_-]`, so it
/// is safe in a path, a key and a URL. Kept with the ids (not in `components`) because the
/// tenant registry checks tenant names with it and must not depend on uploads.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_ids_are_long_random_and_well_formed() {
        let a = CallbackId::generate();
        let b = CallbackId::generate();
        assert_ne!(a, b);
        assert!(CallbackId::is_well_formed(a.as_str()), "{a}");
        assert!(!CallbackId::is_well_formed("cb_1234"));
        assert!(!CallbackId::is_well_formed(
            &a.as_str().replace("cb_", "xx_")
        ));
    }

    #[test]
    fn digest_is_sha256_hex() {
        let d = ComponentDigest::of(b"abc");
        assert_eq!(
            d.as_str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.hex().len(), 64);
    }

    #[test]
    fn names_are_restricted() {
        assert!(valid_name("research-pipeline_2"));
        assert!(!valid_name(""));
        assert!(!valid_name("../x"));
        assert!(!valid_name(&"a".repeat(65)));
    }
}
