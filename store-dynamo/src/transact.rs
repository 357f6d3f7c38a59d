//! The DynamoDB store: committing a batch: the cached execution state, the transaction and its retries, the follow-up writes.

use super::*;

impl Inner {
    pub(super) async fn commit(&self, execution: ExecutionId, batch: Batch) -> Result<()> {
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
    pub(super) fn remember(&self, id: &ExecutionId, state: ExecState) {
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
    pub(super) fn forget(&self, id: &ExecutionId) -> Option<ExecState> {
        self.states.lock().ok()?.remove(id)
    }

    /// Clean-up writes that did not fit in a commit's transaction (best effort).
    pub(super) async fn follow_up(&self, writes: Vec<Write>) {
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

    pub(super) async fn write_one_quiet(&self, write: Write) {
        if let Err(e) = self.write_one(write, "clean-up").await {
            tracing::warn!(error = %e, "dynamodb: clean-up write failed");
        }
    }
}
