//! Items ↔ records. Attribute names are short and fixed; large text attributes are listed in
//! [`super::blob::FIELDS`] and must be resolved before parsing.

use super::expr::{Item, UpdateExpr, key, n, s};
use super::io::ItemExt;
use super::keys;
use aegis_core::ids::{CallbackId, ComponentDigest, ExecutionId, TenantId};
use aegis_core::journal::{Millis, Status};
use aegis_core::store::{
    CallbackRecord, ComponentRecord, DeadLetter, ExecutionRecord, ExecutionStatus, KeyRecord,
    Lease, Result, TenantRecord, Timer, TimerKind, WorkflowEvent,
};
use aws_sdk_dynamodb::types::AttributeValue;

pub fn status_str(status: Status) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub fn parse_status(raw: &str) -> Status {
    serde_json::from_value(serde_json::Value::String(raw.to_string())).unwrap_or(Status::Failed)
}

fn set_opt(item: &mut Item, attr: &str, value: Option<AttributeValue>) {
    if let Some(v) = value {
        item.insert(attr.to_string(), v);
    }
}

// Executions.

/// What a commit needs to know of an execution before writing.
#[derive(Clone, Debug)]
pub struct ExecState {
    pub tenant: String,
    pub digest: String,
    pub status: ExecutionStatus,
    pub runnable: bool,
    pub wake_seq: u64,
    pub next_event_id: u64,
    /// Bumped by every commit: each write to the execution is conditioned on it.
    pub ver: u64,
    /// The client request token of the last commit applied.
    pub last_tx: Option<String>,
    pub lease: Lease,
}

impl ExecState {
    pub fn from_item(item: &Item) -> Result<Self> {
        Ok(Self {
            tenant: item.req_str("tenant")?,
            digest: item.req_str("digest")?,
            status: ExecutionStatus::parse(&item.req_str("status")?)
                .unwrap_or(ExecutionStatus::Failed),
            runnable: item.bool("runnable").unwrap_or(false),
            wake_seq: item.req_num("wake_seq")?,
            next_event_id: item.req_num("next_event_id")?,
            ver: item.num("ver").unwrap_or(0),
            last_tx: item.str("last_tx").map(str::to_string),
            lease: lease_from(item),
        })
    }
}

/// The lease attributes of an execution item (absent on items written before leases).
pub fn lease_from(item: &Item) -> Lease {
    Lease {
        owner: item.str("lease_owner").unwrap_or_default().to_string(),
        token: item.num("lease_token").unwrap_or(0),
        expires_at: item.num("lease_exp").unwrap_or(0),
    }
}

/// Sets the lease attributes of an item to `lease`.
pub fn set_lease(update: &mut UpdateExpr, lease: &Lease) {
    update
        .set("lease_owner", s(&lease.owner))
        .set("lease_token", n(lease.token))
        .set("lease_exp", n(lease.expires_at));
}

pub struct NewExecutionItem<'a> {
    pub id: &'a ExecutionId,
    pub tenant: &'a TenantId,
    pub name: &'a str,
    pub workflow: &'a str,
    pub version: u32,
    pub digest: &'a ComponentDigest,
    pub input: &'a str,
    pub now: Millis,
    pub timeout_at: Option<Millis>,
}

pub fn execution_item(e: &NewExecutionItem<'_>) -> Item {
    let mut item = key(keys::execution_pk(e.id), keys::ROOT_SK);
    item.insert("id".into(), s(e.id.as_str()));
    item.insert("tenant".into(), s(e.tenant.as_str()));
    item.insert("name".into(), s(e.name));
    item.insert("workflow".into(), s(e.workflow));
    item.insert("version".into(), n(e.version));
    item.insert("digest".into(), s(e.digest.as_str()));
    item.insert("input".into(), s(e.input));
    item.insert("status".into(), s(ExecutionStatus::Running.as_str()));
    item.insert("created_at".into(), n(e.now));
    item.insert("updated_at".into(), n(e.now));
    set_opt(&mut item, "timeout_at", e.timeout_at.map(n));
    item.insert("next_event_id".into(), n(2));
    item.insert("wake_seq".into(), n(1));
    item.insert("runnable".into(), AttributeValue::Bool(true));
    item.insert("ver".into(), n(0));
    item.insert("lease_owner".into(), s(""));
    item.insert("lease_token".into(), n(0));
    item.insert("lease_exp".into(), n(0));
    item.insert(
        "g1pk".into(),
        s(keys::tenant_executions_g1pk(e.tenant.as_str())),
    );
    item.insert("g1sk".into(), s(keys::created_g1sk(e.now, e.id.as_str())));
    item.insert("g2pk".into(), s(keys::runnable_g2pk(e.id.as_str())));
    item.insert("g2sk".into(), s(e.id.as_str()));
    item
}

pub fn execution_from(item: &Item) -> Result<ExecutionRecord> {
    Ok(ExecutionRecord {
        id: ExecutionId::from_raw(item.req_str("id")?),
        tenant: TenantId::from_raw(item.req_str("tenant")?),
        name: item.req_str("name")?,
        workflow: item.req_str("workflow")?,
        version: item.req_num("version")?,
        digest: ComponentDigest::from_raw(item.req_str("digest")?),
        input: item.req_str("input")?,
        status: ExecutionStatus::parse(&item.req_str("status")?).unwrap_or(ExecutionStatus::Failed),
        result: item.str("result").map(str::to_string),
        error: item.str("error").and_then(|e| serde_json::from_str(e).ok()),
        created_at: item.req_num("created_at")?,
        updated_at: item.req_num("updated_at")?,
        timeout_at: item.num("timeout_at"),
        wake_seq: item.req_num("wake_seq")?,
    })
}

// Journal records: the JSON document in `d`, plus what conditions look at.

pub fn operation_item(
    execution: &ExecutionId,
    op: &aegis_core::journal::Operation,
) -> Result<Item> {
    let mut item = key(keys::execution_pk(execution), keys::operation_sk(&op.id));
    item.insert("st".into(), s(status_str(op.status)));
    item.insert("d".into(), s(serde_json::to_string(op)?));
    Ok(item)
}

pub fn event_item(
    execution: &ExecutionId,
    event_id: u64,
    event: &aegis_core::journal::Event,
) -> Result<Item> {
    let mut item = key(keys::execution_pk(execution), keys::event_sk(event_id));
    item.insert("eid".into(), n(event_id));
    item.insert("d".into(), s(serde_json::to_string(event)?));
    Ok(item)
}

// Timers.

pub fn timer_item(timer: &Timer) -> Item {
    let exec = timer.execution_id.as_str();
    let mut item = key(
        keys::execution_pk(&timer.execution_id),
        keys::timer_sk(&timer.op_id, timer.kind),
    );
    item.insert("execution_id".into(), s(exec));
    item.insert("op_id".into(), s(&timer.op_id));
    item.insert("kind".into(), s(timer.kind.as_str()));
    item.insert("fire_at".into(), n(timer.fire_at));
    item.insert("g2pk".into(), s(keys::timers_g2pk(exec)));
    item.insert(
        "g2sk".into(),
        s(format!(
            "{}#{}#{}",
            keys::ts(timer.fire_at),
            keys::esc(exec),
            keys::timer_sk(&timer.op_id, timer.kind)
        )),
    );
    item
}

pub fn timer_from(item: &Item) -> Result<Option<Timer>> {
    let Some(kind) = TimerKind::parse(&item.req_str("kind")?) else {
        return Ok(None);
    };
    Ok(Some(Timer {
        fire_at: item.req_num("fire_at")?,
        execution_id: ExecutionId::from_raw(item.req_str("execution_id")?),
        op_id: item.req_str("op_id")?,
        kind,
    }))
}

// Callbacks: the record lives in its execution's partition; `CB#<id>` points at it.

pub fn callback_item(cb: &CallbackRecord) -> Item {
    let mut item = key(
        keys::execution_pk(&cb.execution_id),
        keys::callback_sk(cb.id.as_str()),
    );
    item.insert("id".into(), s(cb.id.as_str()));
    item.insert("tenant".into(), s(cb.tenant.as_str()));
    item.insert("execution_id".into(), s(cb.execution_id.as_str()));
    item.insert("op_id".into(), s(&cb.op_id));
    item.insert("name".into(), s(&cb.name));
    item.insert("st".into(), s(status_str(cb.status)));
    set_opt(&mut item, "hb", cb.heartbeat_timeout_ms.map(n));
    if let Some((agent, input)) = &cb.agent {
        item.insert("agent".into(), s(agent));
        item.insert("agent_input".into(), s(input));
        if cb.status == Status::Started {
            item.insert(
                "g2pk".into(),
                s(keys::agents_g2pk(cb.execution_id.as_str())),
            );
            item.insert("g2sk".into(), s(cb.id.as_str()));
        }
    }
    item
}

pub fn callback_pointer(cb: &CallbackRecord) -> Item {
    let mut item = key(keys::callback_pk(cb.id.as_str()), keys::ROOT_SK);
    item.insert("execution_id".into(), s(cb.execution_id.as_str()));
    item
}

pub fn callback_from(item: &Item) -> Result<CallbackRecord> {
    Ok(CallbackRecord {
        id: CallbackId::from_raw(item.req_str("id")?),
        tenant: TenantId::from_raw(item.req_str("tenant")?),
        execution_id: ExecutionId::from_raw(item.req_str("execution_id")?),
        op_id: item.req_str("op_id")?,
        name: item.req_str("name")?,
        status: parse_status(&item.req_str("st")?),
        heartbeat_timeout_ms: item.num("hb"),
        agent: match (item.str("agent"), item.str("agent_input")) {
            (Some(agent), Some(input)) => Some((agent.to_string(), input.to_string())),
            _ => None,
        },
    })
}

// Components.

pub fn component_item(c: &ComponentRecord) -> Item {
    let mut item = key(
        keys::components_pk(c.tenant.as_str()),
        keys::component_sk(&c.name, c.version),
    );
    item.insert("name".into(), s(&c.name));
    item.insert("version".into(), n(c.version));
    item.insert("digest".into(), s(c.digest.as_str()));
    item.insert("size".into(), n(c.size));
    item.insert("created_at".into(), n(c.created_at));
    item
}

pub fn component_from(tenant: &TenantId, item: &Item) -> Result<ComponentRecord> {
    Ok(ComponentRecord {
        tenant: tenant.clone(),
        name: item.req_str("name")?,
        version: item.req_num("version")?,
        digest: ComponentDigest::from_raw(item.req_str("digest")?),
        size: item.req_num("size")?,
        created_at: item.req_num("created_at")?,
    })
}

// Tenants and keys.

pub fn tenant_item(t: &TenantRecord) -> Result<Item> {
    let mut item = key(keys::TENANTS_PK, keys::esc(t.id.as_str()));
    item.insert("id".into(), s(t.id.as_str()));
    item.insert("name".into(), s(&t.name));
    item.insert("overrides".into(), s(serde_json::to_string(&t.overrides)?));
    item.insert("created_at".into(), n(t.created_at));
    Ok(item)
}

pub fn tenant_from(item: &Item) -> Result<TenantRecord> {
    Ok(TenantRecord {
        id: TenantId::from_raw(item.req_str("id")?),
        name: item.req_str("name")?,
        overrides: item
            .str("overrides")
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or_default(),
        created_at: item.req_num("created_at")?,
    })
}

pub fn key_item(k: &KeyRecord) -> Item {
    let mut item = key(keys::key_pk(&k.id), keys::ROOT_SK);
    item.insert("id".into(), s(&k.id));
    item.insert("tenant".into(), s(k.tenant.as_str()));
    item.insert("hash".into(), s(&k.hash));
    item.insert("created_at".into(), n(k.created_at));
    set_opt(&mut item, "revoked_at", k.revoked_at.map(n));
    set_opt(
        &mut item,
        "sealed_secret",
        k.sealed_secret.as_deref().map(s),
    );
    item.insert("g1pk".into(), s(keys::tenant_keys_g1pk(k.tenant.as_str())));
    item.insert("g1sk".into(), s(keys::created_g1sk(k.created_at, &k.id)));
    item
}

pub fn key_from(item: &Item) -> Result<KeyRecord> {
    Ok(KeyRecord {
        id: item.req_str("id")?,
        tenant: TenantId::from_raw(item.req_str("tenant")?),
        hash: item.req_str("hash")?,
        created_at: item.req_num("created_at")?,
        revoked_at: item.num("revoked_at"),
        sealed_secret: item.str("sealed_secret").map(str::to_string),
    })
}

// Workflow events.

pub fn workflow_event_item(pk: String, e: &WorkflowEvent) -> Item {
    let mut item = key(pk, keys::seq(e.seq));
    item.insert("seq".into(), n(e.seq));
    item.insert("tenant".into(), s(e.tenant.as_str()));
    item.insert("execution_id".into(), s(e.execution_id.as_str()));
    item.insert("kind".into(), s(&e.kind));
    item.insert("d".into(), s(&e.data));
    item.insert("created_at".into(), n(e.created_at));
    item
}

/// A dead letter: the event's attributes (as [`workflow_event_item`]) and what the sink said.
/// Its data is the event as delivered, bounded well under the item limit, so it never spills.
pub fn dead_letter_item(pk: String, l: &DeadLetter) -> Item {
    let mut item = workflow_event_item(pk, &l.event);
    item.insert("sink".into(), s(&l.sink));
    item.insert("attempts".into(), n(l.attempts));
    item.insert("last_error".into(), s(&l.last_error));
    item.insert("dead_at".into(), n(l.dead_at));
    item
}

pub fn dead_letter_from(item: &Item) -> Result<DeadLetter> {
    Ok(DeadLetter {
        event: workflow_event_from(item)?,
        sink: item.req_str("sink")?,
        attempts: item.req_num("attempts")?,
        last_error: item.req_str("last_error")?,
        dead_at: item.req_num("dead_at")?,
    })
}

pub fn workflow_event_from(item: &Item) -> Result<WorkflowEvent> {
    Ok(WorkflowEvent {
        seq: item.req_num("seq")?,
        tenant: TenantId::from_raw(item.req_str("tenant")?),
        execution_id: ExecutionId::from_raw(item.req_str("execution_id")?),
        kind: item.req_str("kind")?,
        data: item.req_str("d")?,
        created_at: item.req_num("created_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_round_trip_and_index_only_waiting_agents() {
        let cb = CallbackRecord {
            id: CallbackId::generate(),
            tenant: TenantId::default_tenant(),
            execution_id: ExecutionId::generate(),
            op_id: "1-2".into(),
            name: "approval".into(),
            status: Status::Started,
            heartbeat_timeout_ms: Some(5),
            agent: Some(("writer".into(), "{}".into())),
        };
        let item = callback_item(&cb);
        assert_eq!(callback_from(&item).unwrap(), cb);
        assert!(item.str("g2pk").unwrap().starts_with("AG#"));
        let done = CallbackRecord {
            status: Status::Succeeded,
            ..cb
        };
        assert!(!callback_item(&done).contains_key("g2pk"));
    }

    #[test]
    fn timers_round_trip() {
        let t = Timer {
            fire_at: 42,
            execution_id: ExecutionId::generate(),
            op_id: String::new(),
            kind: TimerKind::ExecutionTimeout,
        };
        assert_eq!(timer_from(&timer_item(&t)).unwrap(), Some(t));
    }

    #[test]
    fn statuses_use_the_wire_names() {
        assert_eq!(status_str(Status::TimedOut), "TIMED_OUT");
        assert_eq!(parse_status("CANCELLED"), Status::Cancelled);
    }
}
