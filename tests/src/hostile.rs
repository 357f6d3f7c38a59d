//! The hostile-guest suite: attacks one tenant's workflows make on the host, and what another
//! tenant sees meanwhile.
//!
//! [`attacks`] is the catalogue: for each attack, the component (a fixture guest from
//! `guest-workflows/fixtures/`, or a hand-written one from [`crate::wat`]), the executions to
//! start, the attacker's quotas and how each execution must end. [`run_attack`] runs one against a
//! host in keyed mode: tenant A runs the attack while tenant B runs [`Canaries`] (`steps3`) side
//! by side; it returns a [`Report`] with how the attack ended, the time it took to contain, the
//! host's peak RSS and the canaries' latencies. The end-to-end tests (`tests/e2e/hostile.rs`) check
//! reports with [`Report::check`]; the bench (`aegis-bench --hostile`) prints them as a table.
//!
//! Nothing here times the host: durations are measured and reported, never asserted. The only
//! bounds are on counts (the canaries that must complete) and on memory (the host's RSS).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;

use crate::client::TERMINAL;
use crate::{Client, Host, HostOptions};

/// The host's resident memory, from `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rss {
    /// `VmRSS`: resident now, in KiB.
    pub current_kb: u64,
    /// `VmHWM`: the highest it has been since the process started, in KiB.
    pub peak_kb: u64,
}

impl Rss {
    /// [`Rss::current_kb`] in MiB.
    pub fn current_mb(&self) -> f64 {
        self.current_kb as f64 / 1024.0
    }

    /// [`Rss::peak_kb`] in MiB.
    pub fn peak_mb(&self) -> f64 {
        self.peak_kb as f64 / 1024.0
    }
}

/// Reads the resident memory of process `pid`.
///
/// # Errors
/// When `/proc/<pid>/status` cannot be read or has no `VmRSS`/`VmHWM` line.
pub fn rss(pid: u32) -> Result<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_rss(&status).with_context(|| format!("/proc/{pid}/status"))
}

fn parse_rss(status: &str) -> Result<Rss> {
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} line"))?;
        line[name.len()..]
            .split_whitespace()
            .next()
            .with_context(|| format!("{name} without a value"))?
            .parse()
            .with_context(|| format!("{name} value"))
    };
    Ok(Rss {
        current_kb: field("VmRSS:")?,
        peak_kb: field("VmHWM:")?,
    })
}

/// What the canaries saw.
#[derive(Clone, Debug, Default)]
pub struct CanaryStats {
    /// Start-to-result latencies of the canaries that succeeded.
    pub latencies: Vec<Duration>,
    /// One line per canary that did not succeed with its expected result.
    pub failures: Vec<String>,
}

impl CanaryStats {
    /// Canaries that finished, well or not.
    pub fn completed(&self) -> usize {
        self.latencies.len() + self.failures.len()
    }

    /// The nearest-rank percentile `p` (0..=100) of the latencies; zero without any.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }
}

/// `steps3` executions of the bystander tenant, run in closed loops ("lanes") until told to stop.
pub struct Canaries {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<CanaryStats>>,
    lanes: JoinSet<()>,
}

impl Canaries {
    /// Starts `lanes` loops through `client` (the bystander's), each running one `steps3` at a
    /// time and giving each at most `patience` to finish. `steps3` must be uploaded.
    pub fn start(client: &Client, lanes: usize, patience: Duration) -> Canaries {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(CanaryStats::default()));
        let mut set = JoinSet::new();
        for lane in 0..lanes {
            let (c, stop, stats) = (client.clone(), stop.clone(), stats.clone());
            set.spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let input = format!("canary-{lane}-{n}");
                    n += 1;
                    let began = Instant::now();
                    let outcome = canary(&c, &input, patience).await;
                    let mut stats = stats.lock().await;
                    match outcome {
                        Ok(()) => stats.latencies.push(began.elapsed()),
                        Err(e) => stats.failures.push(format!("{input}: {e:#}")),
                    }
                }
            });
        }
        Canaries {
            stop,
            stats,
            lanes: set,
        }
    }

    /// Lets the lanes run until at least `min` canaries have finished in all, or for `limit`,
    /// whichever comes first, then stops them (each finishes the canary it is running) and
    /// returns what they saw.
    pub async fn finish(mut self, min: usize, limit: Duration) -> CanaryStats {
        let deadline = Instant::now() + limit;
        while self.stats.lock().await.completed() < min
            && !self.lanes.is_empty()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop.store(true, Ordering::SeqCst);
        while self.lanes.join_next().await.is_some() {}
        self.stats.lock().await.clone()
    }
}

/// One canary: `steps3` on `input` must succeed with `"<input>-a-b-c"`.
async fn canary(c: &Client, input: &str, patience: Duration) -> Result<()> {
    let id = c.start("steps3", json!(input)).await?;
    let exec = c.wait_done(&id, patience).await?;
    let expected = json!(format!("{input}-a-b-c"));
    ensure!(
        exec["status"] == "SUCCEEDED" && exec["result"] == expected,
        "{id} ended {}",
        abridged(&exec)
    );
    Ok(())
}

/// Where an attack's component comes from.
#[derive(Clone, Copy, Debug)]
pub enum Component {
    /// A guest fixture, by crate name (see [`crate::fixture`]).
    Fixture(&'static str),
    /// A hand-written component ([`crate::wat`]).
    Wat(fn() -> Result<Vec<u8>>),
}

impl Component {
    /// The component's bytes.
    ///
    /// # Errors
    /// When the fixture cannot be read or the text does not compile.
    pub fn bytes(&self) -> Result<Vec<u8>> {
        match self {
            Component::Fixture(name) => {
                let path = crate::fixture(name);
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
            }
            Component::Wat(build) => build(),
        }
    }
}

/// One execution an attack starts, and how it must end.
#[derive(Clone, Debug)]
pub struct Run {
    /// Its input.
    pub input: Value,
    /// It must end FAILED with one of these error types.
    pub error_types: &'static [&'static str],
    /// When not empty, its error message must name one of these (case-insensitive): the quota or
    /// limit that stopped it.
    pub names_one_of: &'static [&'static str],
}

impl Run {
    fn failing(input: Value, error_types: &'static [&'static str]) -> Run {
        Run {
            input,
            error_types,
            names_one_of: &[],
        }
    }

    /// A flood: it must fail with `Aegis.ActivationLimitExceeded`, naming one of `quota`.
    fn flood(input: Value, quota: &'static [&'static str]) -> Run {
        Run {
            input,
            error_types: &["Aegis.ActivationLimitExceeded"],
            names_one_of: quota,
        }
    }
}

/// One attack of the suite.
#[derive(Clone, Debug)]
pub struct Attack {
    /// Its name, as the tests and the bench show it.
    pub name: &'static str,
    /// What it does, in a few words.
    pub what: &'static str,
    pub component: Component,
    /// The executions it starts, all at once.
    pub runs: Vec<Run>,
    /// The attacking tenant's quota overrides.
    pub quotas: Value,
    /// Environment of the host (`AEGIS_*`), beyond the defaults.
    pub host_env: Vec<(&'static str, String)>,
    /// The upload may be refused with 400 `component_over_limits` (with a message naming a limit)
    /// instead of the executions failing.
    pub may_be_refused: bool,
    /// The host's peak RSS must stay under this, in MiB.
    pub rss_bound_mb: u64,
}

impl Attack {
    fn new(name: &'static str, what: &'static str, runs: Vec<Run>) -> Attack {
        Attack {
            name,
            what,
            component: Component::Fixture(name),
            runs,
            quotas: json!({}),
            host_env: Vec::new(),
            may_be_refused: false,
            rss_bound_mb: DEFAULT_RSS_BOUND_MB,
        }
    }

    fn quotas(mut self, quotas: Value) -> Attack {
        self.quotas = quotas;
        self
    }

    /// The options of a host for this attack (keyed mode is added by the caller).
    pub fn host_options(&self) -> HostOptions {
        let mut opts = HostOptions::default();
        for (name, value) in &self.host_env {
            opts = opts.env(name, value);
        }
        opts
    }
}

/// The RSS bound of the attacks, in MiB. Measured on a debug-built host (2 cores, two tests at
/// once): it idles at about 60 MiB and peaks at 61-112 MiB under the attacks it contains (the
/// huge payloads, traps, the memory bomb's 45 MiB of guest memory). Uncontained, the floods took
/// it to 370 MiB (publish), 1.5 GiB (steps) and 2.6 GiB (waits). 256 leaves twice the margin
/// over the highest contained peak and still catches the smallest uncontained one.
pub const DEFAULT_RSS_BOUND_MB: u64 = 256;

/// Names of the multi-memory bomb's and many-instances' sizes, shared with the tests.
pub mod sizes {
    /// The attacker's memory quota for the multi-memory bomb, in MiB.
    pub const BOMB_QUOTA_MB: u32 = 16;
    /// Memories the bomb inflates (besides its main one)...
    pub const BOMB_MEMORIES: u32 = 3;
    /// ...each by this much, just under the quota.
    pub const BOMB_MIB_EACH: u32 = 15;
    /// `max_instances` of the many-instances host: its pool has twice as many memories.
    pub const POOL_INSTANCES: u32 = 64;
    /// Core instances (each with a memory and a table) of the many-instances component: with
    /// its main instance, every memory slot of that pool.
    pub const HOGS: u32 = 2 * POOL_INSTANCES - 1;
}

fn multi_memory_bomb() -> Result<Vec<u8>> {
    crate::wat::multi_memory_bomb(sizes::BOMB_MEMORIES, sizes::BOMB_MIB_EACH)
}

fn many_instances() -> Result<Vec<u8>> {
    crate::wat::many_instances(sizes::HOGS)
}

/// Every attack of the suite, in a fixed order.
pub fn attacks() -> Vec<Attack> {
    const BLOCKING: &[&str] = &["Aegis.BlockingCall"];
    const INVALID_CALL: &[&str] = &["Aegis.InvalidCall"];
    const INVALID_PAYLOAD: &[&str] = &["Aegis.InvalidPayload"];
    const TRAP: &[&str] = &["Aegis.Trap"];
    let names = ["step", "wait", "callback", "context", "event", "artifact"];
    vec![
        Attack::new(
            "blocking-sleep",
            "std::thread::sleep for an hour",
            vec![Run::failing(json!(null), BLOCKING)],
        ),
        Attack::new(
            "blocking-poll",
            "wasi:io/poll on an hour's clock",
            vec![Run::failing(json!(null), BLOCKING)],
        ),
        Attack::new(
            "wait-flood",
            "5,000,000 waits in one activation",
            vec![Run::flood(
                json!({"count": 5_000_000}),
                &["operation", "timer", "wait"],
            )],
        ),
        Attack::new(
            "publish-flood",
            "5,000 events of 60 KB in one activation",
            vec![Run::flood(
                json!({"count": 5_000, "bytes": 60_000}),
                &["event"],
            )],
        ),
        Attack::new(
            "log-flood",
            "1,000,000 error lines of 1 KB with forged lines",
            vec![Run::flood(
                json!({"lines": 1_000_000, "bytes": 1_000}),
                &["log"],
            )],
        ),
        Attack::new(
            "callback-flood",
            "1,000,000 callbacks in one activation",
            vec![Run::flood(
                json!({"count": 1_000_000}),
                &["callback", "operation"],
            )],
        ),
        Attack::new(
            "step-flood",
            "5,000,000 steps begun in one activation",
            vec![Run::flood(
                json!({"count": 5_000_000}),
                &["operation", "step"],
            )],
        ),
        Attack::new(
            "artifact-flood",
            "20,000 artifacts of 64 KiB in one activation",
            vec![Run::flood(
                json!({"count": 20_000, "kb": 64}),
                &["artifact", "byte"],
            )],
        ),
        Attack::new(
            "huge-result",
            "a 4 MiB result",
            vec![Run::failing(
                json!({"mb": 4}),
                &["Execution.ResultTooLarge"],
            )],
        ),
        Attack::new(
            "huge-step-output",
            "a step returning 4 MiB",
            vec![Run::failing(json!({"mb": 4}), &["Step.ResultTooLarge"])],
        ),
        Attack::new(
            "huge-names",
            "1 MiB operation names, event kind and artifact key",
            names
                .iter()
                .map(|target| Run::failing(json!({"target": target, "mb": 1}), INVALID_CALL))
                .collect(),
        ),
        Attack::new(
            "huge-error",
            "2 MiB error type, message and data",
            vec![
                Run::failing(json!({"part": "type", "mb": 2}), INVALID_CALL),
                // A message over 16 KB may be cut short or refused; the tests check its size.
                Run::failing(
                    json!({"part": "message", "mb": 2}),
                    &["Fixture.HugeMessage", "Aegis.InvalidCall"],
                ),
                Run::failing(json!({"part": "data", "mb": 2}), INVALID_PAYLOAD),
            ],
        ),
        Attack::new(
            "invalid-json",
            "a result and error data that are not JSON",
            ["result", "error_data"]
                .iter()
                .map(|place| Run::failing(json!({"where": place}), INVALID_PAYLOAD))
                .collect(),
        ),
        Attack::new(
            "stack-overflow",
            "infinite recursion",
            vec![Run::failing(json!(null), TRAP)],
        ),
        Attack {
            component: Component::Wat(multi_memory_bomb),
            ..Attack::new(
                "multi-memory-bomb",
                "3 memories of 15 MiB under a 16 MiB quota",
                vec![Run::failing(json!(null), &["Aegis.MemoryLimitExceeded"])],
            )
            .quotas(json!({"memory_limit_mb": sizes::BOMB_QUOTA_MB}))
        },
        Attack {
            component: Component::Wat(many_instances),
            host_env: vec![("AEGIS_MAX_INSTANCES", sizes::POOL_INSTANCES.to_string())],
            may_be_refused: true,
            // Two at once: together they ask for twice the pool.
            ..Attack::new(
                "many-instances",
                "128 core instances, memories and tables, twice",
                vec![
                    Run::failing(json!(null), &["Aegis.ComponentLimitExceeded"]),
                    Run::failing(json!(null), &["Aegis.ComponentLimitExceeded"]),
                ],
            )
            .quotas(json!({"cpu_deadline_ms": 5_000}))
        },
        Attack::new(
            "trap-storm",
            "200 executions that trap at once",
            (0..200).map(|_| Run::failing(json!(null), TRAP)).collect(),
        ),
    ]
}

/// The attack named `name`.
///
/// # Panics
/// When there is none.
pub fn attack(name: &str) -> Attack {
    attacks()
        .into_iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no attack named {name}"))
}

/// How long [`run_attack`] waits, and how much canary traffic it makes.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// How long the attack's executions may take to end.
    pub patience: Duration,
    /// How long one canary may take.
    pub canary_patience: Duration,
    /// Canary loops running side by side.
    pub lanes: usize,
    /// Canaries that must finish (the loops run at least until the attack is over, and then
    /// until these have finished or `canary_limit` has passed).
    pub min_canaries: usize,
    /// How long the canaries may take, after the attack, to reach `min_canaries`.
    pub canary_limit: Duration,
}

impl Settings {
    /// For the end-to-end tests: bounded counts and generous waits.
    pub fn test() -> Settings {
        // At worst (an attack never contained, a lane's last canary stuck): 150 + 60 + 90 s,
        // within the tests' guard (330 s) and nextest's backstop (360 s).
        Settings {
            patience: Duration::from_secs(150),
            canary_patience: Duration::from_secs(90),
            lanes: 2,
            min_canaries: 6,
            canary_limit: Duration::from_secs(60),
        }
    }

    /// For the bench: more canaries, for a meaningful p99.
    pub fn bench() -> Settings {
        Settings {
            patience: Duration::from_secs(120),
            canary_patience: Duration::from_secs(120),
            lanes: 2,
            min_canaries: 100,
            canary_limit: Duration::from_secs(60),
        }
    }
}

/// The upload's answer when the host refused the component.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// What happened when an attack ran.
#[derive(Clone, Debug)]
pub struct Report {
    pub attack: &'static str,
    /// The attacking tenant's client, for a closer look at its executions.
    pub attacker: Client,
    /// Set when the upload was refused (nothing was started then).
    pub refused: Option<Refusal>,
    /// Each execution as last seen: terminal, or still running after the patience ran out.
    pub executions: Vec<Value>,
    /// From the first start to the last execution's end (or the upload's refusal).
    pub contain: Duration,
    /// The host's RSS before the attack.
    pub rss_before: Rss,
    /// The host's RSS after the attack and the canaries; `peak_kb` is the process's peak.
    pub rss_after: Rss,
    pub canaries: CanaryStats,
    /// Whether `/healthz` answered `ok` afterwards.
    pub healthy: bool,
}

impl Report {
    /// Executions that had not ended when the patience ran out.
    pub fn uncontained(&self) -> usize {
        self.executions
            .iter()
            .filter(|e| !TERMINAL.contains(&e["status"].as_str().unwrap_or("")))
            .count()
    }

    /// How the attack ended, in a few words: `refused 400 component_over_limits`, or each distinct
    /// ending with its count (`FAILED Aegis.Trap ×200`).
    pub fn ending(&self) -> String {
        if let Some(r) = &self.refused {
            return format!("refused {} {}", r.status, r.code);
        }
        let mut endings: Vec<(String, usize)> = Vec::new();
        for exec in &self.executions {
            let status = exec["status"].as_str().unwrap_or("?");
            let ending = match exec["error"]["error_type"].as_str() {
                Some(t) => format!("{status} {}", clip(t, 40)),
                None => status.to_string(),
            };
            match endings.iter_mut().find(|(e, _)| *e == ending) {
                Some((_, n)) => *n += 1,
                None => endings.push((ending, 1)),
            }
        }
        endings
            .iter()
            .map(|(e, n)| {
                if *n == 1 {
                    e.clone()
                } else {
                    format!("{e} ×{n}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks the report against what `attack` expects: each execution ended as its run says
    /// (or the upload was refused with a message naming a limit, where that is allowed), every
    /// canary succeeded and at least `settings.min_canaries` ran, the host is healthy, and its
    /// peak RSS stayed under the attack's bound.
    ///
    /// # Errors
    /// With every way the report differs from that.
    pub fn check(&self, attack: &Attack, settings: &Settings) -> Result<()> {
        let mut problems = Vec::new();
        match &self.refused {
            Some(r) => {
                let names_limit = ["limit", "instance", "memor", "table"]
                    .iter()
                    .any(|w| r.message.to_lowercase().contains(w));
                if !(attack.may_be_refused
                    && r.status == 400
                    && r.code == "component_over_limits"
                    && names_limit)
                {
                    problems.push(format!(
                        "the upload was refused: {} {} {}",
                        r.status, r.code, r.message
                    ));
                }
            }
            None => {
                for (run, exec) in attack.runs.iter().zip(&self.executions) {
                    if let Err(e) = check_run(run, exec) {
                        problems.push(format!("{e:#}"));
                    }
                }
            }
        }
        let canaries = &self.canaries;
        if !canaries.failures.is_empty() {
            problems.push(format!(
                "{} of {} canaries failed; the first: {}",
                canaries.failures.len(),
                canaries.completed(),
                canaries.failures[..canaries.failures.len().min(3)].join("; ")
            ));
        }
        if canaries.completed() < settings.min_canaries {
            problems.push(format!(
                "only {} canaries finished, not {}",
                canaries.completed(),
                settings.min_canaries
            ));
        }
        if !self.healthy {
            problems.push("the host's /healthz did not answer ok afterwards".into());
        }
        let peak_mb = self.rss_after.peak_mb();
        if peak_mb > attack.rss_bound_mb as f64 {
            problems.push(format!(
                "the host's peak RSS was {peak_mb:.0} MiB, over the bound of {} MiB",
                attack.rss_bound_mb
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("{}: {}", attack.name, problems.join("\n  - "))
        }
    }
}

/// Checks one execution against its run.
fn check_run(run: &Run, exec: &Value) -> Result<()> {
    let id = exec["execution_id"].as_str().unwrap_or("?");
    let error_type = exec["error"]["error_type"].as_str().unwrap_or("");
    ensure!(
        exec["status"] == "FAILED" && run.error_types.contains(&error_type),
        "execution {id} on {} ended {} (expected FAILED with one of {:?})",
        run.input,
        abridged(exec),
        run.error_types
    );
    if !run.names_one_of.is_empty() {
        let message = exec["error"]["error_message"]
            .as_str()
            .unwrap_or("")
            .to_lowercase();
        ensure!(
            run.names_one_of.iter().any(|w| message.contains(w)),
            "execution {id}: the message does not name the limit ({:?}): {}",
            run.names_one_of,
            abridged(exec)
        );
    }
    Ok(())
}

/// At most `n` characters of `text`, with the length when cut.
pub fn clip(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        return text.to_string();
    }
    let head: String = text.chars().take(n).collect();
    format!("{head}… ({} bytes)", text.len())
}

/// An execution as one short line: status, error type and the start of its message, result.
pub fn abridged(exec: &Value) -> String {
    let mut line = exec["status"].as_str().unwrap_or("?").to_string();
    if let Some(t) = exec["error"]["error_type"].as_str() {
        line.push_str(&format!(" {}", clip(t, 60)));
    }
    if let Some(m) = exec["error"]["error_message"].as_str() {
        line.push_str(&format!(": {}", clip(m, 200)));
    }
    if !exec["result"].is_null() {
        line.push_str(&format!(
            " result {}",
            clip(&exec["result"].to_string(), 80)
        ));
    }
    line
}

/// Runs `attack` on `host` (in keyed mode, made with [`Attack::host_options`]): makes tenant A
/// (the attacker, with the attack's quotas) and tenant B (the bystander), checks one canary, starts
/// B's canaries, then every execution of the attack, waits for them to end, lets the canaries
/// finish, and reads the host's RSS and health.
///
/// # Errors
/// When a step of the driver itself fails (the host does not answer, a tenant cannot be made);
/// an attack that is not contained is a [`Report`], not an error.
pub async fn run_attack(host: &Host, attack: &Attack, settings: &Settings) -> Result<Report> {
    let pid = host.pid().context("the host is not running")?;
    let admin = host.admin();
    let tenant = |name: &str, quotas: Value| {
        let admin = admin.clone();
        let name = name.to_string();
        async move {
            let body = admin.create_tenant(&name, quotas).await?;
            let key = body["api_key"].as_str().unwrap_or_default().to_string();
            anyhow::Ok(host.client().with_key(&key))
        }
    };
    let a = tenant("attacker", attack.quotas.clone()).await?;
    let b = tenant("bystander", json!({})).await?;

    b.upload_fixture("steps3").await?;
    canary(&b, "warm-up", settings.canary_patience)
        .await
        .context("the bystander's first canary, before the attack")?;
    let bytes = attack.component.bytes()?;
    let rss_before = rss(pid)?;
    let canaries = Canaries::start(&b, settings.lanes, settings.canary_patience);

    let began = Instant::now();
    let upload = a.upload_bytes(attack.name, bytes).await?;
    let (refused, executions) = if upload.is_success() {
        let mut ids = Vec::with_capacity(attack.runs.len());
        for run in &attack.runs {
            ids.push(a.start(attack.name, run.input.clone()).await?);
        }
        (None, wait_all(&a, &ids, settings.patience).await?)
    } else {
        let refusal = Refusal {
            status: upload.status,
            code: upload.error_code().unwrap_or("").to_string(),
            message: upload.error_message().unwrap_or("").to_string(),
        };
        (Some(refusal), Vec::new())
    };
    let contain = began.elapsed();

    let canaries = canaries
        .finish(settings.min_canaries, settings.canary_limit)
        .await;
    let healthy = host
        .client()
        .healthz()
        .await
        .is_ok_and(|r| r.status == 200 && r.body == json!({"status": "ok"}));
    let rss_after = rss(pid)?;
    Ok(Report {
        attack: attack.name,
        attacker: a,
        refused,
        executions,
        contain,
        rss_before,
        rss_after,
        canaries,
        healthy,
    })
}

/// Waits for every execution, at most `patience` in all (32 long polls at a time); returns each
/// as last seen, in the order of `ids`.
async fn wait_all(c: &Client, ids: &[String], patience: Duration) -> Result<Vec<Value>> {
    let deadline = Instant::now() + patience;
    let gate = Arc::new(Semaphore::new(32));
    let mut waits = JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        let (c, id, gate) = (c.clone(), id.clone(), gate.clone());
        waits.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let left = deadline.saturating_duration_since(Instant::now());
            let exec = match c.wait_done(&id, left.max(Duration::from_millis(1))).await {
                Ok(exec) => exec,
                // Not over in time: report it as it is now.
                Err(_) => c.get(&id).await?,
            };
            anyhow::Ok((i, exec))
        });
    }
    let mut seen = vec![Value::Null; ids.len()];
    while let Some(joined) = waits.join_next().await {
        let (i, exec) = joined??;
        seen[i] = exec;
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_the_status_file() {
        let status = "Name:\taegis\nVmPeak:\t  900 kB\nVmHWM:\t   5120 kB\nVmRSS:\t   4096 kB\n";
        let rss = parse_rss(status).unwrap();
        assert_eq!(
            rss,
            Rss {
                current_kb: 4096,
                peak_kb: 5120
            }
        );
        assert!((rss.peak_mb() - 5.0).abs() < f64::EPSILON);
        assert!(parse_rss("Name:\taegis\n").is_err());
    }

    #[test]
    fn our_own_rss_is_readable() {
        let rss = rss(std::process::id()).unwrap();
        assert!(
            rss.current_kb > 0 && rss.peak_kb >= rss.current_kb,
            "{rss:?}"
        );
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let stats = CanaryStats {
            latencies: (1..=100).rev().map(Duration::from_millis).collect(),
            failures: vec!["x".into()],
        };
        assert_eq!(stats.completed(), 101);
        assert_eq!(stats.percentile(50.0), Duration::from_millis(50));
        assert_eq!(stats.percentile(99.0), Duration::from_millis(99));
        assert_eq!(CanaryStats::default().percentile(99.0), Duration::ZERO);
    }

    #[test]
    fn the_catalogue_has_every_attack_class_once() {
        let attacks = attacks();
        assert!(attacks.len() >= 17, "{} attacks", attacks.len());
        let mut names: Vec<_> = attacks.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), attacks.len(), "names are unique");
        for a in &attacks {
            assert!(!a.runs.is_empty(), "{} starts something", a.name);
        }
    }

    #[test]
    fn endings_are_counted() {
        let failed = json!({"status": "FAILED", "error": {"error_type": "Aegis.Trap"}});
        let report = Report {
            attack: "x",
            attacker: Client::new("http://127.0.0.1:9"),
            refused: None,
            executions: vec![failed.clone(), failed, json!({"status": "RUNNING"})],
            contain: Duration::ZERO,
            rss_before: Rss::default(),
            rss_after: Rss::default(),
            canaries: CanaryStats::default(),
            healthy: true,
        };
        assert_eq!(report.ending(), "FAILED Aegis.Trap ×2, RUNNING");
        assert_eq!(report.uncontained(), 1);
    }
}
