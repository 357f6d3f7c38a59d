//! Checks on an execution's history that the crash tests and the crash loop share: its shape,
//! every wait and callback ended once, and no succeeded step run again.

use std::collections::HashMap;

use anyhow::{Result, bail, ensure};
use serde_json::Value;

/// The `EventType` of each event.
pub fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["EventType"].as_str().unwrap_or("?"))
        .collect()
}

/// Events of one type.
pub fn of_type<'a>(events: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["EventType"] == event_type)
        .collect()
}

/// The details record of an event (`<EventType>Details`).
pub fn details(event: &Value) -> &Value {
    let key = format!("{}Details", event["EventType"].as_str().unwrap_or(""));
    &event[key.as_str()]
}

/// Checks what every history has: EventIds consecutive from 1, event 1 `ExecutionStarted`,
/// a timestamp and a details object on every event, and exactly one terminal event, last.
pub fn check_history_shape(events: &[Value]) -> Result<()> {
    ensure!(!events.is_empty(), "empty history");
    ensure!(
        events[0]["EventType"] == "ExecutionStarted",
        "event 1 is {}, not ExecutionStarted",
        events[0]
    );
    for (i, event) in events.iter().enumerate() {
        ensure!(
            event["EventId"].as_u64() == Some(i as u64 + 1),
            "EventIds are not consecutive from 1: event #{} is {event}",
            i + 1
        );
        ensure!(
            !event["EventTimestamp"].is_null(),
            "event without EventTimestamp: {event}"
        );
        ensure!(
            details(event).is_object(),
            "event without a {}Details object: {event}",
            event["EventType"].as_str().unwrap_or("?")
        );
    }
    let terminal = |t: &str| {
        matches!(
            t,
            "ExecutionSucceeded" | "ExecutionFailed" | "ExecutionTimedOut" | "ExecutionStopped"
        )
    };
    let ts = types(events);
    let terminals = ts.iter().filter(|t| terminal(t)).count();
    if terminals > 0 {
        ensure!(
            terminals == 1 && terminal(ts[ts.len() - 1]),
            "one terminal event, last: {ts:?}"
        );
    }
    Ok(())
}

/// What [`check_steps_once`] found.
#[derive(Debug, Default, Clone, Copy)]
pub struct StepCount {
    /// Step operations that succeeded.
    pub succeeded: usize,
    /// Attempts started again because a crash interrupted them.
    pub rerun: usize,
}

/// What [`step_runs`] read from a history.
#[derive(Debug, Default, Clone)]
pub struct StepRuns {
    /// Step operations that succeeded.
    pub succeeded: usize,
    /// Attempts started again because a crash interrupted them, over all steps.
    pub rerun: usize,
    /// The most times one attempt of one step was started again.
    pub most_reruns_of_one_step: usize,
    /// Succeeded steps that ran again: each names the step and the event that followed its
    /// `StepSucceeded`.
    pub twice: Vec<String>,
}

/// Reads every step operation's events: a `StepStarted`, `StepSucceeded` or `StepFailed` after
/// the step's final `StepSucceeded` (one with no next attempt) is a succeeded step run again (listed in [`StepRuns::twice`], once
/// per step); `StepStarted`s beyond one per finished attempt are attempts that a crash
/// interrupted and that ran again.
///
/// # Errors
/// When a step event has no `Id`, or a `StepSucceeded` has no `StepStarted` before it.
pub fn step_runs(events: &[Value]) -> Result<StepRuns> {
    #[derive(Default)]
    struct Seen {
        started: usize,
        failed: usize,
        succeeded: usize,
        again: bool,
    }
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut runs = StepRuns::default();
    for event in events {
        let t = event["EventType"].as_str().unwrap_or("");
        if !matches!(t, "StepStarted" | "StepSucceeded" | "StepFailed") {
            continue;
        }
        let Some(id) = event["Id"].as_str() else {
            bail!("step event without Id: {event}");
        };
        let s = seen.entry(id.to_string()).or_default();
        if s.succeeded > 0 {
            if !s.again {
                s.again = true;
                runs.twice
                    .push(format!("step {id} had succeeded, and then: {event}"));
            }
            continue;
        }
        // A wait-for-condition's attempt that continues (AWS's RETRY with a payload) is a
        // `StepSucceeded` with a delay before the next attempt: an attempt that ended, not
        // the operation's success.
        let continues = t == "StepSucceeded"
            && !details(event)["RetryDetails"]["NextAttemptDelaySeconds"].is_null();
        match t {
            "StepStarted" => s.started += 1,
            "StepSucceeded" if continues => s.failed += 1,
            "StepSucceeded" => {
                ensure!(s.started > 0, "StepSucceeded without StepStarted: {event}");
                s.succeeded += 1;
            }
            _ => s.failed += 1,
        }
    }
    for s in seen.values() {
        let attempts = s.failed + s.succeeded;
        let rerun = s.started.saturating_sub(attempts.max(1));
        runs.rerun += rerun;
        runs.most_reruns_of_one_step = runs.most_reruns_of_one_step.max(rerun);
        runs.succeeded += s.succeeded;
    }
    Ok(runs)
}

/// Checks that no step body that had succeeded ran again: per step operation id, at most one
/// `StepSucceeded`; once it is there, no later `StepStarted`/`StepFailed` for that id; each
/// `StepSucceeded` follows a `StepStarted` of the same id; and each attempt is started once,
/// except that each of `crashes` crashes may have interrupted one attempt, which runs again.
///
/// # Errors
/// When any of these does not hold.
pub fn check_steps_once(events: &[Value], crashes: usize) -> Result<StepCount> {
    let runs = step_runs(events)?;
    if let Some(first) = runs.twice.first() {
        bail!("{first}");
    }
    ensure!(
        runs.most_reruns_of_one_step <= crashes,
        "a step attempt started {} more times than it finished, with {crashes} crashes",
        runs.most_reruns_of_one_step
    );
    Ok(StepCount {
        succeeded: runs.succeeded,
        rerun: runs.rerun,
    })
}

/// Checks that every wait and callback ended once: a timer or a callback completion that fired
/// twice (two hosts, or a host and its own restart) would show as a second ending event.
pub fn check_waits_end_once(events: &[Value]) -> Result<()> {
    let mut ended: HashMap<&str, &str> = HashMap::new();
    for event in events {
        let t = event["EventType"].as_str().unwrap_or("");
        if !matches!(
            t,
            "WaitSucceeded"
                | "WaitCancelled"
                | "CallbackSucceeded"
                | "CallbackFailed"
                | "CallbackTimedOut"
        ) {
            continue;
        }
        let id = event["Id"].as_str().unwrap_or("?");
        if let Some(first) = ended.insert(id, t) {
            bail!("operation {id} ended twice: {first}, then {event}");
        }
    }
    Ok(())
}
