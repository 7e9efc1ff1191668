//! Operator actions into the CDN roles' long-running tasks: "claim now"
//! (a cache's claimer) and "close this escrow" (a publisher's escrow
//! manager), asked over unsafe RPC methods (`cache_claimNow`,
//! `publisher_closeEscrow`), for instance from the dashboard.
//!
//! # Design
//!
//! The task that owns the state an action touches (the claimer's records,
//! the manager's in-flight closes) answers it: a request travels over a
//! small bounded queue with a one-shot reply channel, and the task serves
//! it between its own passes, so an action never races the task's own
//! work. A full queue is refused at once ("busy") rather than queued
//! without bound, and the asker waits with a deadline.

use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Requests queued per task, at most.
pub const QUEUE: usize = 4;

/// A request with its reply channel.
pub type Request<Q, A> = (Q, oneshot::Sender<A>);

/// The receiving end, taken by the task that answers.
pub type Receiver<Q, A> = mpsc::Receiver<Request<Q, A>>;

/// Why an action got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The queue is full.
    #[error("{0} is busy with earlier requests; retry in a few seconds")]
    Busy(&'static str),
    /// No task answers (not started, or stopped).
    #[error("{0} is not running on this node")]
    NotRunning(&'static str),
    /// No answer within the deadline.
    #[error("{0} did not answer within {1:?}; the request may still run, check the node's log")]
    Timeout(&'static str, Duration),
}

/// A bounded request queue into one task.
#[derive(Debug)]
pub struct Requests<Q, A> {
    what: &'static str,
    tx: mpsc::Sender<Request<Q, A>>,
    rx: parking_lot::Mutex<Option<Receiver<Q, A>>>,
}

impl<Q, A> Requests<Q, A> {
    /// A queue into the task called `what` (for error messages).
    pub fn new(what: &'static str) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Requests {
            what,
            tx,
            rx: parking_lot::Mutex::new(Some(rx)),
        }
    }

    /// The receiving end, once: the answering task takes it when it starts.
    pub fn take_receiver(&self) -> Option<Receiver<Q, A>> {
        self.rx.lock().take()
    }

    /// Asks `q` and waits up to `deadline` for the answer.
    pub async fn ask(&self, q: Q, deadline: Duration) -> Result<A, ActionError> {
        let (reply, answer) = oneshot::channel();
        self.tx.try_send((q, reply)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ActionError::Busy(self.what),
            mpsc::error::TrySendError::Closed(_) => ActionError::NotRunning(self.what),
        })?;
        match tokio::time::timeout(deadline, answer).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(_)) => Err(ActionError::NotRunning(self.what)),
            Err(_) => Err(ActionError::Timeout(self.what, deadline)),
        }
    }
}

/// The next request on `rx`; pending forever when there is no receiver
/// (so a `select!` branch on it never fires).
pub async fn next<Q, A>(rx: &mut Option<Receiver<Q, A>>) -> Request<Q, A> {
    match rx {
        Some(r) => match r.recv().await {
            Some(req) => req,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_is_answered_by_the_task_that_took_the_receiver() {
        let q: Requests<u32, u32> = Requests::new("the doubler");
        let mut rx = q.take_receiver();
        assert!(q.take_receiver().is_none(), "only one task answers");
        tokio::spawn(async move {
            loop {
                let (n, reply) = next(&mut rx).await;
                let _ = reply.send(n * 2);
            }
        });
        assert_eq!(q.ask(21, Duration::from_secs(5)).await, Ok(42));
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_and_a_silent_task_times_out() {
        let q: Requests<u32, u32> = Requests::new("the sleeper");
        let _rx = q.take_receiver();
        let short = Duration::from_millis(20);
        for _ in 0..QUEUE {
            assert_eq!(
                q.ask(1, short).await,
                Err(ActionError::Timeout("the sleeper", short))
            );
        }
        let e = q.ask(1, short).await.unwrap_err();
        assert_eq!(e, ActionError::Busy("the sleeper"));
        assert!(e.to_string().contains("retry"), "{e}");
    }

    #[tokio::test]
    async fn without_a_task_the_request_says_so() {
        let q: Requests<u32, u32> = Requests::new("the claimer");
        drop(q.take_receiver());
        let e = q.ask(1, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(e, ActionError::NotRunning("the claimer"));
    }
}
