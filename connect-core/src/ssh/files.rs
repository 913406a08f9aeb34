//! Files on the server: uploads (into a temporary the server creates exclusively, checked, then placed),
//! renames, removals and disk usage, each one of the scripts in [`super::scripts`].

use std::sync::Arc;

use tokio::io::AsyncRead;

use super::SshHost;
use super::connection::Session;
use super::exec::{OutputStream, script_error};
use super::process::{Ending, read_until_closed};
use super::quote::script_line;
use super::scripts;
use super::transfer::{self, SendError};
use crate::error::{Error, ErrorKind, Result};
use crate::host::{DiskUsage, Output, PutOptions};
use crate::local::validate_path;

/// The start of an upload's temporary name next to `path`: hidden, and named after the file so the
/// engine's sweep of a dead writer's temporaries (`.journal.json.tmp-*`) finds it; the server appends a
/// random suffix when it creates the file.
fn temp_prefix(path: &str) -> String {
    let (dir, file) = match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    };
    format!("{dir}.{file}.tmp-")
}

/// A verified temporary not placed yet: removed in the background if the upload is abandoned (its future
/// dropped) before [`scripts::PLACE`] takes it over. Only on the connection it was made on: a new one would
/// mean the old broke, and then the server's own trap removed it.
struct Leftover {
    host: SshHost,
    session: Arc<Session>,
    temp: Option<String>,
}

impl Drop for Leftover {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take()
            && !self.session.is_closed()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (host, session) = (self.host.clone(), self.session.clone());
            runtime.spawn(async move {
                let _ = host
                    .script(&session, scripts::DISCARD, &[&temp], "host.put_file", &temp)
                    .await;
            });
        }
    }
}

/// How the data and the receiving script's answer met.
enum Exchange {
    /// Everything was sent (`(cksum, bytes)`), and the script ended so.
    Sent((u32, u64), Ending),
    /// Sending failed first; the script still runs.
    SendFailed(SendError),
    /// The script ended before all was sent (it refused, or the connection broke).
    Answered(Ending),
}

impl SshHost {
    /// Runs one of our helper scripts with `args` within the host's command deadline, collecting its output.
    pub(super) async fn script(
        &self,
        session: &Arc<Session>,
        script: &str,
        args: &[&str],
        operation: &str,
        target: &str,
    ) -> Result<Output> {
        let line = script_line(script, args)?;
        let limit = self.inner.config.command_timeout;
        self.execute(session, &line, None, (operation, target), limit)
            .await
    }

    /// [`Host::put_file`](crate::host::Host::put_file): see the module docs.
    pub(super) async fn upload(
        &self,
        path: &str,
        data: std::pin::Pin<Box<dyn AsyncRead + Send>>,
        options: PutOptions,
    ) -> Result<u64> {
        validate_path("host.put_file", path)?;
        let prefix = temp_prefix(path);
        let mode = format!("{:o}", options.mode & 0o7777);
        let new = if options.create_new { "1" } else { "0" };
        let session = self.session().await?;
        let line = script_line(scripts::RECEIVE, &[&prefix, path, &mode, new])?;
        let mut process = self.start(&session, &line, "host.put_file", path).await?;
        let mut out = Output::default();
        let exchange = {
            let Some((rx, tx)) = process.halves() else {
                return Err(self.lost("host.put_file", path, "the channel closed at once"));
            };
            let sending = transfer::send_stream(tx, data);
            let receiving = read_until_closed(rx, |stream, data| {
                match stream {
                    OutputStream::Stdout => out.stdout.extend_from_slice(data),
                    OutputStream::Stderr => out.stderr.extend_from_slice(data),
                }
                true
            });
            tokio::pin!(sending, receiving);
            // The server may refuse before reading anything (no directory, file exists): its answer ends
            // the transfer even while we still have data to send.
            tokio::select! {
                sent = &mut sending => match sent {
                    Ok(sent) => Exchange::Sent(sent, (&mut receiving).await),
                    Err(e) => Exchange::SendFailed(e),
                },
                ending = &mut receiving => Exchange::Answered(ending),
            }
        };
        let (sent, ending) = match exchange {
            Exchange::Sent(sent, ending) => (Some(sent), ending),
            Exchange::Answered(ending) => (None, ending),
            Exchange::SendFailed(e) => {
                // Our side failed mid-stream: the server's `TERM` trap removes the partial temporary.
                process.stop().await;
                return Err(match e {
                    SendError::Source(e) => Error::new(
                        ErrorKind::Unavailable,
                        "host.put_file",
                        path,
                        format!("reading the data failed: {e}"),
                    )
                    .with_source(e),
                    SendError::Channel(e) => self.lost("host.put_file", path, e),
                });
            }
        };
        process.ended();
        out.status = match ending {
            Ending::Exited(status) => status,
            Ending::Lost | Ending::Stopped => {
                return Err(self
                    .lost("host.put_file", path, "the connection broke during the upload")
                    .with_hint(
                        "the file is unchanged; the server removes its temporary copy when it notices",
                    ));
            }
        };
        if !out.success() {
            return Err(script_error("host.put_file", path, &out));
        }
        let (suffix, receipt) = transfer::parse_receipt(&out);
        let Some(suffix) = suffix else {
            return Err(Error::new(
                ErrorKind::Failed,
                "host.put_file",
                path,
                format!("unexpected reply from the server: {:?}", out.stdout_text()),
            ));
        };
        let temp = format!("{prefix}{suffix}");
        let mut leftover = Leftover {
            host: self.clone(),
            session: session.clone(),
            temp: Some(temp.clone()),
        };
        let refused = match sent {
            Some((local_sum, written)) if receipt == Some((local_sum, written, written)) => None,
            Some((local_sum, written)) => Some(Error::new(
                ErrorKind::Corrupt,
                "host.put_file",
                path,
                format!("the server stored something else: sent {written} bytes with cksum {local_sum}, the server reports (cksum, received, stored) {receipt:?}"),
            )
            .with_hint("check the server's disk (full?) and retry")),
            // The script exited 0 without reading to the end: not our script.
            None => Some(Error::new(
                ErrorKind::Failed,
                "host.put_file",
                path,
                "the server stopped reading the data",
            )),
        };
        if let Some(e) = refused {
            leftover.temp = None;
            let _ = self
                .script(&session, scripts::DISCARD, &[&temp], "host.put_file", path)
                .await;
            return Err(e);
        }
        let placed = self
            .script(
                &session,
                scripts::PLACE,
                &[&temp, path, new],
                "host.put_file",
                path,
            )
            .await;
        // From here the temporary is the place script's, which removes it whatever happens.
        leftover.temp = None;
        let placed = placed?;
        if !placed.success() {
            return Err(script_error("host.put_file", path, &placed));
        }
        Ok(sent.map_or(0, |(_, written)| written))
    }

    /// [`Host::rename`](crate::host::Host::rename).
    pub(super) async fn rename_file(&self, from: &str, to: &str) -> Result<()> {
        validate_path("host.rename", from)?;
        validate_path("host.rename", to)?;
        let target = format!("{from} -> {to}");
        let session = self.session().await?;
        let out = self
            .script(&session, scripts::RENAME, &[from, to], "host.rename", &target)
            .await?;
        if out.success() {
            Ok(())
        } else {
            Err(script_error("host.rename", &target, &out))
        }
    }

    /// [`Host::remove_file`](crate::host::Host::remove_file).
    pub(super) async fn remove(&self, path: &str) -> Result<()> {
        validate_path("host.remove_file", path)?;
        let session = self.session().await?;
        let out = self
            .script(&session, scripts::REMOVE, &[path], "host.remove_file", path)
            .await?;
        if out.success() {
            Ok(())
        } else {
            Err(script_error("host.remove_file", path, &out))
        }
    }

    /// Parses [`scripts::DISK_USAGE`]'s output.
    pub(super) fn disk_usage_from(path: &str, out: &Output) -> Result<DiskUsage> {
        if !out.success() {
            return Err(script_error("host.disk_usage", path, out));
        }
        let text = out.stdout_text();
        let n: Vec<u64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        let [block, blocks, avail, inodes, free_inodes] = n[..] else {
            return Err(Error::new(
                ErrorKind::Failed,
                "host.disk_usage",
                path,
                format!("unexpected `stat -f` output: {text:?}"),
            ));
        };
        Ok(DiskUsage {
            total_bytes: blocks.saturating_mul(block),
            available_bytes: avail.saturating_mul(block),
            total_inodes: inodes,
            free_inodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::temp_prefix;

    #[test]
    fn temporaries_are_hidden_next_to_the_file() {
        assert_eq!(
            temp_prefix("/opt/connect/state/journal.json"),
            "/opt/connect/state/.journal.json.tmp-"
        );
        assert_eq!(temp_prefix("plain"), ".plain.tmp-");
    }
}
