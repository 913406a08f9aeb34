//! The snapshot as OpenMetrics families, encoded at each scrape from the sampler's newest snapshot.
//!
//! Names follow Prometheus's conventions: the `connect_` prefix, base units (`_seconds`, `_bytes`), counters
//! ending in `_total` (the encoder adds it), labels of low cardinality (color, state, source, replica).

use std::sync::Arc;

use connect_core::metrics::Snapshot;
use connect_core::router::{AdminState, CheckState};
use connect_core::runtime::{ContainerState, Health};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tokio::sync::watch;

/// Every family the snapshot gives, with its help text: `dashboard and rules name only these` is checked by
/// the monitoring test against this list (and the deploy event families).
pub const SNAPSHOT_FAMILIES: &[(&str, &str)] = &[
    (
        "connect_http_responses_total",
        "HTTP responses HAProxy counted for the color's server",
    ),
    (
        "connect_http_responses_5xx_total",
        "Of those, 5xx responses (including HAProxy's own for the server)",
    ),
    (
        "connect_http_response_time_avg_seconds",
        "HAProxy's average response time over the server's last 1024 requests (an average, not a percentile)",
    ),
    (
        "connect_http_sessions",
        "Sessions in flight on the color's server",
    ),
    ("connect_server_weight", "The color's HAProxy server weight"),
    (
        "connect_server_live",
        "1 when the color's server takes new requests (ready, weight above 0, checks up)",
    ),
    ("connect_container_running", "1 when the color's container runs"),
    (
        "connect_container_healthy",
        "1 when the color's container is healthy (or has no health check)",
    ),
    (
        "connect_container_restarts_total",
        "Docker's RestartCount of the color's container",
    ),
    (
        "connect_container_cpu_seconds_total",
        "CPU time the color's container used",
    ),
    (
        "connect_container_memory_bytes",
        "Memory the color's container uses, without the page cache",
    ),
    ("connect_db_connections", "PostgreSQL client connections by state"),
    ("connect_db_max_connections", "PostgreSQL max_connections"),
    (
        "connect_db_transactions_total",
        "Transactions of the app's database by result (commit, rollback)",
    ),
    (
        "connect_db_replication_lag_bytes",
        "WAL a replica has not replayed yet",
    ),
    ("connect_db_replicas", "Streaming replicas the leader sees"),
    ("connect_cache_hits_total", "Redis keyspace hits"),
    ("connect_cache_misses_total", "Redis keyspace misses"),
    ("connect_cache_memory_bytes", "Memory Redis allocated"),
    ("connect_cache_clients", "Clients connected to Redis"),
    (
        "connect_cache_evicted_keys_total",
        "Keys Redis evicted for memory",
    ),
    ("connect_live", "1 on the color taking traffic, per the journal"),
    (
        "connect_standby_present",
        "1 when the live color has a warm standby (an instant rollback is possible)",
    ),
    ("connect_maintenance", "1 while the maintenance page is on"),
    (
        "connect_operation_in_progress",
        "1 while an operation has recorded its intent",
    ),
    (
        "connect_last_backup_timestamp_seconds",
        "When the newest verified backup of the journal was taken",
    ),
    (
        "connect_backup_last_full_age_seconds",
        "Age of the newest full base backup of the continuous backups (pgBackRest)",
    ),
    (
        "connect_backup_last_archived_wal_age_seconds",
        "Age of the last WAL segment the leader archived",
    ),
    (
        "connect_backup_archive_failing",
        "1 while the leader's WAL archiving fails (the recovery point is not moving)",
    ),
    (
        "connect_source_unavailable",
        "1 for a source the last sample could not read",
    ),
    (
        "connect_sample_timestamp_seconds",
        "When the last sample was taken",
    ),
];

/// Encodes the sampler's newest snapshot at each scrape.
#[derive(Debug)]
pub struct SnapshotCollector {
    view: watch::Receiver<Arc<Snapshot>>,
}

impl SnapshotCollector {
    /// Over a sampler's channel.
    pub fn new(view: watch::Receiver<Arc<Snapshot>>) -> SnapshotCollector {
        SnapshotCollector { view }
    }
}

fn help(name: &str) -> &'static str {
    SNAPSHOT_FAMILIES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, h)| h)
}

/// One family's samples, gathered before it is written (OpenMetrics wants each family in one block).
enum Samples {
    Gauge(Vec<(Vec<(String, String)>, f64)>),
    Counter(Vec<(Vec<(String, String)>, f64)>),
}

struct Families(Vec<(&'static str, Samples)>);

impl Families {
    fn push(&mut self, name: &'static str, counter: bool, labels: &[(&str, &str)], value: f64) {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, Samples::Gauge(s) | Samples::Counter(s))) => s.push((labels, value)),
            None => self.0.push((
                name,
                if counter {
                    Samples::Counter(vec![(labels, value)])
                } else {
                    Samples::Gauge(vec![(labels, value)])
                },
            )),
        }
    }
    fn gauge(&mut self, name: &'static str, labels: &[(&str, &str)], value: f64) {
        self.push(name, false, labels, value);
    }
    fn counter(&mut self, name: &'static str, labels: &[(&str, &str)], value: f64) {
        self.push(name, true, labels, value);
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The snapshot's figures, family by family.
fn families(s: &Snapshot) -> Families {
    let mut f = Families(Vec::new());
    if s.sequence == 0 {
        return f;
    }
    for c in &s.colors {
        let color = [("color", c.color.as_str())];
        if let Some(t) = &c.traffic {
            f.counter("connect_http_responses_total", &color, t.responses_total as f64);
            f.counter(
                "connect_http_responses_5xx_total",
                &color,
                t.responses_5xx_total as f64,
            );
            f.gauge(
                "connect_http_response_time_avg_seconds",
                &color,
                t.response_time_avg_ms as f64 / 1000.0,
            );
            f.gauge("connect_http_sessions", &color, t.current_sessions as f64);
            if let Some(w) = t.weight {
                f.gauge("connect_server_weight", &color, f64::from(w));
            }
            if let (Some(admin), Some(check), Some(weight)) = (t.admin, t.check, t.weight) {
                let live = admin == AdminState::Ready
                    && weight > 0
                    && matches!(check, CheckState::Up | CheckState::NoCheck);
                f.gauge("connect_server_live", &color, flag(live));
            }
        }
        let running = c
            .container
            .as_ref()
            .is_some_and(|k| k.state == ContainerState::Running);
        f.gauge("connect_container_running", &color, flag(running));
        if let Some(k) = &c.container {
            let healthy = running && matches!(k.health, Health::Healthy | Health::None);
            f.gauge("connect_container_healthy", &color, flag(healthy));
            f.counter("connect_container_restarts_total", &color, f64::from(k.restarts));
            if let Some(cpu) = k.cpu_seconds_total {
                f.counter("connect_container_cpu_seconds_total", &color, cpu);
            }
            if let Some(m) = k.memory_bytes {
                f.gauge("connect_container_memory_bytes", &color, m as f64);
            }
        }
    }
    if let Some(db) = &s.database {
        for (state, n) in &db.figures.connections {
            f.gauge("connect_db_connections", &[("state", state)], *n as f64);
        }
        f.gauge(
            "connect_db_max_connections",
            &[],
            db.figures.max_connections as f64,
        );
        f.counter(
            "connect_db_transactions_total",
            &[("result", "commit")],
            db.figures.commits as f64,
        );
        f.counter(
            "connect_db_transactions_total",
            &[("result", "rollback")],
            db.figures.rollbacks as f64,
        );
        for r in &db.figures.replicas {
            f.gauge(
                "connect_db_replication_lag_bytes",
                &[("replica", &r.name)],
                r.lag_bytes as f64,
            );
        }
        f.gauge("connect_db_replicas", &[], db.figures.replicas.len() as f64);
    }
    if let Some(c) = &s.cache {
        f.counter("connect_cache_hits_total", &[], c.figures.keyspace_hits as f64);
        f.counter(
            "connect_cache_misses_total",
            &[],
            c.figures.keyspace_misses as f64,
        );
        f.gauge(
            "connect_cache_memory_bytes",
            &[],
            c.figures.used_memory_bytes as f64,
        );
        f.gauge("connect_cache_clients", &[], c.figures.connected_clients as f64);
        f.counter(
            "connect_cache_evicted_keys_total",
            &[],
            c.figures.evicted_keys as f64,
        );
    }
    if let Some(d) = &s.deploy {
        for c in &s.colors {
            f.gauge(
                "connect_live",
                &[("color", c.color.as_str())],
                flag(d.live == Some(c.color)),
            );
        }
        f.gauge("connect_standby_present", &[], flag(d.standby.is_some()));
        f.gauge("connect_maintenance", &[], flag(d.maintenance));
        f.gauge(
            "connect_operation_in_progress",
            &[],
            flag(d.in_progress.is_some()),
        );
        if let Some(ms) = d.last_backup_unix_ms {
            f.gauge("connect_last_backup_timestamp_seconds", &[], ms as f64 / 1000.0);
        }
    }
    if let Some(b) = &s.backup {
        let b = &b.state;
        if let Some(age) = b.last_full_age_s {
            f.gauge("connect_backup_last_full_age_seconds", &[], age as f64);
        }
        if let Some(age) = b.last_archived_age_s {
            f.gauge("connect_backup_last_archived_wal_age_seconds", &[], age as f64);
        }
        f.gauge("connect_backup_archive_failing", &[], flag(b.archive_failing));
    }
    for u in &s.unavailable {
        f.gauge("connect_source_unavailable", &[("source", &u.source)], 1.0);
    }
    f.gauge(
        "connect_sample_timestamp_seconds",
        &[],
        s.taken_unix_ms as f64 / 1000.0,
    );
    f
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snapshot = self.view.borrow().clone();
        for (name, samples) in families(&snapshot).0 {
            match samples {
                Samples::Gauge(rows) => {
                    let kind = ConstGauge::new(0.0f64).metric_type();
                    let mut family = encoder.encode_descriptor(name, help(name), None, kind)?;
                    for (labels, value) in rows {
                        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
                    }
                }
                Samples::Counter(rows) => {
                    // The encoder appends `_total` to a counter's samples.
                    let base = name.trim_end_matches("_total");
                    let kind = ConstCounter::new(0.0f64).metric_type();
                    let mut family = encoder.encode_descriptor(base, help(name), None, kind)?;
                    for (labels, value) in rows {
                        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}
