//! Each color's error lines, from its container's log followed as a stream (one long-lived channel per
//! color over the one SSH connection, not a read per second), reopened when a deploy replaces the container.

use std::sync::Arc;

use connect_core::ContainerRuntime;
use connect_core::engine::is_error_line;
use connect_core::metrics::Snapshot;
use connect_core::model::Color;
use connect_core::runtime::{ContainerState, LogQuery};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Lines of a log read when it is opened: enough to show the last errors of a container already running.
pub const TAIL: usize = 200;
/// Samples to wait before asking again for a log that could not be opened.
const RETRY_AFTER_SAMPLES: usize = 10;

/// Follows `container`'s log while the snapshots show it running and sends its error lines with `color`;
/// ends when `lines` or `view` closes. The task is aborted when the handle is dropped by the caller.
pub fn follow(
    runtime: Arc<dyn ContainerRuntime>,
    color: Color,
    container: String,
    mut view: watch::Receiver<Arc<Snapshot>>,
    lines: mpsc::Sender<(Color, String)>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let running = |s: &Snapshot| {
            s.color(color)
                .and_then(|c| c.container.as_ref())
                .is_some_and(|c| c.state == ContainerState::Running)
        };
        loop {
            // Wait (one check per sample) until the container runs.
            loop {
                if running(&view.borrow_and_update()) {
                    break;
                }
                if view.changed().await.is_err() {
                    return;
                }
            }
            let query = LogQuery {
                tail: Some(TAIL),
                follow: true,
            };
            match runtime.logs(&container, query).await {
                Ok(mut stream) => {
                    while let Some(line) = stream.next().await {
                        let Ok(line) = line else { break };
                        if is_error_line(&line) && lines.send((color, line)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(_) => {
                    // The snapshot's `unavailable` says what cannot be read; here, only wait before asking again.
                    for _ in 0..RETRY_AFTER_SAMPLES {
                        if view.changed().await.is_err() {
                            return;
                        }
                    }
                }
            }
            // The log ended: the container stopped or was replaced. Open the next one from the next sample
            // on (a restarted container gives its tail again; the model keeps a line only once).
            if view.changed().await.is_err() {
                return;
            }
        }
    })
}
