//! The table's reads and writes: single items, paginated queries, batches and transactions.
//! Everything here is async and runs on the store's own runtime.

use super::expr::{Cond, Item, Placeholders, UpdateExpr, Write, key, s};
use aegis_core::store::{Error, Result};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest};
use std::collections::HashMap;
use std::time::Duration;

/// The client and the table, and the bucket large values spill to (see [`super::blob`]).
pub struct Table {
    pub client: Client,
    pub name: String,
    pub spill: Option<std::sync::Arc<dyn super::blob::SpillBucket>>,
    /// Spilled objects written or read lately.
    pub kept: super::blob::Kept,
}

pub const GSI1: &str = "gsi1";
pub const GSI2: &str = "gsi2";

/// A failed request as a store error, named after its operation `what`. The SDK has retried it
/// already (standard mode), so a failure that may pass still reaches here after the last try:
/// it stays [`Error::Retriable`] for the caller to try again later.
pub(super) fn backend<E: ProvideErrorMetadata + std::error::Error + 'static>(
    what: &str,
) -> impl FnOnce(SdkError<E, HttpResponse>) -> Error + '_ {
    move |e| {
        let message = format!("dynamodb {what}: {}", DisplayErrorContext(&e));
        classified(&e, message)
    }
}

/// `message` as the store error that the failed request `e` is: retriable or fatal.
pub(super) fn classified<E: ProvideErrorMetadata>(
    e: &SdkError<E, HttpResponse>,
    message: String,
) -> Error {
    if passes(e) {
        Error::Retriable(message)
    } else {
        Error::Fatal(message)
    }
}

/// Whether a failed request may succeed when sent again: throttling, a timeout, a lost
/// connection, an unreadable reply or a 5xx may pass; a request DynamoDB rejects (validation,
/// access denied, a missing table) or one the SDK could not build will not.
fn passes<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::ConstructionFailure(_) => false,
        SdkError::ServiceError(service) => {
            refusal_passes(service.raw().status().as_u16(), service.err().code())
        }
        // Timeouts, dispatch and response failures: the request or its reply was lost.
        _ => true,
    }
}

/// Whether DynamoDB's refusal of a request (its HTTP status and error code) may pass: a 5xx,
/// or a 400 that says "not now" (throttled, over a limit, a transaction in the way).
fn refusal_passes(status: u16, code: Option<&str>) -> bool {
    (500..600).contains(&status)
        || code.is_some_and(|code| {
            RETRIABLE_CODES.contains(&code)
                || code.contains("Throttl")
                || code.contains("Unavailable")
        })
}

/// DynamoDB's error codes (HTTP 400) for requests refused now that may pass later.
const RETRIABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "LimitExceededException",
    "TransactionInProgressException",
    "TransactionConflictException",
    "InternalServerError",
];

/// The sort-key part of a query.
#[derive(Clone, Debug)]
pub enum Sk {
    Any,
    BeginsWith(String),
    Gt(String),
    Lt(String),
    Between(String, String),
}

/// One query: a partition of the table or of an index.
#[derive(Clone, Debug)]
pub struct Query {
    pub index: Option<&'static str>,
    pub pk: String,
    pub sk: Sk,
    pub forward: bool,
    /// Items per request.
    pub page: Option<i32>,
}

impl Query {
    pub fn table(pk: impl Into<String>, sk: Sk) -> Self {
        Self {
            index: None,
            pk: pk.into(),
            sk,
            forward: true,
            page: None,
        }
    }

    pub fn index(index: &'static str, pk: impl Into<String>, sk: Sk) -> Self {
        Self {
            index: Some(index),
            ..Self::table(pk, sk)
        }
    }
}

/// What a query callback wants next.
#[derive(PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// How a transaction ended.
#[derive(Debug)]
pub enum TxError {
    /// Refused as a whole: nothing was written. One code per item (`None` when it passed).
    Cancelled(Vec<Option<String>>),
    /// The request may or may not have been applied (timeout, connection lost, 5xx).
    Ambiguous(String),
    /// Refused for a reason retrying cannot fix (validation, permissions).
    Failed(String),
}

impl Table {
    pub async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend("GetItem"))?;
        Ok(out.item)
    }

    /// Runs `q` page by page, handing each item to `f` until it says stop.
    pub async fn query(&self, q: &Query, mut f: impl FnMut(Item) -> Flow) -> Result<()> {
        let (pk_attr, sk_attr) = match q.index {
            None => ("pk", "sk"),
            Some(GSI1) => ("g1pk", "g1sk"),
            Some(_) => ("g2pk", "g2sk"),
        };
        let mut p = Placeholders::default();
        let mut cond = format!("{} = {}", p.name(pk_attr), p.value(s(&q.pk)));
        match &q.sk {
            Sk::Any => {}
            Sk::BeginsWith(v) => {
                cond += &format!(" AND begins_with({}, {})", p.name(sk_attr), p.value(s(v)))
            }
            Sk::Gt(v) => cond += &format!(" AND {} > {}", p.name(sk_attr), p.value(s(v))),
            Sk::Lt(v) => cond += &format!(" AND {} < {}", p.name(sk_attr), p.value(s(v))),
            Sk::Between(a, b) => {
                cond += &format!(
                    " AND {} BETWEEN {} AND {}",
                    p.name(sk_attr),
                    p.value(s(a)),
                    p.value(s(b))
                )
            }
        }
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.name)
                .set_index_name(q.index.map(str::to_string))
                .key_condition_expression(&cond)
                .set_expression_attribute_names(Some(p.names.clone()))
                .set_expression_attribute_values(Some(p.values.clone()))
                .scan_index_forward(q.forward)
                // Index reads are eventually consistent by DynamoDB's design.
                .consistent_read(q.index.is_none())
                .set_limit(q.page)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend("Query"))?;
            for item in out.items.unwrap_or_default() {
                if f(item) == Flow::Stop {
                    return Ok(());
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(()),
            }
        }
    }

    /// Every item of a query, up to `limit`.
    pub async fn query_all(&self, q: &Query, limit: Option<usize>) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        if limit == Some(0) {
            return Ok(items);
        }
        self.query(q, |item| {
            items.push(item);
            if limit.is_some_and(|l| items.len() >= l) {
                Flow::Stop
            } else {
                Flow::Continue
            }
        })
        .await?;
        Ok(items)
    }

    /// The items at `keys` (strongly consistent), in no particular order; missing ones absent.
    pub async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>> {
        let mut found = Vec::new();
        for group in keys.chunks(100) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(group.to_vec()))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| Error::Fatal(e.to_string()))?,
            );
            let mut backoff = Backoff::new();
            while let Some(request) = pending.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.name, request)
                    .send()
                    .await
                    .map_err(backend("BatchGetItem"))?;
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(&self.name).unwrap_or_default());
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.name))
                    .filter(|k| !k.keys.is_empty());
                if pending.is_some() {
                    backoff.wait("BatchGetItem unprocessed keys").await?;
                }
            }
        }
        Ok(found)
    }

    /// Puts and deletes outside a transaction (each item on its own), retrying unprocessed ones.
    pub async fn batch_write(&self, puts: Vec<Item>, deletes: Vec<Item>) -> Result<()> {
        let mut requests = Vec::new();
        for item in puts {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| Error::Fatal(e.to_string()))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        for k in deletes {
            let delete = DeleteRequest::builder()
                .set_key(Some(k))
                .build()
                .map_err(|e| Error::Fatal(e.to_string()))?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
        for group in requests.chunks(25) {
            let mut pending = group.to_vec();
            let mut backoff = Backoff::new();
            while !pending.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.name, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(backend("BatchWriteItem"))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.name))
                    .unwrap_or_default();
                if !pending.is_empty() {
                    backoff.wait("BatchWriteItem unprocessed items").await?;
                }
            }
        }
        Ok(())
    }

    /// One conditional `UpdateItem` on its own: `Ok(false)` when the condition failed. Cheaper
    /// than a one-item transaction (half the write capacity), for writes that touch a single
    /// item and decide their own retries (leases).
    pub async fn update(&self, key: Item, update: &UpdateExpr, cond: &Cond) -> Result<bool> {
        let mut p = Placeholders::default();
        let expr = update.render(&mut p);
        let cond = cond.render(&mut p);
        let sent = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key))
            .update_expression(expr)
            .condition_expression(cond)
            .set_expression_attribute_names(Some(p.names))
            .set_expression_attribute_values(Some(p.values))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend("UpdateItem")(e)),
        }
    }

    /// One `TransactWriteItems` call. `token` makes the SDK's own retries of this request
    /// idempotent on DynamoDB's side.
    pub async fn transact(&self, writes: &[Write], token: &str) -> Result<(), TxError> {
        let items = writes
            .iter()
            .map(|w| w.to_sdk(&self.name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(TxError::Failed)?;
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(token)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }
}

fn classify<R: std::fmt::Debug>(e: SdkError<TransactWriteItemsError, R>) -> TxError {
    let message = DisplayErrorContext(&e).to_string();
    match &e {
        SdkError::ServiceError(service) => match service.err() {
            TransactWriteItemsError::TransactionCanceledException(c) => TxError::Cancelled(
                c.cancellation_reasons()
                    .iter()
                    .map(|r| r.code().filter(|c| *c != "None").map(str::to_string))
                    .collect(),
            ),
            TransactWriteItemsError::TransactionInProgressException(_)
            | TransactWriteItemsError::InternalServerError(_)
            | TransactWriteItemsError::ProvisionedThroughputExceededException(_)
            | TransactWriteItemsError::RequestLimitExceeded(_)
            | TransactWriteItemsError::ThrottlingException(_) => TxError::Ambiguous(message),
            other
                if other
                    .code()
                    .is_some_and(|c| c.contains("Throttl") || c.contains("Unavailable")) =>
            {
                TxError::Ambiguous(message)
            }
            _ => TxError::Failed(message),
        },
        // Not sent at all.
        SdkError::ConstructionFailure(_) => TxError::Failed(message),
        // Sent, outcome unknown.
        _ => TxError::Ambiguous(message),
    }
}

/// Exponential backoff with jitter for the store's own retry loops (transaction conflicts and
/// races); the SDK retries throttling and transient errors of each request by itself.
pub struct Backoff {
    attempt: u32,
}

pub const MAX_ATTEMPTS: u32 = 40;

/// 5 to 10 ms after the first failure, doubling up to 1 s: a conflict clears fast, and the
/// jitter keeps the racing writers from meeting again.
const POLICY: aegis_core::backoff::Backoff = aegis_core::backoff::Backoff {
    first: Duration::from_millis(10),
    factor: 2,
    max: Duration::from_secs(1),
    jitter: true,
};

impl Backoff {
    pub fn new() -> Self {
        Self { attempt: 0 }
    }

    /// Sleeps before the next attempt; fails once the attempts are used up. What was retried
    /// (conflicts, throttling, unsure outcomes) may still pass later, so giving up is
    /// [`Error::Retriable`].
    pub async fn wait(&mut self, what: &str) -> Result<()> {
        self.attempt += 1;
        if self.attempt >= MAX_ATTEMPTS {
            return Err(Error::Retriable(format!(
                "dynamodb: gave up after {MAX_ATTEMPTS} attempts: {what}"
            )));
        }
        tracing::debug!(attempt = self.attempt, %what, "dynamodb: retrying");
        POLICY.sleep(self.attempt).await;
        Ok(())
    }
}

/// Attribute readers.
pub trait ItemExt {
    fn str(&self, attr: &str) -> Option<&str>;
    fn num<T: std::str::FromStr>(&self, attr: &str) -> Option<T>;
    fn bool(&self, attr: &str) -> Option<bool>;
    fn req_str(&self, attr: &str) -> Result<String>;
    fn req_num<T: std::str::FromStr>(&self, attr: &str) -> Result<T>;
}

impl ItemExt for HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    fn str(&self, attr: &str) -> Option<&str> {
        self.get(attr)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    }

    fn num<T: std::str::FromStr>(&self, attr: &str) -> Option<T> {
        self.get(attr)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
    }

    fn bool(&self, attr: &str) -> Option<bool> {
        self.get(attr).and_then(|v| v.as_bool().ok()).copied()
    }

    fn req_str(&self, attr: &str) -> Result<String> {
        self.str(attr)
            .map(str::to_string)
            .ok_or_else(|| Error::corrupt(format!("no {attr}")))
    }

    fn req_num<T: std::str::FromStr>(&self, attr: &str) -> Result<T> {
        self.num(attr)
            .ok_or_else(|| Error::corrupt(format!("no number {attr}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_pass_and_invalid_requests_do_not() {
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
            "TransactionConflictException",
        ] {
            assert!(refusal_passes(400, Some(code)), "{code}");
        }
        assert!(refusal_passes(500, Some("InternalServerError")));
        assert!(refusal_passes(503, None));
        for code in [
            "ValidationException",
            "AccessDeniedException",
            "ResourceNotFoundException",
            "ItemCollectionSizeLimitExceededException",
        ] {
            assert!(!refusal_passes(400, Some(code)), "{code}");
        }
        assert!(!refusal_passes(400, None));
    }
}
