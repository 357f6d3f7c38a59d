//! The DynamoDB store: executions, their operations and history, and leases.

use super::*;
use aegis_core::store::{LogLimits, LogLine, LogRecord};

impl Inner {
    pub(super) async fn execution(&self, id: &ExecutionId) -> Result<Option<ExecutionRecord>> {
        let item = self
            .table
            .get(&keys::execution_pk(id), keys::ROOT_SK)
            .await?;
        parse_one(&self.table, item, records::execution_from).await
    }

    pub(super) async fn list_executions(
        &self,
        tenant: TenantId,
        filter: ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>> {
        if filter.limit == 0 {
            return Ok(Vec::new());
        }
        let mut upper: Option<String> = filter.created_before.map(keys::ts);
        if let Some((ts, id)) = &filter.after {
            let cursor = keys::created_g1sk(*ts, id.as_str());
            upper = Some(match upper {
                Some(u) if u < cursor => u,
                _ => cursor,
            });
        }
        let mut q = Query::index(
            GSI1,
            keys::tenant_executions_g1pk(tenant.as_str()),
            upper.map_or(Sk::Any, Sk::Lt),
        );
        q.forward = false;
        q.page = Some(filter.limit.clamp(25, 500) as i32);
        let status = filter.status.map(ExecutionStatus::as_str);
        let mut found = Vec::new();
        self.table
            .query(&q, |item| {
                let created: i64 = item.num("created_at").unwrap_or(0);
                if filter.created_after.is_some_and(|after| created < after) {
                    return Flow::Stop;
                }
                let wanted = filter
                    .workflow
                    .as_deref()
                    .is_none_or(|w| item.str("workflow") == Some(w))
                    && status.is_none_or(|st| item.str("status") == Some(st));
                if wanted {
                    found.push(item);
                }
                if found.len() >= filter.limit {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            })
            .await?;
        parse_all(&self.table, found, records::execution_from).await
    }

    /// Starts an execution: its name item, the running counts (under the quota), the execution
    /// item, its first event and its timeout timer, in one transaction. Retried until it lands
    /// or the name is taken or the quota is full.
    pub(super) async fn create_execution(&self, new: NewExecution) -> Result<Created> {
        let name = new.name.clone().unwrap_or_else(|| new.id.to_string());
        let name_pk = keys::name_pk(new.tenant.as_str(), &name);
        let tenant_pk = keys::tenant_pk(new.tenant.as_str());
        let mut backoff = Backoff::new();
        let mut unsure = false;
        loop {
            if let Some(created) = self.named(&name_pk, &name, &new.id).await? {
                return Ok(created);
            }
            if let Some(max) = new.max_running
                && self.running(&tenant_pk).await? >= i64::from(max)
            {
                return Ok(Created::OverQuota(max));
            }
            let mut writes = start_writes(&new, &name, &name_pk, &tenant_pk)?;
            let spilled = blob::place(self.table.spill.as_deref(), &mut writes);
            blob::write(&self.table, spilled).await?;
            match self.table.transact(&writes, &token()).await {
                Ok(()) => return Ok(Created::New(started_record(&new, name))),
                Err(TxError::Cancelled(reasons)) => match StartRefused::by(&reasons) {
                    // The name was taken meanwhile (perhaps by an earlier attempt of this
                    // start): the next round's check says which.
                    StartRefused::Name => {}
                    StartRefused::Quota if !unsure => {
                        return Ok(Created::OverQuota(new.max_running.unwrap_or(0)));
                    }
                    // A conflict; or a full quota after an attempt whose outcome is unknown:
                    // the next round's checks decide.
                    StartRefused::Quota | StartRefused::Conflict => {
                        backoff.wait("create execution").await?;
                    }
                },
                Err(TxError::Ambiguous(_)) => {
                    unsure = true;
                    backoff.wait("create execution").await?;
                }
                Err(TxError::Failed(m)) => return Err(Error::Fatal(m)),
            }
        }
    }

    /// The answer to a start whose name is taken, if it is: `NameTaken`, or `New` when the
    /// execution holding it is this start's own.
    async fn named(&self, name_pk: &str, name: &str, id: &ExecutionId) -> Result<Option<Created>> {
        let Some(taken) = self.table.get(name_pk, keys::ROOT_SK).await? else {
            return Ok(None);
        };
        let holder = ExecutionId::from_raw(taken.req_str("execution_id")?);
        let existing = self.execution(&holder).await?.ok_or_else(|| {
            Error::corrupt(format!("execution {holder} named {name:?} is missing"))
        })?;
        // The name is this start's own when an earlier attempt of it landed though its
        // answer was lost: ambiguous to us, or retried by the SDK itself and refused as
        // a taken name. The name item is written with the execution, and an unnamed
        // start is named by its id, so this one check finds every such attempt.
        if existing.id == *id {
            return Ok(Some(Created::New(existing)));
        }
        Ok(Some(Created::NameTaken(existing)))
    }

    /// The tenant's running executions, as its running count says.
    async fn running(&self, tenant_pk: &str) -> Result<i64> {
        Ok(self
            .table
            .get(tenant_pk, keys::RUNNING_SK)
            .await?
            .and_then(|i| i.num("n"))
            .unwrap_or(0))
    }

    /// Takes the lease if it is free, expired or `host`'s: a read, then a write conditioned on
    /// the token read (so two hosts racing for it cannot both win), again on a lost race.
    pub(super) async fn acquire_lease(
        &self,
        id: ExecutionId,
        host: String,
        now: Millis,
        ttl_ms: u64,
    ) -> Result<Claim> {
        let pk = keys::execution_pk(&id);
        let mut backoff = Backoff::new();
        loop {
            let Some(item) = self.table.get(&pk, keys::ROOT_SK).await? else {
                return Ok(Claim::Idle);
            };
            let state = ExecState::from_item(&item)?;
            let runnable = state.status == ExecutionStatus::Running && state.runnable;
            let claim = state.lease.claim(runnable, &host, now, ttl_ms);
            let Claim::Acquired { lease: taken, .. } = &claim else {
                return Ok(claim);
            };
            let mut update = UpdateExpr::default();
            records::set_lease(&mut update, taken);
            let cond = lease_token_is(state.lease.token);
            if self
                .table
                .update(key(&pk, keys::ROOT_SK), &update, &cond)
                .await?
            {
                // The activation's first commit starts from this read.
                self.remember(
                    &id,
                    ExecState {
                        lease: taken.clone(),
                        ..state
                    },
                );
                return Ok(claim);
            }
            backoff.wait("lease").await?;
        }
    }

    pub(super) async fn renew_lease(
        &self,
        id: ExecutionId,
        lease: Lease,
        now: Millis,
        ttl_ms: u64,
    ) -> Result<bool> {
        let mut update = UpdateExpr::default();
        update.set("lease_exp", n(now + ttl_ms as Millis));
        let cond = lease_token_is(lease.token).and(Cond::Gt("lease_exp", n(0)));
        self.table
            .update(key(keys::execution_pk(&id), keys::ROOT_SK), &update, &cond)
            .await
    }
}

/// Where a start's transaction puts the items whose conditions can fail: the cancellation
/// reasons come one per item, in order.
const NAME_ITEM: usize = 0;
const RUNNING_COUNT: usize = 1;

/// The items of a start: the name item (at [`NAME_ITEM`], only if the name is free), the
/// running count (at [`RUNNING_COUNT`], under the quota), the execution item, its first event,
/// the running count of its component digest, and its timeout timer if it has one.
fn start_writes(
    new: &NewExecution,
    name: &str,
    name_pk: &str,
    tenant_pk: &str,
) -> Result<Vec<Write>> {
    let mut name_item = key(name_pk, keys::ROOT_SK);
    name_item.insert("execution_id".into(), s(new.id.as_str()));
    let mut running = UpdateExpr::default();
    running.add("n", n(1));
    let quota = new
        .max_running
        .map(|max| Cond::Or(vec![Cond::NotExists("n"), Cond::Lt("n", n(max))]));
    let mut digest_running = UpdateExpr::default();
    digest_running.add("n", n(1));
    let mut writes = vec![
        Write::Put {
            item: name_item,
            cond: Some(Cond::NotExists("pk")),
        },
        Write::Update {
            key: key(tenant_pk, keys::RUNNING_SK),
            update: running,
            cond: quota,
        },
        Write::Put {
            item: records::execution_item(&records::NewExecutionItem {
                id: &new.id,
                tenant: &new.tenant,
                name,
                workflow: &new.workflow,
                version: new.version,
                digest: &new.digest,
                input: &new.input,
                now: new.now,
                timeout_at: new.timeout_at,
            }),
            cond: Some(Cond::NotExists("pk")),
        },
        Write::Put {
            item: records::event_item(&new.id, 1, &new.started_event)?,
            cond: Some(Cond::NotExists("pk")),
        },
        Write::Update {
            key: key(tenant_pk, keys::running_digest_sk(new.digest.as_str())),
            update: digest_running,
            cond: None,
        },
    ];
    if let Some(at) = new.timeout_at {
        writes.push(Write::Put {
            item: records::timer_item(&Timer {
                fire_at: at,
                execution_id: new.id.clone(),
                op_id: String::new(),
                kind: aegis_core::store::TimerKind::ExecutionTimeout,
            }),
            cond: None,
        });
    }
    Ok(writes)
}

/// Which condition of a start's transaction DynamoDB cancelled it for.
enum StartRefused {
    /// The name item exists.
    Name,
    /// The name was free but the running count is at the quota.
    Quota,
    /// Neither: a conflict with another transaction, or throttling.
    Conflict,
}

impl StartRefused {
    fn by(reasons: &[Option<String>]) -> Self {
        let failed =
            |i: usize| reasons.get(i).and_then(Option::as_deref) == Some("ConditionalCheckFailed");
        if failed(NAME_ITEM) {
            StartRefused::Name
        } else if failed(RUNNING_COUNT) {
            StartRefused::Quota
        } else {
            StartRefused::Conflict
        }
    }
}

/// The record of the execution a start's transaction created.
fn started_record(new: &NewExecution, name: String) -> ExecutionRecord {
    ExecutionRecord {
        id: new.id.clone(),
        tenant: new.tenant.clone(),
        name,
        workflow: new.workflow.clone(),
        version: new.version,
        digest: new.digest.clone(),
        input: new.input.clone(),
        status: ExecutionStatus::Running,
        result: None,
        error: None,
        created_at: new.now,
        updated_at: new.now,
        timeout_at: new.timeout_at,
        wake_seq: 1,
    }
}

#[async_trait::async_trait]
impl Journal for DynamoStore {
    async fn create_execution(&self, new: NewExecution) -> Result<Created> {
        self.inner.create_execution(new).await
    }

    async fn execution(&self, id: &ExecutionId) -> Result<Option<ExecutionRecord>> {
        self.inner.execution(id).await
    }

    async fn list_executions(
        &self,
        tenant: &TenantId,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>> {
        let (tenant, filter) = (tenant.clone(), filter.clone());
        self.inner.list_executions(tenant, filter).await
    }

    async fn operations(&self, id: &ExecutionId) -> Result<Vec<Operation>> {
        let i = &self.inner;
        let q = Query::table(
            keys::execution_pk(id),
            Sk::BeginsWith(keys::OPERATION_PREFIX.into()),
        );
        let items = i.table.query_all(&q, None).await?;
        parse_all(&i.table, items, operation_from).await
    }

    async fn operation(&self, id: &ExecutionId, op_id: &str) -> Result<Option<Operation>> {
        let i = &self.inner;
        let item = i
            .table
            .get(&keys::execution_pk(id), &keys::operation_sk(op_id))
            .await?;
        parse_one(&i.table, item, operation_from).await
    }

    async fn history(
        &self,
        id: &ExecutionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>> {
        let i = &self.inner;
        if limit == 0 || after == u64::MAX {
            return Ok(Vec::new());
        }
        let mut q = Query::table(
            keys::execution_pk(id),
            Sk::Between(keys::event_sk(after + 1), keys::event_sk(u64::MAX)),
        );
        q.page = Some(limit.clamp(1, 1000) as i32);
        let items = i.table.query_all(&q, Some(limit)).await?;
        parse_all(&i.table, items, |item| {
            Ok((
                item.req_num("eid")?,
                serde_json::from_str(&item.req_str("d")?)?,
            ))
        })
        .await
    }

    async fn append_logs(
        &self,
        id: &ExecutionId,
        lines: Vec<LogLine>,
        limits: LogLimits,
    ) -> Result<()> {
        self.inner.append_logs(id, lines, limits).await
    }

    async fn logs(&self, id: &ExecutionId, after: u64, limit: usize) -> Result<Vec<LogRecord>> {
        self.inner.logs(id, after, limit).await
    }

    async fn commit(&self, execution: &ExecutionId, batch: Batch) -> Result<()> {
        let execution = execution.clone();
        self.inner.commit(execution, batch).await
    }

    async fn runnable(&self) -> Result<Vec<Runnable>> {
        let i = &self.inner;
        Ok(i.index_shards("RUN", Sk::Any)
            .await?
            .iter()
            // An index entry can trail the item by a moment: check what it carries.
            .filter(|item| {
                item.bool("runnable") == Some(true)
                    && item.str("status") == Some(ExecutionStatus::Running.as_str())
            })
            .filter_map(|item| {
                Some(Runnable {
                    id: ExecutionId::from_raw(item.str("id")?),
                    lease: records::lease_from(item),
                })
            })
            .collect())
    }

    async fn acquire_lease(
        &self,
        id: &ExecutionId,
        host: &str,
        now: Millis,
        ttl_ms: u64,
    ) -> Result<Claim> {
        let (id, host) = (id.clone(), host.to_string());
        self.inner.acquire_lease(id, host, now, ttl_ms).await
    }

    async fn renew_lease(
        &self,
        id: &ExecutionId,
        lease: &Lease,
        now: Millis,
        ttl_ms: u64,
    ) -> Result<bool> {
        let (id, lease) = (id.clone(), lease.clone());
        self.inner.renew_lease(id, lease, now, ttl_ms).await
    }
}

#[async_trait::async_trait]
impl Timers for DynamoStore {
    async fn timers(&self, before: Millis) -> Result<Vec<Timer>> {
        let i = &self.inner;
        let mut timers = Vec::new();
        // Timer index keys start with the fire time; everything below the next millisecond
        // is due by `before`.
        let due = Sk::Lt(keys::ts(before.saturating_add(1)));
        for item in i.index_shards("TM", due).await? {
            if let Some(timer) = records::timer_from(&item)? {
                timers.push(timer);
            }
        }
        Ok(timers)
    }
}
