//! Per-activation budgets: how much state one activation may make the host hold.
//!
//! Everything a guest records lives in host memory until it is committed, and what it commits
//! lives in the store; a guest that calls `wait` millions of times, or publishes 300 MB of
//! events, would otherwise decide how much of either the host spends. Each activation gets a
//! [`Budget`] from its tenant's quotas, the host charges it on every new operation, pending
//! byte, event, log line, callback, timer, agent call and artifact byte, and the first charge over a limit
//! ends the activation: the execution fails with `Aegis.ActivationLimitExceeded`, naming the
//! quota. Replayed operations are not charged; only what this activation adds.

use aegis_core::quotas::Quotas;

/// What one activation may spend, from its tenant's quotas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    limits: Spent,
    spent: Spent,
    /// Operations the execution may have in its journal, all activations together.
    journal_limit: u64,
}

/// Counts of what an activation made the host hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Spent {
    operations: u64,
    pending_bytes: u64,
    events: u64,
    event_bytes: u64,
    log_lines: u64,
    log_bytes: u64,
    callbacks: u64,
    timers: u64,
    agent_calls: u64,
    artifact_bytes: u64,
}

/// One thing the host is asked to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charge {
    /// A new durable operation.
    Operation,
    /// Bytes recorded and waiting for a commit.
    Pending(usize),
    /// A workflow event of this many bytes (kind and data).
    Event(usize),
    /// A log line of this many bytes.
    LogLine(usize),
    Callback,
    Timer,
    AgentCall,
    /// Artifact bytes written.
    Artifact(usize),
}

impl Budget {
    pub fn new(quotas: &Quotas) -> Self {
        let kib = |k: u32| u64::from(k) * 1024;
        Self {
            limits: Spent {
                operations: quotas.max_operations_per_activation.into(),
                pending_bytes: kib(quotas.max_pending_kb_per_activation),
                events: quotas.max_events_per_activation.into(),
                event_bytes: kib(quotas.max_event_kb_per_activation),
                log_lines: quotas.max_log_lines_per_activation.into(),
                log_bytes: kib(quotas.max_log_kb_per_activation),
                callbacks: quotas.max_callbacks_per_activation.into(),
                timers: quotas.max_timers_per_activation.into(),
                agent_calls: quotas.max_agent_calls_per_activation.into(),
                artifact_bytes: kib(quotas.max_artifact_mb_per_activation) * 1024,
            },
            spent: Spent::default(),
            journal_limit: quotas.max_operations_per_execution.into(),
        }
    }

    /// Checks that one more operation fits the execution's journal, which holds `journal`
    /// operations now (replayed and new).
    ///
    /// # Errors
    /// A message naming `max_operations_per_execution`.
    pub fn journal_has_room(&self, journal: usize) -> Result<(), String> {
        if journal as u64 >= self.journal_limit {
            return Err(format!(
                "the execution's journal holds {journal} operations, its limit \
                 (max_operations_per_execution); every activation replays the whole journal, so \
                 it cannot grow without bound: continue in a new execution, or ask for a higher quota",
            ));
        }
        Ok(())
    }

    /// Charges `charge`, or says which quota it would exceed (nothing is charged then).
    ///
    /// # Errors
    /// A message naming the quota, its limit and what the guest did.
    pub fn charge(&mut self, charge: Charge) -> Result<(), String> {
        let (spent, limit, quota, what, by) = match charge {
            Charge::Operation => (
                &mut self.spent.operations,
                self.limits.operations,
                "max_operations_per_activation",
                "operations started",
                1,
            ),
            Charge::Pending(bytes) => (
                &mut self.spent.pending_bytes,
                self.limits.pending_bytes,
                "max_pending_kb_per_activation",
                "bytes recorded and not yet committed",
                bytes as u64,
            ),
            Charge::Event(bytes) => {
                self.check(
                    self.spent.event_bytes + bytes as u64,
                    self.limits.event_bytes,
                    "max_event_kb_per_activation",
                    "bytes of workflow events",
                )?;
                self.spent.event_bytes += bytes as u64;
                (
                    &mut self.spent.events,
                    self.limits.events,
                    "max_events_per_activation",
                    "workflow events",
                    1,
                )
            }
            Charge::LogLine(bytes) => {
                self.check(
                    self.spent.log_bytes + bytes as u64,
                    self.limits.log_bytes,
                    "max_log_kb_per_activation",
                    "bytes of log lines",
                )?;
                self.spent.log_bytes += bytes as u64;
                (
                    &mut self.spent.log_lines,
                    self.limits.log_lines,
                    "max_log_lines_per_activation",
                    "log lines",
                    1,
                )
            }
            Charge::Callback => (
                &mut self.spent.callbacks,
                self.limits.callbacks,
                "max_callbacks_per_activation",
                "callbacks created",
                1,
            ),
            Charge::Timer => (
                &mut self.spent.timers,
                self.limits.timers,
                "max_timers_per_activation",
                "timers set",
                1,
            ),
            Charge::AgentCall => (
                &mut self.spent.agent_calls,
                self.limits.agent_calls,
                "max_agent_calls_per_activation",
                "agent calls",
                1,
            ),
            Charge::Artifact(bytes) => (
                &mut self.spent.artifact_bytes,
                self.limits.artifact_bytes,
                "max_artifact_mb_per_activation",
                "bytes of artifacts written",
                bytes as u64,
            ),
        };
        let total = *spent + by;
        if total > limit {
            return Err(exceeded(quota, what, limit));
        }
        *spent = total;
        Ok(())
    }

    fn check(&self, total: u64, limit: u64, quota: &str, what: &str) -> Result<(), String> {
        if total > limit {
            return Err(exceeded(quota, what, limit));
        }
        Ok(())
    }

    /// The pending writes were committed: they no longer take host memory.
    pub fn committed(&mut self) {
        self.spent.pending_bytes = 0;
    }
}

fn exceeded(quota: &str, what: &str, limit: u64) -> String {
    format!(
        "the activation went over its limit of {limit} {what} ({quota}); spread the work over \
         several activations (a durable wait or callback ends one) or ask for a higher quota"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas() -> Quotas {
        Quotas {
            max_operations_per_activation: 3,
            max_pending_kb_per_activation: 64,
            max_events_per_activation: 2,
            max_event_kb_per_activation: 1,
            max_log_lines_per_activation: 0,
            ..Quotas::default()
        }
    }

    #[test]
    fn the_first_charge_over_a_limit_names_the_quota() {
        let mut b = Budget::new(&quotas());
        for _ in 0..3 {
            b.charge(Charge::Operation).unwrap();
        }
        let e = b.charge(Charge::Operation).unwrap_err();
        assert!(e.contains("max_operations_per_activation"), "{e}");
        assert!(e.contains("limit of 3 operations"), "{e}");
        // A log line is refused when no lines are allowed.
        let e = b.charge(Charge::LogLine(1)).unwrap_err();
        assert!(e.contains("max_log_lines_per_activation"), "{e}");
    }

    #[test]
    fn events_are_limited_by_count_and_by_bytes() {
        let mut b = Budget::new(&quotas());
        b.charge(Charge::Event(1000)).unwrap();
        let e = b.charge(Charge::Event(100)).unwrap_err();
        assert!(e.contains("max_event_kb_per_activation"), "{e}");
        b.charge(Charge::Event(10)).unwrap();
        let e = b.charge(Charge::Event(1)).unwrap_err();
        assert!(e.contains("max_events_per_activation"), "{e}");
    }

    #[test]
    fn the_journal_of_an_execution_is_bounded_over_all_its_activations() {
        let b = Budget::new(&Quotas {
            max_operations_per_execution: 100,
            ..Quotas::default()
        });
        assert!(b.journal_has_room(99).is_ok());
        let e = b.journal_has_room(100).unwrap_err();
        assert!(e.contains("max_operations_per_execution"), "{e}");
    }

    #[test]
    fn a_commit_frees_the_pending_bytes() {
        let mut b = Budget::new(&quotas());
        b.charge(Charge::Pending(60 * 1024)).unwrap();
        assert!(b.charge(Charge::Pending(8 * 1024)).is_err());
        b.committed();
        b.charge(Charge::Pending(60 * 1024)).unwrap();
    }
}
