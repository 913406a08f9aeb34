//! Waiting on a condition with a deadline, never a fixed sleep.

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// Polls `check` until it yields `Ok(Ok(v))`, or fails when it yields `Err(e)`, or times out after `deadline`.
/// `Ok(Err(why))` means "not yet"; the last `why` goes in the timeout message.
///
/// Polling is for conditions that have no event to wait on (HAProxy's `show stat`); `interval` is the
/// condition's cost-to-latency trade, not a guess at how long something takes.
pub async fn poll_until<T, F, Fut>(
    operation: &str,
    target: &str,
    deadline: Duration,
    interval: Duration,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<std::result::Result<T, String>>>,
{
    if deadline.is_zero() {
        return Err(Error::invalid(
            operation,
            target,
            "a deadline of zero can never be met",
        ));
    }
    let until = tokio::time::Instant::now() + deadline;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let why = match check().await? {
            Ok(v) => return Ok(v),
            Err(why) => why,
        };
        if tokio::time::Instant::now() >= until {
            return Err(Error::new(
                ErrorKind::Timeout,
                operation,
                target,
                format!("not done after {deadline:?}: {why}"),
            ));
        }
    }
}
