//! The tiny single-threaded executor that drives a workflow through one activation.
//!
//! Why so small: nothing a workflow waits for can arrive during an activation. The host answers
//! every durable call at once, and an answer of "pending" stays pending until the next activation.
//! So there is nothing to wake: [`block_on`] polls the root future with a no-op waker, and polls
//! again only while the previous poll talked to the host (a sign that the workflow moved and may
//! have reached code that can move further). When a poll makes no host call, no later poll could
//! either, and the activation is over: the workflow is suspended.
//!
//! Progress is measured by counting host calls ([`note_host_call`], called by every import
//! wrapper in `host`). That is why every durable future calls its import exactly once and keeps
//! the answer (see [`ask_once`]): a future that asked again on every poll would look like
//! progress forever.

use std::cell::Cell;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

thread_local! {
    /// Host calls made so far on this thread. Thread-local (not a global) only so that native
    /// unit tests running on several threads do not see each other's calls.
    static HOST_CALLS: Cell<u64> = const { Cell::new(0) };
}

/// Records that the guest made a host call.
pub(crate) fn note_host_call() {
    HOST_CALLS.with(|calls| calls.set(calls.get() + 1));
}

fn host_calls() -> u64 {
    HOST_CALLS.with(Cell::get)
}

/// Polls `future` until it is ready, or until a poll makes no host call.
///
/// Returns `None` when the future cannot progress in this activation (the workflow suspends).
pub(crate) fn block_on<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        let before = host_calls();
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        if host_calls() == before {
            return None;
        }
    }
}

/// A future that asks the host once, on its first poll, and is ready if the answer is `Some`.
///
/// An answer of `None` means "pending": the future then stays pending for the rest of the
/// activation without asking again, which is exactly the host's promise.
pub(crate) fn ask_once<T, F: FnOnce() -> Option<T>>(ask: F) -> AskOnce<F> {
    AskOnce(Some(ask))
}

/// The future returned by [`ask_once`].
pub(crate) struct AskOnce<F>(Option<F>);

// The closure is moved out before it is called and never pinned, so the future is `Unpin`
// whatever the closure captures.
impl<F> Unpin for AskOnce<F> {}

impl<T, F: FnOnce() -> Option<T>> Future for AskOnce<F> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut().0.take().and_then(|ask| ask()) {
            Some(answer) => Poll::Ready(answer),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::{pending, poll_fn, ready};

    use super::*;

    /// A fake durable future: pending for `steps` polls, each making a host call, then ready.
    fn progressing(steps: u32) -> impl Future<Output = u32> {
        let mut polls = 0;
        poll_fn(move |_| {
            if polls == steps {
                return Poll::Ready(polls);
            }
            polls += 1;
            note_host_call();
            Poll::Pending
        })
    }

    #[test]
    fn ready_future_completes() {
        assert_eq!(block_on(ready(7)), Some(7));
    }

    #[test]
    fn keeps_polling_while_the_future_makes_host_calls() {
        assert_eq!(block_on(progressing(5)), Some(5));
    }

    #[test]
    fn stops_when_a_poll_makes_no_host_call() {
        let mut polls = 0;
        let stuck = poll_fn(|_| {
            polls += 1;
            Poll::<()>::Pending
        });
        assert_eq!(block_on(stuck), None);
        assert_eq!(polls, 1);
    }

    #[test]
    fn a_call_then_a_wait_suspends_after_one_confirming_poll() {
        let mut polls = 0;
        let future = poll_fn(|_| {
            polls += 1;
            if polls == 1 {
                note_host_call();
            }
            Poll::<()>::Pending
        });
        assert_eq!(block_on(future), None);
        assert_eq!(polls, 2);
    }

    #[test]
    fn ask_once_asks_exactly_once() {
        let mut asked = 0;
        let outcome = block_on(async {
            let answer = ask_once(|| {
                asked += 1;
                note_host_call();
                None::<u8>
            });
            answer.await
        });
        assert_eq!(outcome, None);
        assert_eq!(asked, 1);
    }

    #[test]
    fn ask_once_is_ready_with_an_answer() {
        assert_eq!(block_on(ask_once(|| Some("done"))), Some("done"));
    }

    #[test]
    fn pending_forever_suspends() {
        assert_eq!(block_on(pending::<()>()), None);
    }
}
