//! The embedded store's Catalog role.

use super::SqliteStore;
use super::rows::*;
use aegis_core::ids::*;
use aegis_core::journal::*;
use aegis_core::store::*;
use rusqlite::{OptionalExtension, params};

#[async_trait::async_trait]
impl Catalog for SqliteStore {
    async fn put_component(
        &self,
        tenant: &TenantId,
        name: &str,
        digest: &ComponentDigest,
        size: u64,
        now: Millis,
    ) -> Result<(ComponentRecord, bool)> {
        let (tenant, name, digest) = (tenant.clone(), name.to_string(), digest.clone());
        self.write(move |tx| {
            let existing = tx
                .prepare_cached(
                    "SELECT version, size, created_at FROM components WHERE tenant_id = ?1 AND name = ?2 AND digest = ?3 AND deleted_at IS NULL",
                )?
                .query_row(params![tenant.as_str(), name, digest.as_str()], |r| {
                    Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                })
                .optional()?;
            if let Some((version, size, created_at)) = existing {
                let record = ComponentRecord { tenant, name, version, digest, size: size as u64, created_at };
                return Ok((record, false));
            }
            let version: u32 = tx
                .prepare_cached(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM components WHERE tenant_id = ?1 AND name = ?2",
                )?
                .query_row(params![tenant.as_str(), name], |r| r.get(0))?;
            tx.prepare_cached(
                "INSERT INTO components (tenant_id, name, version, digest, size, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![tenant.as_str(), name, version, digest.as_str(), size as i64, now])?;
            let record = ComponentRecord { tenant, name, version, digest, size, created_at: now };
            Ok((record, true))
        })
        .await
    }

    async fn find_component(
        &self,
        tenant: &TenantId,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<ComponentRecord>> {
        let tenant = tenant.clone();
        let name = name.to_string();
        let tenant = tenant.clone();
        let name = name.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT version, digest, size, created_at FROM components
                 WHERE tenant_id = ?1 AND name = ?2 AND (?3 IS NULL OR version = ?3) AND deleted_at IS NULL
                 ORDER BY version DESC LIMIT 1",
            )?;
            Ok(stmt
                .query_row(params![tenant.as_str(), name, version], |r| {
                    Ok(ComponentRecord {
                        tenant: tenant.clone(),
                        name: name.to_string(),
                        version: r.get(0)?,
                        digest: ComponentDigest::from_raw(r.get::<_, String>(1)?),
                        size: r.get::<_, i64>(2)? as u64,
                        created_at: r.get(3)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn components(
        &self,
        tenant: &TenantId,
        name: Option<&str>,
    ) -> Result<Vec<ComponentRecord>> {
        let tenant = tenant.clone();
        let name = name.map(str::to_string);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, version, digest, size, created_at FROM components
                 WHERE tenant_id = ?1 AND (?2 IS NULL OR name = ?2) AND deleted_at IS NULL ORDER BY name, version",
            )?;
            let rows = stmt.query_map(params![tenant.as_str(), name], |r| {
                Ok(ComponentRecord {
                    tenant: tenant.clone(),
                    name: r.get(0)?,
                    version: r.get(1)?,
                    digest: ComponentDigest::from_raw(r.get::<_, String>(2)?),
                    size: r.get::<_, i64>(3)? as u64,
                    created_at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn delete_component(
        &self,
        tenant: &TenantId,
        name: &str,
        version: u32,
    ) -> Result<Deleted> {
        let (tenant, name) = (tenant.clone(), name.to_string());
        self.write(move |tx| {
            let digest: Option<String> = tx
                .prepare_cached(
                    "SELECT digest FROM components WHERE tenant_id = ?1 AND name = ?2 AND version = ?3 AND deleted_at IS NULL",
                )?
                .query_row(params![tenant.as_str(), name, version], |r| r.get(0))
                .optional()?;
            let Some(digest) = digest else {
                return Ok(Deleted::NotFound);
            };
            let in_use: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM executions WHERE tenant_id = ?1 AND digest = ?2 AND status = 'RUNNING'",
                )?
                .query_row(params![tenant.as_str(), digest], |r| r.get(0))?;
            if in_use > 0 {
                return Ok(Deleted::InUse);
            }
            tx.prepare_cached(
                "UPDATE components SET deleted_at = ?4 WHERE tenant_id = ?1 AND name = ?2 AND version = ?3",
            )?
            .execute(params![tenant.as_str(), name, version, aegis_core::journal::now_ms()])?;
            Ok(Deleted::Deleted)
        })
        .await
    }

    async fn create_tenant(&self, tenant: &TenantRecord, key: &KeyRecord) -> Result<bool> {
        let (tenant, key) = (tenant.clone(), key.clone());
        self.write(move |tx| {
            let taken: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM tenants WHERE name = ?1")?
                .query_row([&tenant.name], |r| r.get(0))?;
            if taken > 0 {
                return Ok(false);
            }
            tx.prepare_cached(
                "INSERT INTO tenants (id, name, overrides, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                tenant.id.as_str(),
                tenant.name,
                serde_json::to_string(&tenant.overrides)?,
                tenant.created_at
            ])?;
            insert_key(tx, &key)?;
            Ok(true)
        })
        .await
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>> {
        let id = id.clone();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT * FROM tenants WHERE id = ?1")?
                .query_row([id.as_str()], tenant_from_row)
                .optional()?)
        })
        .await
    }

    async fn tenants(&self) -> Result<Vec<TenantRecord>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT * FROM tenants ORDER BY created_at, id")?;
            let rows = stmt.query_map([], tenant_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn update_tenant(&self, tenant: &TenantRecord) -> Result<()> {
        let tenant = tenant.clone();
        self.write(move |tx| {
            let updated = tx
                .prepare_cached("UPDATE tenants SET overrides = ?2 WHERE id = ?1")?
                .execute(params![
                    tenant.id.as_str(),
                    serde_json::to_string(&tenant.overrides)?
                ])?;
            if updated == 0 {
                return Err(Error::NotFound(format!("tenant {}", tenant.id)).into());
            }
            Ok(())
        })
        .await
    }

    async fn api_key(&self, id: &str) -> Result<Option<KeyRecord>> {
        let id = id.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT * FROM api_keys WHERE id = ?1")?
                .query_row([id], key_from_row)
                .optional()?)
        })
        .await
    }

    async fn put_api_key(&self, key: &KeyRecord) -> Result<()> {
        let key = key.clone();
        self.write(move |tx| insert_key(tx, &key)).await
    }

    async fn api_keys(&self, tenant: &TenantId) -> Result<Vec<KeyRecord>> {
        let tenant = tenant.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM api_keys WHERE tenant_id = ?1 ORDER BY created_at, id",
            )?;
            let rows = stmt.query_map([tenant.as_str()], key_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
