//! What DynamoDB accepts in one transaction: at most [`MAX_ITEMS`] items, none touched twice.
//! A batch that needs more fails with a clear error, except for the clean-up of an ending
//! execution (its timers and waiting callbacks), which rides along while there is room and
//! otherwise follows the transaction ([`Plan::follow_ups`]).

use super::{Meaning, Plan};
use crate::expr::Write;
use aegis_core::store::{Error, Result};

/// Items one transaction may hold.
pub const MAX_ITEMS: usize = 100;

/// Lets the clean-up ride along while there is room (the rest follows the transaction), and
/// refuses a transaction DynamoDB would: over [`MAX_ITEMS`], or touching an item twice.
pub(super) fn seal(plan: &mut Plan, mut tidy: Vec<Write>) -> Result<()> {
    let room = MAX_ITEMS.saturating_sub(plan.writes.len());
    let later = tidy.split_off(room.min(tidy.len()));
    for write in tidy {
        plan.push(write, Meaning::Race);
    }
    plan.follow_ups = later;
    if plan.writes.len() > MAX_ITEMS {
        return Err(Error::TooLarge(format!(
            "batch needs {} DynamoDB items in one transaction; DynamoDB allows {MAX_ITEMS}: \
             record fewer operations between commits (e.g. smaller fan-outs per activation)",
            plan.writes.len()
        )));
    }
    // DynamoDB refuses a transaction that touches an item twice; say which item.
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = plan
        .writes
        .iter()
        .map(Write::key_pair)
        .find(|k| !seen.insert(k.clone()))
    {
        return Err(Error::Fatal(format!("batch writes item {dup:?} twice")));
    }
    Ok(())
}
