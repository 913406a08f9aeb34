//! The view model and its drawing, without a server or a terminal: hand-made snapshots in, the screen's text
//! (ratatui's `TestBackend`) or the model's fields out.

use std::collections::BTreeMap;
use std::sync::Arc;

use connect_core::cache::CacheFigures;
use connect_core::database::{ContinuousBackupState, DatabaseFigures, ReplicaLag};
use connect_core::engine::{Intent, LockInfo, OperationKind, Step, StepStatus};
use connect_core::metrics::{
    BackupView, CacheView, ColorView, ContainerView, DatabaseView, DeployView, LastOperation, Snapshot,
    StepTime, TrafficView, Unavailable,
};
use connect_core::model::{Color, Release};
use connect_core::router::{AdminState, CheckState};
use connect_core::runtime::{ContainerState, Health};

use super::model::{ERROR_LINES, HISTORY, WatchModel, follow};
use super::plain;
use super::render::screen_text;

const T0: u64 = 1_800_000_000_000;

fn traffic(admin: AdminState, per_s: f64, rate_5xx: f64, sessions: u64) -> TrafficView {
    TrafficView {
        admin: Some(admin),
        check: Some(CheckState::Up),
        weight: Some(100),
        responses_total: 1000,
        responses_5xx_total: 3,
        current_sessions: sessions,
        responses_per_s: per_s,
        rate_5xx_percent: rate_5xx,
        response_time_avg_ms: 4,
    }
}

fn container(release: &str, health: Health) -> ContainerView {
    ContainerView {
        release: Some(release.into()),
        state: ContainerState::Running,
        health,
        restarts: 1,
        cpu_seconds_total: Some(3.0),
        cpu_percent: Some(2.5),
        memory_bytes: Some(48 << 20),
        memory_limit_bytes: None,
    }
}

fn row(color: Color, traffic: Option<TrafficView>, container: Option<ContainerView>) -> ColorView {
    let n = color as usize + 1;
    ColorView {
        color,
        server: format!("app{n}"),
        container_name: format!("connect_app{n}"),
        traffic,
        container,
    }
}

/// Green live on v2 after a deploy, blue the standby on v1, every source read.
fn after_deploy(sequence: u64) -> Snapshot {
    let mut connections = BTreeMap::new();
    connections.insert("active".to_string(), 2);
    connections.insert("idle".to_string(), 3);
    Snapshot {
        sequence,
        taken_unix_ms: T0 + sequence * 1000,
        interval_ms: 1000,
        colors: vec![
            row(
                Color::Blue,
                Some(traffic(AdminState::Drain, 0.0, 0.0, 0)),
                Some(container("v1", Health::Healthy)),
            ),
            row(
                Color::Green,
                Some(traffic(AdminState::Ready, 120.0, 2.5, 64)),
                Some(container("v2", Health::Healthy)),
            ),
        ],
        database: Some(DatabaseView {
            figures: DatabaseFigures {
                connections,
                max_connections: 100,
                commits: 10,
                rollbacks: 0,
                replicas: vec![ReplicaLag {
                    name: "pg2".into(),
                    lag_bytes: 2048,
                    replay_lag_ms: None,
                }],
            },
            transactions_per_s: 45.0,
            max_lag_bytes: Some(2048),
        }),
        cache: Some(CacheView {
            figures: CacheFigures {
                used_memory_bytes: 3 << 20,
                connected_clients: 7,
                ..CacheFigures::default()
            },
            hit_rate_percent: Some(90.0),
        }),
        deploy: Some(DeployView {
            live: Some(Color::Green),
            standby: Some(Color::Blue),
            releases: [(Color::Blue, "v1".to_string()), (Color::Green, "v2".to_string())].into(),
            last: Some(LastOperation {
                id: "op-2".into(),
                kind: OperationKind::Deploy,
                release: Some("v2".into()),
                outcome: "succeeded".into(),
                failed_step: None,
                started_unix_ms: T0,
                duration_ms: 9_400,
                steps: vec![
                    StepTime {
                        step: Step::HealthGate,
                        status: StepStatus::Ok,
                        duration_ms: 3_200,
                    },
                    StepTime {
                        step: Step::Switch,
                        status: StepStatus::Ok,
                        duration_ms: 40,
                    },
                ],
            }),
            ..DeployView::default()
        }),
        backup: Some(BackupView {
            state: ContinuousBackupState {
                stanza: "connect".into(),
                last_archived_wal: Some("000000010000000000000003".into()),
                last_archived_age_s: Some(42),
                archive_failing: false,
                last_full_backup: Some("20261206-100000F".into()),
                last_full_age_s: Some(7_200),
                last_backup: None,
                last_backup_age_s: None,
                backups: 1,
                recoverable_from_unix: None,
            },
            read_unix_ms: T0,
        }),
        backup_read_unix_ms: T0,
        unavailable: vec![],
    }
}

#[test]
fn the_screen_shows_every_panel_of_the_runbook() {
    let mut model = WatchModel::default();
    model.update(Arc::new(after_deploy(1)));
    model.error_line(Color::Green, "ERROR GET / failed: connection refused\n");
    let screen = screen_text(&model, 120, 40);
    for expected in [
        "live green",
        "standby blue",
        "app2 ready, checks up, weight 100",
        "req/s 120.0",
        "5xx 2.5 %",
        "resp avg 4 ms",
        "sessions 64",
        "connect_app2",
        "48.0 MiB",
        "connections 5 of 100 (2 active, 3 idle)",
        "45.0 transactions/s, 1 replica(s), largest lag 2.0 KiB",
        "backup: full 2.0 h ago, WAL archived 42 s ago",
        "hit rate 90.0 %",
        "clients 7",
        "deploy v2 succeeded",
        "health_gate 3.2s",
        "green ERROR GET / failed: connection refused",
        "blue  no error lines",
    ] {
        assert!(
            screen.contains(expected),
            "{expected:?} is on the screen:\n{screen}"
        );
    }
}

#[test]
fn before_the_first_sample_and_on_tiny_terminals_the_view_draws_without_panicking() {
    let model = WatchModel::default();
    assert!(screen_text(&model, 80, 24).contains("waiting for the first sample"));
    let mut model = WatchModel::default();
    model.update(Arc::new(after_deploy(1)));
    for (w, h) in [(1, 1), (10, 3), (40, 12), (300, 80)] {
        let screen = screen_text(&model, w, h);
        assert_eq!(screen.lines().count(), h as usize, "{w}x{h}");
    }
}

#[test]
fn sparklines_and_error_lines_are_bounded() {
    let mut model = WatchModel::default();
    for i in 1..=(HISTORY as u64 + 15) {
        model.update(Arc::new(after_deploy(i)));
    }
    let green = &model.series[Color::Green as usize];
    assert_eq!(green.responses_per_s.len(), HISTORY);
    assert_eq!(green.rate_5xx_permille.last(), Some(&25));
    for i in 0..10 {
        model.error_line(Color::Blue, &format!("error {i}"));
        model.error_line(Color::Blue, &format!("error {i}"));
    }
    let blue: Vec<&String> = model.errors[Color::Blue as usize].iter().collect();
    assert_eq!(blue.len(), ERROR_LINES);
    assert_eq!(
        blue.last().map(|s| s.as_str()),
        Some("error 9"),
        "newest kept, each once"
    );
}

/// A deploy of v2 to green as the samples show it: lock, intent, green started, healthy, switched, blue
/// drained, the lock gone and the journal's record.
#[test]
fn a_running_deploy_is_followed_step_by_step_until_its_record() {
    let lock = LockInfo {
        holder: "ops@laptop".into(),
        operation: OperationKind::Deploy,
        since_unix_ms: T0,
        token: String::new(),
        lease_until_unix_ms: 0,
        took_over_from: None,
    };
    let intent = Intent {
        operation: "op-2".into(),
        kind: OperationKind::Deploy,
        holder: "ops@laptop".into(),
        release: Some(Release::new("connect", "v2").expect("release")),
        from: Some(Color::Blue),
        to: Color::Green,
        since_unix_ms: T0,
        weights: BTreeMap::new(),
    };
    let at = |i: u64,
              lock: Option<&LockInfo>,
              intent: Option<&Intent>,
              green: Option<ContainerView>,
              live: Color| {
        let mut s = after_deploy(i);
        let d = s.deploy.as_mut().expect("deploy");
        d.lock = lock.cloned();
        d.intent = intent.cloned();
        let (blue_admin, green_admin) = match live {
            Color::Blue => (AdminState::Ready, AdminState::Maint),
            Color::Green => (AdminState::Drain, AdminState::Ready),
        };
        let blue_sessions = if i < 6 { 30 } else { 0 };
        s.colors[0].traffic = Some(traffic(blue_admin, 100.0, 0.0, blue_sessions));
        s.colors[1].traffic = Some(traffic(green_admin, 0.0, 0.0, 0));
        s.colors[1].container = green;
        if lock.is_some() {
            d.last = None;
        }
        s
    };
    let steps = [
        at(1, Some(&lock), None, None, Color::Blue),
        at(2, Some(&lock), Some(&intent), None, Color::Blue),
        at(
            3,
            Some(&lock),
            Some(&intent),
            Some(container("v2", Health::Starting)),
            Color::Blue,
        ),
        at(
            4,
            Some(&lock),
            Some(&intent),
            Some(container("v2", Health::Healthy)),
            Color::Blue,
        ),
        at(
            5,
            Some(&lock),
            Some(&intent),
            Some(container("v2", Health::Healthy)),
            Color::Green,
        ),
        at(
            6,
            Some(&lock),
            Some(&intent),
            Some(container("v2", Health::Healthy)),
            Color::Green,
        ),
        at(
            7,
            None,
            None,
            Some(container("v2", Health::Healthy)),
            Color::Green,
        ),
    ];
    let mut op = None;
    let mut seen_at_each = Vec::new();
    for s in &steps {
        op = follow(op, s);
        seen_at_each.push(op.as_ref().map_or(0, |o| o.seen.len()));
    }
    let op = op.expect("an operation was seen");
    let seen: Vec<&str> = op.seen.iter().map(|(what, _)| what.as_str()).collect();
    assert_eq!(
        seen,
        [
            "deploy by ops@laptop",
            "intent: green gets v2",
            "green started (v2)",
            "green healthy",
            "traffic switched to green",
            "blue drained",
            "ended succeeded in 9.4 s",
        ]
    );
    assert_eq!(seen_at_each, [1, 2, 3, 4, 5, 6, 7], "one new step per sample");
    assert_eq!(op.seen[2].1, 3.0, "seconds since the lock was taken");
    assert_eq!(op.ended.as_ref().map(|l| l.id.as_str()), Some("op-2"));
    // The ended operation stays on screen until the next one starts.
    let later = follow(Some(op.clone()), &steps[6]);
    assert_eq!(later, Some(op));
    let next = follow(later, &steps[0]).expect("a new operation");
    assert_eq!(next.seen.len(), 1, "the next operation starts afresh");
}

#[test]
fn the_plain_line_sums_up_a_sample_without_control_characters() {
    let mut model = WatchModel::default();
    let mut s = after_deploy(2);
    s.unavailable.push(Unavailable {
        source: "cache.figures".into(),
        error: "refused".into(),
    });
    model.update(Arc::new(s));
    let line = plain::line(&model, false);
    for expected in [
        "live green standby blue",
        "green 120.0 req/s 2.5% 5xx 4 ms 64 sess v2 healthy",
        "pg 5 conn 45.0 tx/s lag 2.0 KiB",
        "redis 90.0% hit 3.0 MiB 7 clients",
        "not read: cache.figures",
    ] {
        assert!(line.contains(expected), "{expected:?} in {line}");
    }
    assert!(!line.chars().any(char::is_control), "{line:?}");
    let json: serde_json::Value = serde_json::from_str(&plain::line(&model, true)).expect("one JSON object");
    assert_eq!(json["deploy"]["live"], "green");
    assert_eq!(json["backup"]["state"]["last_full_age_s"], 7200);
}
