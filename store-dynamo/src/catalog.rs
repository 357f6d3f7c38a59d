//! The DynamoDB store: components, tenants and API keys.

use super::*;

impl Inner {
    pub(super) async fn find_component(
        &self,
        tenant: &TenantId,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<ComponentRecord>> {
        let pk = keys::components_pk(tenant.as_str());
        let item = match version {
            Some(v) => self.table.get(&pk, &keys::component_sk(name, v)).await?,
            None => {
                let mut q = Query::table(&pk, Sk::BeginsWith(keys::component_prefix(name)));
                q.forward = false;
                q.page = Some(1);
                self.table.query_all(&q, Some(1)).await?.pop()
            }
        };
        item.map(|i| records::component_from(tenant, &i))
            .transpose()
    }

    pub(super) async fn put_component(
        &self,
        tenant: TenantId,
        name: String,
        digest: ComponentDigest,
        size: u64,
        now: Millis,
    ) -> Result<(ComponentRecord, bool)> {
        let pk = keys::components_pk(tenant.as_str());
        let digest_sk = keys::digest_sk(&name, digest.as_str());
        let mut backoff = Backoff::new();
        loop {
            if let Some(existing) = self.table.get(&pk, &digest_sk).await? {
                let version = existing.req_num("version")?;
                if let Some(record) = self.find_component(&tenant, &name, Some(version)).await? {
                    return Ok((record, false));
                }
            }
            let high_sk = keys::component_high_sk(&name);
            let highest: u32 = self
                .table
                .get(&pk, &high_sk)
                .await?
                .and_then(|i| i.num("version"))
                .unwrap_or(0);
            let latest = self
                .find_component(&tenant, &name, None)
                .await?
                .map_or(0, |c| c.version)
                .max(highest);
            let record = ComponentRecord {
                tenant: tenant.clone(),
                name: name.clone(),
                version: latest + 1,
                digest: digest.clone(),
                size,
                created_at: now,
            };
            let mut by_digest = key(&pk, &digest_sk);
            by_digest.insert("version".into(), n(record.version));
            let mut high = key(&pk, &high_sk);
            high.insert("version".into(), n(record.version));
            let writes = [
                Write::Put {
                    item: records::component_item(&record),
                    cond: Some(Cond::NotExists("pk")),
                },
                Write::Put {
                    item: by_digest,
                    cond: Some(Cond::NotExists("pk")),
                },
                // The version item's condition already makes concurrent uploads take turns.
                Write::Put {
                    item: high,
                    cond: None,
                },
            ];
            match self.table.transact(&writes, &token()).await {
                Ok(()) => return Ok((record, true)),
                Err(TxError::Failed(m)) => return Err(Error::Fatal(m)),
                // Someone else added a version (or this one landed): look again.
                Err(TxError::Cancelled(_) | TxError::Ambiguous(_)) => {
                    backoff.wait("put component").await?
                }
            }
        }
    }

    pub(super) async fn delete_component(
        &self,
        tenant: TenantId,
        name: String,
        version: u32,
    ) -> Result<Deleted> {
        let pk = keys::components_pk(tenant.as_str());
        let mut backoff = Backoff::new();
        loop {
            let Some(record) = self.find_component(&tenant, &name, Some(version)).await? else {
                return Ok(Deleted::NotFound);
            };
            let running_key = key(
                keys::tenant_pk(tenant.as_str()),
                keys::running_digest_sk(record.digest.as_str()),
            );
            let running: i64 = self
                .table
                .get(
                    &keys::tenant_pk(tenant.as_str()),
                    &keys::running_digest_sk(record.digest.as_str()),
                )
                .await?
                .and_then(|i| i.num("n"))
                .unwrap_or(0);
            if running > 0 {
                return Ok(Deleted::InUse);
            }
            let writes = [
                Write::Delete {
                    key: key(&pk, keys::component_sk(&name, version)),
                    cond: Some(Cond::Exists("pk")),
                },
                Write::Delete {
                    key: key(&pk, keys::digest_sk(&name, record.digest.as_str())),
                    cond: None,
                },
                // Atomic with starts: an execution pinned to the digest cannot slip in.
                Write::Check {
                    key: running_key,
                    cond: Cond::Or(vec![Cond::NotExists("n"), Cond::Le("n", n(0))]),
                },
            ];
            match self.table.transact(&writes, &token()).await {
                Ok(()) => return Ok(Deleted::Deleted),
                Err(TxError::Failed(m)) => return Err(Error::Fatal(m)),
                Err(TxError::Cancelled(_) | TxError::Ambiguous(_)) => {
                    backoff.wait("delete component").await?
                }
            }
        }
    }

    pub(super) async fn create_tenant(
        &self,
        tenant: TenantRecord,
        api_key: KeyRecord,
    ) -> Result<bool> {
        let mut name = key(keys::tenant_name_pk(&tenant.name), keys::ROOT_SK);
        name.insert("id".into(), s(tenant.id.as_str()));
        let writes = [
            Write::Put {
                item: name,
                cond: Some(Cond::NotExists("pk")),
            },
            Write::Put {
                item: records::tenant_item(&tenant)?,
                cond: Some(Cond::NotExists("pk")),
            },
            Write::Put {
                item: records::key_item(&api_key),
                cond: None,
            },
        ];
        let mut backoff = Backoff::new();
        let mut unsure = false;
        loop {
            match self.table.transact(&writes, &token()).await {
                Ok(()) => return Ok(true),
                Err(TxError::Cancelled(reasons)) => {
                    let failed = |i: usize| {
                        reasons.get(i).and_then(Option::as_deref) == Some("ConditionalCheckFailed")
                    };
                    if failed(0) || failed(1) {
                        // A lost acknowledgement of our own write looks the same: tell them apart.
                        let mine = unsure
                            && self
                                .table
                                .get(keys::TENANTS_PK, &keys::esc(tenant.id.as_str()))
                                .await?
                                .is_some_and(|t| t.str("name") == Some(tenant.name.as_str()));
                        return if mine {
                            Ok(true)
                        } else if failed(0) {
                            Ok(false)
                        } else {
                            Err(Error::Fatal(format!("tenant {} exists", tenant.id)))
                        };
                    }
                    backoff.wait("create tenant").await?;
                }
                Err(TxError::Ambiguous(_)) => {
                    unsure = true;
                    backoff.wait("create tenant").await?;
                }
                Err(TxError::Failed(m)) => return Err(Error::Fatal(m)),
            }
        }
    }
}

#[async_trait::async_trait]
impl Catalog for DynamoStore {
    async fn put_component(
        &self,
        tenant: &TenantId,
        name: &str,
        digest: &ComponentDigest,
        size: u64,
        now: Millis,
    ) -> Result<(ComponentRecord, bool)> {
        let (tenant, name, digest) = (tenant.clone(), name.to_string(), digest.clone());
        self.inner
            .put_component(tenant, name, digest, size, now)
            .await
    }

    async fn find_component(
        &self,
        tenant: &TenantId,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<ComponentRecord>> {
        self.inner.find_component(tenant, name, version).await
    }

    async fn components(
        &self,
        tenant: &TenantId,
        name: Option<&str>,
    ) -> Result<Vec<ComponentRecord>> {
        let i = &self.inner;
        let prefix = name.map_or(keys::COMPONENT_PREFIX.to_string(), keys::component_prefix);
        let q = Query::table(keys::components_pk(tenant.as_str()), Sk::BeginsWith(prefix));
        let mut records = i
            .table
            .query_all(&q, None)
            .await?
            .iter()
            .map(|item| records::component_from(tenant, item))
            .collect::<Result<Vec<_>>>()?;
        records.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        Ok(records)
    }

    async fn delete_component(
        &self,
        tenant: &TenantId,
        name: &str,
        version: u32,
    ) -> Result<Deleted> {
        let (tenant, name) = (tenant.clone(), name.to_string());
        self.inner.delete_component(tenant, name, version).await
    }

    async fn create_tenant(&self, tenant: &TenantRecord, key: &KeyRecord) -> Result<bool> {
        let (tenant, key) = (tenant.clone(), key.clone());
        self.inner.create_tenant(tenant, key).await
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>> {
        let i = &self.inner;
        let item = i
            .table
            .get(keys::TENANTS_PK, &keys::esc(id.as_str()))
            .await?;
        item.as_ref().map(records::tenant_from).transpose()
    }

    async fn tenants(&self) -> Result<Vec<TenantRecord>> {
        let i = &self.inner;
        let items = i
            .table
            .query_all(&Query::table(keys::TENANTS_PK, Sk::Any), None)
            .await?;
        let mut tenants = items
            .iter()
            .map(records::tenant_from)
            .collect::<Result<Vec<_>>>()?;
        tenants.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(tenants)
    }

    async fn update_tenant(&self, tenant: &TenantRecord) -> Result<()> {
        let overrides = serde_json::to_string(&tenant.overrides)?;
        let id = tenant.id.clone();
        let i = &self.inner;
        let mut update = UpdateExpr::default();
        update.set("overrides", s(overrides));
        // A missing tenant stays missing.
        let updated = i
            .write_one(
                Write::Update {
                    key: key(keys::TENANTS_PK, keys::esc(id.as_str())),
                    update,
                    cond: Some(Cond::Exists("pk")),
                },
                "update tenant",
            )
            .await?;
        if !updated {
            return Err(Error::NotFound(format!("tenant {id}")));
        }
        Ok(())
    }

    async fn api_key(&self, id: &str) -> Result<Option<KeyRecord>> {
        let id = id.to_string();
        let i = &self.inner;
        let item = i.table.get(&keys::key_pk(&id), keys::ROOT_SK).await?;
        item.as_ref().map(records::key_from).transpose()
    }

    async fn put_api_key(&self, key: &KeyRecord) -> Result<()> {
        let item = records::key_item(key);
        let i = &self.inner;
        i.write_one(Write::Put { item, cond: None }, "put api key")
            .await
            .map(|_| ())
    }

    async fn api_keys(&self, tenant: &TenantId) -> Result<Vec<KeyRecord>> {
        let i = &self.inner;
        let q = Query::index(GSI1, keys::tenant_keys_g1pk(tenant.as_str()), Sk::Any);
        i.table
            .query_all(&q, None)
            .await?
            .iter()
            .map(records::key_from)
            .collect()
    }
}
