//! Deploy events as counters and histograms, counted from the journal's operation records: deploys run in
//! another process, and the journal is where they leave what they did.
//!
//! The journal keeps the last hundred operations: the exporter counts each record once by its id, the ones
//! present when it starts included, so after a restart the counters start from the journal's history
//! (Prometheus's `rate` and `increase` treat the restart as a counter reset).

use std::collections::HashSet;

use connect_core::engine::{OperationKind, OperationRecord, Outcome};
use connect_core::metrics::outcome_word;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The deploy event families, as the rules and the dashboard name them.
pub const EVENT_FAMILIES: &[&str] = &[
    "connect_deploys_total",
    "connect_rollbacks_total",
    "connect_step_duration_seconds",
    "connect_operation_duration_seconds",
];

type Labels = Vec<(String, String)>;

/// Counts operation records into their families.
#[derive(Debug)]
pub struct DeployEvents {
    seen: HashSet<String>,
    deploys: Family<Labels, Counter>,
    rollbacks: Family<Labels, Counter>,
    steps: Family<Labels, Histogram>,
    operations: Family<Labels, Histogram>,
}

fn durations() -> Histogram {
    // 50 ms to about 7 minutes: a lock is milliseconds, a health gate seconds, a backup minutes.
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

impl DeployEvents {
    /// Registers the families in `registry`.
    pub fn register(registry: &mut Registry) -> DeployEvents {
        let events = DeployEvents {
            seen: HashSet::new(),
            deploys: Family::default(),
            rollbacks: Family::default(),
            steps: Family::new_with_constructor(durations),
            operations: Family::new_with_constructor(durations),
        };
        // The client appends `_total` to counters itself.
        registry.register(
            "connect_deploys",
            "Deploys by outcome (succeeded, failed, rolled_back, interrupted)",
            events.deploys.clone(),
        );
        registry.register(
            "connect_rollbacks",
            "Rollbacks: by the operator (instant, full) or automatic (a deploy that went back to the standby)",
            events.rollbacks.clone(),
        );
        registry.register(
            "connect_step_duration_seconds",
            "How long each step of an operation took",
            events.steps.clone(),
        );
        registry.register(
            "connect_operation_duration_seconds",
            "How long each operation took, by kind",
            events.operations.clone(),
        );
        events
    }

    /// Counts the records not counted yet.
    pub fn count(&mut self, history: &[OperationRecord]) {
        for r in history {
            if !self.seen.insert(r.id.clone()) {
                continue;
            }
            let outcome = outcome_word(&r.outcome);
            if r.kind == OperationKind::Deploy {
                self.deploys
                    .get_or_create(&vec![("outcome".into(), outcome.into())])
                    .inc();
            }
            let cause = match (r.kind, &r.outcome) {
                (OperationKind::InstantRollback, _) => Some("instant"),
                (OperationKind::FullRollback, _) => Some("full"),
                (_, Outcome::RolledBack { .. }) => Some("automatic"),
                _ => None,
            };
            if let Some(cause) = cause {
                self.rollbacks
                    .get_or_create(&vec![("cause".into(), cause.into())])
                    .inc();
            }
            for s in &r.steps {
                self.steps
                    .get_or_create(&vec![("step".into(), s.step.as_str().into())])
                    .observe(s.duration_ms as f64 / 1000.0);
            }
            self.operations
                .get_or_create(&vec![("kind".into(), kind_word(r.kind))])
                .observe(r.duration_ms as f64 / 1000.0);
        }
    }
}

/// The kind as the journal's JSON spells it (`instant_rollback`).
fn kind_word(kind: OperationKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| kind.to_string())
}
