//! Key encoding: every partition and sort key of the table, built in one place.
//!
//! User-supplied parts (tenant ids, names, op ids) are escaped so that `#`, the separator, never
//! appears inside a part: keys stay unambiguous and `begins_with` prefixes cannot match a
//! longer name. Numbers are zero-padded (timestamps offset so negative values sort too), so the
//! string order of sort keys is their numeric order.

use aegis_core::ids::ExecutionId;
use aegis_core::store::TimerKind;

/// Shards of the sparse "list everything" index entries (runnable executions, timers, agent
/// callbacks): enough to spread writes, few enough to query at start-up.
pub const SHARDS: u32 = 8;

/// Escapes `%` and `#` so a part never contains the separator.
pub fn esc(part: &str) -> String {
    if !part.contains(['%', '#']) {
        return part.to_string();
    }
    part.replace('%', "%25").replace('#', "%23")
}

/// A timestamp as a fixed-width string whose order is the numeric order (for every i64).
pub fn ts(ms: i64) -> String {
    format!("{:020}", (ms as u64) ^ (1 << 63))
}

/// A sequence number (EventId, workflow-event seq) as a fixed-width string.
pub fn seq(n: u64) -> String {
    format!("{n:020}")
}

/// FNV-1a: stable across builds, platforms and hosts (unlike the std hasher).
pub fn hash(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The shard of an execution's sparse index entries.
pub fn shard(execution: &str) -> u32 {
    hash(execution) % SHARDS
}

/// The table's name for a prefix: `aegis-` gives `aegis-checkpoints`, `research` gives
/// `research-checkpoints`.
pub fn table_name(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with(['-', '_', '.']) {
        format!("{prefix}checkpoints")
    } else {
        format!("{prefix}-checkpoints")
    }
}

// Partition keys.

pub fn execution_pk(id: &ExecutionId) -> String {
    format!("EX#{}", esc(id.as_str()))
}

pub fn tenant_pk(tenant: &str) -> String {
    format!("T#{}", esc(tenant))
}

pub fn name_pk(tenant: &str, name: &str) -> String {
    format!("T#{}#NAME#{}", esc(tenant), esc(name))
}

pub fn components_pk(tenant: &str) -> String {
    format!("T#{}#COMP", esc(tenant))
}

pub const TENANTS_PK: &str = "#TENANTS";

pub fn tenant_name_pk(name: &str) -> String {
    format!("TNAME#{}", esc(name))
}

pub fn key_pk(id: &str) -> String {
    format!("KEY#{}", esc(id))
}

pub fn callback_pk(id: &str) -> String {
    format!("CB#{}", esc(id))
}

pub fn blob_pk(hash: &str) -> String {
    format!("BLOB#{hash}")
}

/// The counter item that numbers workflow events.
pub const EVENT_SEQ_PK: &str = "#WEVSEQ";
/// Every workflow event, by seq.
pub const EVENTS_PK: &str = "#WEV";
/// Workflow events the webhook has not accepted yet.
pub const OUTBOX_PK: &str = "#WEV#OUTBOX";

/// Every dead letter (workflow events a sink refused for good), by seq.
pub const DEAD_LETTERS_PK: &str = "#DLQ";

/// A tenant's dead letters, by seq.
pub fn tenant_dead_letters_pk(tenant: &str) -> String {
    format!("DLQ#T#{}", esc(tenant))
}

/// A fleet-wide role one host at a time holds (see `Store::claim_role`).
pub fn role_pk(name: &str) -> String {
    format!("#ROLE#{}", esc(name))
}

pub fn tenant_events_pk(tenant: &str) -> String {
    format!("WEV#T#{}", esc(tenant))
}

pub fn execution_events_pk(id: &str) -> String {
    format!("WEV#E#{}", esc(id))
}

// Sort keys.

/// The sort key of single-item partitions (and of the execution item in its partition).
pub const ROOT_SK: &str = "#";
pub const RUNNING_SK: &str = "#RUNNING";

pub fn running_digest_sk(digest: &str) -> String {
    format!("#RUNNING#{}", esc(digest))
}

pub fn operation_sk(op_id: &str) -> String {
    format!("OP#{}", esc(op_id))
}

pub const OPERATION_PREFIX: &str = "OP#";

pub fn event_sk(event_id: u64) -> String {
    format!("EV#{}", seq(event_id))
}

pub fn timer_sk(op_id: &str, kind: TimerKind) -> String {
    format!("TM#{}#{}", kind.as_str(), esc(op_id))
}

pub const TIMER_PREFIX: &str = "TM#";

/// What an execution's log holds (its usage: last seq, lines, bytes, full).
pub const LOG_USAGE_SK: &str = "#LOGS";

pub fn log_sk(seq: u64) -> String {
    format!("LOG#{}", self::seq(seq))
}

pub fn callback_sk(id: &str) -> String {
    format!("CB#{}", esc(id))
}

pub const CALLBACK_PREFIX: &str = "CB#";

pub fn component_sk(name: &str, version: u32) -> String {
    format!("V#{}#{version:010}", esc(name))
}

pub fn component_prefix(name: &str) -> String {
    format!("V#{}#", esc(name))
}

pub const COMPONENT_PREFIX: &str = "V#";

/// The highest version ever given to a component name, kept when versions are deleted so that
/// a version number is never given to other code.
pub fn component_high_sk(name: &str) -> String {
    format!("H#{}", esc(name))
}

pub fn digest_sk(name: &str, digest: &str) -> String {
    format!("D#{}#{}", esc(name), esc(digest))
}

pub fn chunk_sk(i: usize) -> String {
    format!("{i:05}")
}

// Index keys. GSI1 (`g1pk`, `g1sk`): a tenant's executions newest first, a tenant's API keys.
// GSI2 (`g2pk`, `g2sk`): sparse, sharded lists read at start-up.

pub fn tenant_executions_g1pk(tenant: &str) -> String {
    format!("T#{}#EX", esc(tenant))
}

pub fn tenant_keys_g1pk(tenant: &str) -> String {
    format!("T#{}#KEY", esc(tenant))
}

/// `<created_at>#<id>`: newest first when read backwards, ties broken by id as in SQL.
pub fn created_g1sk(created_at: i64, id: &str) -> String {
    format!("{}#{}", ts(created_at), esc(id))
}

pub fn runnable_g2pk(execution: &str) -> String {
    format!("RUN#{}", shard(execution))
}

pub fn timers_g2pk(execution: &str) -> String {
    format!("TM#{}", shard(execution))
}

pub fn agents_g2pk(execution: &str) -> String {
    format!("AG#{}", shard(execution))
}

pub fn all_shards(prefix: &str) -> impl Iterator<Item = String> + '_ {
    (0..SHARDS).map(move |s| format!("{prefix}#{s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_parts_unambiguous() {
        assert_eq!(esc("plain-name_1"), "plain-name_1");
        assert_eq!(esc("a#b"), "a%23b");
        assert_eq!(esc("100%#"), "100%25%23");
        // "a" and "a#b" no longer share the "V#a#" prefix.
        assert!(!component_sk("a#b", 1).starts_with(&component_prefix("a")));
        assert!(component_sk("a", 1).starts_with(&component_prefix("a")));
    }

    #[test]
    fn timestamps_and_sequences_sort_as_numbers() {
        let values = [i64::MIN, -5, -1, 0, 1, 9, 10, 1_700_000_000_000, i64::MAX];
        let keys: Vec<String> = values.iter().map(|v| ts(*v)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert!(keys.iter().all(|k| k.len() == 20));
        assert!(event_sk(9) < event_sk(10));
        assert!(event_sk(99_999) < event_sk(100_000));
        assert_eq!(event_sk(7), "EV#00000000000000000007");
        assert!(log_sk(9) < log_sk(10));
        assert!(!log_sk(1).starts_with(OPERATION_PREFIX) && !log_sk(1).starts_with("EV#"));
    }

    #[test]
    fn newest_first_cursor_matches_sql_order() {
        // (created_at DESC, id DESC) is the reverse of this key's order.
        let a = created_g1sk(1_000, "ex_b");
        let b = created_g1sk(1_000, "ex_a");
        let c = created_g1sk(999, "ex_z");
        assert!(a > b && b > c);
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        assert_eq!(shard("ex_0123"), shard("ex_0123"));
        assert!((0..200).all(|i| shard(&format!("ex_{i}")) < SHARDS));
        assert_eq!(all_shards("RUN").count(), SHARDS as usize);
        assert!(runnable_g2pk("ex_1").starts_with("RUN#"));
    }

    #[test]
    fn table_names_join_the_prefix() {
        assert_eq!(table_name("aegis-"), "aegis-checkpoints");
        assert_eq!(
            table_name("research-workflows"),
            "research-workflows-checkpoints"
        );
        assert_eq!(table_name(""), "checkpoints");
    }
}
