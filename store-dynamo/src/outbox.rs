//! The DynamoDB store: published events, dead letters and fleet-wide roles.

use super::*;

impl Inner {
    pub(super) async fn claim_role(
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

    pub(super) async fn workflow_events(
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

    pub(super) async fn undelivered_events(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<WorkflowEvent>> {
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
    pub(super) async fn dead_letter(&self, letters: Vec<DeadLetter>) -> Result<()> {
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

    pub(super) async fn dead_letters(
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
}

#[async_trait::async_trait]
impl Outbox for DynamoStore {
    async fn workflow_events(
        &self,
        tenant: Option<&TenantId>,
        execution: Option<&ExecutionId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<WorkflowEvent>> {
        let (tenant, execution) = (tenant.cloned(), execution.cloned());
        let i = &self.inner;
        if limit == 0 {
            return Ok(Vec::new());
        }
        i.workflow_events(tenant, execution, after, limit).await
    }

    async fn undelivered_events(&self, after: u64, limit: usize) -> Result<Vec<WorkflowEvent>> {
        let i = &self.inner;
        if limit == 0 {
            return Ok(Vec::new());
        }
        i.undelivered_events(after, limit).await
    }

    async fn mark_delivered(&self, seqs: &[u64]) -> Result<()> {
        let markers: Vec<Item> = seqs
            .iter()
            .map(|seq| key(keys::OUTBOX_PK, keys::seq(*seq)))
            .collect();
        self.inner.table.batch_write(Vec::new(), markers).await
    }

    async fn dead_letter(&self, letters: &[DeadLetter]) -> Result<()> {
        let letters = letters.to_vec();
        self.inner.dead_letter(letters).await
    }

    async fn dead_letters(
        &self,
        tenant: Option<&TenantId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        let tenant = tenant.cloned();
        let i = &self.inner;
        if limit == 0 {
            return Ok(Vec::new());
        }
        i.dead_letters(tenant, after, limit).await
    }

    async fn claim_role(&self, name: &str, host: &str, now: Millis, ttl_ms: u64) -> Result<bool> {
        let (name, host) = (name.to_string(), host.to_string());
        self.inner.claim_role(name, host, now, ttl_ms).await
    }
}
