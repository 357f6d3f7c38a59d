//! Runs the real `aegis` binary.
//!
//! [`Host::start`] spawns `aegis serve --listen 127.0.0.1:0 --data-dir DIR` in a fresh temp
//! dir and waits for the line `aegis listening on http://127.0.0.1:PORT` on its stdout (never a
//! sleep). The host's stderr goes to a log file beside the data dir; when a test panics while
//! a [`Host`] is alive, the end of that log is printed. Dropping a [`Host`] kills the process.
//!
//! The host's configuration comes only from [`HostOptions`]: `AEGIS_*` variables of the test's
//! own environment (other than `AEGIS_LOG`) are not passed on. With
//! [`HostOptions::admin_key`] the host runs in keyed mode (`AEGIS_ADMIN_KEY`); without it, in
//! open mode, where every request acts for the default tenant.

use std::io::{BufRead, BufReader, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use tempfile::TempDir;

use crate::client::Client;

/// The readiness line's prefix; the base URL follows it.
const READY_PREFIX: &str = "aegis listening on ";

/// How `aegis serve` is started.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// `--cpu-deadline-ms`.
    pub cpu_deadline_ms: Option<u64>,
    /// `--memory-limit-mb`.
    pub memory_limit_mb: Option<u64>,
    /// More arguments after `serve`.
    pub extra_args: Vec<String>,
    /// More environment variables (e.g. `AEGIS_MAX_PAYLOAD_KB`).
    pub env: Vec<(String, String)>,
    /// The operator key (`AEGIS_ADMIN_KEY`): when set, the host runs in keyed mode.
    pub admin_key: Option<String>,
    /// How long to wait for the readiness line.
    pub ready_timeout: Duration,
    /// The data dir to use instead of `data/` in a fresh temp dir (the crash-loop soak's
    /// `--data-dir`); it is kept when the [`Host`] is dropped.
    pub data_dir: Option<PathBuf>,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            cpu_deadline_ms: None,
            memory_limit_mb: None,
            extra_args: Vec::new(),
            env: Vec::new(),
            admin_key: None,
            ready_timeout: Duration::from_secs(60),
            data_dir: None,
        }
    }
}

impl HostOptions {
    /// Sets `--cpu-deadline-ms`.
    pub fn cpu_deadline_ms(mut self, ms: u64) -> Self {
        self.cpu_deadline_ms = Some(ms);
        self
    }

    /// Sets `--memory-limit-mb`.
    pub fn memory_limit_mb(mut self, mb: u64) -> Self {
        self.memory_limit_mb = Some(mb);
        self
    }

    /// Sets the environment variable `name` for the host.
    pub fn env(mut self, name: &str, value: impl ToString) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Runs the host in keyed mode with `key` as the admin key.
    pub fn admin_key(mut self, key: &str) -> Self {
        self.admin_key = Some(key.to_string());
        self
    }

    /// Runs the host in keyed mode with a fixed test admin key ([`TEST_ADMIN_KEY`]).
    pub fn keyed(self) -> Self {
        self.admin_key(TEST_ADMIN_KEY)
    }
}

/// The admin key [`HostOptions::keyed`] sets.
pub const TEST_ADMIN_KEY: &str = "aegis-e2e-admin-key-0123456789abcdef";

/// A running `aegis serve` process with its own data dir.
pub struct Host {
    opts: HostOptions,
    /// Holds `data/` and the logs; removed on drop.
    dir: TempDir,
    child: Option<Child>,
    base_url: String,
    log_path: PathBuf,
    starts: u32,
    /// The `--listen` address of the next start: port 0, or the last address
    /// ([`Host::restart_same_address`]).
    listen: String,
}

/// The `aegis` binary: `$AEGIS_BIN`, or `aegis` in the target profile dir this executable was
/// built in (`target/debug/deps/e2e-…` → `target/debug/aegis`).
///
/// # Panics
/// When the binary is missing.
pub fn aegis_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("AEGIS_BIN").filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "AEGIS_BIN points to {}, which does not exist",
            bin.display()
        );
        return bin;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe
        .parent()
        .expect("executable has a directory")
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let bin = dir.join(format!("aegis{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the aegis binary is missing: expected {} (build it with `cargo build -p aegis`, add \
         `--release` for the bench, or set AEGIS_BIN)",
        bin.display()
    );
    bin
}

impl Host {
    /// Starts a host on a fresh temp data dir and waits until it is ready.
    ///
    /// # Errors
    /// When the process cannot be spawned, exits, or prints no readiness line in time.
    pub async fn start(opts: HostOptions) -> Result<Host> {
        let dir = tempfile::Builder::new()
            .prefix("aegis-e2e-")
            .tempdir()
            .context("creating the temp dir")?;
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
        let mut host = Host {
            opts,
            log_path: dir.path().join("host-0.log"),
            dir,
            child: None,
            base_url: String::new(),
            starts: 0,
            listen: "127.0.0.1:0".to_string(),
        };
        host.spawn().await?;
        Ok(host)
    }

    /// Starts a host with the default options.
    ///
    /// # Errors
    /// As [`Host::start`].
    pub async fn start_default() -> Result<Host> {
        Host::start(HostOptions::default()).await
    }

    async fn spawn(&mut self) -> Result<()> {
        self.starts += 1;
        self.log_path = self.dir.path().join(format!("host-{}.log", self.starts));
        let log = std::fs::File::create(&self.log_path).context("creating the host log")?;

        let mut cmd = Command::new(aegis_bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(self.data_dir());
        if let Some(ms) = self.opts.cpu_deadline_ms {
            cmd.arg("--cpu-deadline-ms").arg(ms.to_string());
        }
        if let Some(mb) = self.opts.memory_limit_mb {
            cmd.arg("--memory-limit-mb").arg(mb.to_string());
        }
        cmd.args(&self.opts.extra_args);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        // An error that stops the host is printed without anyhow's backtrace, so that the log
        // tail a test reads shows the message (panics keep theirs, from RUST_BACKTRACE).
        cmd.env("RUST_LIB_BACKTRACE", "0");
        // Only the options configure the host: the test's own AEGIS_* settings stay out.
        for (name, _) in std::env::vars_os() {
            if let Some(name) = name.to_str()
                && name.starts_with("AEGIS_")
                && name != "AEGIS_LOG"
            {
                cmd.env_remove(name);
            }
        }
        if let Some(key) = &self.opts.admin_key {
            cmd.env("AEGIS_ADMIN_KEY", key);
        }
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        // If the test process dies without dropping the Host (a runner's timeout kills it), the
        // host must not linger: the kernel kills it when the thread that spawned it exits.
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: prctl(2) is async-signal-safe, as a pre_exec hook requires.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }

        let mut child = cmd.spawn().context("spawning aegis serve")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let pid = child.id();
        self.child = Some(child);

        // A thread reads stdout for the whole life of the process, so the host never blocks on
        // a full pipe; the first readiness line is handed over through the channel.
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        std::thread::Builder::new()
            .name(format!("aegis-{pid}-stdout"))
            .spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(url) = line.trim().strip_prefix(READY_PREFIX)
                        && let Some(tx) = tx.take()
                    {
                        let _ = tx.send(url.trim().trim_end_matches('/').to_string());
                    }
                }
            })
            .context("spawning the stdout reader")?;

        match tokio::time::timeout(self.opts.ready_timeout, rx).await {
            Ok(Ok(url)) => {
                self.base_url = url;
                Ok(())
            }
            Ok(Err(_)) => {
                // stdout closed before the line: the process most likely exited.
                let status = self.wait_exit(Duration::from_secs(5)).await;
                bail!(
                    "aegis serve exited before it was ready ({status}); log tail:\n{}",
                    self.log_tail(40)
                )
            }
            Err(_) => {
                let _ = self.kill9();
                bail!(
                    "aegis serve printed no `{READY_PREFIX}…` line within {:?}; log tail:\n{}",
                    self.opts.ready_timeout,
                    self.log_tail(40)
                )
            }
        }
    }

    async fn wait_exit(&mut self, limit: Duration) -> String {
        let Some(child) = self.child.as_mut() else {
            return "not running".into();
        };
        let deadline = Instant::now() + limit;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return status.to_string();
                }
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(None) => return "still running".into(),
                Err(e) => return format!("unknown status: {e}"),
            }
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:40123` (it changes on restart).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A client for this host, without a key; take a new one after [`Host::restart`].
    pub fn client(&self) -> Client {
        Client::new(&self.base_url)
    }

    /// A client that sends the admin key (none in open mode).
    pub fn admin(&self) -> Client {
        match &self.opts.admin_key {
            Some(key) => self.client().with_key(key),
            None => self.client(),
        }
    }

    /// The admin key, in keyed mode.
    pub fn admin_key(&self) -> Option<&str> {
        self.opts.admin_key.as_deref()
    }

    /// The data dir, the same across restarts.
    pub fn data_dir(&self) -> PathBuf {
        match &self.opts.data_dir {
            Some(dir) => dir.clone(),
            None => self.dir.path().join("data"),
        }
    }

    /// How many times the process has been started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// The pid of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The stderr log of the current (or last) process.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `n` lines of the current log.
    pub fn log_tail(&self, n: usize) -> String {
        read_tail(&self.log_path, n)
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    ///
    /// # Errors
    /// When the signal cannot be sent.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            match child.kill() {
                Ok(()) => {}
                // Already exited: nothing to kill.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {}
                Err(e) => return Err(anyhow!(e).context("sending SIGKILL")),
            }
            child.wait().context("reaping aegis")?;
        }
        Ok(())
    }

    /// Freezes the process (SIGSTOP), as a long pause or a network partition would: it holds
    /// its leases and its in-flight writes until [`Host::resume`].
    ///
    /// # Errors
    /// When the process is not running or cannot be signalled.
    pub fn pause(&self) -> Result<()> {
        self.signal(libc::SIGSTOP)
    }

    /// Lets a paused process go on (SIGCONT).
    ///
    /// # Errors
    /// When the process is not running or cannot be signalled.
    pub fn resume(&self) -> Result<()> {
        self.signal(libc::SIGCONT)
    }

    fn signal(&self, signal: libc::c_int) -> Result<()> {
        let pid = self.pid().context("the host is not running")?;
        let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
        // SAFETY: kill(2) takes plain integers; the pid is our own child, not yet reaped.
        if unsafe { libc::kill(pid, signal) } != 0 {
            bail!("kill({pid}, {signal}): {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stops the process gracefully (SIGTERM), falling back to SIGKILL after 10 s.
    ///
    /// # Errors
    /// When the process cannot be signalled.
    pub async fn stop(&mut self) -> Result<()> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
        // SAFETY: kill(2) takes plain integers; the pid is our own child, not yet reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let status = self.wait_exit(Duration::from_secs(10)).await;
        if status == "still running" {
            self.kill9()?;
        }
        Ok(())
    }

    /// Starts the host again on the same data dir, stopping it first if it is running.
    ///
    /// # Errors
    /// As [`Host::start`].
    pub async fn restart(&mut self) -> Result<()> {
        if self.is_running() {
            self.stop().await?;
        }
        self.child = None;
        self.spawn().await
    }

    /// Starts the host again on the same data dir and the same address (port included), stopping
    /// it first if it is running: for agents, which post their answers to the URL they were given.
    ///
    /// # Errors
    /// As [`Host::start`].
    pub async fn restart_same_address(&mut self) -> Result<()> {
        let addr = self
            .base_url
            .strip_prefix("http://")
            .with_context(|| format!("unexpected base URL {:?}", self.base_url))?;
        self.listen = addr.to_string();
        self.restart().await
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "---- aegis log ({}), last lines ----\n{}\n---- end of aegis log ----",
                self.log_path.display(),
                self.log_tail(80)
            );
            if std::env::var_os("AEGIS_KEEP_DATA").is_some() {
                let kept = self.dir.path().to_path_buf();
                // Leak the dir on purpose so that it can be inspected.
                let dir = std::mem::replace(&mut self.dir, TempDir::new().expect("temp dir"));
                std::mem::forget(dir);
                eprintln!("kept the host's dir: {}", kept.display());
            }
        }
    }
}

fn read_tail(path: &Path, n: usize) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    // The last 256 KiB is plenty for the last lines.
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(256 * 1024)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
