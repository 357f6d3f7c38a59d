//! The DynamoDB checkpoint store: the same [`Store`] contract as the embedded store, on one
//! DynamoDB table, through the official AWS SDK.
//!
//! # Table design
//!
//! One table, `<prefix>checkpoints` (see [`keys::table_name`]), keys `pk` / `sk` (strings), on
//! demand capacity, and two global secondary indexes with every attribute projected:
//!
//! | item | `pk` | `sk` | notes |
//! |---|---|---|---|
//! | execution | `EX#<id>` | `#` | status, input, result, `next_event_id`, `wake_seq`, `runnable`, `ver`, the lease (`lease_owner`, `lease_token`, `lease_exp`); GSI1 `T#<tenant>#EX` / `<created_at>#<id>`; GSI2 `RUN#<shard>` while runnable |
//! | operation | `EX#<id>` | `OP#<op id>` | `st` (status, for conditions), `d` (JSON) |
//! | history event | `EX#<id>` | `EV#<EventId, 20 digits>` | `d` (JSON): a page of history is one `Query` |
//! | timer | `EX#<id>` | `TM#<kind>#<op id>` | `fire_at`; GSI2 `TM#<shard>` / `<fire_at>#…` |
//! | callback | `EX#<id>` | `CB#<callback id>` | `st`, `task_id` once the agent named its task; GSI2 `AG#<shard>` while an agent invocation waits |
//! | callback pointer | `CB#<callback id>` | `#` | the execution id (find a callback by id) |
//! | execution name | `T#<tenant>#NAME#<name>` | `#` | the execution id (idempotent starts) |
//! | running counts | `T#<tenant>` | `#RUNNING`, `#RUNNING#<digest>` | `n`: the quota and component deletion read these |
//! | component version | `T#<tenant>#COMP` | `V#<name>#<version, 10 digits>` | |
//! | component digest | `T#<tenant>#COMP` | `D#<name>#<digest>` | the version that has it |
//! | tenant | `#TENANTS` | `<id>` | one partition: tenants are few |
//! | tenant name | `TNAME#<name>` | `#` | uniqueness |
//! | API key | `KEY#<id>` | `#` | GSI1 `T#<tenant>#KEY` |
//! | workflow event | `#WEV`, `WEV#T#<tenant>`, `WEV#E#<execution>` | `<seq, 20 digits>` | one copy per way it is read, all strongly consistent |
//! | webhook outbox | `#WEV#OUTBOX` | `<seq>` | removed once delivered or dead-lettered |
//! | dead letter | `#DLQ`, `DLQ#T#<tenant>` | `<seq, 20 digits>` | the event (as delivered, bounded), `sink`, `attempts`, `last_error`, `dead_at`; one copy per way it is read |
//! | event counter | `#WEVSEQ` | `#` | `n`, the last seq |
//! | fleet-wide role | `#ROLE#<name>` | `#` | a lease: `lease_owner`, `lease_token`, `lease_exp` |
//! | spilled value | `BLOB#<sha256>` | `<chunk, 5 digits>` | see [`blob`] |
//!
//! User-supplied key parts are escaped ([`keys::esc`]). The "list everything" entries read at
//! start-up (runnable executions, timers, waiting agent invocations) are sparse GSI2 entries
//! spread over [`keys::SHARDS`] partition keys, so no single index partition takes every write.
//!
//! # Consistency
//!
//! Reads of the table are strongly consistent. Reads through an index are eventually
//! consistent (DynamoDB offers nothing else): a tenant's execution list and API key list, and the
//! start-up lists (`runnable`, `timers`, `pending_agent_callbacks`). Everything a write decides
//! on is read from the table.
//!
//! Writes: see [`commit`]. Each batch is one `TransactWriteItems` conditioned on the execution
//! item's version and the batch's own conditions; a cancelled transaction writes nothing. An
//! execution's commits from this process are also serialised by an in-process lock, so
//! optimistic-concurrency retries only happen between hosts. The execution item as this
//! process's last commit (or lease claim) left it is kept in memory, so the next commit of an
//! activation under this process's lease sends its transaction without reading the item first;
//! if another host wrote meanwhile, the version condition refuses the transaction and the
//! commit reads the item and plans again. Transactions hold at most 100
//! items: a larger batch fails with a clear error, except the clean-up of an ending execution
//! (its timers and waiting callbacks), which is moved to follow-up writes (see
//! [`commit::Plan::follow_ups`]). Values too large for an item are spilled ([`blob`]).
//!
//! Retries: the SDK retries throttling and transient errors of each request (standard mode,
//! up to [`SDK_MAX_ATTEMPTS`] attempts, exponential backoff from 50 ms to 5 s); the store's own
//! loops retry transaction conflicts and lost races with jittered backoff. A transaction whose
//! outcome is unknown (timeout, dropped connection) is never blindly re-applied: every commit
//! records its client request token on the execution item (`last_tx`), and the retry first
//! reads whether that token landed.
//!
//! # Blocking
//!
//! [`Store`] is synchronous and is called from `spawn_blocking` threads, from dedicated threads
//! and, at start-up and in a few request paths, directly from async tasks. The store therefore
//! owns a small tokio runtime and runs every call on it, waiting on a channel:
//! `Handle::block_on` would panic when the caller is itself on a runtime worker, while waiting
//! on a channel only blocks the calling thread, as the embedded store's SQLite calls do.
//!
//! # Leases
//!
//! The execution item carries its [`Lease`] (`lease_owner`, `lease_token`, `lease_exp`).
//! Acquiring is a write conditioned on the token read; a commit carrying
//! [`Condition::Lease`] is refused when the token moved on, both by the check on the item read
//! before planning and by the transaction's condition on the execution item.

mod blob;
mod commit;
mod expr;
mod io;
mod keys;
mod records;
mod tables;

pub use blob::SpillBucket;
pub use keys::table_name;

use super::{
    Batch, CallbackRecord, Claim, ComponentRecord, Condition, Created, DeadLetter, Deleted, Error,
    ExecutionFilter, ExecutionRecord, ExecutionStatus, KeyRecord, Lease, NewExecution, Result,
    Runnable, Store, TenantRecord, Timer, WorkflowEvent,
};
use crate::ids::{CallbackId, ComponentDigest, ExecutionId, TenantId};
use crate::journal::{Event, Millis, Operation};
use commit::Verdict;
use expr::{Cond, Item, UpdateExpr, Write, key, n, s};
use io::{Backoff, Flow, GSI1, GSI2, ItemExt, Query, Sk, Table, TxError};
use records::ExecState;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Attempts per request, including the first, of the SDK's standard retry mode.
pub const SDK_MAX_ATTEMPTS: u32 = 8;
/// In-process locks serialising commits of the same execution.
const STRIPES: usize = 64;

/// Where the table is and how to reach it.
#[derive(Clone, Debug, Default)]
pub struct DynamoOptions {
    pub table_prefix: String,
    /// A local server (moto, dynalite, DynamoDB Local); plain `http://` works.
    pub endpoint_url: Option<String>,
    /// Default: the AWS default chain (`AWS_REGION`, profile); with an endpoint override,
    /// `AWS_REGION` or `us-east-1`.
    pub region: Option<String>,
    /// Access key id and secret; default: the AWS default credential chain.
    pub credentials: Option<(String, String)>,
    /// The bucket that values too large for an item spill to; without one they spill to
    /// chunk items in the table (see [`blob`]).
    pub spill_to: Option<Arc<dyn blob::SpillBucket>>,
}

struct Inner {
    table: Table,
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// Serialises commits that publish workflow events (they share one counter).
    publish: tokio::sync::Mutex<()>,
    /// Running executions' items as this process last wrote or read them, so the next commit
    /// can skip reading the item (see [`Inner::commit`]).
    states: std::sync::Mutex<HashMap<ExecutionId, ExecState>>,
}

/// At most this many cached execution states; the cache starts over when it is full.
const MAX_CACHED_STATES: usize = 10_000;

/// The DynamoDB-backed store.
pub struct DynamoStore {
    inner: Arc<Inner>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for DynamoStore {
    fn drop(&mut self) {
        // Dropping a runtime from async code panics; letting it wind down in the background
        // does not.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("aegis-dynamodb")
        .enable_all()
        .build()
        .map_err(|e| Error::Fatal(format!("start the DynamoDB runtime: {e}")))
}

/// Runs `fut` on `rt` and waits for it from any thread (see the module notes on blocking).
fn block_on<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .map_err(|_| Error::Fatal("the DynamoDB runtime stopped".into()))?
}

async fn client(options: DynamoOptions) -> Result<aws_sdk_dynamodb::Client> {
    let aws = crate::aws::AwsOptions {
        endpoint_url: options.endpoint_url,
        region: options.region,
        credentials: options.credentials,
        retry: Some(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(SDK_MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(50))
                .with_max_backoff(Duration::from_secs(5)),
        ),
        attempt_timeout: Some(Duration::from_secs(10)),
    };
    let config = crate::aws::sdk_config(&aws)
        .await
        .map_err(|e| Error::Fatal(format!("{e:#} (store.region)")))?;
    Ok(aws_sdk_dynamodb::Client::new(&config))
}

fn token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl DynamoStore {
    /// Connects without checking the table (for creating it).
    ///
    /// # Errors
    /// When the runtime cannot start or no region is configured.
    pub fn connect(options: &DynamoOptions) -> Result<Self> {
        let rt = runtime()?;
        let name = keys::table_name(&options.table_prefix);
        let client = block_on(&rt, client(options.clone()))?;
        let spill = options.spill_to.clone();
        Ok(Self {
            inner: Arc::new(Inner {
                table: Table {
                    client,
                    name,
                    spill,
                    kept: blob::Kept::new(blob::KEPT_BYTES),
                },
                stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
                publish: tokio::sync::Mutex::new(()),
                states: std::sync::Mutex::new(HashMap::new()),
            }),
            runtime: Some(rt),
        })
    }

    /// Connects and checks that the table exists and is active.
    ///
    /// # Errors
    /// As [`DynamoStore::connect`], and when the table is missing or unreachable.
    pub fn open(options: &DynamoOptions) -> Result<Self> {
        let store = Self::connect(options)?;
        if !store.run(|inner| async move { tables::active(&inner.table).await })? {
            return Err(Error::Retriable(format!(
                "DynamoDB table {} is not active yet",
                store.table_name()
            )));
        }
        Ok(store)
    }

    pub fn table_name(&self) -> &str {
        &self.inner.table.name
    }

    /// Creates the table and its indexes unless they exist; waits until they are active.
    /// Returns whether the table was created.
    ///
    /// # Errors
    /// When DynamoDB refuses.
    pub fn create_tables(&self) -> Result<bool> {
        self.run(|inner| async move { tables::create(&inner.table).await })
    }

    fn run<T: Send + 'static, F: Future<Output = Result<T>> + Send + 'static>(
        &self,
        f: impl FnOnce(Arc<Inner>) -> F,
    ) -> Result<T> {
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| Error::Fatal("the DynamoDB runtime stopped".into()))?;
        block_on(rt, f(self.inner.clone()))
    }
}

/// Parses items after resolving their spilled values.
/// The execution item's lease token is `token` (items from before leases have none: 0).
fn lease_token_is(token: u64) -> Cond {
    let eq = Cond::Eq("lease_token", n(token));
    if token == 0 {
        Cond::Or(vec![eq, Cond::NotExists("lease_token")])
    } else {
        eq
    }
}

async fn parse_all<T>(
    table: &Table,
    mut items: Vec<Item>,
    parse: impl Fn(&Item) -> Result<T>,
) -> Result<Vec<T>> {
    blob::resolve(table, &mut items).await?;
    items.iter().map(parse).collect()
}

async fn parse_one<T>(
    table: &Table,
    item: Option<Item>,
    parse: impl Fn(&Item) -> Result<T>,
) -> Result<Option<T>> {
    Ok(parse_all(table, item.into_iter().collect(), parse)
        .await?
        .pop())
}

fn operation_from(item: &Item) -> Result<Operation> {
    Ok(serde_json::from_str(&item.req_str("d")?)?)
}

impl Inner {
    async fn execution(&self, id: &ExecutionId) -> Result<Option<ExecutionRecord>> {
        let item = self
            .table
            .get(&keys::execution_pk(id), keys::ROOT_SK)
            .await?;
        parse_one(&self.table, item, records::execution_from).await
    }

    async fn find_component(
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

    async fn put_component(
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

    async fn delete_component(
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

    async fn create_tenant(&self, tenant: TenantRecord, api_key: KeyRecord) -> Result<bool> {
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

    /// One item written on its own, retried on conflicts; a failed condition is `Ok(false)`.
    async fn write_one(&self, write: Write, what: &str) -> Result<bool> {
        let mut backoff = Backoff::new();
        let writes = [write];
        let mut token = token();
        loop {
            match self.table.transact(&writes, &token).await {
                Ok(()) => return Ok(true),
                Err(TxError::Cancelled(reasons))
                    if reasons.first().and_then(Option::as_deref)
                        == Some("ConditionalCheckFailed") =>
                {
                    return Ok(false);
                }
                Err(TxError::Failed(m)) => return Err(Error::Fatal(m)),
                // Refused as a whole: a new attempt.
                Err(TxError::Cancelled(_)) => {
                    token = self::token();
                    backoff.wait(what).await?;
                }
                // Maybe applied: the same token, which DynamoDB applies at most once.
                Err(TxError::Ambiguous(_)) => backoff.wait(what).await?,
            }
        }
    }

    async fn list_executions(
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

    async fn create_execution(&self, new: NewExecution) -> Result<Created> {
        let name = new.name.clone().unwrap_or_else(|| new.id.to_string());
        let name_pk = keys::name_pk(new.tenant.as_str(), &name);
        let tenant_pk = keys::tenant_pk(new.tenant.as_str());
        let exec_pk = keys::execution_pk(&new.id);
        let record = ExecutionRecord {
            id: new.id.clone(),
            tenant: new.tenant.clone(),
            name: name.clone(),
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
        };
        let mut backoff = Backoff::new();
        let mut unsure = false;
        loop {
            if unsure && self.table.get(&exec_pk, keys::ROOT_SK).await?.is_some() {
                // The earlier attempt landed.
                return Ok(Created::New(record));
            }
            if let Some(taken) = self.table.get(&name_pk, keys::ROOT_SK).await? {
                let id = ExecutionId::from_raw(taken.req_str("execution_id")?);
                let existing = self.execution(&id).await?.ok_or_else(|| {
                    Error::corrupt(format!("execution {id} named {name:?} is missing"))
                })?;
                return Ok(Created::for_taken_name(existing, &new));
            }
            if let Some(max) = new.max_running {
                let running: i64 = self
                    .table
                    .get(&tenant_pk, keys::RUNNING_SK)
                    .await?
                    .and_then(|i| i.num("n"))
                    .unwrap_or(0);
                if running >= i64::from(max) {
                    return Ok(Created::OverQuota(max));
                }
            }
            let mut name_item = key(&name_pk, keys::ROOT_SK);
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
                    key: key(&tenant_pk, keys::RUNNING_SK),
                    update: running,
                    cond: quota,
                },
                Write::Put {
                    item: records::execution_item(&records::NewExecutionItem {
                        id: &new.id,
                        tenant: &new.tenant,
                        name: &name,
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
                    key: key(&tenant_pk, keys::running_digest_sk(new.digest.as_str())),
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
                        kind: super::TimerKind::ExecutionTimeout,
                    }),
                    cond: None,
                });
            }
            let spilled = blob::place(self.table.spill.as_deref(), &mut writes);
            blob::write(&self.table, spilled).await?;
            match self.table.transact(&writes, &token()).await {
                Ok(()) => return Ok(Created::New(record)),
                Err(TxError::Cancelled(reasons)) => {
                    let failed = |i: usize| {
                        reasons.get(i).and_then(Option::as_deref) == Some("ConditionalCheckFailed")
                    };
                    if !failed(0) && failed(1) && !unsure {
                        return Ok(Created::OverQuota(new.max_running.unwrap_or(0)));
                    }
                    // The name was taken meanwhile (the next round reports it), or a conflict.
                    if !failed(0) {
                        backoff.wait("create execution").await?;
                    }
                }
                Err(TxError::Ambiguous(_)) => {
                    unsure = true;
                    backoff.wait("create execution").await?;
                }
                Err(TxError::Failed(m)) => return Err(Error::Fatal(m)),
            }
        }
    }

    async fn callback(&self, id: &CallbackId) -> Result<Option<CallbackRecord>> {
        let Some(pointer) = self
            .table
            .get(&keys::callback_pk(id.as_str()), keys::ROOT_SK)
            .await?
        else {
            return Ok(None);
        };
        let execution = ExecutionId::from_raw(pointer.req_str("execution_id")?);
        let item = self
            .table
            .get(
                &keys::execution_pk(&execution),
                &keys::callback_sk(id.as_str()),
            )
            .await?;
        parse_one(&self.table, item, records::callback_from).await
    }

    async fn index_shards(&self, prefix: &str, sk: Sk) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        for pk in keys::all_shards(prefix) {
            items.extend(
                self.table
                    .query_all(&Query::index(GSI2, pk, sk.clone()), None)
                    .await?,
            );
        }
        Ok(items)
    }

    /// Takes the lease if it is free, expired or `host`'s: a read, then a write conditioned on
    /// the token read (so two hosts racing for it cannot both win), again on a lost race.
    async fn acquire_lease(
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

    async fn claim_role(
        &self,
        name: String,
        host: String,
        now: Millis,
        ttl_ms: u64,
    ) -> Result<bool> {
        let pk = keys::role_pk(&name);
        let mut backoff = Backoff::new();
        loop {
            let item = self.table.get(&pk, keys::ROOT_SK).await?;
            let held = item.as_ref().map(records::lease_from).unwrap_or_default();
            let Claim::Acquired { lease: taken, .. } = held.claim(true, &host, now, ttl_ms) else {
                return Ok(false);
            };
            let mut update = UpdateExpr::default();
            records::set_lease(&mut update, &taken);
            let cond = match item {
                Some(_) => Cond::Eq("lease_token", n(held.token)),
                None => Cond::NotExists("pk"),
            };
            if self
                .table
                .update(key(&pk, keys::ROOT_SK), &update, &cond)
                .await?
            {
                return Ok(true);
            }
            // Another host wrote first: read again, and see whose the role is now.
            backoff.wait("role").await?;
        }
    }

    async fn renew_lease(
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

    async fn commit(&self, execution: ExecutionId, batch: Batch) -> Result<()> {
        let stripe = keys::hash(execution.as_str()) as usize % STRIPES;
        let _serial = self.stripes[stripe].lock().await;
        let _publish = if batch.publish.is_empty() {
            None
        } else {
            Some(self.publish.lock().await)
        };
        let requires_running = batch
            .conditions
            .iter()
            .any(|c| matches!(c, Condition::ExecutionRunning));
        let lease_token = batch.conditions.iter().find_map(|c| match c {
            Condition::Lease(token) => Some(*token),
            _ => None,
        });
        let exec_pk = keys::execution_pk(&execution);
        // Tokens of attempts whose outcome is unknown.
        let mut unsure: Vec<String> = Vec::new();
        let mut backoff = Backoff::new();
        // The item as this process last left it, for a commit under a lease this process
        // holds (nobody else's activation writes meanwhile). Every write to the item is
        // conditioned on its version, so a stale copy costs one refused transaction, after
        // which the item is read. Only success is trusted on a kept copy. Other commits
        // (callbacks, timers) are as likely as not about an execution another host runs, so
        // they read.
        let mut cached = self.forget(&execution).filter(|_| lease_token.is_some());
        loop {
            let from_cache = cached.is_some();
            let state = match cached.take() {
                Some(state) => state,
                None => {
                    let Some(item) = self.table.get(&exec_pk, keys::ROOT_SK).await? else {
                        return Err(Error::NotFound(format!("execution {execution}")));
                    };
                    ExecState::from_item(&item)?
                }
            };
            if from_cache
                && (lease_token.is_some_and(|t| t != state.lease.token)
                    || (requires_running && state.status != ExecutionStatus::Running))
            {
                continue;
            }
            if state.last_tx.as_ref().is_some_and(|t| unsure.contains(t)) {
                return Ok(());
            }
            if let Some(token) = lease_token.filter(|t| *t != state.lease.token) {
                return Err(Error::ConditionFailed(format!(
                    "the lease of execution {execution} was taken over (token {token} is stale)"
                )));
            }
            if requires_running && state.status != ExecutionStatus::Running {
                return Err(Error::ConditionFailed(format!(
                    "execution {execution} is not running"
                )));
            }
            let token = token();
            let plan = commit::plan(&self.table, &execution, &state, &batch, &token).await?;
            blob::write(&self.table, plan.spilled.clone()).await?;
            match self.table.transact(&plan.writes, &token).await {
                Ok(()) => {
                    if let Some(after) = plan.after {
                        self.remember(&execution, after);
                    }
                    self.follow_up(plan.follow_ups).await;
                    return Ok(());
                }
                Err(TxError::Cancelled(_)) if from_cache => {
                    // Decided on a copy that may be stale: read the item and plan again.
                    unsure.push(token);
                }
                Err(TxError::Cancelled(reasons)) => match plan.why(&reasons) {
                    // The SDK retries a request that timed out with the same token; where the
                    // server does not deduplicate by token (moto), the retry finds the first
                    // attempt's writes and fails its conditions. The token on the item tells.
                    Verdict::ConditionFailed(m) => {
                        let landed = self
                            .table
                            .get(&exec_pk, keys::ROOT_SK)
                            .await?
                            .is_some_and(|item| item.str("last_tx") == Some(token.as_str()));
                        if landed {
                            if let Some(after) = plan.after {
                                self.remember(&execution, after);
                            }
                            self.follow_up(plan.follow_ups).await;
                            return Ok(());
                        }
                        return Err(Error::ConditionFailed(m));
                    }
                    Verdict::Fatal(m) => {
                        return Err(Error::Fatal(format!("commit to {execution}: {m}")));
                    }
                    // A lost race, or this attempt's own first try landing (see above): the
                    // next read tells them apart.
                    Verdict::Retry => {
                        unsure.push(token);
                        backoff.wait("commit").await?;
                    }
                },
                Err(TxError::Ambiguous(m)) => {
                    tracing::warn!(%execution, error = %m, "dynamodb: commit outcome unknown; checking");
                    unsure.push(token);
                    backoff.wait("commit").await?;
                }
                Err(TxError::Failed(m)) => {
                    return Err(Error::Fatal(format!("commit to {execution}: {m}")));
                }
            }
        }
    }

    /// Keeps `state` for the next commit of a running execution.
    fn remember(&self, id: &ExecutionId, state: ExecState) {
        let Ok(mut states) = self.states.lock() else {
            return;
        };
        if state.status != ExecutionStatus::Running {
            states.remove(id);
            return;
        }
        if states.len() >= MAX_CACHED_STATES && !states.contains_key(id) {
            states.clear();
        }
        states.insert(id.clone(), state);
    }

    /// Takes the kept state of `id` out of the cache (a commit that fails leaves none behind).
    fn forget(&self, id: &ExecutionId) -> Option<ExecState> {
        self.states.lock().ok()?.remove(id)
    }

    /// Clean-up writes that did not fit in a commit's transaction (best effort).
    async fn follow_up(&self, writes: Vec<Write>) {
        for group in writes.chunks(commit::MAX_ITEMS) {
            let mut backoff = Backoff::new();
            loop {
                match self.table.transact(group, &token()).await {
                    Ok(()) => break,
                    // A waiting callback that was completed meanwhile: nothing to cancel.
                    Err(TxError::Cancelled(reasons))
                        if reasons
                            .iter()
                            .flatten()
                            .all(|c| c == "ConditionalCheckFailed") =>
                    {
                        for write in group {
                            self.write_one_quiet(write.clone()).await;
                        }
                        break;
                    }
                    Err(e) => {
                        if backoff.wait("clean-up").await.is_err() {
                            tracing::warn!(error = ?e, "dynamodb: clean-up after a finished execution failed");
                            break;
                        }
                    }
                }
            }
        }
    }

    async fn write_one_quiet(&self, write: Write) {
        if let Err(e) = self.write_one(write, "clean-up").await {
            tracing::warn!(error = %e, "dynamodb: clean-up write failed");
        }
    }

    async fn workflow_events(
        &self,
        tenant: Option<TenantId>,
        execution: Option<ExecutionId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<WorkflowEvent>> {
        let pk = match (&tenant, &execution) {
            (_, Some(e)) => keys::execution_events_pk(e.as_str()),
            (Some(t), None) => keys::tenant_events_pk(t.as_str()),
            (None, None) => keys::EVENTS_PK.to_string(),
        };
        let mut q = Query::table(pk, Sk::Gt(keys::seq(after)));
        q.page = Some(limit.clamp(1, 1000) as i32);
        let items = self.table.query_all(&q, Some(limit)).await?;
        let events = parse_all(&self.table, items, records::workflow_event_from).await?;
        Ok(match tenant {
            Some(t) => events.into_iter().filter(|e| e.tenant == t).collect(),
            None => events,
        })
    }

    async fn undelivered_events(&self, after: u64, limit: usize) -> Result<Vec<WorkflowEvent>> {
        let mut q = Query::table(keys::OUTBOX_PK, Sk::Gt(keys::seq(after)));
        q.page = Some(limit.clamp(1, 1000) as i32);
        let markers = self.table.query_all(&q, Some(limit)).await?;
        let keys_wanted = markers
            .iter()
            .filter_map(|m| m.num::<u64>("seq"))
            .map(|seq| key(keys::EVENTS_PK, keys::seq(seq)))
            .collect();
        let items = self.table.batch_get(keys_wanted).await?;
        let mut events = parse_all(&self.table, items, records::workflow_event_from).await?;
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    /// Both copies of each letter first, then the outbox markers: every write is idempotent,
    /// and a crash in between leaves the event in the outbox, to be dead-lettered again.
    async fn dead_letter(&self, letters: Vec<DeadLetter>) -> Result<()> {
        let mut puts = Vec::new();
        let mut markers = Vec::new();
        for l in &letters {
            puts.push(records::dead_letter_item(
                keys::DEAD_LETTERS_PK.to_string(),
                l,
            ));
            puts.push(records::dead_letter_item(
                keys::tenant_dead_letters_pk(l.event.tenant.as_str()),
                l,
            ));
            markers.push(key(keys::OUTBOX_PK, keys::seq(l.event.seq)));
        }
        self.table.batch_write(puts, Vec::new()).await?;
        self.table.batch_write(Vec::new(), markers).await
    }

    async fn dead_letters(
        &self,
        tenant: Option<TenantId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        let pk = match &tenant {
            Some(t) => keys::tenant_dead_letters_pk(t.as_str()),
            None => keys::DEAD_LETTERS_PK.to_string(),
        };
        let mut q = Query::table(pk, Sk::Gt(keys::seq(after)));
        q.page = Some(limit.clamp(1, 1000) as i32);
        let items = self.table.query_all(&q, Some(limit)).await?;
        let letters = parse_all(&self.table, items, records::dead_letter_from).await?;
        Ok(match tenant {
            Some(t) => letters
                .into_iter()
                .filter(|l| l.event.tenant == t)
                .collect(),
            None => letters,
        })
    }

    /// The callback item's key, through its pointer.
    async fn callback_key(&self, id: &CallbackId) -> Result<Option<Item>> {
        let Some(pointer) = self
            .table
            .get(&keys::callback_pk(id.as_str()), keys::ROOT_SK)
            .await?
        else {
            return Ok(None);
        };
        let execution = ExecutionId::from_raw(pointer.req_str("execution_id")?);
        Ok(Some(key(
            keys::execution_pk(&execution),
            keys::callback_sk(id.as_str()),
        )))
    }

    /// One conditional update (waiting, and no task yet), then a read of what is bound.
    async fn bind_agent_task(&self, id: CallbackId, task_id: String) -> Result<Option<String>> {
        let Some(item_key) = self.callback_key(&id).await? else {
            return Ok(None);
        };
        let mut update = UpdateExpr::default();
        update.set("task_id", s(&task_id));
        let cond = Cond::And(vec![
            Cond::Eq("st", s("STARTED")),
            Cond::NotExists("task_id"),
        ]);
        if self.table.update(item_key.clone(), &update, &cond).await? {
            return Ok(Some(task_id));
        }
        let (pk, sk) = (item_key["pk"].clone(), item_key["sk"].clone());
        let (Ok(pk), Ok(sk)) = (pk.as_s(), sk.as_s()) else {
            return Ok(None);
        };
        Ok(self
            .table
            .get(pk, sk)
            .await?
            .filter(|item| item.str("st") == Some("STARTED"))
            .and_then(|item| item.str("task_id").map(str::to_string)))
    }

    async fn agent_task(&self, id: CallbackId) -> Result<Option<String>> {
        let Some(item_key) = self.callback_key(&id).await? else {
            return Ok(None);
        };
        let (Ok(pk), Ok(sk)) = (item_key["pk"].as_s(), item_key["sk"].as_s()) else {
            return Ok(None);
        };
        Ok(self
            .table
            .get(pk, sk)
            .await?
            .and_then(|item| item.str("task_id").map(str::to_string)))
    }
}

impl Store for DynamoStore {
    fn put_component(
        &self,
        tenant: &TenantId,
        name: &str,
        digest: &ComponentDigest,
        size: u64,
        now: Millis,
    ) -> Result<(ComponentRecord, bool)> {
        let (tenant, name, digest) = (tenant.clone(), name.to_string(), digest.clone());
        self.run(move |i| async move { i.put_component(tenant, name, digest, size, now).await })
    }

    fn find_component(
        &self,
        tenant: &TenantId,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<ComponentRecord>> {
        let (tenant, name) = (tenant.clone(), name.to_string());
        self.run(move |i| async move { i.find_component(&tenant, &name, version).await })
    }

    fn components(&self, tenant: &TenantId, name: Option<&str>) -> Result<Vec<ComponentRecord>> {
        let (tenant, name) = (tenant.clone(), name.map(str::to_string));
        self.run(move |i| async move {
            let prefix = name
                .as_deref()
                .map_or(keys::COMPONENT_PREFIX.to_string(), keys::component_prefix);
            let q = Query::table(keys::components_pk(tenant.as_str()), Sk::BeginsWith(prefix));
            let mut records = i
                .table
                .query_all(&q, None)
                .await?
                .iter()
                .map(|item| records::component_from(&tenant, item))
                .collect::<Result<Vec<_>>>()?;
            records.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
            Ok(records)
        })
    }

    fn delete_component(&self, tenant: &TenantId, name: &str, version: u32) -> Result<Deleted> {
        let (tenant, name) = (tenant.clone(), name.to_string());
        self.run(move |i| async move { i.delete_component(tenant, name, version).await })
    }

    fn create_tenant(&self, tenant: &TenantRecord, key: &KeyRecord) -> Result<bool> {
        let (tenant, key) = (tenant.clone(), key.clone());
        self.run(move |i| async move { i.create_tenant(tenant, key).await })
    }

    fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>> {
        let id = id.clone();
        self.run(move |i| async move {
            let item = i
                .table
                .get(keys::TENANTS_PK, &keys::esc(id.as_str()))
                .await?;
            item.as_ref().map(records::tenant_from).transpose()
        })
    }

    fn tenants(&self) -> Result<Vec<TenantRecord>> {
        self.run(move |i| async move {
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
        })
    }

    fn update_tenant(&self, tenant: &TenantRecord) -> Result<()> {
        let overrides = serde_json::to_string(&tenant.overrides)?;
        let id = tenant.id.clone();
        self.run(move |i| async move {
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
        })
    }

    fn api_key(&self, id: &str) -> Result<Option<KeyRecord>> {
        let id = id.to_string();
        self.run(move |i| async move {
            let item = i.table.get(&keys::key_pk(&id), keys::ROOT_SK).await?;
            item.as_ref().map(records::key_from).transpose()
        })
    }

    fn put_api_key(&self, key: &KeyRecord) -> Result<()> {
        let item = records::key_item(key);
        self.run(move |i| async move {
            i.write_one(Write::Put { item, cond: None }, "put api key")
                .await
                .map(|_| ())
        })
    }

    fn api_keys(&self, tenant: &TenantId) -> Result<Vec<KeyRecord>> {
        let tenant = tenant.clone();
        self.run(move |i| async move {
            let q = Query::index(GSI1, keys::tenant_keys_g1pk(tenant.as_str()), Sk::Any);
            i.table
                .query_all(&q, None)
                .await?
                .iter()
                .map(records::key_from)
                .collect()
        })
    }

    fn list_executions(
        &self,
        tenant: &TenantId,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>> {
        let (tenant, filter) = (tenant.clone(), filter.clone());
        self.run(move |i| async move { i.list_executions(tenant, filter).await })
    }

    fn create_execution(&self, new: NewExecution) -> Result<Created> {
        self.run(move |i| async move { i.create_execution(new).await })
    }

    fn execution(&self, id: &ExecutionId) -> Result<Option<ExecutionRecord>> {
        let id = id.clone();
        self.run(move |i| async move { i.execution(&id).await })
    }

    fn operations(&self, id: &ExecutionId) -> Result<Vec<Operation>> {
        let id = id.clone();
        self.run(move |i| async move {
            let q = Query::table(
                keys::execution_pk(&id),
                Sk::BeginsWith(keys::OPERATION_PREFIX.into()),
            );
            let items = i.table.query_all(&q, None).await?;
            parse_all(&i.table, items, operation_from).await
        })
    }

    fn operation(&self, id: &ExecutionId, op_id: &str) -> Result<Option<Operation>> {
        let (id, op_id) = (id.clone(), op_id.to_string());
        self.run(move |i| async move {
            let item = i
                .table
                .get(&keys::execution_pk(&id), &keys::operation_sk(&op_id))
                .await?;
            parse_one(&i.table, item, operation_from).await
        })
    }

    fn history(&self, id: &ExecutionId, after: u64, limit: usize) -> Result<Vec<(u64, Event)>> {
        let id = id.clone();
        self.run(move |i| async move {
            if limit == 0 || after == u64::MAX {
                return Ok(Vec::new());
            }
            let mut q = Query::table(
                keys::execution_pk(&id),
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
        })
    }

    fn callback(&self, id: &CallbackId) -> Result<Option<CallbackRecord>> {
        let id = id.clone();
        self.run(move |i| async move { i.callback(&id).await })
    }

    fn pending_agent_callbacks(&self) -> Result<Vec<CallbackRecord>> {
        self.run(move |i| async move {
            let items = i.index_shards("AG", Sk::Any).await?;
            let callbacks = parse_all(&i.table, items, records::callback_from).await?;
            Ok(callbacks
                .into_iter()
                .filter(|c| c.status == crate::journal::Status::Started && c.agent.is_some())
                .collect())
        })
    }

    fn pending_callbacks(&self, id: &ExecutionId) -> Result<Vec<CallbackRecord>> {
        let id = id.clone();
        self.run(move |i| async move {
            let q = Query::table(
                keys::execution_pk(&id),
                Sk::BeginsWith(keys::CALLBACK_PREFIX.into()),
            );
            let items: Vec<Item> = i
                .table
                .query_all(&q, None)
                .await?
                .into_iter()
                .filter(|item| item.str("st") == Some("STARTED"))
                .collect();
            let mut callbacks = parse_all(&i.table, items, records::callback_from).await?;
            callbacks.sort_by(|a, b| a.op_id.cmp(&b.op_id));
            Ok(callbacks)
        })
    }

    fn commit(&self, execution: &ExecutionId, batch: Batch) -> Result<()> {
        let execution = execution.clone();
        self.run(move |i| async move { i.commit(execution, batch).await })
    }

    fn workflow_events(
        &self,
        tenant: Option<&TenantId>,
        execution: Option<&ExecutionId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<WorkflowEvent>> {
        let (tenant, execution) = (tenant.cloned(), execution.cloned());
        self.run(move |i| async move {
            if limit == 0 {
                return Ok(Vec::new());
            }
            i.workflow_events(tenant, execution, after, limit).await
        })
    }

    fn undelivered_events(&self, after: u64, limit: usize) -> Result<Vec<WorkflowEvent>> {
        self.run(move |i| async move {
            if limit == 0 {
                return Ok(Vec::new());
            }
            i.undelivered_events(after, limit).await
        })
    }

    fn dead_letter(&self, letters: &[DeadLetter]) -> Result<()> {
        let letters = letters.to_vec();
        self.run(move |i| async move { i.dead_letter(letters).await })
    }

    fn dead_letters(
        &self,
        tenant: Option<&TenantId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        let tenant = tenant.cloned();
        self.run(move |i| async move {
            if limit == 0 {
                return Ok(Vec::new());
            }
            i.dead_letters(tenant, after, limit).await
        })
    }

    fn bind_agent_task(&self, id: &CallbackId, task_id: &str) -> Result<Option<String>> {
        let (id, task_id) = (id.clone(), task_id.to_string());
        self.run(move |i| async move { i.bind_agent_task(id, task_id).await })
    }

    fn agent_task(&self, id: &CallbackId) -> Result<Option<String>> {
        let id = id.clone();
        self.run(move |i| async move { i.agent_task(id).await })
    }

    fn mark_delivered(&self, seqs: &[u64]) -> Result<()> {
        let markers: Vec<Item> = seqs
            .iter()
            .map(|seq| key(keys::OUTBOX_PK, keys::seq(*seq)))
            .collect();
        self.run(move |i| async move { i.table.batch_write(Vec::new(), markers).await })
    }

    fn runnable(&self) -> Result<Vec<Runnable>> {
        self.run(move |i| async move {
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
        })
    }

    fn acquire_lease(
        &self,
        id: &ExecutionId,
        host: &str,
        now: Millis,
        ttl_ms: u64,
    ) -> Result<Claim> {
        let (id, host) = (id.clone(), host.to_string());
        self.run(move |i| async move { i.acquire_lease(id, host, now, ttl_ms).await })
    }

    fn claim_role(&self, name: &str, host: &str, now: Millis, ttl_ms: u64) -> Result<bool> {
        let (name, host) = (name.to_string(), host.to_string());
        self.run(move |i| async move { i.claim_role(name, host, now, ttl_ms).await })
    }

    fn renew_lease(
        &self,
        id: &ExecutionId,
        lease: &Lease,
        now: Millis,
        ttl_ms: u64,
    ) -> Result<bool> {
        let (id, lease) = (id.clone(), lease.clone());
        self.run(move |i| async move { i.renew_lease(id, lease, now, ttl_ms).await })
    }

    fn timers(&self, before: Millis) -> Result<Vec<Timer>> {
        self.run(move |i| async move {
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
        })
    }
}
