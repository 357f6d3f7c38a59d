//! Execution logs: numbered per execution, read in pages, bounded with one marker line.

use super::*;
use aegis_core::store::logs::MAX_LINE_BYTES;

const ROOMY: LogLimits = LogLimits {
    max_lines: 10_000,
    max_bytes: 4 << 20,
};

fn line(level: LogLevel, text: &str) -> LogLine {
    LogLine::new(1_700_000_000_123, level, text)
}

fn lines(prefix: &str, n: usize) -> Vec<LogLine> {
    (0..n)
        .map(|i| line(LogLevel::Info, &format!("{prefix} {i}")))
        .collect()
}

async fn all(store: &dyn Store, id: &ExecutionId) -> Vec<LogRecord> {
    store.logs(id, 0, 100_000).await.unwrap()
}

fn messages(records: &[LogRecord]) -> Vec<&str> {
    records.iter().map(|r| r.message.as_str()).collect()
}

pub(super) async fn logs_are_numbered_per_execution_and_read_in_pages(store: Arc<dyn Store>) {
    let a = created(&*store, new_execution(None, "{}")).await;
    let b = created(&*store, new_execution(None, "{}")).await;
    let json = r#"{"durableExecutionArn":"arn:x","message":"ünïcode ✓"}"#;
    let long = "y".repeat(MAX_LINE_BYTES + 500);
    let first = vec![
        line(LogLevel::Info, "one"),
        line(LogLevel::Error, "two\nlines"),
        line(LogLevel::Debug, json),
    ];
    store.append_logs(&a.id, first, ROOMY).await.unwrap();
    store
        .append_logs(&b.id, lines("b", 2), ROOMY)
        .await
        .unwrap();
    store
        .append_logs(
            &a.id,
            vec![line(LogLevel::Warn, "four"), line(LogLevel::Trace, &long)],
            ROOMY,
        )
        .await
        .unwrap();
    store.append_logs(&a.id, Vec::new(), ROOMY).await.unwrap();

    let records = all(&*store, &a.id).await;
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        &messages(&records)[..4],
        ["one", "two\nlines", json, "four"]
    );
    assert_eq!(
        records.iter().map(|r| r.level).collect::<Vec<_>>(),
        vec![
            LogLevel::Info,
            LogLevel::Error,
            LogLevel::Debug,
            LogLevel::Warn,
            LogLevel::Trace
        ]
    );
    assert!(records.iter().all(|r| r.at == 1_700_000_000_123));
    assert!(records[4].message.len() <= MAX_LINE_BYTES);
    assert!(records[4].message.starts_with("yyyy"));
    assert!(records.iter().all(|r| !r.is_marker()));

    let page = store.logs(&a.id, 2, 2).await.unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 4]);
    assert!(store.logs(&a.id, 5, 10).await.unwrap().is_empty());
    assert!(store.logs(&a.id, 0, 0).await.unwrap().is_empty());
    assert_eq!(messages(&all(&*store, &b.id).await), ["b 0", "b 1"]);
    let unknown = ExecutionId::generate();
    assert!(all(&*store, &unknown).await.is_empty());
}

pub(super) async fn a_full_log_keeps_one_marker_and_drops_the_rest(store: Arc<dyn Store>) {
    let by_lines = created(&*store, new_execution(None, "{}")).await;
    let three = LogLimits {
        max_lines: 3,
        max_bytes: 1 << 20,
    };
    store
        .append_logs(&by_lines.id, lines("a", 2), three)
        .await
        .unwrap();
    store
        .append_logs(&by_lines.id, lines("b", 3), three)
        .await
        .unwrap();
    store
        .append_logs(&by_lines.id, lines("c", 3), three)
        .await
        .unwrap();
    let records = all(&*store, &by_lines.id).await;
    assert_eq!(&messages(&records)[..3], ["a 0", "a 1", "b 0"]);
    assert_eq!(records.len(), 4, "{records:?}");
    assert!(records[3].is_marker(), "{:?}", records[3]);
    assert_eq!(records[3].seq, 4);

    let by_bytes = created(&*store, new_execution(None, "{}")).await;
    let ten = LogLimits {
        max_lines: 100,
        max_bytes: 10,
    };
    store
        .append_logs(
            &by_bytes.id,
            vec![
                line(LogLevel::Info, "12345"),
                line(LogLevel::Info, "123456"),
                line(LogLevel::Info, "1"),
            ],
            ten,
        )
        .await
        .unwrap();
    store
        .append_logs(&by_bytes.id, lines("late", 1), ten)
        .await
        .unwrap();
    let records = all(&*store, &by_bytes.id).await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].message, "12345");
    assert!(records[1].is_marker());
}

pub(super) async fn concurrent_appends_never_share_a_number(store: Arc<dyn Store>) {
    let e = created(&*store, new_execution(None, "{}")).await;
    let appends = (0..6).map(|i| {
        let store = store.clone();
        let id = e.id.clone();
        tokio::spawn(async move {
            store
                .append_logs(&id, lines(&format!("writer {i}"), 5), ROOMY)
                .await
                .unwrap()
        })
    });
    for append in appends.collect::<Vec<_>>() {
        append.await.unwrap();
    }
    let records = all(&*store, &e.id).await;
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<u64>>()
    );
    for i in 0..6 {
        // Each append's lines stay together and in order.
        let start = records
            .iter()
            .position(|r| r.message == format!("writer {i} 0"))
            .unwrap();
        let run: Vec<String> = (0..5).map(|k| format!("writer {i} {k}")).collect();
        assert_eq!(messages(&records[start..start + 5]), run);
    }
}
