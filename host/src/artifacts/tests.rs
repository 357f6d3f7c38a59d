//! Disk store tests: references, signed links, the quota, and the inline path an activation takes.

use super::*;

/// A store in a scratch folder, removed when the returned guard drops.
fn store() -> (DiskArtifacts, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (
        DiskArtifacts::open(dir.path(), "http://host".into()).unwrap(),
        dir,
    )
}

#[test]
fn references_round_trip_and_reject_traversal() {
    let r = ArtifactRef::parse("artifact://ex_1/reports/final.md").unwrap();
    assert_eq!(r.key, "reports/final.md");
    assert_eq!(r.to_string(), "artifact://ex_1/reports/final.md");
    for bad in [
        "artifact://ex_1/../x",
        "artifact://ex_1//x",
        "s3://b/k",
        "artifact://ex_1/a b",
        "artifact://../k",
    ] {
        assert!(ArtifactRef::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn put_get_and_presigned_fetch() {
    let (s, _dir) = store();
    let t = TenantId::from_raw("t1");
    let r = s
        .put(
            &t,
            &ExecutionId::from_raw("ex_1"),
            "report.md",
            "text/markdown",
            b"# hi",
        )
        .await
        .unwrap();
    assert_eq!(
        s.get(&t, &r).await.unwrap(),
        (b"# hi".to_vec(), "text/markdown".to_string())
    );
    assert!(matches!(
        s.get(&TenantId::from_raw("t2"), &r).await,
        Err(Error::NotFound(_))
    ));
    let url = s.presign(&t, &r, 60).await.unwrap();
    let query = url.split_once('?').unwrap().1;
    let expires: i64 = query
        .split('&')
        .next()
        .unwrap()
        .trim_start_matches("expires=")
        .parse()
        .unwrap();
    let sig = query.split("sig=").nth(1).unwrap();
    assert!(s.fetch_signed(&t, &r, expires, sig).await.is_ok());
    assert!(matches!(
        s.fetch_signed(&t, &r, expires + 1, sig).await,
        Err(Error::BadSignature)
    ));
    let past = crate::journal::now_ms() / 1000 - 1;
    let old_sig = s.disk.signature(&t, &r, past);
    assert!(matches!(
        s.fetch_signed(&t, &r, past, &old_sig).await,
        Err(Error::BadSignature)
    ));
}

/// An activation waits on the store from its blocking thread: the I/O runs inline there,
/// and sees what the blocking pool wrote.
#[tokio::test]
async fn an_activation_thread_writes_and_reads_inline() {
    let (s, _dir) = store();
    let s = Arc::new(s);
    let t = TenantId::from_raw("t1");
    let ex = ExecutionId::from_raw("ex_1");
    let r = s
        .put(&t, &ex, "a.txt", "text/plain", b"pool")
        .await
        .unwrap();
    let (store, tenant) = (s.clone(), t.clone());
    let (inline, read) = tokio::task::spawn_blocking(move || {
        crate::store::wait(async {
            let inline = in_blocking_scope();
            let read = store.get(&tenant, &r).await.unwrap();
            store
                .put(&tenant, &ex, "a.txt", "text/plain", b"inline!")
                .await
                .unwrap();
            (inline, read)
        })
    })
    .await
    .unwrap();
    assert!(inline);
    assert_eq!(read.0, b"pool");
    let r = ArtifactRef::parse("artifact://ex_1/a.txt").unwrap();
    assert_eq!(s.get(&t, &r).await.unwrap().0, b"inline!");
    assert_eq!(s.usage(&t).await.unwrap(), 7);
}

#[test]
fn attachments_name_the_file_safely() {
    assert_eq!(
        attachment("reports/final.md"),
        "attachment; filename=\"final.md\"; filename*=UTF-8''final.md"
    );
    assert_eq!(
        attachment("a\"b;c\r\nd é"),
        "attachment; filename=\"a_b_c__d___\"; filename*=UTF-8''a%22b%3Bc%0D%0Ad%20%C3%A9"
    );
    assert_eq!(
        attachment("dir/"),
        "attachment; filename=\"artifact\"; filename*=UTF-8''artifact"
    );
}

#[tokio::test]
async fn the_quota_refuses_growth_past_it_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let quota: Arc<dyn Quota> =
        Arc::new(|t: &TenantId| if t.as_str() == "small" { 10 } else { 1000 });
    let open = || {
        DiskArtifacts::open(dir.path(), "http://host".into())
            .unwrap()
            .with_quota(quota.clone())
    };
    let s = open();
    let (small, big) = (TenantId::from_raw("small"), TenantId::from_raw("big"));
    let ex = ExecutionId::from_raw("ex_1");
    s.put(&small, &ex, "a", "text/plain", b"123456")
        .await
        .unwrap();
    let err = s
        .put(&small, &ex, "b", "text/plain", b"12345")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::QuotaExceeded {
                used: 6,
                needed: 5,
                limit: 10
            }
        ),
        "{err}"
    );
    assert_eq!(err.put_error_type(), "Artifact.QuotaExceeded");
    assert!(err.to_string().contains("max_artifact_mb"), "{err}");
    // Nothing was stored, and the other tenant has its own room.
    assert!(matches!(
        s.get(&small, &ArtifactRef::new(&ex, "b").unwrap()).await,
        Err(Error::NotFound(_))
    ));
    s.put(&big, &ex, "b", "text/plain", &[0; 500])
        .await
        .unwrap();
    // Replacing an artifact counts only the difference; shrinking is always allowed.
    s.put(&small, &ex, "a", "text/plain", b"1234567890")
        .await
        .unwrap();
    s.put(&small, &ex, "a", "text/plain", b"12").await.unwrap();
    s.put(&small, &ex, "c", "text/plain", b"1234")
        .await
        .unwrap();
    assert_eq!(s.usage(&small).await.unwrap(), 6);
    drop(s);
    // A new start counts the folders again.
    let s = open();
    assert_eq!(s.usage(&small).await.unwrap(), 6);
    assert_eq!(s.usage(&big).await.unwrap(), 500);
    assert_eq!(s.usage(&TenantId::from_raw("none")).await.unwrap(), 0);
    assert!(matches!(
        s.put(&small, &ex, "d", "text/plain", b"12345").await,
        Err(Error::QuotaExceeded { .. })
    ));
}

#[test]
fn quota_arithmetic() {
    assert_eq!(check_quota(0, 0, 10, 10).unwrap(), 10);
    assert!(check_quota(5, 0, 6, 10).is_err());
    assert_eq!(check_quota(5, 5, 10, 10).unwrap(), 10);
    // Over a lowered quota: shrinking passes, growing does not.
    assert_eq!(check_quota(20, 10, 5, 10).unwrap(), 15);
    assert!(check_quota(20, 10, 11, 10).is_err());
}
