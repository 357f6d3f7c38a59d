//! The shape of an event as every surface sees it (webhook, SNS, EventBridge, API, SSE), and
//! the bound on its size. It is its own file because the bytes it writes are signed by the
//! webhook and held by tests: nothing else here may change them.

use crate::ids::{ExecutionId, TenantId};
use crate::journal::format_ts;
use crate::store::WorkflowEvent;
use serde_json::{Value, json};

/// The largest event as delivered: its JSON (envelope, kind and data), in bytes.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// The JSON shape of an event, on the stream, in the API and in webhook bodies; at most
/// [`MAX_EVENT_BYTES`] as JSON (see [`bound_event`]).
pub fn to_json(event: &WorkflowEvent) -> Value {
    let body = EventBody {
        created_at: format_ts(event.created_at),
        data: serde_json::from_str::<Value>(&event.data).unwrap_or(Value::Null),
        execution_id: &event.execution_id,
        kind: &event.kind,
        seq: event.seq,
        tenant_id: &event.tenant,
    };
    let mut value = serde_json::to_value(body).expect("an event body serializes");
    bound_event(&mut value, MAX_EVENT_BYTES);
    value
}

/// An event as subscribers receive it. Fields are in alphabetical order, the order the JSON
/// map this replaced wrote, so the bodies' bytes (which webhooks sign) did not change.
#[derive(serde::Serialize)]
struct EventBody<'a> {
    created_at: String,
    data: Value,
    execution_id: &'a ExecutionId,
    kind: &'a str,
    seq: u64,
    tenant_id: &'a TenantId,
}

fn json_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

/// The longest string in `value` (object keys aside).
fn longest_string(value: &mut Value) -> Option<&mut String> {
    match value {
        Value::String(s) => Some(s),
        Value::Array(items) => items
            .iter_mut()
            .filter_map(longest_string)
            .max_by_key(|s| s.len()),
        Value::Object(map) => map
            .values_mut()
            .filter_map(longest_string)
            .max_by_key(|s| s.len()),
        _ => None,
    }
}

/// Shortens an event's `data` until the event's JSON is at most `limit` bytes: the longest
/// string is cut (on a character boundary) and ends with `…[truncated N bytes]`, again while
/// the event is too large. Data with no string long enough to help (a huge array of numbers)
/// is replaced by `{"truncated": true, "original_bytes": N}`. Why here and not where events are
/// made: the host's own `execution.*` events carry error messages of any length, and one
/// oversized event must not be refused by every sink.
pub fn bound_event(event: &mut Value, limit: usize) {
    if json_len(event) <= limit {
        return;
    }
    let Some(slot) = event.get_mut("data") else {
        return;
    };
    let mut data = slot.take();
    let original = json_len(&data);
    // The envelope with `null` data; the data's JSON takes the place of those 4 bytes.
    let envelope = json_len(event).saturating_sub(4);
    let budget = limit.saturating_sub(envelope);
    let marker_room = "…[truncated 18446744073709551615 bytes]".len();
    let mut size = original;
    // Each cut takes about the excess off the JSON (a string whose escaping is uneven may need
    // another round); the bound is a guard.
    for _ in 0..32 {
        if size <= budget {
            break;
        }
        let excess = size - budget;
        let Some(longest) = longest_string(&mut data) else {
            break;
        };
        // JSON escaping makes a string's JSON longer than its bytes (up to 6 to 1): keep the
        // share of its bytes that its JSON may keep.
        let escaped = serde_json::to_vec(longest.as_str()).map_or(usize::MAX, |v| v.len());
        let want = excess + marker_room;
        if escaped <= want + 16 {
            break;
        }
        let mut keep =
            (longest.len() as u128 * (escaped - want) as u128 / escaped as u128) as usize;
        while !longest.is_char_boundary(keep) {
            keep -= 1;
        }
        let dropped = longest.len() - keep;
        longest.truncate(keep);
        longest.push_str(&format!("…[truncated {dropped} bytes]"));
        size = json_len(&data);
    }
    if size > budget {
        data = json!({"truncated": true, "original_bytes": original});
    }
    event["data"] = data;
}
