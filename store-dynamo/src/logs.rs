//! The DynamoDB store: execution logs, outside the journal's transactions.
//!
//! An append reads the log usage item (`#LOGS` in the execution's partition), decides what to
//! keep with [`admit`], writes the new usage conditioned on the `last_seq` it read (so two
//! appends never number the same line), and only then puts the lines, 25 to a request. A
//! transaction would cap an append at 100 lines and cost twice the capacity; the journal's
//! atomicity does not depend on the log, which is written beside it.

use super::*;
use aegis_core::store::logs::admit;
use aegis_core::store::{LogLevel, LogLimits, LogLine, LogRecord, LogUsage};
use aws_sdk_dynamodb::types::AttributeValue;

impl Inner {
    pub(super) async fn append_logs(
        &self,
        id: &ExecutionId,
        lines: Vec<LogLine>,
        limits: LogLimits,
    ) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let pk = keys::execution_pk(id);
        let mut backoff = Backoff::new();
        loop {
            let item = self.table.get(&pk, keys::LOG_USAGE_SK).await?;
            let usage = item
                .as_ref()
                .map(usage_from)
                .transpose()?
                .unwrap_or_default();
            if usage.full {
                return Ok(());
            }
            let (records, next) = admit(usage, &lines, limits);
            let mut update = UpdateExpr::default();
            update
                .set("last_seq", n(next.last_seq))
                .set("lines", n(next.lines))
                .set("bytes", n(next.bytes))
                .set("full", AttributeValue::Bool(next.full));
            let cond = match item {
                Some(_) => Cond::Eq("last_seq", n(usage.last_seq)),
                None => Cond::NotExists("pk"),
            };
            if self
                .table
                .update(key(&pk, keys::LOG_USAGE_SK), &update, &cond)
                .await?
            {
                let puts = records.iter().map(|r| record_item(&pk, r)).collect();
                return self.table.batch_write(puts, Vec::new()).await;
            }
            // Another append numbered lines first: read its usage and number on from it.
            backoff.wait("log append").await?;
        }
    }

    pub(super) async fn logs(
        &self,
        id: &ExecutionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogRecord>> {
        if limit == 0 || after == u64::MAX {
            return Ok(Vec::new());
        }
        let mut q = Query::table(
            keys::execution_pk(id),
            Sk::Between(keys::log_sk(after + 1), keys::log_sk(u64::MAX)),
        );
        q.page = Some(limit.clamp(1, 1000) as i32);
        let items = self.table.query_all(&q, Some(limit)).await?;
        items.iter().map(record_from).collect()
    }
}

fn usage_from(item: &Item) -> Result<LogUsage> {
    Ok(LogUsage {
        last_seq: item.req_num("last_seq")?,
        lines: item.req_num("lines")?,
        bytes: item.req_num("bytes")?,
        full: item.bool("full").unwrap_or(false),
    })
}

fn record_item(pk: &str, r: &LogRecord) -> Item {
    let mut item = key(pk, keys::log_sk(r.seq));
    item.insert("seq".into(), n(r.seq));
    item.insert("at".into(), n(r.at));
    item.insert("lvl".into(), s(r.level.as_str()));
    item.insert("msg".into(), s(r.message.clone()));
    item
}

fn record_from(item: &Item) -> Result<LogRecord> {
    let level = item.req_str("lvl")?;
    Ok(LogRecord {
        seq: item.req_num("seq")?,
        at: item.req_num("at")?,
        level: LogLevel::parse(&level)
            .ok_or_else(|| Error::corrupt(format!("log level {level:?}")))?,
        message: item.req_str("msg")?,
    })
}
