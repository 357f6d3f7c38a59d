//! `aegis-bench`: drives a real `aegis serve` over REST, exactly as a client would, and prints
//! one JSON line per workload on stdout (progress goes to stderr).
//!
//! Workloads (sizes on the embedded store; see below for DynamoDB):
//! - `W1`: `steps3` ×300 at concurrency 1, then ×300 with 32 closed-loop clients; latency is
//!   submit → result;
//! - `W2`: `callback` ×100 one after the other; latency is callback delivery → result (the
//!   resume latency);
//! - `W1-lambda` (only when named in `--only`): W1 through the Lambda durable API instead of
//!   `/v1`: each workflow is one `RequestResponse` Invoke of the function `steps3`, which answers
//!   the result; the line's `surface` says which API it went through, so that the two W1 lines
//!   of one run give the AWS surface's overhead;
//! - `W3`: `many_steps` with 1,000 steps once; total and per-step time, and steps/s;
//! - `suspended`: 10,000 `callback` executions suspended at once; the host's RSS before and after;
//! - `fairness` (only when named in `--only`): on a host of its own, tenant A floods 2,000
//!   executions that each burn 100 ms of CPU while tenant B runs 30 `steps3` one after the
//!   other; B's latency from start to result (`aegis_tests::fairness`). `--fairness N` sets A's
//!   count.
//!
//! Usage: `aegis-bench [--only W1,W2,W3,suspended] [--quick] [--store embedded|dynamodb]
//! [--dynamodb-endpoint URL] [--w1 N] [--w2 N] [--w3 STEPS] [--suspended N]`, or
//! `aegis-bench --hostile [--attacks NAME,...]` (below).
//! `--quick` divides the counts by 10; `--w1`/`--w2`/`--w3`/`--suspended` set one count exactly.
//! Run it with `cargo run --release -p aegis-tests --bin aegis-bench`; it uses the `aegis`
//! binary of the same profile (or `$AEGIS_BIN`). Under `cargo run` it first brings that binary
//! up to date with `cargo build -p aegis` in the same profile, so it never measures a stale host.
//!
//! `--store dynamodb` runs the same workloads on a host configured with the DynamoDB store
//! (`serve --config FILE`, `[store] backend = "dynamodb"`) against a local server: moto, started
//! here through `.ci/moto-server` on a free loopback port (it serves one request at a time), or
//! the server `--dynamodb-endpoint URL` names (which implies `--store dynamodb`). Each workload
//! gets its own host and a fresh table prefix (`aegis dynamodb create-tables`), so that moto's
//! transactions, which copy the whole table, do not slow down with the earlier workloads' items.
//! moto is far slower than DynamoDB, so the default counts there are smaller: W1 200 (at
//! concurrency 1 and 32), W2 50, W3 200 steps; `suspended` (1,000) runs only when named in
//! `--only`. Every JSON line names its store and the count it ran.
//!
//! `--hostile` runs the hostile-guest suite instead (`aegis_tests::hostile`; `--attacks` picks
//! some of it): each attack against a fresh host in keyed mode (embedded store), tenant A
//! attacking while tenant B runs `steps3` canaries in two closed loops, until the attack is over
//! and at least 100 canaries have finished (or a minute has passed). One JSON line per attack:
//! how it ended, whether that is what the suite expects, the time to contain it (first start to
//! last end, or to the refused upload), the host's RSS before and its peak (`VmHWM`), and the
//! canaries' count, failures, p50 and p99; then a table of the same on stderr.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aegis_tests::client::TERMINAL;
use aegis_tests::{Client, Host, HostOptions, aws, hostile};
use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use tokio::task::JoinSet;

const WORKLOADS: &[&str] = &["W1", "W1-lambda", "W2", "W3", "suspended", "fairness"];

const USAGE: &str = "usage: aegis-bench [--only W1,W1-lambda,W2,W3,suspended] [--quick] \
                     [--store embedded|dynamodb] [--dynamodb-endpoint URL] [--w1 N] [--w2 N] \
                     [--w3 STEPS] [--suspended N] [--fairness N]\n       aegis-bench --hostile [--attacks NAME,...]";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum StoreKind {
    Embedded,
    DynamoDb,
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            StoreKind::Embedded => "embedded",
            StoreKind::DynamoDb => "dynamodb",
        }
    }
}

/// The workload counts: W1 workflows (per concurrency), W2 callbacks, W3 steps, suspended
/// executions.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    w1: usize,
    w2: usize,
    w3: u64,
    suspended: usize,
}

impl Sizes {
    fn defaults(store: StoreKind) -> Sizes {
        match store {
            StoreKind::Embedded => Sizes {
                w1: 300,
                w2: 100,
                w3: 1000,
                suspended: 10_000,
            },
            StoreKind::DynamoDb => Sizes {
                w1: 200,
                w2: 50,
                w3: 200,
                suspended: 1000,
            },
        }
    }
}

struct Args {
    /// `None`: every workload the store runs by default.
    only: Option<Vec<String>>,
    quick: bool,
    store: StoreKind,
    dynamodb_endpoint: Option<String>,
    w1: Option<usize>,
    w2: Option<usize>,
    w3: Option<u64>,
    suspended: Option<usize>,
    fairness: Option<usize>,
    /// `--hostile`: run the hostile-guest suite instead of the workloads.
    hostile: bool,
    /// `--attacks`: the attacks to run (`None`: all).
    attacks: Option<Vec<String>>,
}

impl Args {
    fn sizes(&self) -> Sizes {
        let scale = if self.quick { 10 } else { 1 };
        let d = Sizes::defaults(self.store);
        Sizes {
            w1: self.w1.unwrap_or((d.w1 / scale).max(1)),
            w2: self.w2.unwrap_or((d.w2 / scale).max(1)),
            w3: self.w3.unwrap_or((d.w3 / scale as u64).max(1)),
            suspended: self.suspended.unwrap_or((d.suspended / scale).max(1)),
        }
    }

    fn workloads(&self) -> Vec<String> {
        match &self.only {
            Some(only) => only.clone(),
            None => WORKLOADS
                .iter()
                .filter(|w| self.store == StoreKind::Embedded || **w != "suspended")
                .filter(|w| **w != "fairness" && **w != "W1-lambda")
                .map(|w| w.to_string())
                .collect(),
        }
    }
}

/// The value of `--flag VALUE` or `--flag=VALUE`, when `arg` is that flag.
fn flag_value(
    arg: &str,
    flag: &str,
    it: &mut impl Iterator<Item = String>,
) -> Result<Option<String>> {
    if arg == flag {
        return it
            .next()
            .map(Some)
            .with_context(|| format!("{flag} needs a value"));
    }
    Ok(arg
        .strip_prefix(flag)
        .and_then(|rest| rest.strip_prefix('='))
        .map(str::to_string))
}

fn count<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T> {
    value
        .parse()
        .ok()
        .with_context(|| format!("{flag} needs a count, not {value:?}"))
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        only: None,
        quick: false,
        store: StoreKind::Embedded,
        dynamodb_endpoint: None,
        w1: None,
        w2: None,
        w3: None,
        suspended: None,
        fairness: None,
        hostile: false,
        attacks: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => {
                args.quick = true;
                continue;
            }
            "--hostile" => {
                args.hostile = true;
                continue;
            }
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                std::process::exit(0);
            }
            _ => {}
        }
        if let Some(store) = flag_value(&arg, "--store", &mut it)? {
            args.store = match store.to_ascii_lowercase().as_str() {
                "embedded" => StoreKind::Embedded,
                "dynamodb" => StoreKind::DynamoDb,
                other => bail!("unknown store {other:?}; known: embedded, dynamodb"),
            };
        } else if let Some(url) = flag_value(&arg, "--dynamodb-endpoint", &mut it)? {
            args.dynamodb_endpoint = Some(url.trim_end_matches('/').to_string());
        } else if let Some(n) = flag_value(&arg, "--w1", &mut it)? {
            args.w1 = Some(count("--w1", &n)?);
        } else if let Some(n) = flag_value(&arg, "--w2", &mut it)? {
            args.w2 = Some(count("--w2", &n)?);
        } else if let Some(n) = flag_value(&arg, "--w3", &mut it)? {
            args.w3 = Some(count("--w3", &n)?);
        } else if let Some(n) = flag_value(&arg, "--suspended", &mut it)? {
            args.suspended = Some(count("--suspended", &n)?);
        } else if let Some(n) = flag_value(&arg, "--fairness", &mut it)? {
            args.fairness = Some(count("--fairness", &n)?);
        } else if let Some(list) = flag_value(&arg, "--attacks", &mut it)? {
            let known: Vec<&str> = hostile::attacks().iter().map(|a| a.name).collect();
            let mut names = Vec::new();
            for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if !known.contains(&name) {
                    bail!("unknown attack {name:?}; known: {known:?}");
                }
                names.push(name.to_string());
            }
            args.attacks = Some(names);
            args.hostile = true;
        } else if let Some(only) = flag_value(&arg, "--only", &mut it)? {
            let mut list = Vec::new();
            for name in only.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let name = if name.eq_ignore_ascii_case("memory") {
                    "suspended"
                } else {
                    name
                };
                match WORKLOADS.iter().find(|w| w.eq_ignore_ascii_case(name)) {
                    Some(w) => list.push(w.to_string()),
                    None => bail!("unknown workload {name:?}; known: {WORKLOADS:?}"),
                }
            }
            args.only = Some(list);
        } else {
            bail!("unknown argument {arg:?} (try --help)");
        }
    }
    if args.dynamodb_endpoint.is_some() {
        args.store = StoreKind::DynamoDb;
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    if args.hostile {
        build_host()?;
        return hostile_suite(args.attacks.as_deref()).await;
    }
    let sizes = args.sizes();
    let workloads = args.workloads();
    let wants = |w: &str| workloads.iter().any(|o| o == w);
    let store = args.store;

    build_host()?;
    eprintln!(
        "aegis-bench: store {}, workloads {workloads:?}, sizes: W1 {} workflows per concurrency, \
         W2 {} callbacks, W3 {} steps, suspended {} executions",
        store.name(),
        sizes.w1,
        sizes.w2,
        sizes.w3,
        sizes.suspended
    );
    eprintln!(
        "aegis-bench: aegis is {}",
        aegis_tests::host::aegis_bin().display()
    );
    let hosts = match store {
        StoreKind::Embedded => {
            Hosts::Embedded(start_host("embedded", HostOptions::default()).await?)
        }
        StoreKind::DynamoDb => Hosts::DynamoDb(DynamoDb::start(args.dynamodb_endpoint.clone())?),
    };

    if wants("W1") {
        let host = hosts.host_for("w1").await?;
        for concurrency in [1, 32] {
            let line = w1(&host.client(), sizes.w1, concurrency)
                .await
                .context("W1")?;
            println!("{}", with_store(line, store));
        }
    }
    if wants("W1-lambda") {
        let host = hosts.host_for("w1-lambda").await?;
        for concurrency in [1, 32] {
            let line = w1_lambda(&host.client(), sizes.w1, concurrency)
                .await
                .context("W1-lambda")?;
            println!("{}", with_store(line, store));
        }
    }
    if wants("W2") {
        let host = hosts.host_for("w2").await?;
        let line = w2(&host.client(), sizes.w2).await.context("W2")?;
        println!("{}", with_store(line, store));
    }
    if wants("W3") {
        let host = hosts.host_for("w3").await?;
        let line = w3(&host.client(), sizes.w3).await.context("W3")?;
        println!("{}", with_store(line, store));
    }
    if store == StoreKind::Embedded {
        eprintln!(
            "aegis-bench: replay of a 1,000-step history is measured inside the host: \
             `cargo bench -p aegis --bench replay` (also run by `make bench`)"
        );
    }
    if wants("fairness") {
        let mut sizes = aegis_tests::fairness::Fairness::default();
        if args.quick {
            sizes.flood /= 10;
        }
        sizes.flood = args.fairness.unwrap_or(sizes.flood);
        let line = aegis_tests::fairness::run(sizes)
            .await
            .context("fairness")?;
        println!("{line}");
    }
    if wants("suspended") {
        let host = hosts.host_for("suspended").await?;
        let pid = host.pid().context("host pid")?;
        let line = suspended(&host.client(), pid, sizes.suspended, 32)
            .await
            .context("suspended")?;
        println!("{}", with_store(line, store));
    }
    Ok(())
}

/// `line` with the store's name added (`"store"`).
fn with_store(mut line: Value, store: StoreKind) -> Value {
    if let Value::Object(fields) = &mut line {
        fields.insert("store".into(), json!(store.name()));
    }
    line
}

/// Starts a host with `opts` and uploads the fixtures the workloads run.
async fn start_host(label: &str, opts: HostOptions) -> Result<Host> {
    // The default tenant's request rate (1,000/s, burst 2,000) is what a real client gets; the
    // bench measures the host, so it lifts it out of the way.
    let opts = opts
        .env("AEGIS_REQUESTS_PER_SECOND", "1000000")
        .env("AEGIS_REQUEST_BURST", "10000000");
    let host = Host::start(opts)
        .await
        .with_context(|| format!("starting the {label} host"))?;
    eprintln!(
        "aegis-bench: {label} host at {}, log {}",
        host.base_url(),
        host.log_path().display()
    );
    let c = host.client();
    for fixture in ["steps3", "callback", "many_steps"] {
        c.upload_fixture(fixture).await?;
    }
    Ok(host)
}

/// Where the workloads run: one embedded host for all of them, or a DynamoDB host per workload.
enum Hosts {
    Embedded(Host),
    DynamoDb(DynamoDb),
}

/// A host for one workload: the shared one, or one of its own.
enum HostRef<'a> {
    Shared(&'a Host),
    Own(Box<Host>),
}

impl std::ops::Deref for HostRef<'_> {
    type Target = Host;

    fn deref(&self) -> &Host {
        match self {
            HostRef::Shared(host) => host,
            HostRef::Own(host) => host,
        }
    }
}

impl Hosts {
    async fn host_for(&self, workload: &str) -> Result<HostRef<'_>> {
        match self {
            Hosts::Embedded(host) => Ok(HostRef::Shared(host)),
            Hosts::DynamoDb(ddb) => Ok(HostRef::Own(Box::new(ddb.host(workload).await?))),
        }
    }
}

/// The DynamoDB side: the local server (started here, or named), a run id for table prefixes,
/// and a folder for the hosts' config files.
struct DynamoDb {
    endpoint: String,
    run: String,
    dir: tempfile::TempDir,
    _moto: Option<MotoServer>,
}

impl DynamoDb {
    fn start(endpoint: Option<String>) -> Result<DynamoDb> {
        let (endpoint, moto) = match endpoint {
            Some(url) => (url, None),
            None => {
                let moto = MotoServer::start()?;
                (moto.endpoint.clone(), Some(moto))
            }
        };
        eprintln!("aegis-bench: DynamoDB at {endpoint}");
        Ok(DynamoDb {
            endpoint,
            run: aws::unique("bench"),
            dir: tempfile::Builder::new()
                .prefix("aegis-bench-ddb-")
                .tempdir()
                .context("creating the config dir")?,
            _moto: moto,
        })
    }

    /// A host on a fresh table set (prefix `<run>-<workload>-`), the fixtures uploaded.
    async fn host(&self, workload: &str) -> Result<Host> {
        let prefix = format!("{}-{workload}-", self.run);
        let t0 = Instant::now();
        aws::create_tables(&self.endpoint, &prefix)
            .with_context(|| format!("creating the tables {prefix}*"))?;
        eprintln!(
            "aegis-bench: created the tables {prefix}* in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        let config = self.dir.path().join(format!("{workload}.toml"));
        std::fs::write(
            &config,
            format!(
                "[store]\nbackend = \"dynamodb\"\ntable_prefix = \"{prefix}\"\n\
                 endpoint_url = \"{}\"\nregion = \"{}\"\n",
                self.endpoint,
                aws::REGION
            ),
        )
        .context("writing the host config")?;
        let mut opts = HostOptions {
            extra_args: vec!["--config".into(), config.display().to_string()],
            ..HostOptions::default()
        };
        for (name, value) in aws::credentials_env() {
            opts = opts.env(&name, value);
        }
        start_host(&format!("dynamodb {workload}"), opts).await
    }
}

/// moto's server through `.ci/moto-server` (one request at a time) on a free loopback port;
/// killed on drop.
struct MotoServer {
    child: Child,
    endpoint: String,
}

impl MotoServer {
    fn start() -> Result<MotoServer> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.ci/moto-server");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        let log = std::env::temp_dir().join(format!("aegis-bench-moto-{port}.log"));
        let mut cmd = Command::new("python3");
        cmd.arg(&script)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(&log).context("creating the moto log")?,
            ))
            .stderr(Stdio::from(
                std::fs::File::options()
                    .append(true)
                    .open(&log)
                    .context("opening the moto log")?,
            ));
        // Like the hosts: if the bench dies without unwinding, moto must not linger.
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
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        let mut moto = MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        eprintln!(
            "aegis-bench: starting moto ({} {port}), log {}",
            script.display(),
            log.display()
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(moto);
            }
            if let Some(status) = moto.child.try_wait()? {
                bail!(
                    "moto's server exited before listening ({status}; is moto installed? \
                     `python3 -m pip install \"moto[server]\"`); log: {}",
                    log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "moto's server is not listening after 60 s; log: {}",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Under `cargo run` (`$CARGO` set) and without `$AEGIS_BIN`: builds `aegis` in this
/// executable's profile, so that the bench runs against the current host code.
fn build_host() -> Result<()> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    if std::env::var_os("AEGIS_BIN").is_some_and(|b| !b.is_empty()) {
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let release = exe
        .parent()
        .and_then(|dir| dir.file_name())
        .is_some_and(|name| name == "release");
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-p", "aegis"]);
    if release {
        cmd.arg("--release");
    }
    eprintln!(
        "aegis-bench: cargo build -p aegis{}",
        if release { " --release" } else { "" }
    );
    let status = cmd.status().context("running cargo build -p aegis")?;
    if !status.success() {
        bail!("cargo build -p aegis failed ({status})");
    }
    Ok(())
}

/// Long-polls until the execution is terminal; fails unless it SUCCEEDED.
async fn finish(c: &Client, id: &str) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let exec = c
            .get_raw(id, Some(30_000))
            .await?
            .ok(&format!("waiting for {id}"))?;
        let status = exec["status"].as_str().unwrap_or("");
        if status == "SUCCEEDED" {
            return Ok(exec);
        }
        if TERMINAL.contains(&status) {
            bail!("execution {id} ended {status}: {exec}");
        }
        if Instant::now() > deadline {
            bail!("execution {id} still {status} after 300 s");
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The nearest-rank percentile `p` (0..=100) of sorted samples, in ms.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    ms(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `steps3` × `n` with `concurrency` closed-loop clients, through `/v1`: a start, then a wait
/// for the end. Latency is start → result.
async fn w1(c: &Client, n: usize, concurrency: usize) -> Result<Value> {
    eprintln!("W1: {n} × steps3 at concurrency {concurrency}");
    closed_loop(c, "v1", n, concurrency, |c, input| async move {
        let id = c.start("steps3", json!(input)).await?;
        let exec = finish(&c, &id).await?;
        Ok(exec["result"].clone())
    })
    .await
}

/// W1 through the Lambda durable API: `steps3` × `n` with `concurrency` closed-loop clients,
/// each workflow one `RequestResponse` Invoke that answers its result (the host waits for the
/// execution to end, up to `lambda.invoke_wait_seconds`). Latency is request → answer.
async fn w1_lambda(c: &Client, n: usize, concurrency: usize) -> Result<Value> {
    eprintln!("W1-lambda: {n} × Invoke steps3 (RequestResponse) at concurrency {concurrency}");
    closed_loop(c, "lambda", n, concurrency, |c, input| async move {
        let reply = c
            .post_path("/2015-03-31/functions/steps3/invocations", &json!(input))
            .await?;
        if reply.header("x-amz-function-error").is_some() {
            bail!("steps3 failed: {}", reply.text());
        }
        reply.ok("invoking steps3")
    })
    .await
}

/// Runs `steps3` `n` times with `concurrency` closed-loop clients, each run by `run` (which
/// answers the workflow's result), checks every result and reports W1's line for `surface`.
async fn closed_loop<F, Fut>(
    c: &Client,
    surface: &str,
    n: usize,
    concurrency: usize,
    run: F,
) -> Result<Value>
where
    F: Fn(Client, String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Value>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let mut clients = JoinSet::new();
    for _ in 0..concurrency {
        let (c, next, run) = (c.clone(), next.clone(), run.clone());
        clients.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let input = format!("w{i}");
                let t0 = Instant::now();
                let result = run(c.clone(), input.clone()).await?;
                latencies.push(t0.elapsed());
                if result != json!(format!("{input}-a-b-c")) {
                    bail!("wrong result: {result}");
                }
            }
        });
    }
    let mut latencies = Vec::with_capacity(n);
    while let Some(joined) = clients.join_next().await {
        latencies.extend(joined??);
    }
    let elapsed = began.elapsed();
    latencies.sort();
    Ok(json!({
        "workload": "W1",
        "surface": surface,
        "concurrency": concurrency,
        "workflows": n,
        "throughput_per_s": round2(n as f64 / elapsed.as_secs_f64()),
        "p50_ms": percentile(&latencies, 50.0),
        "p99_ms": percentile(&latencies, 99.0),
    }))
}

/// `callback` × `n` in sequence; latency from callback delivery to result.
async fn w2(c: &Client, n: usize) -> Result<Value> {
    eprintln!("W2: {n} × callback, one after the other");
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let id = c
            .start(
                "callback",
                json!({"timeout_seconds": 3600, "heartbeat_seconds": null}),
            )
            .await?;
        let cb = c
            .pending_callback(&id, "approval", Duration::from_secs(60))
            .await?;
        let t0 = Instant::now();
        c.callback_succeed(&cb, &json!(i))
            .await?
            .ok("delivering the callback")?;
        let exec = finish(c, &id).await?;
        latencies.push(t0.elapsed());
        if exec["result"] != json!({"callback": i}) {
            bail!("wrong result: {exec}");
        }
    }
    latencies.sort();
    Ok(json!({
        "workload": "W2",
        "callbacks": n,
        "p50_ms": percentile(&latencies, 50.0),
        "p99_ms": percentile(&latencies, 99.0),
    }))
}

/// One `many_steps` execution with `steps` steps.
async fn w3(c: &Client, steps: u64) -> Result<Value> {
    eprintln!("W3: many_steps with {steps} steps");
    let t0 = Instant::now();
    let id = c.start("many_steps", json!({"steps": steps})).await?;
    let exec = finish(c, &id).await?;
    let total = t0.elapsed();
    let expected = json!({"steps": steps, "sum": steps * steps.saturating_sub(1) / 2});
    if exec["result"] != expected {
        bail!("wrong result: {exec}");
    }
    Ok(json!({
        "workload": "W3",
        "steps": steps,
        "total_ms": ms(total),
        "per_step_ms": (ms(total) / steps.max(1) as f64 * 1000.0).round() / 1000.0,
        "steps_per_s": round2(steps as f64 / total.as_secs_f64()),
    }))
}

/// The resident set of `pid`, in MiB, from `/proc/<pid>/status`.
fn rss_mb(pid: u32) -> Result<f64> {
    Ok(round2(hostile::rss(pid)?.current_mb()))
}

/// `n` `callback` executions, all suspended on their callback at once; the host's RSS.
async fn suspended(c: &Client, pid: u32, n: usize, concurrency: usize) -> Result<Value> {
    let idle = rss_mb(pid)?;
    eprintln!(
        "suspended: starting {n} callback executions at concurrency {concurrency} (RSS {idle} MiB)"
    );
    let next = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let mut clients = JoinSet::new();
    for _ in 0..concurrency {
        let (c, next) = (c.clone(), next.clone());
        clients.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                if i > 0 && i % 1000 == 0 {
                    eprintln!("suspended: {i} started");
                }
                let id = c
                    .start(
                        "callback",
                        json!({"timeout_seconds": 3600, "heartbeat_seconds": null}),
                    )
                    .await?;
                c.pending_callback(&id, "approval", Duration::from_secs(300))
                    .await?;
            }
        });
    }
    while let Some(joined) = clients.join_next().await {
        joined??;
    }
    let elapsed = began.elapsed();
    let rss = rss_mb(pid)?;
    eprintln!(
        "suspended: {n} executions suspended in {:.1} s, RSS {rss} MiB",
        elapsed.as_secs_f64()
    );
    Ok(json!({
        "workload": "suspended",
        "executions": n,
        "rss_mb": rss,
        "rss_idle_mb": idle,
        "rss_per_execution_kb": round2((rss - idle).max(0.0) * 1024.0 / n.max(1) as f64),
    }))
}

/// `--hostile`: each attack (all, or those named) against a fresh host; one JSON line each on
/// stdout, then a table on stderr.
async fn hostile_suite(only: Option<&[String]>) -> Result<()> {
    let settings = hostile::Settings::bench();
    let attacks: Vec<hostile::Attack> = hostile::attacks()
        .into_iter()
        .filter(|a| only.is_none_or(|names| names.iter().any(|n| n == a.name)))
        .collect();
    eprintln!(
        "aegis-bench: hostile suite, {} attacks; aegis is {}",
        attacks.len(),
        aegis_tests::host::aegis_bin().display()
    );
    let mut rows = Vec::new();
    for attack in &attacks {
        eprintln!("hostile: {} ({})", attack.name, attack.what);
        let host = Host::start(attack.host_options().keyed())
            .await
            .with_context(|| format!("starting the host for {}", attack.name))?;
        let line = match hostile::run_attack(&host, attack, &settings).await {
            Ok(report) => {
                let verdict = report.check(attack, &settings);
                json!({
                    "attack": attack.name,
                    "what": attack.what,
                    "ending": report.ending(),
                    "as_expected": verdict.is_ok(),
                    "problems": verdict.err().map(|e| format!("{e:#}")),
                    "uncontained": report.uncontained(),
                    "contain_s": round2(report.contain.as_secs_f64()),
                    "rss_before_mb": round2(report.rss_before.current_mb()),
                    "peak_rss_mb": round2(report.rss_after.peak_mb()),
                    "rss_bound_mb": attack.rss_bound_mb,
                    "canaries": report.canaries.completed(),
                    "canary_failures": report.canaries.failures.len(),
                    "canary_p50_ms": ms(report.canaries.percentile(50.0)),
                    "canary_p99_ms": ms(report.canaries.percentile(99.0)),
                    "healthy": report.healthy,
                })
            }
            Err(e) => json!({
                "attack": attack.name,
                "what": attack.what,
                "ending": "the driver failed",
                "as_expected": false,
                "problems": format!("{e:#}"),
            }),
        };
        println!("{line}");
        rows.push(line);
        drop(host);
    }
    eprintln!("\n{}", hostile_table(&rows));
    Ok(())
}

/// The JSON lines of [`hostile_suite`] as a Markdown table.
fn hostile_table(rows: &[Value]) -> String {
    let mut table = String::from(
        "| attack | ending | as expected | contained in | peak RSS (MiB) | canaries (failed) | canary p99 (ms) |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let contained = if row["uncontained"].as_u64().unwrap_or(0) > 0 {
            format!("not in {} s", row["contain_s"])
        } else {
            format!("{} s", row["contain_s"])
        };
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} ({}) | {} |\n",
            row["attack"].as_str().unwrap_or("?"),
            row["ending"].as_str().unwrap_or("?"),
            if row["as_expected"] == true {
                "yes"
            } else {
                "no"
            },
            contained,
            row["peak_rss_mb"],
            row["canaries"],
            row["canary_failures"],
            row["canary_p99_ms"],
        ));
    }
    table
}
