//! Values too large for one item (DynamoDB's limit is 400 KB per item, 4 MB per transaction).
//!
//! A large text attribute (an operation's or event's JSON, an execution's input or result, an
//! agent input, a workflow event's data) is *spilled by reference*: its text is cut into
//! chunks stored under `BLOB#<sha256>` (content-addressed, immutable, written before the
//! transaction that references them), and the owning item keeps `<attr>_ref` =
//! `<sha256>:<chunks>` instead of `<attr>`. Readers fetch the chunks with one `BatchGetItem`.
//! Because chunks are immutable and written first, a reference never points at missing or
//! changing data; a transaction that then fails leaves only unreferenced chunks behind.
//!
//! This is the in-table stand-in for spilling to S3 (the target): the reference format
//! is the seam where an `s3://` reference would go.

use super::expr::{Item, Write, item_size, key, s};
use super::io::{ItemExt, Table};
use super::keys;
use crate::store::{Error, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use sha2::Digest;
use std::collections::HashMap;

/// Text attributes larger than this are spilled.
pub const INLINE_MAX: usize = 100 * 1024;
/// Bytes of text per chunk item (well under the 400 KB item limit).
pub const CHUNK: usize = 300_000;
/// Spill further until a transaction's items add up to less than this (the limit is 4 MB).
pub const TX_MAX: usize = 3_500_000;

/// The attributes that may hold large text.
pub const FIELDS: &[&str] = &["d", "input", "result", "error", "agent_input"];

/// The attribute that holds the reference of a spilled `field`.
pub fn ref_attr(field: &str) -> &'static str {
    match field {
        "d" => "d_ref",
        "input" => "input_ref",
        "result" => "result_ref",
        "error" => "error_ref",
        "agent_input" => "agent_input_ref",
        _ => "ref",
    }
}

/// The chunk items of `text` and the reference to them.
pub fn split(text: &str) -> (String, Vec<Item>) {
    let hash = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    let mut chunks = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = CHUNK.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let mut item = key(keys::blob_pk(&hash), keys::chunk_sk(chunks.len()));
        item.insert("d".into(), s(&rest[..end]));
        chunks.push(item);
        rest = &rest[end..];
    }
    (format!("{hash}:{}", chunks.len()), chunks)
}

fn parse_ref(r: &str) -> Option<(&str, usize)> {
    let (hash, count) = r.split_once(':')?;
    Some((hash, count.parse().ok()?))
}

/// Spills `field` of `item` if it is a text attribute; returns the chunks to write.
fn spill_field(item: &mut Item, field: &str) -> Vec<Item> {
    let Some(AttributeValue::S(text)) = item.remove(field) else {
        return Vec::new();
    };
    let (reference, chunks) = split(&text);
    item.insert(ref_attr(field).into(), s(reference));
    chunks
}

/// Decides, for every put of a transaction, which large attributes go inline and which are
/// spilled; returns the chunk items to write before the transaction.
pub fn place(writes: &mut [Write]) -> Vec<Item> {
    let mut chunks = Vec::new();
    for w in writes.iter_mut() {
        if let Write::Put { item, .. } = w {
            for field in FIELDS {
                if item.get(*field).is_some_and(|v| text_len(v) > INLINE_MAX) {
                    chunks.extend(spill_field(item, field));
                }
            }
        }
    }
    // Still too big for one transaction: spill the largest remaining values first.
    let mut total: usize = writes.iter().map(Write::size).sum();
    while total > TX_MAX {
        let largest = writes
            .iter()
            .enumerate()
            .filter_map(|(i, w)| match w {
                Write::Put { item, .. } => FIELDS
                    .iter()
                    .filter_map(|f| item.get(*f).map(|v| (i, *f, text_len(v))))
                    .max_by_key(|(_, _, len)| *len),
                _ => None,
            })
            .max_by_key(|(_, _, len)| *len);
        let Some((i, field, len)) = largest else {
            break;
        };
        if len < 1024 {
            break;
        }
        if let Write::Put { item, .. } = &mut writes[i] {
            chunks.extend(spill_field(item, field));
        }
        total = writes.iter().map(Write::size).sum();
    }
    chunks
}

/// Spills `text` for an update expression when it is too large to go inline: returns the
/// value to set and whether it is a reference.
pub fn place_value(text: &str, chunks: &mut Vec<Item>) -> (AttributeValue, bool) {
    if text.len() <= INLINE_MAX {
        return (s(text), false);
    }
    let (reference, mut parts) = split(text);
    chunks.append(&mut parts);
    (s(reference), true)
}

fn text_len(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        _ => 0,
    }
}

/// Replaces every `<attr>_ref` of `items` by the text it refers to.
pub async fn resolve(table: &Table, items: &mut [Item]) -> Result<()> {
    let mut wanted: HashMap<(String, String), Option<String>> = HashMap::new();
    for item in items.iter() {
        for field in FIELDS {
            if let Some((hash, count)) = item.str(ref_attr(field)).and_then(parse_ref) {
                for i in 0..count {
                    wanted.insert((keys::blob_pk(hash), keys::chunk_sk(i)), None);
                }
            }
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let found = table
        .batch_get(wanted.keys().map(|(pk, sk)| key(pk, sk)).collect())
        .await?;
    for chunk in found {
        if let (Some(pk), Some(sk), Some(d)) = (chunk.str("pk"), chunk.str("sk"), chunk.str("d"))
            && let Some(slot) = wanted.get_mut(&(pk.to_string(), sk.to_string()))
        {
            *slot = Some(d.to_string());
        }
    }
    for item in items.iter_mut() {
        for field in FIELDS {
            let Some(reference) = item.str(ref_attr(field)).map(str::to_string) else {
                continue;
            };
            let (hash, count) = parse_ref(&reference)
                .ok_or_else(|| Error::Backend(format!("corrupt reference {reference:?}")))?;
            let mut text = String::new();
            for i in 0..count {
                let part = wanted
                    .get(&(keys::blob_pk(hash), keys::chunk_sk(i)))
                    .and_then(Option::as_ref)
                    .ok_or_else(|| {
                        Error::Backend(format!("missing chunk {i} of spilled value {hash}"))
                    })?;
                text.push_str(part);
            }
            item.remove(ref_attr(field));
            item.insert((*field).to_string(), s(text));
        }
    }
    Ok(())
}

/// Writes chunk items (idempotent: same content, same key).
pub async fn write(table: &Table, mut chunks: Vec<Item>) -> Result<()> {
    if chunks.is_empty() {
        return Ok(());
    }
    chunks.sort_by_key(|c| {
        (
            c.str("pk").map(str::to_string),
            c.str("sk").map(str::to_string),
        )
    });
    chunks.dedup_by(|a, b| a.str("pk") == b.str("pk") && a.str("sk") == b.str("sk"));
    debug_assert!(chunks.iter().all(|c| item_size(c) < 400 * 1024));
    table.batch_write(chunks, Vec::new()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_text_splits_on_char_boundaries_and_rejoins() {
        // Two-byte characters at odd offsets: a cut at CHUNK would fall inside one.
        let text = format!("a{}", "é".repeat(CHUNK));
        let (reference, chunks) = split(&text);
        let (hash, count) = parse_ref(&reference).unwrap();
        assert_eq!(count, chunks.len());
        assert_eq!(count, 3);
        assert_eq!(hash.len(), 64);
        let joined: String = chunks.iter().map(|c| c.str("d").unwrap()).collect();
        assert_eq!(joined, text);
        assert!(chunks.iter().all(|c| item_size(c) < 400 * 1024));
    }

    #[test]
    fn placing_spills_big_values_and_keeps_small_ones() {
        let mut big = key("EX#1", "OP#a");
        big.insert("d".into(), s("x".repeat(INLINE_MAX + 1)));
        let mut small = key("EX#1", "OP#b");
        small.insert("d".into(), s("y"));
        let mut writes = vec![
            Write::Put {
                item: big,
                cond: None,
            },
            Write::Put {
                item: small,
                cond: None,
            },
        ];
        let chunks = place(&mut writes);
        assert_eq!(chunks.len(), 1);
        let Write::Put { item, .. } = &writes[0] else {
            unreachable!()
        };
        assert!(!item.contains_key("d") && item.str("d_ref").is_some());
        let Write::Put { item, .. } = &writes[1] else {
            unreachable!()
        };
        assert_eq!(item.str("d"), Some("y"));
    }

    #[test]
    fn placing_keeps_a_transaction_under_its_size_limit() {
        let mut writes: Vec<Write> = (0..60)
            .map(|i| {
                let mut item = key("EX#1", format!("OP#{i}"));
                item.insert("d".into(), s("z".repeat(90 * 1024)));
                Write::Put { item, cond: None }
            })
            .collect();
        let chunks = place(&mut writes);
        assert!(!chunks.is_empty());
        assert!(writes.iter().map(Write::size).sum::<usize>() <= TX_MAX);
    }
}
