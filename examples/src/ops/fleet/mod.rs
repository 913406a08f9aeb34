//! `deploy`, `rollback` and `status` over `[[app_hosts]]`: the same commands driving a
//! [`Fleet`], every host's events and result printed with its name. Exit codes are one host's: the error a
//! fleet operation returns keeps the kind of the host failure that stopped it.

use connect_core::engine::Event;
use connect_core::engine::fleet::{Fleet, FleetReport, FleetStatus, HostOutcome};
use connect_core::model::Release;
use connect_core::ship::ReleaseSource;
use connect_core::{Error, ErrorKind, Result};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use super::Output;
use super::inspect::status_text;
use super::output::summary;

/// Deploys `release` to every app host (shipped first from `source`), printing each host's events.
pub async fn deploy(
    fleet: &Fleet,
    release: Release,
    source: Option<ReleaseSource>,
    out: &Output,
) -> Result<FleetReport> {
    let operation = async {
        match source {
            Some(source) => fleet.deploy_from(release, source).await,
            None => fleet.deploy(release).await,
        }
    };
    let report = with_events(fleet, out, operation).await?;
    print_report(&report, out);
    Ok(report)
}

/// Instant rollback of every host in rotation, in one switch.
pub async fn rollback(fleet: &Fleet, out: &Output) -> Result<FleetReport> {
    let report = with_events(fleet, out, fleet.rollback()).await?;
    print_report(&report, out);
    Ok(report)
}

/// Every host's status; a host that could not be read is `Unavailable` (exit 5) once all are printed.
pub async fn status(fleet: &Fleet, out: &Output) -> Result<FleetStatus> {
    let status = fleet.status().await;
    let text: Vec<String> = status
        .hosts
        .iter()
        .map(|h| match (&h.status, &h.error) {
            (Some(s), _) => format!("{}: {}", h.host, status_text(s).replace('\n', "\n  ")),
            (None, e) => format!("{}: not read: {}", h.host, e.as_deref().unwrap_or("no answer")),
        })
        .collect();
    out.result(&status, &text.join("\n"));
    let unread: Vec<&str> = status
        .hosts
        .iter()
        .filter(|h| h.status.is_none())
        .map(|h| h.host.as_str())
        .collect();
    if !unread.is_empty() {
        return Err(Error::new(
            ErrorKind::Unavailable,
            "status",
            unread.join(","),
            format!(
                "{} of {} app hosts could not be read",
                unread.len(),
                status.hosts.len()
            ),
        )
        .with_hint("check the host's SSH access and Docker engine; the others are printed above"));
    }
    Ok(status)
}

/// The report: one JSON object, or a line per host.
fn print_report(report: &FleetReport, out: &Output) {
    let lines: Vec<String> = report.hosts.iter().map(host_line).collect();
    out.result(report, &lines.join("\n"));
}

fn host_line(h: &HostOutcome) -> String {
    let record = h.record.as_ref().map_or("no record".to_string(), summary);
    match (&h.error, h.in_rotation) {
        // A worker that could not follow a rollback: it runs, on its own release, and the line says why.
        (Some(e), true) => format!("{}: {record}; {e}", h.host),
        (None, true) => format!("{}: {record}", h.host),
        (Some(e), false) => format!("{}: left out of rotation: {record}; {e}", h.host),
        (None, false) => format!("{}: left out of rotation: {record}", h.host),
    }
}

/// Runs `operation` while printing every host's events as they come, each with the host's name.
pub async fn with_events<T, F>(fleet: &Fleet, out: &Output, operation: F) -> Result<T>
where
    F: std::future::Future<Output = Result<T>>,
{
    let mut receivers: Vec<(String, Receiver<Event>)> = fleet
        .hosts()
        .into_iter()
        .filter_map(|h| Some((h.to_string(), fleet.deployer(h)?.subscribe())))
        .collect();
    let mut operation = std::pin::pin!(operation);
    enum Next<T> {
        Event(usize, std::result::Result<Event, RecvError>),
        Done(Result<T>),
    }
    loop {
        let next = if receivers.is_empty() {
            Next::Done(operation.as_mut().await)
        } else {
            let recvs = receivers
                .iter_mut()
                .enumerate()
                .map(|(i, (_, r))| Box::pin(async move { (i, r.recv().await) }));
            tokio::select! {
                // Events first, so every one is out before the result.
                biased;
                ((i, event), _, _) = futures::future::select_all(recvs) => Next::Event(i, event),
                result = operation.as_mut() => Next::Done(result),
            }
        };
        match next {
            Next::Event(i, Ok(event)) => out.host_event(&receivers[i].0, &event),
            Next::Event(i, Err(RecvError::Lagged(n))) => {
                out.note(&format!("{}: ({n} events skipped)", receivers[i].0));
            }
            Next::Event(i, Err(RecvError::Closed)) => {
                receivers.remove(i);
            }
            Next::Done(result) => {
                for (host, r) in &mut receivers {
                    while let Ok(event) = r.try_recv() {
                        out.host_event(host, &event);
                    }
                }
                return result;
            }
        }
    }
}

#[cfg(test)]
mod tests;
