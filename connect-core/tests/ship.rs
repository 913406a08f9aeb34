//! The ship step on the in-memory backends: from a local image, from a build context built locally or on the
//! server, the no-op when the server has the image, each failure kind at ship, and the progress events.
//! (The fault sweep, `tests/sweep/`, traps the ship call with every fault kind too.)

mod common;

use common::{Fixture, release};
use connect_core::ErrorKind;
use connect_core::engine::{Event, SHIP_PROGRESS_EVERY, Step, StepStatus};
use connect_core::memory::AppBehavior;
use connect_core::model::Color;
use connect_core::ship::{BuildOn, ReleaseSource, ShipOutcome, ShipPhase, ShipReport};
use connect_core::testing::{drain_events, ship_progress};

const CONTEXT: &str = "/home/dev/connect";

fn shipped(events: &[Event]) -> ShipReport {
    let reports: Vec<&ShipReport> = events
        .iter()
        .filter_map(|e| match e {
            Event::Shipped(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(reports.len(), 1, "one Shipped event: {events:?}");
    reports[0].clone()
}

/// Counts only grow within a phase, totals stay put, and the send ends complete.
fn assert_monotonic_and_complete(events: &[Event]) {
    let p = ship_progress(events);
    assert!(!p.is_empty(), "progress was reported");
    for w in p.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.0 == b.0 {
            assert!(b.1 >= a.1 && b.3 >= a.3, "counts went back: {a:?} then {b:?}");
            assert_eq!((a.2, a.4), (b.2, b.4), "totals changed within a phase");
        } else {
            assert_eq!(
                (a.0, b.0),
                (ShipPhase::Build, ShipPhase::Send),
                "build comes before send"
            );
        }
    }
    let last = *p.last().unwrap();
    assert_eq!(last.0, ShipPhase::Send);
    assert_eq!(
        (last.1, last.3),
        (last.2, last.4),
        "the last report has everything done: {last:?}"
    );
}

fn ship_step_status(f: &connect_core::engine::OperationRecord) -> Option<StepStatus> {
    f.steps.iter().find(|s| s.step == Step::Ship).map(|s| s.status)
}

#[tokio::test(start_paused = true)]
async fn a_local_image_is_shipped_then_deployed() {
    let f = Fixture::with_v1_live().await;
    let local = f
        .stack
        .runtime
        .add_local_image("connect-dev:latest", AppBehavior::default());
    let v4 = release("v4");
    assert!(!f.stack.runtime.has_image(&v4.image));
    let mut rx = f.deployer.subscribe();

    let record = f
        .deployer
        .deploy_from(v4.clone(), ReleaseSource::local_image("connect-dev:latest"))
        .await
        .unwrap();

    f.assert_live(Color::Green).await;
    let steps: Vec<Step> = record.steps.iter().map(|s| s.step).collect();
    assert_eq!(
        &steps[..4],
        [Step::Reconcile, Step::Preflight, Step::Ship, Step::StageImage]
    );
    assert_eq!(
        record.release.unwrap().digest.as_deref(),
        Some(local.id.as_str()),
        "the server runs the local image itself"
    );
    let events = drain_events(&mut rx);
    let report = shipped(&events);
    assert_eq!(report.outcome, ShipOutcome::Sent);
    assert_eq!(
        (report.layers_sent, report.layers_total),
        (2, 3),
        "the base layer the server has is not sent"
    );
    assert!(!report.built_locally);
    assert_monotonic_and_complete(&events);
    assert!(f.stack.runtime.builds().is_empty(), "nothing was built");
}

#[tokio::test(start_paused = true)]
async fn a_build_context_is_built_locally_then_only_missing_layers_sent() {
    let f = Fixture::with_v1_live().await;
    f.stack.runtime.add_build_context(CONTEXT, AppBehavior::default());
    let mut rx = f.deployer.subscribe();

    f.deployer
        .deploy_from(
            release("v4"),
            ReleaseSource::build_context(CONTEXT, BuildOn::Local),
        )
        .await
        .unwrap();

    f.assert_live(Color::Green).await;
    assert_eq!(f.stack.runtime.builds(), [(CONTEXT.into(), BuildOn::Local)]);
    let events = drain_events(&mut rx);
    let report = shipped(&events);
    assert!(report.built_locally);
    assert_eq!((report.outcome, report.layers_sent), (ShipOutcome::Sent, 2));
    assert_monotonic_and_complete(&events);
    let phases: Vec<ShipPhase> = ship_progress(&events).iter().map(|p| p.0).collect();
    assert_eq!(
        phases.first(),
        Some(&ShipPhase::Build),
        "the build is reported: {phases:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_build_context_built_on_the_server_sends_no_layers() {
    let f = Fixture::with_v1_live().await;
    f.stack.runtime.add_build_context(CONTEXT, AppBehavior::default());
    let mut rx = f.deployer.subscribe();

    f.deployer
        .deploy_from(
            release("v4"),
            ReleaseSource::build_context(CONTEXT, BuildOn::Server),
        )
        .await
        .unwrap();

    f.assert_live(Color::Green).await;
    assert_eq!(f.stack.runtime.builds(), [(CONTEXT.into(), BuildOn::Server)]);
    let events = drain_events(&mut rx);
    let report = shipped(&events);
    assert_eq!(
        (report.outcome, report.layers_sent, report.built_locally),
        (ShipOutcome::BuiltOnServer, 0, false)
    );
    assert!(
        ship_progress(&events).iter().all(|p| p.0 == ShipPhase::Build),
        "nothing was sent"
    );
}

#[tokio::test(start_paused = true)]
async fn an_image_the_server_has_is_a_no_op_that_says_so() {
    let f = Fixture::with_v1_live().await;
    f.stack.runtime.add_build_context(CONTEXT, AppBehavior::default());
    let mut rx = f.deployer.subscribe();

    // v2 is on the server already: the context is not even built.
    let record = f
        .deployer
        .deploy_from(
            release("v2"),
            ReleaseSource::build_context(CONTEXT, BuildOn::Local),
        )
        .await
        .unwrap();

    f.assert_live(Color::Green).await;
    assert!(f.stack.runtime.builds().is_empty(), "nothing was built");
    let events = drain_events(&mut rx);
    let report = shipped(&events);
    assert_eq!(
        (report.outcome, report.layers_sent, report.bytes_sent),
        (ShipOutcome::AlreadyPresent, 0, 0)
    );
    assert!(ship_progress(&events).is_empty(), "nothing to report progress of");
    let step = record.steps.iter().find(|s| s.step == Step::Ship).unwrap();
    assert_eq!(step.status, StepStatus::Ok);
    assert!(step.detail.contains("already on the server"), "{}", step.detail);

    // Shipping a release a second time sends nothing either.
    f.stack
        .runtime
        .add_local_image("connect-dev:latest", AppBehavior::default());
    let first = f
        .deployer
        .ship(release("v4"), ReleaseSource::local_image("connect-dev:latest"))
        .await
        .unwrap();
    let second = f
        .deployer
        .ship(release("v4"), ReleaseSource::local_image("connect-dev:latest"))
        .await
        .unwrap();
    assert_eq!(first.outcome, ShipOutcome::Sent);
    assert_eq!(
        (second.outcome, second.layers_sent),
        (ShipOutcome::AlreadyPresent, 0)
    );
    assert_eq!(first.image_id, second.image_id);
}

#[tokio::test(start_paused = true)]
async fn a_standalone_ship_reports_its_step_and_changes_no_journal() {
    let f = Fixture::with_v1_live().await;
    f.stack
        .runtime
        .add_local_image("connect-dev:latest", AppBehavior::default());
    let before = f.journal().await;
    let mut rx = f.deployer.subscribe();

    let report = f
        .deployer
        .ship(release("v4"), ReleaseSource::local_image("connect-dev:latest"))
        .await
        .unwrap();

    assert!(f.stack.runtime.has_image(&release("v4").image));
    assert_eq!(f.journal().await, before, "a ship records nothing");
    f.assert_live(Color::Blue).await;
    let events = drain_events(&mut rx);
    assert_eq!(events.first(), Some(&Event::StepStarted { step: Step::Ship }));
    assert!(
        matches!(events.last(), Some(Event::StepFinished { step: Step::Ship, detail, .. }) if *detail == report.summary()),
        "{events:?}"
    );
    assert_monotonic_and_complete(&events);
}

#[tokio::test(start_paused = true)]
async fn progress_is_rate_limited() {
    let f = Fixture::with_v1_live().await;
    f.stack
        .runtime
        .add_local_image("connect-dev:latest", AppBehavior::default());
    let mut rx = f.deployer.subscribe();
    let started = tokio::time::Instant::now();
    let report = f
        .deployer
        .ship(release("v4"), ReleaseSource::local_image("connect-dev:latest"))
        .await
        .unwrap();
    let took = started.elapsed();
    let events = drain_events(&mut rx);
    let p = ship_progress(&events);
    // The in-memory link sends 4 MiB chunks at 100 MB/s, a report each: ~30 reports for the 120 MB.
    let allowed = (took.as_millis() / SHIP_PROGRESS_EVERY.as_millis()) as usize + report.layers_sent + 2;
    assert!(
        p.len() <= allowed,
        "{} events in {took:?} (at most {allowed}): {p:?}",
        p.len()
    );
    assert!(p.len() >= 3, "the bar moves during the send: {p:?}");
}

#[tokio::test(start_paused = true)]
async fn every_failure_kind_at_ship_leaves_traffic_and_the_server_untouched() {
    for kind in [
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::Failed,
        ErrorKind::Refused,
        ErrorKind::PermissionDenied,
    ] {
        let f = Fixture::with_v1_live().await;
        f.stack
            .runtime
            .add_local_image("connect-dev:latest", AppBehavior::default());
        f.stack.faults().fail("runtime.ship", kind);
        let err = f
            .deployer
            .deploy_from(release("v4"), ReleaseSource::local_image("connect-dev:latest"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        f.assert_live(Color::Blue).await;
        assert_eq!(f.containers(), ["connect_app1"], "{kind}: nothing started");
        assert!(
            !f.stack.runtime.has_image(&release("v4").image),
            "{kind}: nothing tagged"
        );
        let journal = f.journal().await;
        let last = journal.history.last().unwrap();
        assert_eq!(last.outcome.failed_step(), Some(Step::Ship), "{kind}");
        assert_eq!(ship_step_status(last), Some(StepStatus::Failed));
    }
}

#[tokio::test(start_paused = true)]
async fn a_link_broken_mid_send_tags_nothing_and_the_next_deploy_ships() {
    let f = Fixture::with_v1_live().await;
    f.stack
        .runtime
        .add_local_image("connect-dev:latest", AppBehavior::default());
    f.stack.runtime.cut_ships_after(50_000_000);
    let mut rx = f.deployer.subscribe();
    let source = ReleaseSource::local_image("connect-dev:latest");
    let err = f
        .deployer
        .deploy_from(release("v4"), source.clone())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("nothing was tagged"), "{err}");
    f.assert_live(Color::Blue).await;
    assert!(!f.stack.runtime.has_image(&release("v4").image));
    let events = drain_events(&mut rx);
    let p = ship_progress(&events);
    assert!(
        p.windows(2).all(|w| w[1].3 >= w[0].3) && p.last().is_some_and(|l| l.3 > 0 && l.3 < l.4),
        "progress grew and stopped short: {p:?}"
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Shipped(_))));

    f.stack.runtime.cut_ships_after(u64::MAX);
    f.deployer.deploy_from(release("v4"), source).await.unwrap();
    f.assert_live(Color::Green).await;
}

#[tokio::test(start_paused = true)]
async fn missing_sources_and_a_reused_version_are_refused_with_a_fix() {
    let f = Fixture::with_v1_live().await;
    let cases = [
        (
            release("v4"),
            ReleaseSource::local_image("nope:dev"),
            ErrorKind::NotFound,
            "docker build",
        ),
        (
            release("v4"),
            ReleaseSource::build_context("/no/such/dir", BuildOn::Local),
            ErrorKind::NotFound,
            "Dockerfile",
        ),
        (
            release("v4"),
            ReleaseSource::local_image(" "),
            ErrorKind::InvalidInput,
            "local image",
        ),
    ];
    for (r, source, kind, hint) in cases {
        let err = f.deployer.deploy_from(r, source.clone()).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{source}: {err}");
        assert!(err.hint().is_some_and(|h| h.contains(hint)), "{source}: {err}");
        f.assert_live(Color::Blue).await;
    }
    // v2 on the server is another image than this local one: a version names one image.
    f.stack
        .runtime
        .add_local_image("connect-dev:latest", AppBehavior::default());
    let err = f
        .deployer
        .deploy_from(release("v2"), ReleaseSource::local_image("connect-dev:latest"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("new version"), "{err}");
    f.assert_live(Color::Blue).await;
}

/// The JSON a caller (the CLI's `--json`, the Python package's event classes) reads: these keys, pinned.
#[test]
fn ship_events_serialize_with_the_keys_callers_read() {
    let keys = |e: &Event| -> Vec<String> {
        let json = serde_json::to_value(e).unwrap();
        let mut keys: Vec<String> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let progress = Event::ShipProgress {
        phase: ShipPhase::Send,
        layers_done: 1,
        layers_total: 2,
        bytes_done: 3,
        bytes_total: 4,
    };
    assert_eq!(
        keys(&progress),
        [
            "bytes_done",
            "bytes_total",
            "event",
            "layers_done",
            "layers_total",
            "phase"
        ]
    );
    assert_eq!(serde_json::to_value(&progress).unwrap()["event"], "ship_progress");
    let shipped = Event::Shipped(ShipReport {
        image: "connect:v4".into(),
        image_id: "sha256:ab".into(),
        outcome: ShipOutcome::Sent,
        built_locally: true,
        layers_total: 3,
        layers_sent: 2,
        bytes_sent: 5,
    });
    assert_eq!(
        keys(&shipped),
        [
            "built_locally",
            "bytes_sent",
            "event",
            "image",
            "image_id",
            "layers_sent",
            "layers_total",
            "outcome"
        ]
    );
    let json = serde_json::to_value(&shipped).unwrap();
    assert_eq!(
        (&json["event"], &json["outcome"]),
        (&"shipped".into(), &"sent".into())
    );
}
