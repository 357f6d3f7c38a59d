//! Values too large for one item (DynamoDB's limit is 400 KB per item, 4 MB per transaction).
//!
//! A large text attribute (an operation's or event's JSON, an execution's input or result, an
//! agent input, a workflow event's data) is *spilled by reference*, and the owning item keeps
//! `<attr>_ref` instead of `<attr>`:
//! - to S3 when the host has an artifact bucket: the object `<prefix>_spill/<sha256>` (written
//!   with the bucket's encryption), referenced as `s3://<bucket>/<prefix>_spill/<sha256>`;
//! - otherwise to chunk items `BLOB#<sha256>` in the table, referenced as `<sha256>:<chunks>`
//!   and read back with one `BatchGetItem`.
//!
//! Either way the spilled value is content-addressed and immutable and is written before the
//! transaction that references it, so a reference never points at missing or changing data; a
//! transaction that then fails leaves only an unreferenced copy behind. Readers check the
//! content against its hash. Both kinds of reference stay readable, so a table written before
//! S3 was configured still reads.
//!
//! Objects this process wrote or read lately are kept in memory ([`Kept`]): being immutable,
//! they need neither a second put when a commit is retried nor a second fetch when an item is
//! read again (the API's long-poll reads an execution's item over and over).

use super::expr::{Item, Write, item_size, key, s};
use super::io::{ItemExt, Table};
use super::keys;
use aegis_core::store::{Error, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::BoxFuture;
use lru::LruCache;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Text attributes larger than this are spilled.
pub const INLINE_MAX: usize = 100 * 1024;
/// Bytes of text per chunk item (well under the 400 KB item limit).
pub const CHUNK: usize = 300_000;
/// Spill further until a transaction's items add up to less than this (the limit is 4 MB).
pub const TX_MAX: usize = 3_500_000;

/// The attributes that may hold large text.
pub const FIELDS: &[&str] = &["d", "input", "result", "error", "agent_input"];

/// The object store large values spill to when the host has one: the artifact bucket
/// (`artifacts::s3::Bucket` implements it, and the host hands it over in
/// [`super::DynamoOptions::spill_to`]). Declared here so that the store does not depend on
/// `artifacts`.
pub trait SpillBucket: Send + Sync + std::fmt::Debug {
    /// `name` under the bucket's prefix: the key of an object.
    fn key(&self, name: &str) -> String;
    /// The reference an item keeps for the object `key` (`s3://<bucket>/<key>`).
    fn reference(&self, key: &str) -> String;
    /// The object key a reference names, or `None` when it is not an object reference.
    fn key_of(&self, reference: &str) -> Option<String>;
    /// Writes the object `key` (JSON text).
    fn put(&self, key: String, json: Vec<u8>) -> BoxFuture<'_, std::result::Result<(), String>>;
    /// Reads the object a reference names; `None` when it is missing.
    fn get<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, std::result::Result<Option<Vec<u8>>, String>>;
}

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

/// Spilled values not yet written: chunk items and S3 objects (key, text).
#[derive(Clone, Debug, Default)]
pub struct Spilled {
    chunks: Vec<Item>,
    objects: Vec<(String, String)>,
}

impl Spilled {
    pub fn extend(&mut self, other: Spilled) {
        self.chunks.extend(other.chunks);
        self.objects.extend(other.objects);
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.objects.is_empty()
    }
}

/// Bytes of spilled objects [`Kept`] holds at most.
pub const KEPT_BYTES: usize = 32 << 20;

/// Spilled objects this process wrote or read lately, by object key, least recently used
/// dropped first once they add up to more than their budget.
pub struct Kept {
    budget: usize,
    inner: Mutex<KeptInner>,
}

struct KeptInner {
    objects: LruCache<String, Arc<str>>,
    bytes: usize,
}

impl Kept {
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::new(KeptInner {
                objects: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeptInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: &str) -> Option<Arc<str>> {
        self.lock().objects.get(key).cloned()
    }

    fn keep(&self, key: String, text: Arc<str>) {
        if text.len() > self.budget {
            return;
        }
        let mut inner = self.lock();
        inner.bytes += text.len();
        if let Some(old) = inner.objects.put(key, text) {
            inner.bytes -= old.len();
        }
        while inner.bytes > self.budget {
            match inner.objects.pop_lru() {
                Some((_, dropped)) => inner.bytes -= dropped.len(),
                None => break,
            }
        }
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The chunk items of `text` and the reference to them.
pub fn split(text: &str) -> (String, Vec<Item>) {
    let hash = sha256_hex(text);
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

/// The object key of a spilled value (no tenant id starts with `_`, so it never meets an
/// artifact).
pub fn object_key(bucket: &dyn SpillBucket, hash: &str) -> String {
    bucket.key(&format!("_spill/{hash}"))
}

/// Spills `text` to `spill` (or to chunk items without one); returns the reference.
fn spill(spill: Option<&dyn SpillBucket>, text: String, out: &mut Spilled) -> String {
    match spill {
        Some(bucket) => {
            let key = object_key(bucket, &sha256_hex(&text));
            let reference = bucket.reference(&key);
            out.objects.push((key, text));
            reference
        }
        None => {
            let (reference, chunks) = split(&text);
            out.chunks.extend(chunks);
            reference
        }
    }
}

fn parse_ref(r: &str) -> Option<(&str, usize)> {
    let (hash, count) = r.split_once(':')?;
    Some((hash, count.parse().ok()?))
}

/// Spills `field` of `item` if it is a text attribute.
fn spill_field(target: Option<&dyn SpillBucket>, item: &mut Item, field: &str, out: &mut Spilled) {
    let Some(AttributeValue::S(text)) = item.remove(field) else {
        return;
    };
    let reference = spill(target, text, out);
    item.insert(ref_attr(field).into(), s(reference));
}

/// Decides, for every put of a transaction, which large attributes go inline and which are
/// spilled (to `target`, or to chunk items without one); returns what to write before the
/// transaction.
pub fn place(target: Option<&dyn SpillBucket>, writes: &mut [Write]) -> Spilled {
    let mut out = Spilled::default();
    for w in writes.iter_mut() {
        if let Write::Put { item, .. } = w {
            for field in FIELDS {
                if item.get(*field).is_some_and(|v| text_len(v) > INLINE_MAX) {
                    spill_field(target, item, field, &mut out);
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
            spill_field(target, item, field, &mut out);
        }
        total = writes.iter().map(Write::size).sum();
    }
    out
}

/// Spills `text` for an update expression when it is too large to go inline: returns the
/// value to set and whether it is a reference.
pub fn place_value(
    target: Option<&dyn SpillBucket>,
    text: &str,
    out: &mut Spilled,
) -> (AttributeValue, bool) {
    if text.len() <= INLINE_MAX {
        return (s(text), false);
    }
    (s(spill(target, text.to_string(), out)), true)
}

fn text_len(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        _ => 0,
    }
}

/// Replaces every `<attr>_ref` of `items` by the text it refers to.
pub async fn resolve(table: &Table, items: &mut [Item]) -> Result<()> {
    let mut chunks: HashMap<(String, String), Option<String>> = HashMap::new();
    let mut objects: HashMap<String, Option<Arc<str>>> = HashMap::new();
    for item in items.iter() {
        for field in FIELDS {
            let Some(reference) = item.str(ref_attr(field)) else {
                continue;
            };
            if reference.starts_with("s3://") {
                objects.insert(reference.to_string(), None);
            } else if let Some((hash, count)) = parse_ref(reference) {
                for i in 0..count {
                    chunks.insert((keys::blob_pk(hash), keys::chunk_sk(i)), None);
                }
            }
        }
    }
    if chunks.is_empty() && objects.is_empty() {
        return Ok(());
    }
    if !chunks.is_empty() {
        let found = table
            .batch_get(chunks.keys().map(|(pk, sk)| key(pk, sk)).collect())
            .await?;
        for chunk in found {
            if let (Some(pk), Some(sk), Some(d)) =
                (chunk.str("pk"), chunk.str("sk"), chunk.str("d"))
                && let Some(slot) = chunks.get_mut(&(pk.to_string(), sk.to_string()))
            {
                *slot = Some(d.to_string());
            }
        }
    }
    let fetched =
        futures_util::future::try_join_all(objects.keys().map(|reference| fetch(table, reference)))
            .await?;
    for (reference, text) in fetched {
        objects.insert(reference, Some(text));
    }
    for item in items.iter_mut() {
        for field in FIELDS {
            let Some(reference) = item.str(ref_attr(field)).map(str::to_string) else {
                continue;
            };
            let text = if reference.starts_with("s3://") {
                objects
                    .get(&reference)
                    .cloned()
                    .flatten()
                    .map(|text| text.to_string())
                    .ok_or_else(|| {
                        Error::Fatal(format!("spilled value {reference} was not fetched"))
                    })?
            } else {
                join_chunks(&chunks, &reference)?
            };
            item.remove(ref_attr(field));
            item.insert((*field).to_string(), s(text));
        }
    }
    Ok(())
}

/// The text of a chunk reference from the chunks read.
fn join_chunks(
    found: &HashMap<(String, String), Option<String>>,
    reference: &str,
) -> Result<String> {
    let (hash, count) =
        parse_ref(reference).ok_or_else(|| Error::corrupt(format!("reference {reference:?}")))?;
    let mut text = String::new();
    for i in 0..count {
        let part = found
            .get(&(keys::blob_pk(hash), keys::chunk_sk(i)))
            .and_then(Option::as_ref)
            .ok_or_else(|| Error::corrupt(format!("missing chunk {i} of spilled value {hash}")))?;
        text.push_str(part);
    }
    Ok(text)
}

/// Reads one spilled object, unless it is kept, and checks it against the hash its key ends
/// with.
async fn fetch(table: &Table, reference: &str) -> Result<(String, Arc<str>)> {
    let bucket = table.spill.as_ref().ok_or_else(|| {
        Error::Fatal(format!(
            "a value was spilled to {reference}, but this host has no S3 bucket to read it \
             (configure artifacts.backend = \"s3\")"
        ))
    })?;
    let key = bucket
        .key_of(reference)
        .ok_or_else(|| Error::corrupt(format!("reference {reference:?}")))?;
    if let Some(text) = table.kept.get(&key) {
        return Ok((reference.to_string(), text));
    }
    let bytes = bucket
        .get(reference)
        .await
        .map_err(|e| Error::Retriable(format!("read spilled value {reference}: {e}")))?
        .ok_or_else(|| Error::corrupt(format!("spilled value {reference} is missing")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::corrupt(format!("spilled value {reference} is not UTF-8")))?;
    let hash = key.rsplit('/').next().unwrap_or_default();
    if sha256_hex(&text) != hash {
        return Err(Error::corrupt(format!(
            "spilled value {reference} does not match its hash"
        )));
    }
    let text: Arc<str> = text.into();
    table.kept.keep(key, text.clone());
    Ok((reference.to_string(), text))
}

/// Writes spilled values (idempotent: same content, same key).
pub async fn write(table: &Table, spilled: Spilled) -> Result<()> {
    if spilled.is_empty() {
        return Ok(());
    }
    let Spilled {
        mut chunks,
        mut objects,
    } = spilled;
    if !objects.is_empty() {
        let bucket = table.spill.as_ref().ok_or_else(|| {
            Error::Fatal("values were placed in S3 but the store has no bucket".into())
        })?;
        objects.sort_by(|a, b| a.0.cmp(&b.0));
        objects.dedup_by(|a, b| a.0 == b.0);
        // Written or read before: it is there already.
        objects.retain(|(key, _)| table.kept.get(key).is_none());
        futures_util::future::try_join_all(objects.into_iter().map(|(key, text)| async move {
            let name = bucket.reference(&key);
            let text: Arc<str> = text.into();
            bucket
                .put(key.clone(), text.as_bytes().to_vec())
                .await
                .map_err(|e| Error::Retriable(format!("spill a value to {name}: {e}")))?;
            table.kept.keep(key, text);
            Ok::<_, Error>(())
        }))
        .await?;
    }
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
        let spilled = place(None, &mut writes);
        assert_eq!(spilled.chunks.len(), 1);
        let Write::Put { item, .. } = &writes[0] else {
            unreachable!()
        };
        assert!(!item.contains_key("d") && item.str("d_ref").is_some());
        let Write::Put { item, .. } = &writes[1] else {
            unreachable!()
        };
        assert_eq!(item.str("d"), Some("y"));
    }

    #[tokio::test]
    async fn with_a_bucket_large_values_become_objects_with_s3_references() {
        let bucket = aegis_aws::s3::Bucket::connect(aegis_aws::s3::S3Options {
            bucket: "spill-bucket".into(),
            prefix: "aegis".into(),
            aws: aegis_aws::AwsOptions {
                endpoint_url: Some("http://127.0.0.1:9".into()),
                region: Some("us-east-1".into()),
                credentials: Some(("test".into(), "test".into())),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
        let text = "x".repeat(INLINE_MAX + 1);
        let mut item = key("EX#1", "OP#a");
        item.insert("d".into(), s(&text));
        let mut writes = vec![Write::Put { item, cond: None }];
        let spilled = place(Some(&bucket as &dyn SpillBucket), &mut writes);
        assert!(spilled.chunks.is_empty());
        let hash = sha256_hex(&text);
        assert_eq!(
            spilled.objects,
            vec![(format!("aegis/_spill/{hash}"), text.clone())]
        );
        let Write::Put { item, .. } = &writes[0] else {
            unreachable!()
        };
        assert_eq!(
            item.str("d_ref"),
            Some(format!("s3://spill-bucket/aegis/_spill/{hash}").as_str())
        );
        let mut out = Spilled::default();
        let (value, by_ref) = place_value(Some(&bucket as &dyn SpillBucket), &text, &mut out);
        assert!(by_ref && value.as_s().unwrap().starts_with("s3://"));
        assert_eq!(
            place_value(Some(&bucket as &dyn SpillBucket), "small", &mut out),
            (s("small"), false)
        );
    }

    #[test]
    fn kept_objects_stay_within_their_budget_dropping_the_least_recently_used() {
        let kept = Kept::new(10);
        kept.keep("a".into(), "1234".into());
        kept.keep("b".into(), "5678".into());
        // Reading `a` makes `b` the least recently used, so `b` makes room for `c`.
        assert_eq!(kept.get("a").as_deref(), Some("1234"));
        kept.keep("c".into(), "90ab".into());
        assert!(kept.get("b").is_none());
        assert_eq!(kept.get("a").as_deref(), Some("1234"));
        assert_eq!(kept.get("c").as_deref(), Some("90ab"));
        // Kept again under the same key: counted once.
        kept.keep("c".into(), "90ab".into());
        assert_eq!(kept.lock().bytes, 8);
        // Larger than the whole budget: not kept, and nothing else is dropped for it.
        kept.keep("d".into(), "x".repeat(11).into());
        assert!(kept.get("d").is_none());
        assert_eq!(kept.lock().bytes, 8);
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
        let spilled = place(None, &mut writes);
        assert!(!spilled.is_empty());
        assert!(writes.iter().map(Write::size).sum::<usize>() <= TX_MAX);
    }
}
