//! A fleet operation given up: every host settles what it changed (its own undo) and records why; the
//! error says where each host's traffic is.

use super::Fleet;
use super::host::{HostOutcome, HostRun, failed_step};
use crate::error::{Error, ErrorKind};
use crate::vocabulary::{Step, StepStatus};

/// The deploy's operation name in errors.
pub(super) const DEPLOY: &str = "fleet.deploy";

impl Fleet {
    /// Nothing switched: every host settles what it changed and records why.
    /// `op` names the fleet operation given up (`fleet.deploy`, `fleet.rollback`) in the errors.
    pub(super) async fn abort(&self, op: &str, mut hosts: Vec<HostRun<'_>>, why: &str) -> Error {
        let all: Vec<usize> = (0..hosts.len()).collect();
        let outcomes = (0..hosts.len()).map(|_| None).collect();
        self.abort_indices(op, &mut hosts, &all, outcomes, why, None)
            .await
    }

    /// [`Fleet::abort`] for a cause that is no host's own (a hook): the error is of its `kind`.
    pub(super) async fn abort_with(&self, mut hosts: Vec<HostRun<'_>>, why: &str, kind: ErrorKind) -> Error {
        let all: Vec<usize> = (0..hosts.len()).collect();
        let outcomes = (0..hosts.len()).map(|_| None).collect();
        self.abort_indices(DEPLOY, &mut hosts, &all, outcomes, why, Some(kind))
            .await
    }

    /// `kind`: the cause's, when it is no host's own failure (the switch, a verify); else the first failed
    /// host's, so the error is of the kind one host's would be (a lock held, drift, a host unreachable).
    pub(super) async fn abort_indices(
        &self,
        op: &str,
        hosts: &mut [HostRun<'_>],
        which: &[usize],
        mut outcomes: Vec<Option<HostOutcome>>,
        why: &str,
        kind: Option<ErrorKind>,
    ) -> Error {
        // The host whose failure gives the error its kind gives its fix too (reach the host, read the logs).
        let cause = which.iter().find_map(|&i| {
            let e = hosts[i].failed.as_ref()?;
            Some((e.kind(), e.hint().map(|h| format!("{}: {h}; ", hosts[i].name()))))
        });
        let own_fix = cause
            .as_ref()
            .filter(|_| kind.is_none())
            .and_then(|(_, hint)| hint.clone())
            .unwrap_or_default();
        let kind = kind.or(cause.map(|(kind, _)| kind)).unwrap_or(ErrorKind::Failed);
        // Each host settles on its own connection: in parallel, so a stop grace is waited once, not per host.
        let settling = hosts
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| which.contains(i))
            .map(|(i, h)| async move {
                let e = match h.failed.take() {
                    Some(own) => own,
                    None => aborted_by_another(h, op, why),
                };
                (i, h.abandon(e).await)
            });
        for (i, outcome) in futures::future::join_all(settling).await {
            outcomes[i] = Some(outcome);
        }
        let where_now: Vec<String> = outcomes.iter().flatten().map(settled_where).collect();
        let fix = if op == DEPLOY {
            "read each host's journal (connect-ops status) for its record; fix the host that failed, or set \
             min_healthy_hosts to deploy without it"
        } else {
            "read each host's journal (connect-ops status) for its record; fix the host that failed and roll back \
             again: a rollback moves every host or none"
        };
        Error::new(
            kind,
            op,
            self.hosts().join(","),
            format!("{why}; settled: {}", where_now.join(", ")),
        )
        .with_hint(format!("{own_fix}{fix}"))
    }
}

/// Where a host's traffic is after the abort, and, when its journal could not take the record (its
/// connection lost), that what this operation left there is settled by the next operation on it, not now.
fn settled_where(outcome: &HostOutcome) -> String {
    match outcome.record {
        Some(_) => outcome.where_now(),
        None => format!(
            "{} (left for later: its journal could not be written; the next operation there settles it)",
            outcome.where_now()
        ),
    }
}

/// The error of a host given up for another's failure (`why`). Given up before the switch with none of its
/// own steps failed, its record gets a failed `switch` step saying why: its outcome then names the step
/// the fleet stopped it at, not one of its own that passed (a record's failed step is its last failed one,
/// else `lock`, which read as if this host's lock had failed).
fn aborted_by_another(h: &mut HostRun<'_>, op: &str, why: &str) -> Error {
    let e = Error::new(
        ErrorKind::Failed,
        op,
        h.name(),
        format!("aborted everywhere: {why}"),
    );
    if let Some(run) = h.run.as_mut()
        && !run
            .record
            .steps
            .iter()
            .any(|s| s.status == StepStatus::Failed || s.step == Step::Switch)
    {
        run.record.steps.push(failed_step(Step::Switch, &e));
    }
    e
}
