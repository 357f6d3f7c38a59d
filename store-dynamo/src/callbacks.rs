//! The DynamoDB store: callbacks and the agent tasks bound to them.

use super::*;

impl Inner {
    pub(super) async fn callback(&self, id: &CallbackId) -> Result<Option<CallbackRecord>> {
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

    /// The callback item's key, through its pointer.
    pub(super) async fn callback_key(&self, id: &CallbackId) -> Result<Option<Item>> {
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
    pub(super) async fn bind_agent_task(
        &self,
        id: CallbackId,
        task_id: String,
    ) -> Result<Option<String>> {
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

    pub(super) async fn agent_task(&self, id: CallbackId) -> Result<Option<String>> {
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

#[async_trait::async_trait]
impl Callbacks for DynamoStore {
    async fn callback(&self, id: &CallbackId) -> Result<Option<CallbackRecord>> {
        self.inner.callback(id).await
    }

    async fn pending_agent_callbacks(&self) -> Result<Vec<CallbackRecord>> {
        let i = &self.inner;
        let items = i.index_shards("AG", Sk::Any).await?;
        let callbacks = parse_all(&i.table, items, records::callback_from).await?;
        Ok(callbacks
            .into_iter()
            .filter(|c| c.status == aegis_core::journal::Status::Started && c.agent.is_some())
            .collect())
    }

    async fn pending_callbacks(&self, id: &ExecutionId) -> Result<Vec<CallbackRecord>> {
        let i = &self.inner;
        let q = Query::table(
            keys::execution_pk(id),
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
    }

    async fn bind_agent_task(&self, id: &CallbackId, task_id: &str) -> Result<Option<String>> {
        let (id, task_id) = (id.clone(), task_id.to_string());
        self.inner.bind_agent_task(id, task_id).await
    }

    async fn agent_task(&self, id: &CallbackId) -> Result<Option<String>> {
        let id = id.clone();
        self.inner.agent_task(id).await
    }
}
