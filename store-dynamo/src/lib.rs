//! The DynamoDB checkpoint store: the same roles ([`aegis_core::store::Store`]) as the embedded store, on one
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
//! | log line | `EX#<id>` | `LOG#<seq, 20 digits>` | `at`, `lvl`, `msg`: a page of the execution's log is one `Query` |
//! | log usage | `EX#<id>` | `#LOGS` | `last_seq`, `lines`, `bytes`, `full`: written before the lines it numbers |
//! | timer | `EX#<id>` | `TM#<kind>#<op id>` | `fire_at`; GSI2 `TM#<shard>` / `<fire_at>#…` |
//! | callback | `EX#<id>` | `CB#<callback id>` | `st`, `task_id` once the agent named its task; GSI2 `AG#<shard>` while an agent invocation waits |
//! | callback pointer | `CB#<callback id>` | `#` | the execution id (find a callback by id) |
//! | execution name | `T#<tenant>#NAME#<name>` | `#` | the execution id (idempotent starts) |
//! | running counts | `T#<tenant>` | `#RUNNING`, `#RUNNING#<digest>` | `n`: the quota and component deletion read these |
//! | component version | `T#<tenant>#COMP` | `V#<name>#<version, 10 digits>` | |
//! | component digest | `T#<tenant>#COMP` | `D#<name>#<digest>` | the version that has it |
//! | tenant | `#TENANTS` | `<id>` | one partition: tenants are few |
//! | tenant name | `TNAME#<name>` | `#` | uniqueness |
//! | API key | `KEY#<id>` | `#` | `hash`; `sealed_secret` (optional: keys made before SigV4 support have none); GSI1 `T#<tenant>#KEY` |
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
//! Log lines are not journal records and never join a transaction (see [`logs`]): an append
//! reserves their numbers on the log usage item (a conditional update, retried on a race),
//! then writes the lines with `BatchWriteItem`. A host dying in between leaves a gap in the
//! numbers, never a line twice.
//!
//! Retries: the SDK retries throttling and transient errors of each request (standard mode,
//! up to [`SDK_MAX_ATTEMPTS`] attempts, exponential backoff from 50 ms to 5 s); the store's own
//! loops retry transaction conflicts and lost races with jittered backoff. A transaction whose
//! outcome is unknown (timeout, dropped connection) is never blindly re-applied: every commit
//! records its client request token on the execution item (`last_tx`), and the retry first
//! reads whether that token landed.
//!
//! # Async
//!
//! The roles are async and so is the SDK: calls run on the caller's runtime, with no runtime or
//! thread of the store's own. The engine's synchronous host calls wait for them with
//! [`aegis_core::store::wait`] on their blocking thread.
//!
//! # Leases
//!
//! The execution item carries its [`Lease`] (`lease_owner`, `lease_token`, `lease_exp`).
//! Acquiring is a write conditioned on the token read; a commit carrying
//! [`Condition::Lease`] is refused when the token moved on, both by the check on the item read
//! before planning and by the transaction's condition on the execution item.

mod blob;
mod bucket;
mod callbacks;
mod catalog;
mod commit;
mod expr;
mod io;
mod journal;
mod keys;
mod logs;
mod outbox;
mod records;
mod tables;
mod transact;

pub use blob::SpillBucket;
pub use keys::table_name;

use aegis_core::ids::{CallbackId, ComponentDigest, ExecutionId, TenantId};
use aegis_core::journal::{Event, Millis, Operation};
use aegis_core::store::{
    Batch, CallbackRecord, Callbacks, Catalog, Claim, ComponentRecord, Condition, Created,
    DeadLetter, Deleted, Error, ExecutionFilter, ExecutionRecord, ExecutionStatus, Journal,
    KeyRecord, Lease, NewExecution, Outbox, Result, Runnable, TenantRecord, Timer, Timers,
    WorkflowEvent,
};
use commit::Verdict;
use expr::{Cond, Item, UpdateExpr, Write, key, n, s};
use io::{Backoff, Flow, GSI1, GSI2, ItemExt, Query, Sk, Table, TxError};
use records::ExecState;
use std::collections::HashMap;
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

/// The DynamoDB-backed store. Natively async: its calls run on the caller's runtime.
pub struct DynamoStore {
    inner: Arc<Inner>,
}

async fn client(options: DynamoOptions) -> Result<aws_sdk_dynamodb::Client> {
    let aws = aegis_aws::AwsOptions {
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
    let config = aegis_aws::sdk_config(&aws)
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
    /// When no region is configured or the spill bucket cannot be reached.
    pub async fn connect(options: &DynamoOptions) -> Result<Self> {
        let name = keys::table_name(&options.table_prefix);
        let client = client(options.clone()).await?;
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
        })
    }

    /// Connects and checks that the table exists and is active.
    ///
    /// # Errors
    /// As [`DynamoStore::connect`], and when the table is missing or unreachable.
    pub async fn open(options: &DynamoOptions) -> Result<Self> {
        let store = Self::connect(options).await?;
        if !tables::active(&store.inner.table).await? {
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
    pub async fn create_tables(&self) -> Result<bool> {
        tables::create(&self.inner.table).await
    }
}

/// The execution item's lease token is `token` (items from before leases have none: 0).
fn lease_token_is(token: u64) -> Cond {
    let eq = Cond::Eq("lease_token", n(token));
    if token == 0 {
        Cond::Or(vec![eq, Cond::NotExists("lease_token")])
    } else {
        eq
    }
}

/// Parses items after resolving their spilled values.
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
    /// One item written on its own, retried on conflicts; a failed condition is `Ok(false)`.
    pub(crate) async fn write_one(&self, write: Write, what: &str) -> Result<bool> {
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

    pub(crate) async fn index_shards(&self, prefix: &str, sk: Sk) -> Result<Vec<Item>> {
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
}
