//! The crash loop: the real host is SIGKILLed at random moments and restarted on the same data
//! dir, again and again, while executions of every durable kind run; then every execution is
//! checked. The soak driver (`src/bin/aegis-crashloop.rs`, `make soak`) runs it with 1,000 kills
//! across 100 executions; the end-to-end test `crash_loop` runs a short version.
//!
//! What runs:
//! - one host (`aegis serve`, embedded SQLite store) on one data dir and one address, so that
//!   callback URLs given to the agent stay valid across restarts;
//! - the mix ([`Work`]): steps (`steps3`, `many_steps`, `child`, `map`), a step that fails and
//!   is retried on a durable timer (`retry`), durable waits (`sleep`), callbacks (`callback`,
//!   `parallel_callbacks`), completed by the driver through the API once it sees them pending,
//!   and agent calls (`agent_call`) to a simple-protocol agent ([`SimpleAgent`]) that the
//!   driver answers through the agent callback route;
//! - executions are started across the first 80 % of the kills (idempotently by name, so a start
//!   whose answer a kill swallowed is sent again safely), so that kills find executions at
//!   every stage;
//! - the killer waits a seeded random delay (by default 20-500 ms) after the host is ready,
//!   SIGKILLs it, and restarts it at once: most kills land while recovery or an activation is
//!   under way.
//!
//! What is checked, once the kills are done and everything has finished: every execution
//! SUCCEEDED with the result its input and the delivered values determine (anything else is a
//! lost execution); its history is well formed, every wait and callback ended once, it has the
//! expected number of succeeded steps, and no step that had succeeded was started, failed or
//! succeeded again ([`checks::step_runs`]). Attempts that a kill interrupted before they were
//! recorded run again; that is allowed, and counted.
//!
//! Recovery is measured per kill: from the kill to the new process's readiness line, to the
//! first `200` from `/healthz`, and to the next commit of any execution (an `updated_at` later
//! than the kill, watched by polling the execution list). The last one includes any time with
//! nothing due (every execution waiting for a timer or the driver), so it is an upper bound.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::agents::{AgentsConfig, SimpleAgent};
use crate::checks;
use crate::client::Client;
use crate::host::{Host, HostOptions};

/// The fixtures the mix runs, uploaded under these names.
pub const FIXTURES: &[&str] = &[
    "steps3",
    "many_steps",
    "sleep",
    "callback",
    "parallel_callbacks",
    "agent_call",
    "map",
    "child",
    "retry",
];

/// The agent the `agent_call` executions invoke (the driver's simple-protocol agent).
const AGENT: &str = "soak";

/// How the crash loop runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// SIGKILLs in total.
    pub kills: usize,
    /// Executions started (across the first 80 % of the kills).
    pub executions: usize,
    /// Seeds the mix, the kill delays and the delivery delays.
    pub seed: u64,
    /// The host's data dir (empty or absent); a temp dir when `None`.
    pub data_dir: Option<PathBuf>,
    /// The shortest and longest wait between the host being ready and the next kill.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// How long the executions may take to finish after the last kill.
    pub finish_timeout: Duration,
    /// The host's `RUST_LOG` (a thousand restarts at `info` write a lot of log).
    pub host_log: String,
    /// Prints a progress line every this many kills (0: never).
    pub progress_every: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            kills: 1000,
            executions: 100,
            seed: 1,
            data_dir: None,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(500),
            finish_timeout: Duration::from_secs(300),
            host_log: "warn".to_string(),
            progress_every: 0,
        }
    }
}

/// What one kind of execution does, with its parameters.
#[derive(Clone, Debug)]
pub enum Work {
    /// `steps3` on a string: three steps appending `-a-b-c`.
    Steps3(String),
    /// `many_steps` with this many steps.
    ManySteps(u64),
    /// `sleep`: a step, a durable wait of this many seconds, a step.
    Sleep(u64),
    /// `callback`: a step, the callback `approval` (its id handed out in a step, completed by
    /// the driver), a step.
    Callback,
    /// `parallel_callbacks`: the callbacks `left` and `right` in parallel branches, each
    /// followed by a step.
    ParallelCallbacks,
    /// `agent_call`: one invocation of the driver's agent, answered by the driver.
    AgentCall,
    /// `map` over these numbers: one step per item, in child contexts.
    Map(Vec<i64>),
    /// `child`: two steps in a child context, then one outside it.
    Child(String),
    /// `retry`: a step that fails twice and succeeds on its third attempt, retried on durable
    /// timers.
    Retry,
}

impl Work {
    /// The mix: execution `i`'s kind, with parameters drawn from `rng`.
    pub fn for_index(i: usize, rng: &mut StdRng) -> Work {
        match i % 9 {
            0 => Work::Steps3(format!("s{i}")),
            1 => Work::ManySteps(rng.random_range(20..=60)),
            2 => Work::Sleep(rng.random_range(1..=3)),
            3 => Work::Callback,
            4 => Work::AgentCall,
            5 => Work::ParallelCallbacks,
            6 => {
                let n = rng.random_range(3..=8);
                Work::Map((0..n).map(|k| i as i64 * 10 + k).collect())
            }
            7 => Work::Child(format!("c{i}")),
            _ => Work::Retry,
        }
    }

    /// The workflow (one of [`FIXTURES`]).
    pub fn workflow(&self) -> &'static str {
        match self {
            Work::Steps3(_) => "steps3",
            Work::ManySteps(_) => "many_steps",
            Work::Sleep(_) => "sleep",
            Work::Callback => "callback",
            Work::ParallelCallbacks => "parallel_callbacks",
            Work::AgentCall => "agent_call",
            Work::Map(_) => "map",
            Work::Child(_) => "child",
            Work::Retry => "retry",
        }
    }

    /// The input of execution `i`.
    pub fn input(&self, i: usize) -> Value {
        match self {
            Work::Steps3(s) | Work::Child(s) => json!(s),
            Work::ManySteps(n) => json!({"steps": n}),
            Work::Sleep(n) => json!({"seconds": n}),
            Work::Callback => json!({"timeout_seconds": 3600, "heartbeat_seconds": null}),
            Work::ParallelCallbacks => json!({"execution": i}),
            Work::AgentCall => {
                json!({"agent": AGENT, "input": {"execution": i}, "timeout_seconds": 3600})
            }
            Work::Map(items) => json!(items),
            Work::Retry => json!({"fail_times": 2, "max_attempts": 5, "delay_ms": 200}),
        }
    }

    /// The callbacks the driver completes through `/v1/callbacks/{id}/succeed`.
    pub fn callbacks(&self) -> &'static [&'static str] {
        match self {
            Work::Callback => &["approval"],
            Work::ParallelCallbacks => &["left", "right"],
            _ => &[],
        }
    }

    /// The result execution `i` must end with.
    pub fn expected(&self, i: usize) -> Value {
        match self {
            Work::Steps3(s) => json!(format!("{s}-a-b-c")),
            Work::ManySteps(n) => json!({"steps": n, "sum": n * (n - 1) / 2}),
            Work::Sleep(n) => json!({"slept": n}),
            Work::Callback => json!({"callback": callback_value(i, "approval")}),
            Work::ParallelCallbacks => json!({
                "left": callback_value(i, "left"),
                "right": callback_value(i, "right"),
            }),
            Work::AgentCall => json!({"answer": agent_answer(&json!({"execution": i}))}),
            Work::Map(items) => json!(items.iter().map(|n| n * 2).collect::<Vec<_>>()),
            Work::Child(s) => json!(format!("{s}-x-y-outer")),
            Work::Retry => json!({"attempts": 3}),
        }
    }

    /// How many steps succeed in it.
    pub fn steps(&self) -> usize {
        match self {
            // `callback`: prepare, the step that hands out the callback id, finish.
            Work::Steps3(_) | Work::Child(_) | Work::Callback => 3,
            Work::ManySteps(n) => *n as usize,
            Work::Sleep(_) | Work::ParallelCallbacks => 2,
            Work::AgentCall => 0,
            Work::Map(items) => items.len(),
            Work::Retry => 1,
        }
    }
}

/// The value the driver delivers to execution `i`'s callback `name`.
fn callback_value(i: usize, name: &str) -> Value {
    json!({"execution": i, "callback": name})
}

/// The agent's answer to a task with `input`.
fn agent_answer(input: &Value) -> Value {
    json!({"answered": input})
}

/// What the crash loop found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub kills: usize,
    pub executions: usize,
    /// Executions that ended SUCCEEDED with their expected result.
    pub succeeded: usize,
    /// The others: each names the execution and what it showed.
    pub lost: Vec<String>,
    /// Succeeded steps that ran again, each named.
    pub steps_twice: Vec<String>,
    /// Histories that are malformed, end a wait or callback twice, or have the wrong number of
    /// succeeded steps.
    pub bad_histories: Vec<String>,
    /// Steps that succeeded, over all executions.
    pub steps_succeeded: usize,
    /// Step attempts a kill interrupted, which ran again.
    pub attempts_rerun: usize,
    /// Callbacks the driver delivered, and agent tasks it answered.
    pub callbacks_delivered: usize,
    pub agent_answers: usize,
    /// Agent tasks the host sent again after a kill (same callback).
    pub agent_tasks_resent: usize,
    /// Starts sent again because a kill swallowed the answer (or the host was down).
    pub starts_retried: usize,
    /// The slowest recovery, from a kill to the new process's readiness line, to a `200` from
    /// `/healthz`, and to the next commit of any execution.
    pub slowest_ready: Duration,
    pub slowest_healthz: Duration,
    pub slowest_progress: Duration,
    /// The median of the same.
    pub median_ready: Duration,
    pub median_progress: Duration,
    /// Kills after which the restarted host was killed again before it committed anything.
    pub killed_before_progress: usize,
    /// The whole run, and its kill phase.
    pub elapsed: Duration,
    pub kill_phase: Duration,
}

impl Report {
    /// No execution lost, no succeeded step run again, every history sound.
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.steps_twice.is_empty()
            && self.bad_histories.is_empty()
            && self.succeeded == self.executions
    }

    /// The numbers as one JSON object.
    pub fn to_json(&self) -> Value {
        let ms = |d: Duration| d.as_millis() as u64;
        json!({
            "seed": self.seed,
            "kills": self.kills,
            "executions": self.executions,
            "succeeded": self.succeeded,
            "lost": self.lost.len(),
            "steps_run_twice": self.steps_twice.len(),
            "bad_histories": self.bad_histories.len(),
            "steps_succeeded": self.steps_succeeded,
            "attempts_rerun": self.attempts_rerun,
            "callbacks_delivered": self.callbacks_delivered,
            "agent_answers": self.agent_answers,
            "agent_tasks_resent": self.agent_tasks_resent,
            "starts_retried": self.starts_retried,
            "slowest_recovery_ms": {
                "ready": ms(self.slowest_ready),
                "healthz": ms(self.slowest_healthz),
                "next_commit": ms(self.slowest_progress),
            },
            "median_recovery_ms": {
                "ready": ms(self.median_ready),
                "next_commit": ms(self.median_progress),
            },
            "killed_before_progress": self.killed_before_progress,
            "kill_phase_s": self.kill_phase.as_secs_f64(),
            "elapsed_s": self.elapsed.as_secs_f64(),
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |d: Duration| format!("{:.3} s", d.as_secs_f64());
        writeln!(f, "crash loop (seed {}):", self.seed)?;
        writeln!(f, "  kills:                 {}", self.kills)?;
        writeln!(f, "  executions:            {}", self.executions)?;
        writeln!(f, "  succeeded as expected: {}", self.succeeded)?;
        writeln!(f, "  lost executions:       {}", self.lost.len())?;
        writeln!(f, "  steps run twice:       {}", self.steps_twice.len())?;
        writeln!(f, "  bad histories:         {}", self.bad_histories.len())?;
        writeln!(
            f,
            "  steps succeeded:       {} ({} interrupted attempts ran again)",
            self.steps_succeeded, self.attempts_rerun
        )?;
        writeln!(
            f,
            "  callbacks delivered:   {}; agent tasks answered: {} (sent again after a kill: {})",
            self.callbacks_delivered, self.agent_answers, self.agent_tasks_resent
        )?;
        writeln!(f, "  starts sent again:     {}", self.starts_retried)?;
        writeln!(
            f,
            "  slowest recovery:      kill -> ready {}, -> healthz {}, -> next commit {}",
            s(self.slowest_ready),
            s(self.slowest_healthz),
            s(self.slowest_progress)
        )?;
        writeln!(
            f,
            "  median recovery:       kill -> ready {}, -> next commit {}",
            s(self.median_ready),
            s(self.median_progress)
        )?;
        writeln!(
            f,
            "  restarted hosts killed before their first commit: {}",
            self.killed_before_progress
        )?;
        write!(
            f,
            "  time:                  {} in all, {} of kills",
            s(self.elapsed),
            s(self.kill_phase)
        )?;
        for line in self
            .lost
            .iter()
            .chain(&self.steps_twice)
            .chain(&self.bad_histories)
            .take(20)
        {
            write!(f, "\n  ! {line}")?;
        }
        Ok(())
    }
}

/// One kill and how the host recovered from it.
struct Kill {
    at: Instant,
    /// The kill's wall-clock time in the host's timestamp format.
    wall: String,
    ready: Duration,
    healthz: Duration,
    /// From the kill to the first commit after it.
    progress: Option<Duration>,
}

/// What the driver's tasks share.
struct Shared {
    client: Client,
    agent: SimpleAgent,
    seed: u64,
    plan: Vec<Work>,
    /// Execution ids by index, once started.
    ids: Mutex<Vec<Option<String>>>,
    kills: Mutex<Vec<Kill>>,
    stop: AtomicBool,
    callbacks_delivered: AtomicUsize,
    agent_answers: AtomicUsize,
    starts_retried: AtomicUsize,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// A delay drawn from the seed and `what` (so a rerun with the same seed delivers alike).
    fn delay(&self, what: &str, max_ms: u64) -> Duration {
        let mut h: u64 = self.seed ^ 0x9e37_79b9_7f4a_7c15;
        for b in what.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = StdRng::seed_from_u64(h);
        Duration::from_millis(rng.random_range(0..=max_ms))
    }
}

/// Runs the crash loop described in the module docs.
///
/// # Errors
/// When the harness itself fails: the host does not start, a fixture cannot be uploaded, a
/// start is refused for good. Lost executions and steps run twice are in the [`Report`].
pub async fn run(cfg: Config) -> Result<Report> {
    let began = Instant::now();
    if let Some(dir) = &cfg.data_dir
        && dir.exists()
        && std::fs::read_dir(dir)?.next().is_some()
    {
        bail!(
            "the data dir {} is not empty: the crash loop starts from nothing",
            dir.display()
        );
    }
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let plan: Vec<Work> = (0..cfg.executions)
        .map(|i| Work::for_index(i, &mut rng))
        .collect();
    // Execution i starts once this many kills are done: spread over the first 80 %.
    let start_after: Vec<usize> = (0..cfg.executions)
        .map(|i| i * (cfg.kills * 4 / 5) / cfg.executions.max(1))
        .collect();

    let agent = SimpleAgent::start().await?;
    let config = AgentsConfig::new().simple(AGENT, &agent.url("/soak"));
    let opts = HostOptions {
        extra_args: config.args()?,
        data_dir: cfg.data_dir.clone(),
        ready_timeout: Duration::from_secs(120),
        ..HostOptions::default()
    }
    .env("RUST_LOG", &cfg.host_log);
    let mut host = Host::start(opts).await?;
    let client = host.client();
    for name in FIXTURES {
        client
            .upload_fixture(name)
            .await
            .with_context(|| format!("uploading {name}"))?;
    }

    let shared = Arc::new(Shared {
        client,
        agent,
        seed: cfg.seed,
        plan,
        ids: Mutex::new(vec![None; cfg.executions]),
        kills: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        callbacks_delivered: AtomicUsize::new(0),
        agent_answers: AtomicUsize::new(0),
        starts_retried: AtomicUsize::new(0),
    });
    let (kills_tx, kills_rx) = watch::channel(0usize);
    let starter = tokio::spawn(start_all(shared.clone(), start_after, kills_rx));
    let helpers: Vec<JoinHandle<()>> = vec![
        tokio::spawn(complete_callbacks(shared.clone())),
        tokio::spawn(answer_agent(shared.clone())),
        tokio::spawn(watch_progress(shared.clone())),
    ];

    let outcome = kill_and_finish(&cfg, &mut host, &shared, &kills_tx, &mut rng, starter).await;
    shared.stop.store(true, Ordering::Relaxed);
    for helper in helpers {
        let _ = helper.await;
    }
    let kill_phase = match outcome {
        Ok(kill_phase) => kill_phase,
        Err(e) => {
            return Err(e.context(format!(
                "crash loop (seed {}) after {} kills; the host's log tail:\n{}",
                cfg.seed,
                *kills_tx.borrow(),
                host.log_tail(40)
            )));
        }
    };

    let mut report = check(&cfg, &shared).await?;
    report.kill_phase = kill_phase;
    report.elapsed = began.elapsed();
    host.kill9()?;
    Ok(report)
}

/// The kill phase, then waiting for every execution to finish. Returns the kill phase's length.
async fn kill_and_finish(
    cfg: &Config,
    host: &mut Host,
    shared: &Arc<Shared>,
    kills_tx: &watch::Sender<usize>,
    rng: &mut StdRng,
    starter: JoinHandle<Result<()>>,
) -> Result<Duration> {
    let mut starter = Some(starter);
    let began = Instant::now();
    let (min, max) = (
        cfg.min_delay.as_millis() as u64,
        cfg.max_delay.as_millis().max(cfg.min_delay.as_millis()) as u64,
    );
    for k in 1..=cfg.kills {
        tokio::time::sleep(Duration::from_millis(rng.random_range(min..=max))).await;
        // The starter ends once every execution is started, or at once when a start is refused.
        if starter.as_ref().is_some_and(JoinHandle::is_finished)
            && let Some(ended) = starter.take()
        {
            match ended.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => bail!("the starter panicked: {e}"),
            }
        }
        host.kill9()?;
        let at = Instant::now();
        let wall = format_ms(now_ms());
        kills_tx.send_replace(k);
        host.restart_same_address()
            .await
            .with_context(|| format!("restarting after kill {k}"))?;
        let ready = at.elapsed();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(reply) = shared.client.healthz().await
                && reply.status == 200
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("no 200 from /healthz within 60 s of restart {k}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let healthz = at.elapsed();
        shared.kills.lock().expect("lock").push(Kill {
            at,
            wall,
            ready,
            healthz,
            progress: None,
        });
        if cfg.progress_every > 0 && k % cfg.progress_every == 0 {
            let started = shared.ids.lock().expect("lock").iter().flatten().count();
            eprintln!(
                "crash loop: {k}/{} kills, {started}/{} executions started, {:.0} s",
                cfg.kills,
                cfg.executions,
                began.elapsed().as_secs_f64()
            );
        }
    }
    let kill_phase = began.elapsed();
    if let Some(starter) = starter {
        match tokio::time::timeout(cfg.finish_timeout, starter).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(e),
            Ok(Err(e)) => bail!("the starter panicked: {e}"),
            Err(_) => bail!("not every execution started within the finish timeout"),
        }
    }
    // Every execution ends (or the patience runs out: then the check reports it lost).
    let ids: Vec<String> = shared
        .ids
        .lock()
        .expect("lock")
        .iter()
        .flatten()
        .cloned()
        .collect();
    let mut waits = tokio::task::JoinSet::new();
    for id in ids {
        let (c, patience) = (shared.client.clone(), cfg.finish_timeout);
        waits.spawn(async move {
            let _ = c.wait_done(&id, patience).await;
        });
    }
    while waits.join_next().await.is_some() {}
    Ok(kill_phase)
}

/// Starts execution `i` once `start_after[i]` kills are done, retrying through kills.
async fn start_all(
    shared: Arc<Shared>,
    start_after: Vec<usize>,
    mut kills: watch::Receiver<usize>,
) -> Result<()> {
    for (i, after) in start_after.into_iter().enumerate() {
        if kills.wait_for(|k| *k >= after).await.is_err() {
            bail!("the kill loop ended before execution {i} was started");
        }
        let work = &shared.plan[i];
        let body = json!({
            "workflow": work.workflow(),
            "input": work.input(i),
            "name": format!("crashloop-{i}"),
        });
        let mut tries = 0;
        let id = loop {
            if shared.stopped() {
                bail!("stopped before execution {i} was started");
            }
            tries += 1;
            match shared.client.start_raw(&body).await {
                Ok(reply) if reply.status == 200 || reply.status == 201 => {
                    match reply.body["execution_id"].as_str() {
                        Some(id) => break id.to_string(),
                        None => bail!("a start answer without execution_id: {:?}", reply.body),
                    }
                }
                // The host is going down or coming up: try again.
                Ok(reply) if reply.status >= 500 => {}
                Ok(reply) => bail!("starting execution {i} ({body}): {reply:?}"),
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if tries > 1 {
            shared.starts_retried.fetch_add(1, Ordering::Relaxed);
        }
        shared.ids.lock().expect("lock")[i] = Some(id);
    }
    Ok(())
}

/// Completes the callbacks of `callback` and `parallel_callbacks` executions: each a seeded
/// 0-2 s after the driver first sees it pending, with the value [`Work::expected`] assumes.
async fn complete_callbacks(shared: Arc<Shared>) {
    let mut first_seen: HashMap<String, Instant> = HashMap::new();
    let mut delivered: HashSet<(usize, &'static str)> = HashSet::new();
    while !shared.stopped() {
        let ids: Vec<(usize, String)> = shared
            .ids
            .lock()
            .expect("lock")
            .iter()
            .enumerate()
            .filter_map(|(i, id)| id.clone().map(|id| (i, id)))
            .collect();
        for (i, id) in ids {
            let names = shared.plan[i].callbacks();
            if names.iter().all(|n| delivered.contains(&(i, *n))) {
                continue;
            }
            let Ok(exec) = shared.client.get(&id).await else {
                continue;
            };
            for pending in exec["pending_callbacks"].as_array().into_iter().flatten() {
                let (Some(name), Some(cb)) =
                    (pending["name"].as_str(), pending["callback_id"].as_str())
                else {
                    continue;
                };
                let Some(name) = names.iter().copied().find(|n| *n == name) else {
                    continue;
                };
                if delivered.contains(&(i, name)) {
                    continue;
                }
                let seen = *first_seen
                    .entry(cb.to_string())
                    .or_insert_with(Instant::now);
                if seen.elapsed() < shared.delay(cb, 2000) {
                    continue;
                }
                match shared
                    .client
                    .callback_succeed(cb, &callback_value(i, name))
                    .await
                {
                    // 409: completed already, by an earlier try whose answer a kill swallowed.
                    Ok(reply) if reply.status == 200 || reply.status == 409 => {
                        delivered.insert((i, name));
                        shared.callbacks_delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Answers every task the host sends the agent, a seeded 0-1.5 s after it first arrives, in
/// the simple form to the task's callback URL; a task sent again after a kill (same token) is
/// answered again if the first answer was not taken.
async fn answer_agent(shared: Arc<Shared>) {
    let mut first_seen: HashMap<String, Instant> = HashMap::new();
    let mut answered: HashSet<String> = HashSet::new();
    while !shared.stopped() {
        for task in shared.agent.tasks() {
            if answered.contains(&task.token) {
                continue;
            }
            let seen = *first_seen
                .entry(task.token.clone())
                .or_insert_with(Instant::now);
            if seen.elapsed() < shared.delay(&task.token, 1500) {
                continue;
            }
            match shared
                .agent
                .answer(&task, "SUCCESS", &agent_answer(&task.input))
                .await
            {
                Ok(reply) if reply.status == 200 || reply.status == 409 => {
                    answered.insert(task.token.clone());
                    shared.agent_answers.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the execution list for the latest `updated_at`; a value later than a kill is the first
/// commit after it, which ends that kill's recovery.
async fn watch_progress(shared: Arc<Shared>) {
    while !shared.stopped() {
        if let Ok(list) = shared.client.list_all_executions("", 1000).await
            && let Some(latest) = list.iter().filter_map(|e| e["updated_at"].as_str()).max()
        {
            let now = Instant::now();
            for kill in shared.kills.lock().expect("lock").iter_mut() {
                if kill.progress.is_none() && latest > kill.wall.as_str() {
                    kill.progress = Some(now - kill.at);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The history of `id`, every page.
async fn full_history(client: &Client, id: &str) -> Result<Vec<Value>> {
    let mut events = Vec::new();
    let mut after = None;
    loop {
        let page = client
            .history_page(id, after, Some(10_000))
            .await?
            .ok(&format!("history of {id}"))?;
        let Some(items) = page["events"].as_array() else {
            bail!("a history page without events: {page}");
        };
        events.extend(items.iter().cloned());
        match page["next_after"].as_u64() {
            Some(next) => after = Some(next),
            None => return Ok(events),
        }
    }
}

/// Checks every execution and gathers the numbers.
async fn check(cfg: &Config, shared: &Shared) -> Result<Report> {
    let mut report = Report {
        seed: cfg.seed,
        executions: cfg.executions,
        ..Report::default()
    };
    let ids = shared.ids.lock().expect("lock").clone();
    for (i, (id, work)) in ids.iter().zip(&shared.plan).enumerate() {
        let Some(id) = id else {
            report
                .lost
                .push(format!("execution {i} ({work:?}) was never started"));
            continue;
        };
        let label = format!("{id} (#{i}, {work:?})");
        let exec = match shared.client.get(id).await {
            Ok(exec) => exec,
            Err(e) => {
                report.lost.push(format!("{label}: {e:#}"));
                continue;
            }
        };
        if exec["status"] != "SUCCEEDED" || exec["result"] != work.expected(i) {
            report.lost.push(format!(
                "{label}: {} with {}, expected SUCCEEDED with {}; error {}",
                exec["status"],
                exec["result"],
                work.expected(i),
                exec["error"]
            ));
        } else {
            report.succeeded += 1;
        }
        let events = full_history(&shared.client, id).await?;
        if let Err(e) = checks::check_history_shape(&events)
            .and_then(|()| checks::check_waits_end_once(&events))
        {
            report.bad_histories.push(format!("{label}: {e:#}"));
        }
        match checks::step_runs(&events) {
            Ok(runs) => {
                report
                    .steps_twice
                    .extend(runs.twice.iter().map(|t| format!("{label}: {t}")));
                report.steps_succeeded += runs.succeeded;
                report.attempts_rerun += runs.rerun;
                if exec["status"] == "SUCCEEDED" && runs.succeeded != work.steps() {
                    report.bad_histories.push(format!(
                        "{label}: {} succeeded steps, not {}",
                        runs.succeeded,
                        work.steps()
                    ));
                }
            }
            Err(e) => report.bad_histories.push(format!("{label}: {e:#}")),
        }
    }

    let kills = shared.kills.lock().expect("lock");
    report.kills = kills.len();
    report.slowest_ready = kills.iter().map(|k| k.ready).max().unwrap_or_default();
    report.slowest_healthz = kills.iter().map(|k| k.healthz).max().unwrap_or_default();
    report.slowest_progress = kills
        .iter()
        .filter_map(|k| k.progress)
        .max()
        .unwrap_or_default();
    report.median_ready = median(kills.iter().map(|k| k.ready).collect());
    report.median_progress = median(kills.iter().filter_map(|k| k.progress).collect());
    report.killed_before_progress = kills
        .windows(2)
        .filter(|w| w[0].progress.is_none_or(|p| w[0].at + p > w[1].at))
        .count();
    report.callbacks_delivered = shared.callbacks_delivered.load(Ordering::Relaxed);
    report.agent_answers = shared.agent_answers.load(Ordering::Relaxed);
    let tasks = shared.agent.tasks();
    let tokens: HashSet<&str> = tasks.iter().map(|t| t.token.as_str()).collect();
    report.agent_tasks_resent = tasks.len() - tokens.len();
    report.starts_retried = shared.starts_retried.load(Ordering::Relaxed);
    Ok(report)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the epoch as the host writes them (`2026-01-02T03:04:05.678Z`), so that
/// they compare with its timestamps as strings.
fn format_ms(ms: i64) -> String {
    use std::num::NonZeroU8;
    use time::format_description::well_known::Iso8601;
    use time::format_description::well_known::iso8601::{Config, EncodedConfig, TimePrecision};
    // Exactly three fractional digits, as the host writes them (`Rfc3339` would trim zeros).
    const HOST_TIME: EncodedConfig = Config::DEFAULT
        .set_time_precision(TimePrecision::Second {
            decimal_digits: NonZeroU8::new(3),
        })
        .encode();
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Iso8601::<HOST_TIME>).ok())
        .expect("the clock reads a time in years 0 to 9999")
}

#[cfg(test)]
mod tests {
    use super::format_ms;

    #[test]
    fn timestamps_match_the_hosts_format() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_ms(1_767_323_045_678), "2026-01-02T03:04:05.678Z");
    }
}
