//! Workflow events a guest publishes: validated, charged to the budget, and committed with the
//! activation's writes (the outbox delivers them), once: publishing is a recorded value, so a
//! replay does not publish again.

use super::{Failure, HostState};
use crate::aegis::workflow::events;
use crate::budget::Charge;
use serde_json::Value;

/// Longest event kind and event data. An event as delivered (data, kind and envelope) is at
/// most 64 KiB (`notifications`); 63 KiB of data leaves room for the envelope, so a guest's event
/// is never cut on its way out.
const MAX_EVENT_KIND: usize = 128;
const MAX_EVENT_DATA: usize = 63 * 1024;

impl events::Host for HostState {
    fn publish(&mut self, ctx: String, kind: String, data: String) -> wasmtime::Result<()> {
        let a = &mut self.activation;
        let well_formed = !kind.is_empty()
            && kind.len() <= MAX_EVENT_KIND
            && kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !well_formed
            || data.len() > MAX_EVENT_DATA
            || serde_json::from_str::<Value>(&data).is_err()
        {
            let msg = format!(
                "publish: the kind must be 1-{MAX_EVENT_KIND} characters of [A-Za-z0-9._-] and the data JSON of at most {MAX_EVENT_DATA} bytes"
            );
            return Err(a.trap(Failure::InvalidCall(msg)));
        }
        a.charge(Charge::Event(kind.len() + data.len()))?;
        a.charge(Charge::Pending(kind.len() + data.len()))?;
        let name = format!("$publish:{kind}");
        // Publishing cannot fail once validated, so the recorded value is always `null`.
        let _recorded = a.recorded_value(&ctx, &name, |a| {
            a.pending.publish.push((kind.clone(), data.clone()));
            a.published.push(kind.clone());
            Ok(Ok("null".to_string()))
        })?;
        Ok(())
    }
}
