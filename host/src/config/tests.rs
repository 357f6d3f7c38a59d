use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn no_file_gives_the_defaults() {
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.quotas, Quotas::default());
    assert!(c.admin_key.is_none());
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.toml");
    std::fs::write(&path, "data_dir = \"/srv/aegis\"\n[quotas]\nmemory_limit_mb = 32\ncpu_deadline_ms = 500\n[agents]\nresearcher = \"http://a\"\n").unwrap();
    let c = Config::load(
        Some(&path),
        env(&[
            ("AEGIS_CPU_DEADLINE_MS", "750"),
            ("AEGIS_AGENTS", "writer=http://w"),
            ("HOME", "/root"),
        ]),
    )
    .unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/srv/aegis"));
    assert_eq!(c.quotas.memory_limit_mb, 32);
    assert_eq!(c.quotas.cpu_deadline_ms, 750);
    assert_eq!(c.agents.len(), 2);
}

#[test]
fn agent_arn_variables_configure_bedrock_agents() {
    use crate::agents::Protocol;
    let arn = "arn:aws:bedrock-agentcore:eu-west-1:123456789012:runtime/researcher-AbC123";
    let c = Config::load(
        None,
        env(&[
            ("AEGIS_AGENTS", "writer=http://w"),
            ("RESEARCHER_AGENT_ARN", arn),
            (
                "WRITER_AGENT_ARN",
                "arn:aws:bedrock-agentcore:eu-west-1:1:runtime/w",
            ),
            ("ANALYST_AGENT_ARN", ""),
            ("AWS_REGION", "eu-west-1"),
        ]),
    )
    .unwrap();
    let researcher = c.agents["researcher"].endpoint();
    assert_eq!(researcher.protocol, Protocol::Bedrock);
    assert_eq!(researcher.agent_runtime_arn.as_deref(), Some(arn));
    assert_eq!(researcher.region.as_deref(), Some("eu-west-1"));
    // A configured agent wins over the alias; an empty alias configures nothing.
    assert_eq!(c.agents["writer"].endpoint().protocol, Protocol::A2a);
    assert!(!c.agents.contains_key("analyst"));
}

#[test]
fn agents_lacking_what_their_protocol_needs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.toml");
    std::fs::write(&path, "[agents.analyst]\nprotocol = \"bedrock\"\n").unwrap();
    let err = Config::load(Some(&path), env(&[])).unwrap_err();
    assert!(format!("{err:#}").contains("agent_runtime_arn"), "{err:#}");
    std::fs::write(&path, "[agents.analyst]\nprotocol = \"simple\"\n").unwrap();
    let err = Config::load(Some(&path), env(&[])).unwrap_err();
    assert!(format!("{err:#}").contains("url is required"), "{err:#}");
    std::fs::write(
        &path,
        "[agents.analyst]\nprotocol = \"bedrock\"\nagent_runtime_arn = \"arn:aws:bedrock-agentcore:us-west-2:1:runtime/a\"\nqualifier = \"prod\"\n",
    )
    .unwrap();
    let c = Config::load(Some(&path), env(&[])).unwrap();
    assert_eq!(
        c.agents["analyst"].endpoint().qualifier.as_deref(),
        Some("prod")
    );
}

#[test]
fn the_store_section_and_its_aliases() {
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!(c.store, StoreConfig::default());
    assert_eq!(c.store.backend, StoreBackend::Embedded);
    let c = Config::load(
        None,
        env(&[
            ("AEGIS_STORE_BACKEND", "dynamodb"),
            ("WORKFLOW_TABLE", "research-workflows"),
            ("AEGIS_DYNAMODB_ENDPOINT", "http://127.0.0.1:8000"),
        ]),
    )
    .unwrap();
    assert_eq!(c.store.backend, StoreBackend::Dynamodb);
    assert_eq!(c.store.table_prefix, "research-workflows");
    assert_eq!(
        c.store.endpoint_url.as_deref(),
        Some("http://127.0.0.1:8000")
    );
    let err = Config::load(None, env(&[("AEGIS_STORE_BACKEND", "postgres")])).unwrap_err();
    assert!(format!("{err:#}").contains("postgres"), "{err:#}");
}

#[test]
fn the_artifacts_and_notifications_sections_and_their_aliases() {
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!(c.artifacts.backend, ArtifactsBackend::Disk);
    assert_eq!(c.artifacts.sse, Sse::Aes256);
    assert!(c.notifications.approval_sns_topic_arn.is_none());
    assert_eq!(c.notifications.event_source, "aegis");
    let c = Config::load(
        None,
        env(&[
            ("ARTIFACT_BUCKET", "research-artifacts"),
            (
                "APPROVAL_SNS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:approvals",
            ),
        ]),
    )
    .unwrap();
    // The bucket alone does not switch the backend.
    assert_eq!(c.artifacts.backend, ArtifactsBackend::Disk);
    assert_eq!(c.artifacts.bucket.as_deref(), Some("research-artifacts"));
    assert_eq!(
        c.notifications.approval_sns_topic_arn.as_deref(),
        Some("arn:aws:sns:us-east-1:123456789012:approvals")
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.toml");
    std::fs::write(
        &path,
        "[artifacts]\nbackend = \"s3\"\nbucket = \"b\"\nsse = \"aws:kms\"\nkms_key_id = \"k\"\nforce_path_style = true\n[notifications]\nevent_bus_name = \"bus\"\n",
    )
    .unwrap();
    let c = Config::load(Some(&path), env(&[])).unwrap();
    assert_eq!(c.artifacts.backend, ArtifactsBackend::S3);
    assert_eq!(c.artifacts.sse, Sse::Kms);
    assert!(c.artifacts.force_path_style);
    assert_eq!(c.notifications.event_bus_name.as_deref(), Some("bus"));
    let err = Config::load(None, env(&[("AEGIS_ARTIFACTS_BACKEND", "gcs")])).unwrap_err();
    assert!(format!("{err:#}").contains("gcs"), "{err:#}");
}

/// A feature module's section is set aside for the module when the build has the feature, and
/// refused, naming the feature, when it has not: from the file and from each of its variables.
#[test]
fn feature_sections_are_read_only_with_their_feature() {
    let dir = tempfile::tempdir().unwrap();
    for section in FEATURE_SECTIONS {
        let path = dir.path().join(format!("{}.toml", section.name));
        std::fs::write(&path, format!("[{}]\n", section.name)).unwrap();
        let from_file = Config::load(Some(&path), env(&[]));
        let from_env: Vec<_> = section
            .env
            .iter()
            .map(|(var, _)| (*var, Config::load(None, env(&[(*var, "1")]))))
            .collect();
        if section.compiled {
            let c = from_file.unwrap();
            assert!(c.features.contains(section.name), "{}", section.name);
            for (var, loaded) in from_env {
                let c = loaded.unwrap_or_else(|e| panic!("{var}: {e:#}"));
                let (_, key) = section.env.iter().find(|(v, _)| *v == var).unwrap();
                assert!(c.features.contains(key), "{var} sets {key}");
            }
        } else {
            let built_without = format!(
                "this host was built without {} (feature `{}`)",
                section.what, section.feature
            );
            let err = format!("{:#}", from_file.unwrap_err());
            assert!(err.contains(&built_without), "{err}");
            assert!(err.contains(&format!("[{}]", section.name)), "{err}");
            for (var, loaded) in from_env {
                let err = format!("{:#}", loaded.unwrap_err());
                assert!(err.contains(&built_without) && err.contains(var), "{err}");
            }
        }
    }
    // No generic key is a feature section's.
    let c = Config::load(None, env(&[])).unwrap();
    let section: BTreeMap<String, u32> = c.section("no_such_section").unwrap();
    assert!(section.is_empty());
}

#[test]
fn the_public_url_alias_loses_to_the_aegis_name() {
    for pairs in [
        [
            ("CALLBACK_API_URL", "https://callbacks.example.com"),
            ("AEGIS_PUBLIC_URL", "https://aegis.example.com"),
        ],
        [
            ("AEGIS_PUBLIC_URL", "https://aegis.example.com"),
            ("CALLBACK_API_URL", "https://callbacks.example.com"),
        ],
    ] {
        let c = Config::load(None, env(&pairs)).unwrap();
        assert_eq!(
            c.public_url.as_deref(),
            Some("https://aegis.example.com"),
            "{pairs:?}"
        );
    }
    let c = Config::load(
        None,
        env(&[("CALLBACK_API_URL", "https://callbacks.example.com")]),
    )
    .unwrap();
    assert_eq!(
        c.public_url.as_deref(),
        Some("https://callbacks.example.com")
    );
}

#[test]
fn a_webhook_without_a_secret_is_refused() {
    let hook = ("AEGIS_WEBHOOK_URL", "https://hooks.example.com/aegis");
    for secret in [None, Some(""), Some("  ")] {
        let mut pairs = vec![hook];
        if let Some(secret) = secret {
            pairs.push(("AEGIS_WEBHOOK_SECRET", secret));
        }
        let err = Config::load(None, env(&pairs)).unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains("webhook_secret") && err.contains("AEGIS_WEBHOOK_SECRET"),
            "{secret:?}: {err}"
        );
    }
    let c = Config::load(None, env(&[hook, ("AEGIS_WEBHOOK_SECRET", "s3cret")])).unwrap();
    assert_eq!(c.webhook_secret.as_deref(), Some("s3cret"));
    // No webhook (or an empty URL, which means none): no secret needed.
    Config::load(None, env(&[("AEGIS_WEBHOOK_URL", "")])).unwrap();
}

#[test]
fn an_instance_pool_without_room_for_an_activation_is_refused() {
    for n in ["0", "1"] {
        let err = Config::load(None, env(&[("AEGIS_MAX_INSTANCES", n)])).unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains("max_instances") && err.contains("at least 2"),
            "{err}"
        );
    }
    let c = Config::load(None, env(&[("AEGIS_MAX_INSTANCES", "2")])).unwrap();
    assert_eq!(c.max_instances, 2);
    // Flags change the configuration after it is loaded; validating again catches them.
    let c = Config {
        max_instances: 1,
        ..Config::default()
    };
    assert!(c.validate().is_err());
}

#[test]
fn the_server_section_and_its_limits() {
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!(c.server, ServerConfig::default());
    let c = Config::load(
        None,
        env(&[
            ("AEGIS_HEADER_READ_TIMEOUT_MS", "2500"),
            ("AEGIS_MAX_CONNECTIONS", "64"),
            ("AEGIS_CALLBACK_REQUESTS_PER_SECOND", "5"),
        ]),
    )
    .unwrap();
    assert_eq!(c.server.header_read_timeout_ms, 2500);
    assert_eq!(c.server.max_connections, 64);
    assert_eq!(c.server.callback_requests_per_second, 5);
    assert_eq!(
        c.server.body_timeout_ms,
        ServerConfig::default().body_timeout_ms
    );
    for (var, value, key) in [
        (
            "AEGIS_HEADER_READ_TIMEOUT_MS",
            "0",
            "server.header_read_timeout_ms",
        ),
        ("AEGIS_BODY_TIMEOUT_MS", "99", "server.body_timeout_ms"),
        ("AEGIS_MAX_CONNECTIONS", "0", "server.max_connections"),
        (
            "AEGIS_ADDRESS_REQUEST_BURST",
            "0",
            "server.address_request_burst",
        ),
    ] {
        let err = Config::load(None, env(&[(var, value)])).unwrap_err();
        assert!(format!("{err:#}").contains(key), "{var}={value}: {err:#}");
    }
}

#[test]
fn bad_values_are_named() {
    let err = Config::load(None, env(&[("AEGIS_MEMORY_LIMIT_MB", "lots")])).unwrap_err();
    assert!(format!("{err:#}").contains("memory_limit_mb"), "{err:#}");
    let err = Config::load(None, env(&[("AEGIS_MAX_PAYLOAD_KB", "100000")])).unwrap_err();
    assert!(format!("{err:#}").contains("max_payload_kb"), "{err:#}");
}

#[test]
fn the_uploads_section_and_its_variables() {
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!(c.uploads, UploadsConfig::default());
    let c = Config::load(
        None,
        env(&[
            ("AEGIS_COMPILE_CONCURRENCY", "2"),
            ("AEGIS_COMPILE_QUEUE", "0"),
            ("AEGIS_COMPILE_TIMEOUT_MS", "5000"),
        ]),
    )
    .unwrap();
    assert_eq!(
        c.uploads,
        UploadsConfig {
            compile_concurrency: 2,
            compile_queue: 0,
            compile_timeout_ms: 5000,
        }
    );
    let err = Config::load(None, env(&[("AEGIS_COMPILE_CONCURRENCY", "0")])).unwrap_err();
    assert!(
        format!("{err:#}").contains("uploads.compile_concurrency"),
        "{err:#}"
    );
}

#[test]
fn an_all_digit_secret_stays_a_string() {
    // A value is typed by the field it lands in: all digits (even with a leading zero) stay a
    // string in a string field, and become a number only in a number field.
    let c = Config::load(
        None,
        env(&[
            ("AEGIS_ADMIN_KEY", "123456"),
            ("AEGIS_CREDENTIALS_KEY", "000789"),
            ("AEGIS_WEBHOOK_URL", "https://hooks.example.com/aegis"),
            ("AEGIS_WEBHOOK_SECRET", "0042"),
            ("AEGIS_HOST_ID", "7"),
            ("AEGIS_MAX_INSTANCES", "300"),
        ]),
    )
    .unwrap();
    assert_eq!(c.admin_key.as_deref(), Some("123456"));
    assert_eq!(c.credentials_key.as_deref(), Some("000789"));
    assert_eq!(c.webhook_secret.as_deref(), Some("0042"));
    assert_eq!(c.cluster.host_id.as_deref(), Some("7"));
    assert_eq!(c.max_instances, 300);
}

#[test]
fn an_error_names_the_key_and_where_its_value_came_from() {
    let err = Config::load(None, env(&[("AEGIS_MEMORY_LIMIT_MB", "lots")])).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("quotas.memory_limit_mb") && err.contains("AEGIS_MEMORY_LIMIT_MB"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.toml");
    std::fs::write(&path, "[server]\nmax_connections = -1\n").unwrap();
    let err = Config::load(Some(&path), env(&[])).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("server.max_connections") && err.contains("aegis.toml"),
        "{err}"
    );
    std::fs::write(&path, "[server]\nmax_conections = 5\n").unwrap();
    let err = Config::load(Some(&path), env(&[])).unwrap_err();
    assert!(format!("{err:#}").contains("max_conections"), "{err:#}");
}

#[test]
fn a_number_in_quotes_in_the_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.toml");
    for (text, key) in [
        ("max_instances = \"300\"\n", "max_instances"),
        (
            "[quotas]\nmemory_limit_mb = \"32\"\n",
            "quotas.memory_limit_mb",
        ),
        (
            "[cluster]\nlease_ttl_ms = \"5000\"\n",
            "cluster.lease_ttl_ms",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let err = format!("{:#}", Config::load(Some(&path), env(&[])).unwrap_err());
        assert!(
            err.contains(key) && err.contains("aegis.toml") && err.contains("without quotes"),
            "{text}: {err}"
        );
    }
    // Unquoted, the number is taken; quoted digits in a string key stay a string.
    std::fs::write(&path, "max_instances = 300\nadmin_key = \"123456\"\n").unwrap();
    let c = Config::load(Some(&path), env(&[])).unwrap();
    assert_eq!(c.max_instances, 300);
    assert_eq!(c.admin_key.as_deref(), Some("123456"));
    // The environment's values are all strings: each is typed by its field, over the file.
    let c = Config::load(
        Some(&path),
        env(&[
            ("AEGIS_MAX_INSTANCES", "400"),
            ("AEGIS_ADMIN_KEY", "654321"),
        ]),
    )
    .unwrap();
    assert_eq!(c.max_instances, 400);
    assert_eq!(c.admin_key.as_deref(), Some("654321"));
}

#[test]
fn the_example_file_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../aegis.example.toml");
    let c = Config::load(Some(&path), env(&[])).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(c.quotas, Quotas::default());
}
