//! The replay cursor: derives operation ids and checks each call against the journal.
//!
//! An id is the enclosing context's id plus the position of the call inside that context
//! (`"3"`, then `"3-1"`, `"3-2"` inside it). Positions are counted per context, so the order in
//! which sibling branches of a `parallel` happen to run never changes an id.

use super::{Operation, OperationType, SubType};
use std::collections::{HashMap, HashSet};

/// Longest operation id; longer derived ids are replaced by a digest of them.
const MAX_ID_LEN: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error(
        "non-determinism at operation {id}: the journal has {journal} but the replay called {replay}"
    )]
    NonDeterminism {
        id: String,
        journal: String,
        replay: String,
    },
    #[error("unknown context {0:?}: durable calls must name the root (\"\") or an entered context")]
    UnknownContext(String),
    #[error("unknown operation {0:?}")]
    UnknownOperation(String),
}

/// The journal of one execution as seen by one activation.
pub struct Cursor {
    ops: HashMap<String, Operation>,
    counters: HashMap<String, u32>,
    /// Contexts entered during this activation: the only valid `ctx` arguments besides root.
    contexts: HashSet<String>,
}

fn describe(op_type: OperationType, sub_type: SubType, name: &str) -> String {
    format!(
        "{}/{:?} {name:?}",
        serde_json::to_value(op_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        sub_type
    )
}

impl Cursor {
    /// Operations in the journal (recorded before this activation, or by it).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn new(ops: impl IntoIterator<Item = Operation>) -> Self {
        Self {
            ops: ops.into_iter().map(|op| (op.id.clone(), op)).collect(),
            counters: HashMap::new(),
            contexts: HashSet::new(),
        }
    }

    /// Derives the id of the next call made in context `ctx`.
    ///
    /// # Errors
    /// [`Error::UnknownContext`] when `ctx` is neither the root nor a context entered in this
    /// activation.
    pub fn next_id(&mut self, ctx: &str) -> Result<String, Error> {
        if !ctx.is_empty() && !self.contexts.contains(ctx) {
            return Err(Error::UnknownContext(ctx.to_string()));
        }
        let counter = self.counters.entry(ctx.to_string()).or_insert(0);
        *counter += 1;
        Ok(derive_id(ctx, *counter))
    }

    /// Whether the next call in `ctx` is already in the journal, i.e. the context is still
    /// replaying.
    pub fn is_replaying(&self, ctx: &str) -> bool {
        let next = self.counters.get(ctx).copied().unwrap_or(0) + 1;
        self.ops.contains_key(&derive_id(ctx, next))
    }

    /// Looks up the journal entry for `id` and checks that the replayed call matches it.
    ///
    /// # Errors
    /// [`Error::NonDeterminism`] when the journal holds a different type, sub-type or name.
    pub fn expect(
        &self,
        id: &str,
        op_type: OperationType,
        sub_type: SubType,
        name: &str,
    ) -> Result<Option<&Operation>, Error> {
        match self.ops.get(id) {
            None => Ok(None),
            Some(op) if op.op_type == op_type && op.sub_type == sub_type && op.name == name => {
                Ok(Some(op))
            }
            Some(op) => Err(Error::NonDeterminism {
                id: id.to_string(),
                journal: describe(op.op_type, op.sub_type, &op.name),
                replay: describe(op_type, sub_type, name),
            }),
        }
    }

    /// Marks `id` as an entered context, so calls may name it.
    pub fn enter_context(&mut self, id: &str) {
        self.contexts.insert(id.to_string());
    }

    pub fn get(&self, id: &str) -> Result<&Operation, Error> {
        self.ops
            .get(id)
            .ok_or_else(|| Error::UnknownOperation(id.to_string()))
    }

    pub fn put(&mut self, op: Operation) {
        self.ops.insert(op.id.clone(), op);
    }
}

/// The id of the `seq`-th call (from 1) in context `ctx`.
pub fn derive_id(ctx: &str, seq: u32) -> String {
    let id = if ctx.is_empty() {
        seq.to_string()
    } else {
        format!("{ctx}-{seq}")
    };
    if id.len() <= MAX_ID_LEN {
        return id;
    }
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(id.as_bytes()));
    format!("h{}", &digest[..40])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: &str, t: OperationType, s: SubType, name: &str) -> Operation {
        Operation::new(id.into(), None, name.into(), t, s, 0)
    }

    #[test]
    fn ids_are_per_context_positions() {
        let mut c = Cursor::new([]);
        assert_eq!(c.next_id("").unwrap(), "1");
        assert_eq!(c.next_id("").unwrap(), "2");
        c.enter_context("2");
        assert_eq!(c.next_id("2").unwrap(), "2-1");
        assert_eq!(c.next_id("").unwrap(), "3");
        assert_eq!(c.next_id("2").unwrap(), "2-2");
    }

    #[test]
    fn unknown_context_is_refused() {
        let mut c = Cursor::new([]);
        assert_eq!(c.next_id("9"), Err(Error::UnknownContext("9".into())));
    }

    #[test]
    fn long_ids_are_hashed_deterministically() {
        let ctx = "1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16-17-18-19-20-21-22-23-24-25";
        let a = derive_id(ctx, 1);
        assert_eq!(a, derive_id(ctx, 1));
        assert_ne!(a, derive_id(ctx, 2));
        assert!(a.len() <= MAX_ID_LEN);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn mismatched_replay_is_non_determinism() {
        let c = Cursor::new([op("1", OperationType::Step, SubType::Step, "fetch")]);
        assert!(
            c.expect("1", OperationType::Step, SubType::Step, "fetch")
                .unwrap()
                .is_some()
        );
        let err = c
            .expect("1", OperationType::Wait, SubType::Wait, "fetch")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "non-determinism at operation 1: the journal has STEP/Step \"fetch\" but the replay called WAIT/Wait \"fetch\""
        );
        assert!(
            c.expect("1", OperationType::Step, SubType::Step, "other")
                .is_err()
        );
        assert!(
            c.expect("2", OperationType::Step, SubType::Step, "x")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn replaying_tracks_the_journal_frontier() {
        let mut c = Cursor::new([op("1", OperationType::Step, SubType::Step, "a")]);
        assert!(c.is_replaying(""));
        c.next_id("").unwrap();
        assert!(!c.is_replaying(""));
    }
}
