//! The in-memory runtime's logs: the lines a container wrote, and a feed of new ones for followers.

use futures::StreamExt;
use tokio::sync::broadcast;

use super::{MemoryRuntime, State, lock};
use crate::error::{Error, ErrorKind, Result};
use crate::runtime::{LogQuery, LogStream};

/// A line a container wrote (`Some`), or the end of its log because it stopped (`None`).
pub(super) type LogNote = (String, Option<String>);

impl State {
    /// The feed followers subscribe to; made on first use because a broadcast sender has no default.
    pub(super) fn log_feed(&mut self) -> broadcast::Sender<LogNote> {
        self.log_feed
            .get_or_insert_with(|| broadcast::channel(1024).0)
            .clone()
    }

    /// Tells followers of `name` that its log ended (stopped, crashed or removed).
    pub(super) fn log_ended(&mut self, name: &str) {
        // No follower is fine.
        let _ = self.log_feed().send((name.to_string(), None));
    }
}

impl MemoryRuntime {
    /// Appends a line to a running container's log, as the app writing to stdout would.
    pub fn write_log(&self, name: &str, line: &str) -> Result<()> {
        let mut state = lock(&self.state);
        let c = state
            .containers
            .get_mut(name)
            .ok_or_else(|| MemoryRuntime::not_found("runtime.logs", name))?;
        if !c.running {
            return Err(Error::new(
                ErrorKind::Conflict,
                "runtime.logs",
                name,
                "the container is not running",
            ));
        }
        c.logs.push((std::time::SystemTime::now(), line.to_string()));
        let _ = state.log_feed().send((name.to_string(), Some(line.to_string())));
        Ok(())
    }

    /// The log's last lines, then (following a running container) its new lines until it stops. The feed is
    /// subscribed under the same lock the past lines are read with, so no line falls between the two.
    pub(super) fn open_logs(&self, name: &str, query: LogQuery) -> Result<LogStream> {
        let mut state = lock(&self.state);
        let c = state
            .containers
            .get(name)
            .ok_or_else(|| MemoryRuntime::not_found("runtime.logs", name))?;
        let mut lines: Vec<String> = c.logs.iter().map(|(_, l)| l.clone()).collect();
        if let Some(tail) = query.tail {
            lines.drain(..lines.len().saturating_sub(tail));
        }
        let follow = query.follow && c.running;
        let past = futures::stream::iter(lines.into_iter().map(Ok));
        if !follow {
            return Ok(past.boxed());
        }
        let feed = state.log_feed().subscribe();
        let name = name.to_string();
        let new = futures::stream::unfold(Some(feed), move |feed| {
            let name = name.clone();
            async move {
                let mut feed = feed?;
                loop {
                    match feed.recv().await {
                        Ok((n, Some(line))) if n == name => return Some((Ok(line), Some(feed))),
                        Ok((n, None)) if n == name => return None,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(skipped)) => {
                            let e = Error::new(
                                ErrorKind::Failed,
                                "runtime.logs",
                                &name,
                                format!("{skipped} lines were lost: the reader fell behind"),
                            );
                            return Some((Err(e), Some(feed)));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(past.chain(new).boxed())
    }
}
