//! Replay benchmark: how long an activation takes to replay a 1,000-step history, and how long a
//! fresh 3-step activation takes (instantiate + run, journal writes included).
//!
//! Run with `cargo bench -p aegis --bench replay` after `make guests`. Prints one JSON line per
//! measurement.

use aegis::artifacts::DiskArtifacts;
use aegis::engine::activation::{self, Ending};
use aegis::engine::host::Activation;
use aegis::engine::{Engine, Limits};
use aegis::ids::{ExecutionId, TenantId};
use aegis::journal::{Details, Event, EventType, now_ms};
use aegis::store::sqlite::SqliteStore;
use aegis::store::{Created, NewExecution, Store};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fixture(name: &str) -> Vec<u8> {
    let dir = std::env::var("AEGIS_FIXTURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../guest-workflows/target/wasm32-wasip2/release")
        });
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("read {}: {e} (run `make guests` first)", path.display()))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let dir = std::env::temp_dir().join(format!("aegis-bench-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The engine waits for the journal on the host's runtime, from the thread that runs the
    // guest: this one, as an activation's blocking thread is in the host.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _runtime = rt.enter();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("aegis.db")).unwrap());
    let limits = Limits::default();
    let engine = Engine::new(&dir.join("components"), &limits).unwrap();
    let artifacts =
        Arc::new(DiskArtifacts::open(&dir.join("artifacts"), "http://127.0.0.1".into()).unwrap());
    let tenant = TenantId::default_tenant();

    let many_steps = engine.install(&fixture("many_steps")).unwrap();
    let steps3 = engine.install(&fixture("steps3")).unwrap();
    let start = |name: &str, digest: &aegis::ids::ComponentDigest, input: &str| {
        let id = ExecutionId::generate();
        let created = rt
            .block_on(store.create_execution(NewExecution {
                id: id.clone(),
                tenant: tenant.clone(),
                name: None,
                workflow: name.into(),
                version: 1,
                digest: digest.clone(),
                input: input.into(),
                now: now_ms(),
                timeout_at: None,
                max_running: None,
                started_event: Event::execution(
                    EventType::ExecutionStarted,
                    now_ms(),
                    Details::Empty,
                ),
            }))
            .unwrap();
        let Created::New(record) = created else {
            panic!("new execution expected")
        };
        (record, engine.load(digest).unwrap())
    };

    // A live run records the 1,000-step journal; then replay it many times.
    let (record, pre) = start("many_steps", &many_steps, r#"{"steps":1000}"#);
    let live = Instant::now();
    let (ending, _) = activation::run(
        &pre,
        Activation::new(record.clone(), vec![], store.clone(), artifacts.clone()),
        &limits,
    );
    let live = live.elapsed();
    assert!(matches!(ending, Ending::Completed(_)), "{ending:?}");
    let journal = rt.block_on(store.operations(&record.id)).unwrap();
    assert_eq!(journal.len(), 1000);
    let mut times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let activation = Activation::new(
            record.clone(),
            journal.clone(),
            store.clone(),
            artifacts.clone(),
        );
        let (ending, _) = activation::run(&pre, activation, &limits);
        times.push(t.elapsed());
        assert!(matches!(ending, Ending::Completed(_)), "{ending:?}");
    }
    times.sort();
    println!(
        "{}",
        json!({"workload": "replay", "steps": 1000, "runs": times.len(), "p50_ms": percentile(&times, 0.5),
               "p99_ms": percentile(&times, 0.99), "live_run_ms": live.as_secs_f64() * 1000.0,
               "live_per_step_ms": live.as_secs_f64() * 1000.0 / 1000.0})
    );

    // Fresh activations of a 3-step workflow: instantiate, run, three fsynced steps.
    let mut times = Vec::new();
    for _ in 0..200 {
        let (record, pre) = start("steps3", &steps3, r#""x""#);
        let t = Instant::now();
        let (ending, _) = activation::run(
            &pre,
            Activation::new(record, vec![], store.clone(), artifacts.clone()),
            &limits,
        );
        times.push(t.elapsed());
        assert!(matches!(ending, Ending::Completed(_)), "{ending:?}");
    }
    times.sort();
    println!(
        "{}",
        json!({"workload": "activation_3_steps", "runs": times.len(), "p50_ms": percentile(&times, 0.5), "p99_ms": percentile(&times, 0.99)})
    );
    let _ = std::fs::remove_dir_all(&dir);
}
