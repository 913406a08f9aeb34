//! A container's log as a stream of lines: the last N, and with `follow` each new one until it stops.

use std::collections::VecDeque;

use bollard::query_parameters::LogsOptions;
use connect_core::runtime::{LogQuery, LogStream};
use connect_core::{Error, ErrorKind, Result};
use futures::StreamExt;

use crate::client::Docker;
use crate::error::map_err;

impl Docker {
    /// The container's log lines (stdout and stderr interleaved): the last `query.tail`, then with
    /// `query.follow` each new line until the container stops. The Engine frames output by the app's
    /// writes, not by lines, so frames are joined and split at newlines here; a last line without its
    /// newline is given when the stream ends.
    pub async fn container_logs(&self, name: &str, query: LogQuery) -> Result<LogStream> {
        // A missing container is an error when opening, not a first item a reader might not look at.
        if self.inspect_container(name).await?.is_none() {
            return Err(Error::new(
                ErrorKind::NotFound,
                "docker.logs",
                name,
                "no such container",
            ));
        }
        let frames = self.api.logs(
            name,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                follow: query.follow,
                tail: query.tail.map_or_else(|| "all".to_string(), |n| n.to_string()),
                ..Default::default()
            }),
        );
        let name = name.to_string();
        let state = Lines {
            frames: frames.boxed(),
            partial: Vec::new(),
            ready: VecDeque::new(),
            done: false,
        };
        Ok(futures::stream::unfold(state, move |mut s| {
            let name = name.clone();
            async move {
                loop {
                    if let Some(line) = s.ready.pop_front() {
                        return Some((Ok(line), s));
                    }
                    if s.done {
                        return None;
                    }
                    match s.frames.next().await {
                        Some(Ok(frame)) => s.push(&frame.into_bytes()),
                        Some(Err(e)) => {
                            s.done = true;
                            return Some((Err(map_err("docker.logs", &name, e)), s));
                        }
                        None => {
                            s.done = true;
                            if !s.partial.is_empty() {
                                let rest = std::mem::take(&mut s.partial);
                                s.ready.push_back(String::from_utf8_lossy(&rest).into_owned());
                            }
                        }
                    }
                }
            }
        })
        .boxed())
    }
}

/// Frames in, lines out.
struct Lines {
    frames: futures::stream::BoxStream<
        'static,
        std::result::Result<bollard::container::LogOutput, bollard::errors::Error>,
    >,
    partial: Vec<u8>,
    ready: VecDeque<String>,
    done: bool,
}

impl Lines {
    fn push(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]);
            self.ready.push_back(text.trim_end_matches('\r').to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_joined_and_split_at_newlines() {
        let mut lines = Lines {
            frames: futures::stream::empty().boxed(),
            partial: Vec::new(),
            ready: VecDeque::new(),
            done: false,
        };
        lines.push(b"first li");
        lines.push(b"ne\r\nsecond\nthi");
        assert_eq!(lines.ready, ["first line", "second"]);
        assert_eq!(lines.partial, b"thi");
    }
}
