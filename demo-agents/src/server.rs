//! Assembles the HTTP application: one router per role, mounted at the root (single role) or
//! under `/researcher`, `/analyst` and `/writer` (`--role all`).
//!
//! A single-role server is also reachable under its own prefix, so a base URL of the form
//! `http://host:port/<role>` works in both modes and configuration need not change when
//! switching between one process per role and one process for all.

use crate::a2a;
use crate::agent::{Agents, Role};
use crate::push::Pusher;
use crate::runner::Runner;
use crate::service::AgentService;
use crate::simple;
use crate::tasks::{TaskStore, lock_dir};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Research bundles and analyses can be large; the default 2 MB limit is too tight.
const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// Which roles a process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Single(Role),
    All,
}

impl Mode {
    pub fn roles(self) -> Vec<Role> {
        match self {
            Mode::Single(r) => vec![r],
            Mode::All => Role::ALL.to_vec(),
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("all") {
            Ok(Mode::All)
        } else {
            s.parse().map(Mode::Single)
        }
    }
}

/// Per-router state: the role's service and the path prefix it is mounted under (used to
/// build the URLs in the agent card).
#[derive(Clone)]
pub struct RoleState {
    pub service: Arc<AgentService>,
    pub prefix: String,
}

/// Settings of the task machinery shared by all roles of a process.
#[derive(Debug, Clone)]
pub struct Settings {
    pub delay: Duration,
    pub push_attempts: u32,
    pub push_backoff: Duration,
    /// Where the tasks are kept (a folder per role under it); `None` keeps them in memory.
    pub state_dir: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            push_attempts: 5,
            push_backoff: Duration::from_millis(250),
            state_dir: None,
        }
    }
}

fn role_router(state: RoleState) -> Router {
    Router::new()
        .route("/", post(a2a::server::rpc))
        .route("/.well-known/agent-card.json", get(a2a::server::agent_card))
        .route("/.well-known/agent.json", get(a2a::server::agent_card))
        .route("/tasks", post(simple::submit))
        .route("/tasks/{id}", get(simple::status))
        .with_state(state)
}

/// The whole application for `mode`. With a state folder, each role's tasks are read back from
/// `<state_dir>/<role>/` and the unfinished ones resumed (this must run inside the runtime).
///
/// # Errors
/// When the state folder is in use by another process or holds a task file that cannot be read.
pub fn app(mode: Mode, agents: Arc<Agents>, settings: &Settings) -> Result<Router, String> {
    let pusher = Pusher::new(settings.push_attempts, settings.push_backoff);
    let mut router = Router::new().route("/healthz", get(|| async { "ok" }));
    let lock = settings.state_dir.as_deref().map(lock_dir).transpose()?;
    for role in mode.roles() {
        let store = match (&settings.state_dir, &lock) {
            (Some(dir), Some(lock)) => TaskStore::open(&dir.join(role.name()), Arc::clone(lock))?,
            _ => TaskStore::new(),
        };
        let store = Arc::new(store);
        let runner = Arc::new(Runner::new(
            Arc::clone(&agents),
            Arc::clone(&store),
            pusher.clone(),
            settings.delay,
        ));
        runner.resume();
        let service = Arc::new(AgentService::new(role, store, runner));
        let prefix = format!("/{role}");
        if mode == Mode::Single(role) {
            router = router.merge(role_router(RoleState {
                service: Arc::clone(&service),
                prefix: String::new(),
            }));
        }
        let state = RoleState {
            service,
            prefix: prefix.clone(),
        };
        // `nest` maps the inner "/" to "/<role>" only; clients that keep a trailing slash on
        // a base URL post to "/<role>/".
        router = router
            .route(
                &format!("{prefix}/"),
                post(a2a::server::rpc).with_state(state.clone()),
            )
            .nest(&prefix, role_router(state));
    }
    Ok(router.layer(DefaultBodyLimit::max(BODY_LIMIT)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!("all".parse::<Mode>(), Ok(Mode::All));
        assert_eq!("analyst".parse::<Mode>(), Ok(Mode::Single(Role::Analyst)));
        assert!("x".parse::<Mode>().is_err());
        assert_eq!(Mode::All.roles().len(), 3);
    }
}
