//! The catalog: components by version and digest, deletion refused while in use, tenants and keys.

use super::*;

pub(super) async fn components_in_use_cannot_be_deleted(store: Arc<dyn Store>) {
    let t = TenantId::default_tenant();
    store
        .put_component(&t, "wf", &ComponentDigest::of(b"x"), 1, 0)
        .await
        .unwrap();
    store
        .put_component(&t, "wf", &ComponentDigest::of(b"y"), 1, 0)
        .await
        .unwrap();
    let running = created(&*store, new_execution(None, "{}")).await;
    assert_eq!(
        store.delete_component(&t, "wf", 1).await.unwrap(),
        Deleted::InUse
    );
    assert_eq!(
        store.delete_component(&t, "wf", 2).await.unwrap(),
        Deleted::Deleted
    );
    assert_eq!(
        store.delete_component(&t, "wf", 2).await.unwrap(),
        Deleted::NotFound
    );
    let finish = Finish {
        status: ExecutionStatus::Succeeded,
        result: None,
        error: None,
    };
    store
        .commit(
            &running.id,
            Batch {
                finish: Some(finish),
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.delete_component(&t, "wf", 1).await.unwrap(),
        Deleted::Deleted
    );
    assert!(store.components(&t, None).await.unwrap().is_empty());
    assert!(
        store
            .find_component(&t, "wf", Some(1))
            .await
            .unwrap()
            .is_none()
    );
    // Version numbers are never given out again, even for the bytes a deleted version had.
    let (again, created) = store
        .put_component(&t, "wf", &ComponentDigest::of(b"x"), 1, 0)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(again.version, 3);
}

pub(super) async fn tenants_and_keys_round_trip(store: Arc<dyn Store>) {
    let tenant = TenantRecord {
        id: TenantId::from_raw("tn_1"),
        name: "acme".into(),
        overrides: aegis_core::quotas::Overrides {
            memory_limit_mb: Some(8),
            ..Default::default()
        },
        created_at: 1,
    };
    let key = KeyRecord {
        id: "key_1".into(),
        tenant: tenant.id.clone(),
        hash: "h".into(),
        created_at: 1,
        revoked_at: None,
        sealed_secret: Some("v1:bm9uY2UgYW5kIGNpcGhlcnRleHQ=".into()),
    };
    assert!(store.create_tenant(&tenant, &key).await.unwrap());
    let again = TenantRecord {
        id: TenantId::from_raw("tn_2"),
        ..tenant.clone()
    };
    assert!(
        !store
            .create_tenant(
                &again,
                &KeyRecord {
                    id: "key_2".into(),
                    ..key.clone()
                }
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.tenant(&tenant.id).await.unwrap(),
        Some(tenant.clone())
    );
    assert_eq!(store.tenants().await.unwrap().len(), 1);
    assert_eq!(store.api_key("key_1").await.unwrap(), Some(key.clone()));
    assert!(store.api_key("key_2").await.unwrap().is_none());
    let revoked = KeyRecord {
        revoked_at: Some(5),
        ..key
    };
    store.put_api_key(&revoked).await.unwrap();
    assert_eq!(
        store.api_keys(&tenant.id).await.unwrap(),
        vec![revoked.clone()]
    );
    // A key made before SigV4 support has no sealed secret, and keeps none.
    let bearer_only = KeyRecord {
        id: "key_3".into(),
        created_at: 2,
        sealed_secret: None,
        ..revoked.clone()
    };
    store.put_api_key(&bearer_only).await.unwrap();
    assert_eq!(
        store.api_key("key_3").await.unwrap(),
        Some(bearer_only.clone())
    );
    assert_eq!(
        store.api_keys(&tenant.id).await.unwrap(),
        vec![revoked, bearer_only]
    );
}

pub(super) async fn components_get_versions_by_digest(store: Arc<dyn Store>) {
    let t = TenantId::default_tenant();
    let (v1, new1) = store
        .put_component(&t, "wf", &ComponentDigest::of(b"1"), 1, 0)
        .await
        .unwrap();
    let (again, new_again) = store
        .put_component(&t, "wf", &ComponentDigest::of(b"1"), 1, 0)
        .await
        .unwrap();
    let (v2, _) = store
        .put_component(&t, "wf", &ComponentDigest::of(b"2"), 1, 0)
        .await
        .unwrap();
    assert!(new1 && !new_again);
    assert_eq!((v1.version, again.version, v2.version), (1, 1, 2));
    assert_eq!(
        store
            .find_component(&t, "wf", None)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        store
            .find_component(&t, "wf", Some(1))
            .await
            .unwrap()
            .unwrap()
            .digest,
        ComponentDigest::of(b"1")
    );
    assert!(
        store
            .find_component(&TenantId::from_raw("other"), "wf", None)
            .await
            .unwrap()
            .is_none()
    );
}
