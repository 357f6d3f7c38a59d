//! The embedded store: SQLite in WAL mode with `synchronous=FULL`, so a commit is on disk before
//! it is acknowledged.
//!
//! One writer thread owns the write connection and group-commits concurrent writes with one
//! fsync ([`writer`]). Reads use a small pool of separate connections, which WAL lets run beside
//! the writer.
//!
//! The roles are async ([`aegis_core::store::Journal`] and the others, one file each), and all the
//! blocking stays in here: a write is a job for the writer thread whose reply is awaited, a read
//! runs on tokio's blocking pool, or inline when the caller is already on a thread that may
//! block (a guest's activation, see [`aegis_core::store::in_blocking_scope`]), so it costs no more
//! thread hops than the synchronous store did.

mod batch;
mod callbacks;
mod catalog;
mod failure;
mod journal;
mod logs;
mod outbox;
mod rows;
mod timers;
mod writer;

use aegis_core::store::{Error, Result as StoreResult};
use failure::Result;
use rusqlite::{Connection, Transaction};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use writer::{Job, writer_loop};

const READERS: usize = 4;

/// Numbered schema migrations; `PRAGMA user_version` records how many have been applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_tenants.sql"),
    include_str!("../migrations/0003_workflow_events.sql"),
    include_str!("../migrations/0004_callback_dispatch.sql"),
    include_str!("../migrations/0005_component_tombstones.sql"),
    include_str!("../migrations/0006_leases.sql"),
    include_str!("../migrations/0007_roles.sql"),
    include_str!("../migrations/0008_event_dead_letters.sql"),
    include_str!("../migrations/0009_sealed_key_secrets.sql"),
    include_str!("../migrations/0010_execution_logs.sql"),
];

fn migrate(conn: &mut Connection) -> Result<()> {
    let applied: usize =
        conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

pub struct SqliteStore {
    writer: Mutex<mpsc::Sender<Job>>,
    readers: Arc<Readers>,
}

/// The read connections, shared with the blocking pool's threads.
struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Readers {
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> StoreResult<T> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let conn = self.conns[i]
            .lock()
            .map_err(|_| Error::Fatal("reader lock poisoned".into()))?;
        Ok(f(&conn)?)
    }
}

fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened or the schema cannot be applied.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let mut conn = open(path)?;
        migrate(&mut conn)?;
        let conns = (0..READERS)
            .map(|_| open(path).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("aegis-store-writer".into())
            .spawn(move || writer_loop(&mut conn, rx))
            .map_err(|e| Error::Fatal(format!("spawn writer: {e}")))?;
        Ok(Self {
            writer: Mutex::new(tx),
            readers: Arc::new(Readers {
                conns,
                next: AtomicUsize::new(0),
            }),
        })
    }

    /// Runs `work` in the writer thread inside a savepoint and waits until its group is
    /// committed.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        self.writer
            .lock()
            .map_err(|_| Error::Fatal("writer lock poisoned".into()))?
            .send(writer::job(work, reply_tx))
            .map_err(|_| Error::Fatal("store writer stopped".into()))?;
        // Every job is answered, even one whose group could not begin; no answer means the
        // writer thread died (its open transaction rolled back), and no write can follow.
        reply_rx
            .await
            .map_err(|_| Error::Fatal("the store writer stopped before answering".into()))?
    }

    /// Runs `f` on a read connection: inline on a thread that may block, else on the blocking
    /// pool, so that no async worker waits for the disk.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let readers = self.readers.clone();
        aegis_core::store::blocking_io(move || readers.read(f)).await
    }
}
