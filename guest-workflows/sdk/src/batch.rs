//! Completion rules and results for batches ([`Ctx::parallel`](crate::Ctx::parallel) and
//! [`Ctx::map`](crate::Ctx::map)), and the loop that runs a batch's items side by side.
//!
//! Nothing here talks to the host, so the rules are unit-tested natively with fake futures.
//!
//! # How a batch runs
//!
//! Items are polled round-robin, in index order. An item that is pending (waiting for a
//! callback, a timer, a retry) is simply skipped until the next round, so it never blocks its
//! siblings: two callbacks can be pending at once and either may complete first.
//!
//! With a [`BatchConfig::max_concurrency`] of `n`, only `n` items run at a time: item `n` is
//! first polled once one of the first `n` has finished, and so on in index order (AWS's
//! `max_concurrency`). Without it, every item starts in the first round.
//!
//! After every finished item the [`Completion`] rule is checked, in this order:
//! 1. more failures than `tolerated_failures` allows, or failures making up more than
//!    `tolerated_failure_percentage` of all items (strictly more: 1 of 4 is 25 %, which a
//!    tolerance of 25 allows): stop, [`CompletionReason::FailureToleranceExceeded`];
//! 2. at least `min_successful` successes: stop, [`CompletionReason::MinSuccessfulReached`];
//! 3. every item finished: [`CompletionReason::AllCompleted`].
//!
//! Items still running when a batch stops are abandoned: they are never polled again, and their
//! result is an error of type [`Error::NOT_FINISHED`]. That is safe under replay because the
//! batch's whole result is recorded as its context's outcome, and a replay of a finished batch
//! returns that record without re-entering any item.
//!
//! A batch does not fail because items failed: it resolves to a [`BatchResult`] that says what
//! happened to each item, and [`BatchResult::into_values`] turns "any item failed" into an error.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Serdes};

/// When a batch is over.
///
/// The rules combine: `Completion { min_successful: Some(2), tolerated_failures: Some(1),
/// ..Completion::all_completed() }` stops at the second success or the second failure,
/// whichever comes first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Completion {
    /// Stop as soon as this many items have succeeded.
    pub min_successful: Option<usize>,
    /// Stop as soon as more than this many items have failed.
    pub tolerated_failures: Option<usize>,
    /// Stop as soon as the failed items are more than this percentage (0 to 100) of all the
    /// batch's items, started or not.
    pub tolerated_failure_percentage: Option<f64>,
}

impl Completion {
    /// Every item must succeed: stop at the first failure. The default.
    pub fn all() -> Self {
        Self {
            tolerated_failures: Some(0),
            ..Self::all_completed()
        }
    }

    /// Run every item to the end, whatever fails.
    pub fn all_completed() -> Self {
        Self {
            min_successful: None,
            tolerated_failures: None,
            tolerated_failure_percentage: None,
        }
    }

    /// Stop as soon as `n` items have succeeded (`min_successful(1)` is "first success wins").
    /// Failures are tolerated; if fewer than `n` items can succeed, the batch runs to the end.
    pub fn min_successful(n: usize) -> Self {
        Self {
            min_successful: Some(n),
            ..Self::all_completed()
        }
    }

    /// Stop as soon as more than `n` items have failed.
    pub fn tolerated_failures(n: usize) -> Self {
        Self {
            tolerated_failures: Some(n),
            ..Self::all_completed()
        }
    }

    /// Stop as soon as more than `percent` % of all items have failed (25 on four items stops
    /// at the second failure, not the first).
    pub fn tolerated_failure_percentage(percent: f64) -> Self {
        Self {
            tolerated_failure_percentage: Some(percent),
            ..Self::all_completed()
        }
    }

    fn check(&self) -> Result<(), Error> {
        match self.tolerated_failure_percentage {
            Some(p) if !(0.0..=100.0).contains(&p) => Err(Error::new(
                Error::INVALID_BATCH_CONFIG,
                format!("the tolerated failure percentage must be between 0 and 100, got {p}"),
            )),
            _ => Ok(()),
        }
    }
}

impl Default for Completion {
    fn default() -> Self {
        Self::all()
    }
}

/// Where a batch's items run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Nesting {
    /// Each item runs in a child context of its own (kind parallel-branch or map-iteration),
    /// which records the item's result: a replay of a finished item returns it without running
    /// the item's body.
    #[default]
    Nested,
    /// Each item runs in a virtual context: its operations get ids of their own but are recorded
    /// directly under the batch's context, and nothing records the item itself (AWS's FLAT).
    /// Half the events of a large batch; in exchange, until the batch ends, each replay runs
    /// every item's body again over its recorded operations. The item namer is not used.
    Flat,
}

/// How a batch runs: its [`Completion`] rule, how many items run at a time, where its items run
/// ([`Nesting`]) and what their contexts are called. A [`Completion`] converts into a config with no other setting, so
/// `ctx.parallel(name, branches, Completion::all())` keeps working.
#[derive(Default)]
pub struct BatchConfig {
    completion: Completion,
    max_concurrency: Option<usize>,
    item_namer: Option<Box<dyn Fn(usize) -> String>>,
    nesting: Nesting,
    item_serdes: Option<Rc<dyn Serdes>>,
    serdes: Option<Rc<dyn Serdes>>,
}

impl BatchConfig {
    /// Every item must succeed, all items start at once, items are named `branch-<i>` or
    /// `item-<i>`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The completion rule (default [`Completion::all`]).
    #[must_use]
    pub fn completion(mut self, completion: Completion) -> Self {
        self.completion = completion;
        self
    }

    /// At most `n` items run at a time, started in index order. `n` must be at least 1; the
    /// batch fails with [`Error::INVALID_BATCH_CONFIG`] before it starts otherwise.
    #[must_use]
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// Names item `index`'s context (shown in the history) instead of `branch-<i>`/`item-<i>`.
    /// To name map items by their value, compute the names from the items first:
    /// `.item_namer(move |i| names[i].clone())`. Names are for people: operation ids never
    /// depend on them, so renaming does not break a replay.
    #[must_use]
    pub fn item_namer(mut self, namer: impl Fn(usize) -> String + 'static) -> Self {
        self.item_namer = Some(Box::new(namer));
        self
    }

    /// Where the items run (default [`Nesting::Nested`]).
    #[must_use]
    pub fn nesting(mut self, nesting: Nesting) -> Self {
        self.nesting = nesting;
        self
    }

    /// Records each item's result as `serdes` renders it (AWS's `itemSerdes`), instead of as
    /// JSON. Not used with [`Nesting::Flat`], which records no item.
    #[must_use]
    pub fn item_serdes(mut self, serdes: Rc<dyn Serdes>) -> Self {
        self.item_serdes = Some(serdes);
        self
    }

    /// Records the batch's whole result as `serdes` renders it (AWS's operation-level serdes),
    /// instead of as JSON. The value it renders is the [`BatchResult`]'s JSON form:
    /// `{"completion_reason": .., "items": [{"status": "succeeded", "result": ..} |
    /// {"status": "failed", "error": ..} | {"status": "not_finished"}, ..]}`.
    #[must_use]
    pub fn serdes(mut self, serdes: Rc<dyn Serdes>) -> Self {
        self.serdes = Some(serdes);
        self
    }

    pub(crate) fn item_serdes_of(&self) -> Option<Rc<dyn Serdes>> {
        self.item_serdes.clone()
    }

    pub(crate) fn serdes_of(&self) -> Option<Rc<dyn Serdes>> {
        self.serdes.clone()
    }

    pub(crate) fn is_flat(&self) -> bool {
        self.nesting == Nesting::Flat
    }

    /// The name of item `index` of a batch whose default prefix is `prefix`.
    pub(crate) fn item_name(&self, prefix: &str, index: usize) -> String {
        match &self.item_namer {
            Some(namer) => namer(index),
            None => format!("{prefix}-{index}"),
        }
    }

    /// The settings [`join`] runs with, once they are checked.
    pub(crate) fn rules(&self) -> Result<(Completion, Option<usize>), Error> {
        self.completion.check()?;
        if self.max_concurrency == Some(0) {
            return Err(Error::new(
                Error::INVALID_BATCH_CONFIG,
                "max concurrency must be at least 1 (leave it unset for no limit)",
            ));
        }
        Ok((self.completion, self.max_concurrency))
    }
}

impl From<Completion> for BatchConfig {
    fn from(completion: Completion) -> Self {
        Self::new().completion(completion)
    }
}

/// Why a batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionReason {
    /// Every item finished.
    AllCompleted,
    /// Enough items succeeded.
    MinSuccessfulReached,
    /// Too many items failed.
    FailureToleranceExceeded,
}

/// What happened to each item of a batch, by index.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchResult<T> {
    /// One entry per item, in item order. Items that had not finished when the batch ended hold
    /// an error of type [`Error::NOT_FINISHED`].
    pub results: Vec<Result<T, Error>>,
    /// Why the batch ended.
    pub completion_reason: CompletionReason,
}

impl<T> BatchResult<T> {
    /// Every item's value, in order.
    ///
    /// # Errors
    ///
    /// The error of the first item (by index) that failed or did not finish.
    pub fn into_values(self) -> Result<Vec<T>, Error> {
        self.results.into_iter().collect()
    }

    /// The values of the items that succeeded, dropping the rest.
    pub fn into_successes(self) -> Vec<T> {
        self.results.into_iter().filter_map(Result::ok).collect()
    }

    /// `(index, value)` of each item that succeeded.
    pub fn succeeded(&self) -> impl Iterator<Item = (usize, &T)> {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(index, result)| result.as_ref().ok().map(|value| (index, value)))
    }

    /// `(index, error)` of each item that failed (not counting items that did not finish).
    pub fn failed(&self) -> impl Iterator<Item = (usize, &Error)> {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(index, result)| result.as_ref().err().map(|error| (index, error)))
            .filter(|(_, error)| !error.is(Error::NOT_FINISHED))
    }

    /// How many items succeeded.
    pub fn success_count(&self) -> usize {
        self.succeeded().count()
    }

    /// How many items failed (not counting items that did not finish).
    pub fn failure_count(&self) -> usize {
        self.failed().count()
    }
}

/// Counts finished items and applies a [`Completion`] rule.
struct Tally {
    total: usize,
    succeeded: usize,
    failed: usize,
    completion: Completion,
}

impl Tally {
    fn new(total: usize, completion: Completion) -> Self {
        Self {
            total,
            succeeded: 0,
            failed: 0,
            completion,
        }
    }

    fn record(&mut self, succeeded: bool) {
        if succeeded {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
    }

    /// `Some(reason)` once the batch is over.
    fn verdict(&self) -> Option<CompletionReason> {
        let Completion {
            min_successful,
            tolerated_failures,
            tolerated_failure_percentage,
        } = self.completion;
        let too_many = tolerated_failures.is_some_and(|tolerated| self.failed > tolerated);
        let too_large_a_share = tolerated_failure_percentage
            .is_some_and(|percent| self.failed as f64 * 100.0 > percent * self.total as f64);
        if too_many || too_large_a_share {
            Some(CompletionReason::FailureToleranceExceeded)
        } else if min_successful.is_some_and(|min| self.succeeded >= min) {
            Some(CompletionReason::MinSuccessfulReached)
        } else if self.succeeded + self.failed == self.total {
            Some(CompletionReason::AllCompleted)
        } else {
            None
        }
    }
}

/// Runs `items` side by side, round-robin in index order, at most `max_concurrency` at a time,
/// until `completion` says the batch is over. See the module docs for the rules.
pub(crate) async fn join<T, Fut>(
    items: Vec<Fut>,
    completion: Completion,
    max_concurrency: Option<usize>,
) -> BatchResult<T>
where
    Fut: Future<Output = Result<T, Error>>,
{
    let mut items: Vec<Pin<Box<Fut>>> = items.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<Result<T, Error>>> = items.iter().map(|_| None).collect();
    let mut tally = Tally::new(items.len(), completion);
    let limit = max_concurrency.unwrap_or(usize::MAX);
    // Items below `started` have been polled at least once; `running` of them have not finished.
    let (mut started, mut running) = (0, 0);
    let completion_reason = poll_fn(|cx| {
        for (index, (item, slot)) in items.iter_mut().zip(results.iter_mut()).enumerate() {
            if let Some(reason) = tally.verdict() {
                return Poll::Ready(reason);
            }
            if slot.is_some() {
                continue;
            }
            if index >= started {
                if running >= limit {
                    break;
                }
                started = index + 1;
                running += 1;
            }
            if let Poll::Ready(result) = item.as_mut().poll(cx) {
                running -= 1;
                tally.record(result.is_ok());
                *slot = Some(result);
            }
        }
        tally.verdict().map_or(Poll::Pending, Poll::Ready)
    })
    .await;
    BatchResult {
        results: results
            .into_iter()
            .map(|result| result.unwrap_or_else(|| Err(Error::not_finished())))
            .collect(),
        completion_reason,
    }
}

/// The recorded form of a [`BatchResult`]: explicit statuses rather than serde's `Ok`/`Err`, so
/// the journal reads well and unfinished items are not mistaken for failures.
#[derive(Serialize, Deserialize)]
struct Wire<I> {
    completion_reason: CompletionReason,
    items: Vec<I>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum WireItem<T, E> {
    Succeeded { result: T },
    Failed { error: E },
    NotFinished,
}

impl<T: Serialize> Serialize for BatchResult<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let items = self
            .results
            .iter()
            .map(|result| match result {
                Ok(result) => WireItem::Succeeded { result },
                Err(error) if error.is(Error::NOT_FINISHED) => WireItem::NotFinished,
                Err(error) => WireItem::Failed { error },
            })
            .collect();
        Wire {
            completion_reason: self.completion_reason,
            items,
        }
        .serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for BatchResult<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::<WireItem<T, Error>>::deserialize(deserializer)?;
        Ok(Self {
            results: wire
                .items
                .into_iter()
                .map(|item| match item {
                    WireItem::Succeeded { result } => Ok(result),
                    WireItem::Failed { error } => Err(error),
                    WireItem::NotFinished => Err(Error::not_finished()),
                })
                .collect(),
            completion_reason: wire.completion_reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::future::{pending, ready};

    use serde_json::json;

    use super::*;
    use crate::executor::{block_on, note_host_call};

    type Item<'a> = Pin<Box<dyn Future<Output = Result<i32, Error>> + 'a>>;

    fn ok(value: i32) -> Item<'static> {
        Box::pin(ready(Ok(value)))
    }

    fn err(message: &str) -> Item<'static> {
        Box::pin(ready(Err(Error::new("Test.Failed", message))))
    }

    fn stuck() -> Item<'static> {
        Box::pin(pending())
    }

    /// Pending for `polls` polls (each one a "host call", like a durable future making
    /// progress), logging its index on every poll, then ready with `index`.
    fn slow<'a>(index: i32, polls: u32, log: &'a RefCell<Vec<i32>>) -> Item<'a> {
        let mut left = polls;
        Box::pin(poll_fn(move |_| {
            log.borrow_mut().push(index);
            if left == 0 {
                return Poll::Ready(Ok(index));
            }
            left -= 1;
            note_host_call();
            Poll::Pending
        }))
    }

    fn run(items: Vec<Item<'_>>, completion: Completion) -> Option<BatchResult<i32>> {
        block_on(join(items, completion, None))
    }

    fn run_limited(
        items: Vec<Item<'_>>,
        completion: Completion,
        max_concurrency: usize,
    ) -> Option<BatchResult<i32>> {
        block_on(join(items, completion, Some(max_concurrency)))
    }

    #[test]
    fn all_successes_in_index_order() {
        let result = run(vec![ok(1), ok(2), ok(3)], Completion::all()).unwrap();
        assert_eq!(result.completion_reason, CompletionReason::AllCompleted);
        assert_eq!(result.into_values().unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn empty_batch_completes_at_once() {
        let result = run(Vec::new(), Completion::all()).unwrap();
        assert_eq!(result.completion_reason, CompletionReason::AllCompleted);
        assert!(result.results.is_empty());
    }

    #[test]
    fn a_pending_item_does_not_block_its_siblings() {
        let result = run(vec![stuck(), ok(2)], Completion::min_successful(1)).unwrap();
        assert_eq!(
            result.completion_reason,
            CompletionReason::MinSuccessfulReached
        );
        assert!(
            result.results[0]
                .as_ref()
                .unwrap_err()
                .is(Error::NOT_FINISHED)
        );
        assert_eq!(result.results[1], Ok(2));
    }

    #[test]
    fn a_batch_with_a_pending_item_suspends_after_running_the_others() {
        let finished = Cell::new(false);
        let sibling: Item<'_> = Box::pin(async {
            finished.set(true);
            Ok(2)
        });
        assert_eq!(run(vec![stuck(), sibling], Completion::all()), None);
        assert!(finished.get());
    }

    #[test]
    fn items_are_polled_round_robin_in_index_order() {
        let log = RefCell::new(Vec::new());
        let items = vec![slow(0, 2, &log), slow(1, 1, &log), slow(2, 2, &log)];
        let result = run(items, Completion::all()).unwrap();
        assert_eq!(result.into_values().unwrap(), vec![0, 1, 2]);
        assert_eq!(*log.borrow(), vec![0, 1, 2, 0, 1, 2, 0, 2]);
    }

    #[test]
    fn all_stops_at_the_first_failure() {
        let polled = Cell::new(false);
        let later: Item<'_> = Box::pin(async {
            polled.set(true);
            Ok(3)
        });
        let result = run(vec![ok(1), err("boom"), later], Completion::all()).unwrap();
        assert_eq!(
            result.completion_reason,
            CompletionReason::FailureToleranceExceeded
        );
        assert!(!polled.get());
        assert_eq!(result.success_count(), 1);
        assert_eq!(result.failure_count(), 1);
        assert_eq!(result.into_values().unwrap_err().message, "boom");
    }

    #[test]
    fn all_completed_runs_everything() {
        let result = run(vec![err("a"), ok(2), err("c")], Completion::all_completed()).unwrap();
        assert_eq!(result.completion_reason, CompletionReason::AllCompleted);
        assert_eq!(result.failure_count(), 2);
        assert_eq!(result.into_successes(), vec![2]);
    }

    #[test]
    fn tolerated_failures_stops_one_past_the_limit() {
        let result = run(
            vec![err("a"), ok(2), err("c"), ok(4)],
            Completion::tolerated_failures(1),
        )
        .unwrap();
        assert_eq!(
            result.completion_reason,
            CompletionReason::FailureToleranceExceeded
        );
        assert!(
            result.results[3]
                .as_ref()
                .unwrap_err()
                .is(Error::NOT_FINISHED)
        );

        let result = run(vec![err("a"), ok(2)], Completion::tolerated_failures(1)).unwrap();
        assert_eq!(result.completion_reason, CompletionReason::AllCompleted);
    }

    #[test]
    fn min_successful_that_cannot_be_reached_runs_to_the_end() {
        let result = run(vec![err("a"), ok(2)], Completion::min_successful(2)).unwrap();
        assert_eq!(result.completion_reason, CompletionReason::AllCompleted);
    }

    #[test]
    fn min_successful_zero_starts_nothing() {
        let result = run(vec![ok(1)], Completion::min_successful(0)).unwrap();
        assert_eq!(
            result.completion_reason,
            CompletionReason::MinSuccessfulReached
        );
        assert_eq!(result.success_count(), 0);
    }

    #[test]
    fn rules_combine() {
        let both = Completion {
            min_successful: Some(2),
            tolerated_failures: Some(1),
            tolerated_failure_percentage: None,
        };
        let result = run(vec![ok(1), err("b"), ok(3), ok(4)], both).unwrap();
        assert_eq!(
            result.completion_reason,
            CompletionReason::MinSuccessfulReached
        );
        assert_eq!(result.success_count(), 2);
    }

    #[test]
    fn tolerated_percentage_is_strictly_exceeded_against_all_items() {
        // 1 of 4 is 25 %: tolerated; 2 of 4 is 50 %: not, and the last two never run.
        let polled = Cell::new(false);
        let later: Item<'_> = Box::pin(async {
            polled.set(true);
            Ok(4)
        });
        let items = vec![err("a"), err("b"), ok(3), later];
        let result = run(items, Completion::tolerated_failure_percentage(25.0)).unwrap();
        assert_eq!(
            result.completion_reason,
            CompletionReason::FailureToleranceExceeded
        );
        assert_eq!((result.failure_count(), result.success_count()), (2, 0));
        assert!(!polled.get());

        let items = vec![err("a"), ok(2), ok(3), ok(4)];
        let result = run(items, Completion::tolerated_failure_percentage(25.0)).unwrap();
        assert_eq!(result.completion_reason, CompletionReason::AllCompleted);
        assert_eq!(result.failure_count(), 1);
    }

    #[test]
    fn max_concurrency_starts_the_next_item_when_one_finishes() {
        let log = RefCell::new(Vec::new());
        // Two at a time: item 2 is first polled in the round where item 1 finishes, after it.
        let items = vec![slow(0, 2, &log), slow(1, 1, &log), slow(2, 0, &log)];
        let result = run_limited(items, Completion::all(), 2).unwrap();
        assert_eq!(result.into_values().unwrap(), vec![0, 1, 2]);
        assert_eq!(*log.borrow(), vec![0, 1, 0, 1, 2, 0]);
    }

    #[test]
    fn max_concurrency_one_never_starts_an_item_while_another_waits() {
        let log = RefCell::new(Vec::new());
        let waiting: Item<'_> = Box::pin(poll_fn(|_| {
            log.borrow_mut().push(0);
            Poll::Pending
        }));
        assert_eq!(
            run_limited(vec![waiting, slow(1, 0, &log)], Completion::all(), 1),
            None
        );
        assert_eq!(*log.borrow(), vec![0]);
    }

    #[test]
    fn config_checks_its_values_before_the_batch_starts() {
        let zero = BatchConfig::new().max_concurrency(0).rules().unwrap_err();
        assert!(zero.is(Error::INVALID_BATCH_CONFIG));
        let pct = BatchConfig::from(Completion::tolerated_failure_percentage(150.0));
        assert!(pct.rules().unwrap_err().is(Error::INVALID_BATCH_CONFIG));
        let (completion, limit) = BatchConfig::new().max_concurrency(3).rules().unwrap();
        assert_eq!((completion, limit), (Completion::all(), Some(3)));
    }

    #[test]
    fn items_are_named_by_the_namer_or_by_index() {
        let config = BatchConfig::new();
        assert_eq!(config.item_name("item", 2), "item-2");
        let names = ["alpha".to_owned(), "beta".to_owned()];
        let config = BatchConfig::new().item_namer(move |i| names[i].clone());
        assert_eq!(config.item_name("item", 1), "beta");
    }

    #[test]
    fn default_is_all() {
        assert_eq!(Completion::default(), Completion::all());
    }

    #[test]
    fn recorded_form_is_explicit_and_round_trips() {
        let result = BatchResult {
            results: vec![
                Ok(json!({"a": 1})),
                Err(Error::new("X.Y", "bad")),
                Err(Error::not_finished()),
            ],
            completion_reason: CompletionReason::FailureToleranceExceeded,
        };
        let text = serde_json::to_value(&result).unwrap();
        assert_eq!(
            text,
            json!({
                "completion_reason": "failure_tolerance_exceeded",
                "items": [
                    {"status": "succeeded", "result": {"a": 1}},
                    {"status": "failed", "error": {"error_type": "X.Y", "message": "bad"}},
                    {"status": "not_finished"},
                ],
            })
        );
        let back: BatchResult<serde_json::Value> = serde_json::from_value(text).unwrap();
        assert_eq!(back, result);
    }
}
