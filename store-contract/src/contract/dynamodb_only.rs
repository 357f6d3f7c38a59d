//! What only the DynamoDB store has: large values spilled to S3, and two stores (two hosts) sharing one table. On moto, like the suite.

use super::executions::large_records_round_trip;
use super::*;

/// With a bucket, the DynamoDB store spills large values to S3 objects (encrypted, checked
/// against their hash on read) instead of chunk items; a host without the bucket cannot read
/// them and says why; the host that wrote them keeps them. On moto, like the suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_spills_large_values_to_s3() {
    use aegis_aws::AwsOptions;
    use aegis_aws::s3::{Bucket, S3Options};
    use sha2::Digest;
    let Some(endpoint) = dynamodb_local::endpoint() else {
        return;
    };
    let aws = AwsOptions {
        endpoint_url: Some(endpoint.clone()),
        region: Some("us-east-1".into()),
        credentials: Some(("test".into(), "test".into())),
        ..AwsOptions::default()
    };
    let s3 = S3Options {
        bucket: format!("aegis-spill-{:016x}", rand::random::<u64>()),
        prefix: "aegis".into(),
        force_path_style: true,
        aws: aws.clone(),
        ..S3Options::default()
    };
    let bucket = Bucket::connect(s3.clone()).await.unwrap();
    let options = dynamo::DynamoOptions {
        table_prefix: format!("spill-{:016x}-", rand::random::<u64>()),
        endpoint_url: Some(endpoint),
        region: aws.region.clone(),
        credentials: aws.credentials.clone(),
        spill_to: Some(std::sync::Arc::new(bucket.clone())),
    };
    bucket
        .client()
        .create_bucket()
        .bucket(&s3.bucket)
        .send()
        .await
        .unwrap();
    let store = dynamo::DynamoStore::connect(&options).await.unwrap();
    store.create_tables().await.unwrap();
    let table = store.table_name().to_string();
    let store: Arc<dyn Store> = Arc::new(store);

    let ex = large_records_round_trip(store.clone()).await;

    // The values are objects under `<prefix>/_spill/`, written with server-side encryption...
    let listed = bucket
        .client()
        .list_objects_v2()
        .bucket(&s3.bucket)
        .prefix("aegis/_spill/")
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    assert!(!keys.is_empty(), "nothing was spilled to S3");
    let head = bucket
        .client()
        .head_object()
        .bucket(&s3.bucket)
        .key(&keys[0])
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption().map(|s| s.as_str()),
        Some("AES256")
    );
    // ...and the table holds no chunk item.
    let dynamo =
        async { aws_sdk_dynamodb::Client::new(&aegis_aws::sdk_config(&aws).await.unwrap()) }.await;
    let scanned = dynamo.scan().table_name(&table).send().await.unwrap();
    let blobs = scanned
        .items()
        .iter()
        .filter(|i| {
            i.get("pk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|pk| pk.starts_with("BLOB#"))
        })
        .count();
    assert_eq!(blobs, 0, "chunk items were written to the table");

    // A host configured without the bucket refuses to guess.
    let blind = dynamo::DynamoStore::connect(&dynamo::DynamoOptions {
        spill_to: None,
        ..options.clone()
    })
    .await
    .unwrap();
    let Err(err) = blind.execution(&ex).await else {
        panic!("read a spilled value without the bucket");
    };
    assert!(err.to_string().contains("no S3 bucket"), "{err}");

    // A spilled object that no longer matches its hash is refused, not returned.
    let input = store.execution(&ex).await.unwrap().unwrap().input;
    let key = format!(
        "aegis/_spill/{}",
        hex::encode(sha2::Sha256::digest(input.as_bytes()))
    );
    assert!(keys.contains(&key), "{key} is not among {keys:?}");
    bucket
        .client()
        .put_object()
        .bucket(&s3.bucket)
        .key(&key)
        .body(b"\"tampered\"".to_vec().into())
        .send()
        .await
        .unwrap();
    // Another host reads it from the bucket and refuses it.
    let other = dynamo::DynamoStore::connect(&options).await.unwrap();
    let Err(err) = other.execution(&ex).await else {
        panic!("a tampered spilled value was returned");
    };
    let err = err.to_string();
    assert!(err.contains("does not match its hash"), "{err}");
    // The host that wrote it keeps what it wrote and does not fetch it again.
    assert_eq!(store.execution(&ex).await.unwrap().unwrap().input, input);
}

/// Two DynamoDB stores on one table, as two hosts have: each keeps the execution item as it
/// last wrote it, and must notice when the other wrote since: event ids stay consecutive, and
/// a lease the other took over fences the first one's writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_stores_sharing_a_table_see_each_others_writes() {
    let Some(endpoint) = dynamodb_local::endpoint() else {
        return;
    };
    let options = dynamo::DynamoOptions {
        table_prefix: format!("shared-{:016x}-", rand::random::<u64>()),
        endpoint_url: Some(endpoint),
        region: Some("us-east-1".into()),
        credentials: Some(("test".into(), "test".into())),
        spill_to: None,
    };
    let a = dynamo::DynamoStore::connect(&options).await.unwrap();
    a.create_tables().await.unwrap();
    let b = dynamo::DynamoStore::connect(&options).await.unwrap();
    let ex = created(&a, new_execution(None, "{}")).await;
    // Turns alternate, so each store's copy is one commit behind on its next turn.
    for i in 0..6 {
        let store: &dyn Store = if i % 2 == 0 { &a } else { &b };
        store
            .commit(&ex.id, started_and_succeeded(&i.to_string()))
            .await
            .unwrap();
    }
    assert_eq!(
        event_ids(&b, &ex.id, 0, 100).await,
        (1..=13).collect::<Vec<_>>()
    );
    assert_eq!(a.operations(&ex.id).await.unwrap().len(), 6);

    // A runs under its lease and keeps its copy; B records something meanwhile (as a callback
    // delivered to B would), so A's copy is stale and its next commit must still land.
    let t0 = now_ms();
    let (la, _) = acquired(claim(&a, &ex.id, "host-a", t0).await);
    a.commit(&ex.id, leased_step(la.token, "a0")).await.unwrap();
    b.commit(&ex.id, succeeded_step("b0")).await.unwrap();
    a.commit(&ex.id, leased_step(la.token, "a1")).await.unwrap();
    let ids = event_ids(&b, &ex.id, 0, 100).await;
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    assert!(b.operation(&ex.id, "a1").await.unwrap().is_some());
    let (lb, taken_over) = acquired(claim(&b, &ex.id, "host-b", t0 + TTL as Millis + 1).await);
    assert!(taken_over);
    let before = b.history(&ex.id, 0, 100).await.unwrap().len();
    match a.commit(&ex.id, leased_step(la.token, "a2")).await {
        Err(Error::ConditionFailed(m)) => assert!(m.contains("taken over"), "{m}"),
        other => panic!("a write under a lease taken over went through: {other:?}"),
    }
    assert!(b.operation(&ex.id, "a2").await.unwrap().is_none());
    assert_eq!(b.history(&ex.id, 0, 100).await.unwrap().len(), before);
    b.commit(&ex.id, leased_step(lb.token, "b1")).await.unwrap();
    assert!(a.operation(&ex.id, "b1").await.unwrap().is_some());
}
