//! Tenants, their API keys, their quotas and their request rate.
//!
//! A key is `aeg_<key id>_<secret>`. Only the SHA-256 of the secret is stored, so a leaked store
//! leaks no key; the key id finds the record without scanning. Keys are shown once, when made.
//!
//! Two modes:
//! - **open** (no admin key configured): a single-user host; every request acts for the default
//!   tenant and no key is asked for.
//! - **keyed** (an admin key is configured): every `/v1` request needs a tenant key, and
//!   `/v1/admin` requests need the admin key. A wrong, missing or revoked key is refused.

pub use crate::quotas::{Overrides, Quotas};

use crate::ids::TenantId;
use crate::journal::{Millis, now_ms};
use crate::ratelimit::Bucket;
use crate::store::{self, Catalog, KeyRecord, TenantRecord};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("missing API key: send `Authorization: Bearer <key>`")]
    MissingKey,
    #[error("invalid or revoked API key")]
    BadKey,
    #[error("tenant not found")]
    TenantNotFound,
    #[error("API key not found")]
    KeyNotFound,
    #[error("a tenant named {0:?} already exists")]
    NameTaken(String),
    #[error("invalid tenant name {0:?}: use 1-64 characters of [A-Za-z0-9_-]")]
    BadName(String),
    #[error("{0}")]
    BadQuota(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// A freshly made key: the record to store and the secret to show once.
pub struct NewKey {
    pub record: KeyRecord,
    pub secret: String,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    hex::encode(buf)
}

/// Makes a key for `tenant`.
pub fn new_key(tenant: &TenantId) -> NewKey {
    let id = format!("key_{}", random_hex(8));
    let secret = random_hex(32);
    NewKey {
        secret: format!("aeg_{}_{secret}", &id[4..]),
        record: KeyRecord {
            id,
            tenant: tenant.clone(),
            hash: hash(&secret),
            created_at: now_ms(),
            revoked_at: None,
        },
    }
}

/// Splits `aeg_<id>_<secret>` into the stored key id and the secret.
fn parse_key(raw: &str) -> Option<(String, &str)> {
    let rest = raw.strip_prefix("aeg_")?;
    let (id, secret) = rest.split_once('_')?;
    let well_formed = id.len() == 16
        && secret.len() == 64
        && id
            .bytes()
            .chain(secret.bytes())
            .all(|b| b.is_ascii_hexdigit());
    well_formed.then(|| (format!("key_{id}"), secret))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub struct Tenancy {
    store: Arc<dyn Catalog>,
    defaults: Quotas,
    admin_key: Option<String>,
    buckets: Mutex<HashMap<TenantId, Bucket>>,
    quotas: Mutex<HashMap<TenantId, Quotas>>,
}

impl Tenancy {
    pub fn new(store: Arc<dyn Catalog>, defaults: Quotas, admin_key: Option<String>) -> Self {
        Self {
            store,
            defaults,
            admin_key: admin_key.filter(|k| !k.is_empty()),
            buckets: Mutex::new(HashMap::new()),
            quotas: Mutex::new(HashMap::new()),
        }
    }

    /// Whether keys are required.
    pub fn keyed(&self) -> bool {
        self.admin_key.is_some()
    }

    pub fn defaults(&self) -> &Quotas {
        &self.defaults
    }

    /// The tenant a request acts for, from its `Authorization` header.
    ///
    /// # Errors
    /// [`Error::MissingKey`] or [`Error::BadKey`] in keyed mode.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<TenantId, Error> {
        if !self.keyed() {
            return Ok(TenantId::default_tenant());
        }
        let raw = bearer(authorization).ok_or(Error::MissingKey)?;
        let (id, secret) = parse_key(raw).ok_or(Error::BadKey)?;
        let record = self.store.api_key(&id).await?.ok_or(Error::BadKey)?;
        if record.revoked_at.is_some()
            || !constant_time_eq(record.hash.as_bytes(), hash(secret).as_bytes())
        {
            return Err(Error::BadKey);
        }
        Ok(record.tenant)
    }

    pub async fn signing_secret(&self, _k: &str) -> Result<(TenantId, String), Error> {
        Err(Error::BadKey)
    } // SCRATCH

    /// Whether the header carries the admin key.
    pub fn is_admin(&self, authorization: Option<&str>) -> bool {
        match (&self.admin_key, bearer(authorization)) {
            (Some(admin), Some(given)) => constant_time_eq(admin.as_bytes(), given.as_bytes()),
            _ => false,
        }
    }

    /// The effective quotas of a tenant (cached; refreshed when changed through [`Self::set_quotas`]).
    pub async fn quotas(&self, tenant: &TenantId) -> Quotas {
        if let Some(q) = self
            .quotas
            .lock()
            .expect("quota cache poisoned")
            .get(tenant)
        {
            return q.clone();
        }
        let quotas = match self.store.tenant(tenant).await {
            Ok(Some(record)) => self.defaults.with(&record.overrides),
            Ok(None) => self.defaults.clone(),
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "cannot read tenant quotas, using defaults");
                return self.defaults.clone();
            }
        };
        self.quotas
            .lock()
            .expect("quota cache poisoned")
            .insert(tenant.clone(), quotas.clone());
        quotas
    }

    /// Takes one request from the tenant's bucket.
    ///
    /// # Errors
    /// How long to wait, when the bucket is empty.
    pub async fn check_rate(&self, tenant: &TenantId) -> Result<(), Duration> {
        let quotas = self.quotas(tenant).await;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate buckets poisoned");
        buckets
            .entry(tenant.clone())
            .or_insert_with(|| Bucket::full(quotas.request_burst, now))
            .take(quotas.requests_per_second, quotas.request_burst, now)
    }

    /// Creates a tenant with its first key.
    ///
    /// # Errors
    /// A bad name, a taken name, or quotas out of range.
    pub async fn create_tenant(
        &self,
        name: &str,
        overrides: Overrides,
    ) -> Result<(TenantRecord, NewKey), Error> {
        if !crate::ids::valid_name(name) {
            return Err(Error::BadName(name.chars().take(100).collect()));
        }
        self.defaults
            .with(&overrides)
            .validate()
            .map_err(Error::BadQuota)?;
        let record = TenantRecord {
            id: TenantId::from_raw(format!("tn_{}", random_hex(8))),
            name: name.to_string(),
            overrides,
            created_at: now_ms(),
        };
        let key = new_key(&record.id);
        if !self.store.create_tenant(&record, &key.record).await? {
            return Err(Error::NameTaken(name.to_string()));
        }
        Ok((record, key))
    }

    /// Replaces a tenant's quota overrides.
    ///
    /// # Errors
    /// An unknown tenant or quotas out of range.
    pub async fn set_quotas(
        &self,
        tenant: &TenantId,
        overrides: Overrides,
    ) -> Result<TenantRecord, Error> {
        self.defaults
            .with(&overrides)
            .validate()
            .map_err(Error::BadQuota)?;
        let mut record = self
            .store
            .tenant(tenant)
            .await?
            .ok_or(Error::TenantNotFound)?;
        record.overrides = overrides;
        self.store
            .update_tenant(&record)
            .await
            .map_err(|e| match e {
                crate::store::Error::NotFound(_) => Error::TenantNotFound,
                e => Error::Store(e),
            })?;
        self.quotas
            .lock()
            .expect("quota cache poisoned")
            .remove(tenant);
        Ok(record)
    }

    /// Every tenant, oldest first.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn tenants(&self) -> Result<Vec<TenantRecord>, Error> {
        Ok(self.store.tenants().await?)
    }

    /// The tenant `id`, if there is one.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, Error> {
        Ok(self.store.tenant(id).await?)
    }

    /// A tenant's API keys, revoked ones included.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn keys(&self, tenant: &TenantId) -> Result<Vec<KeyRecord>, Error> {
        Ok(self.store.api_keys(tenant).await?)
    }

    /// Adds a key to a tenant.
    ///
    /// # Errors
    /// An unknown tenant.
    pub async fn add_key(&self, tenant: &TenantId) -> Result<NewKey, Error> {
        self.store
            .tenant(tenant)
            .await?
            .ok_or(Error::TenantNotFound)?;
        let key = new_key(tenant);
        self.store.put_api_key(&key.record).await?;
        Ok(key)
    }

    /// Revokes a key; later requests with it get 401.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] when the tenant has no such key.
    pub async fn revoke_key(&self, tenant: &TenantId, key_id: &str) -> Result<KeyRecord, Error> {
        let mut record = self
            .store
            .api_key(key_id)
            .await?
            .filter(|k| &k.tenant == tenant)
            .ok_or(Error::KeyNotFound)?;
        if record.revoked_at.is_none() {
            record.revoked_at = Some(now_ms() as Millis);
            self.store.put_api_key(&record).await?;
        }
        Ok(record)
    }
}

/// The artifact stores' quota: each tenant's `max_artifact_mb`, asked at every put (from the
/// cache [`Tenancy::quotas`] keeps), so a changed quota applies at once. The trait is the
/// core's artifact interface, below this layer, not the host's `artifacts` module above it.
#[async_trait::async_trait]
impl aegis_core::artifacts::Quota for Tenancy {
    async fn limit(&self, tenant: &TenantId) -> u64 {
        self.quotas(tenant).await.max_artifact_bytes()
    }
}

fn bearer(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back_to_their_id_and_hash() {
        let key = new_key(&TenantId::from_raw("tn_1"));
        let (id, secret) = parse_key(&key.secret).unwrap();
        assert_eq!(id, key.record.id);
        assert_eq!(hash(secret), key.record.hash);
        assert!(!key.record.hash.contains(secret));
        assert!(parse_key("aeg_zz_00").is_none());
        assert!(parse_key(&key.secret.replace("aeg_", "xyz_")).is_none());
    }

    #[test]
    fn bearer_scheme_is_required() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
