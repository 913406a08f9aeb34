//! Reloads: the switched state survives one, a bad config is refused before it is installed, a failed
//! reload is reported while the old worker serves.

use connect_core::router::AdminState;
use connect_core::{ErrorKind, TrafficRouter};
use connect_haproxy::Weight;

use super::{DEADLINE, get_version, stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_the_switched_state() {
    let Some(s) = stack("reload_keeps_the_switched_state").await else {
        return;
    };
    s.hx.switch(Some("app1"), "app2", DEADLINE)
        .await
        .expect("to green");
    s.hx.set_server_weight("app2", Weight::Absolute(42))
        .await
        .expect("weight");
    let before = s.proc.master().show_proc().await.expect("show proc");
    let reload = s.hx.reload(DEADLINE).await.expect("reload");
    assert!(!reload.new_workers.is_empty());
    assert!(
        reload
            .new_workers
            .iter()
            .all(|w| !before.workers.iter().any(|b| b.pid == *w))
    );
    let app1 = s.hx.server("app1").await.expect("app1");
    let app2 = s.hx.wait_up("app2", DEADLINE).await.expect("app2");
    assert_eq!(
        app1.admin,
        AdminState::Drain,
        "blue stays drained after the reload"
    );
    assert_eq!((app2.admin, app2.weight), (AdminState::Ready, 42));
    assert_eq!(get_version(&s).await, "green");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_is_refused_and_never_installed() {
    let Some(s) = stack("bad_config_is_refused_and_never_installed").await else {
        return;
    };
    let good = std::fs::read_to_string(&s.proc.config_path).expect("config");
    let bad = format!("{good}\n    definitely_not_a_keyword 1\n");
    let e = s.proc.installer().install(&bad).await.expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("ALERT"), "HAProxy's words: {e}");
    assert_eq!(
        std::fs::read_to_string(&s.proc.config_path).expect("config"),
        good,
        "unchanged"
    );
    s.proc
        .installer()
        .validate(&good)
        .await
        .expect("the good one validates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_reload_is_reported_and_the_old_worker_serves() {
    let Some(s) = stack("failed_reload_is_reported_and_the_old_worker_serves").await else {
        return;
    };
    let good = std::fs::read_to_string(&s.proc.config_path).expect("config");
    // Someone edited the file by hand, past the installer.
    std::fs::write(&s.proc.config_path, format!("{good}\n    broken_keyword\n")).expect("write");
    let e = s.hx.reload(DEADLINE).await.expect_err("reload fails");
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(e.to_string().contains("old worker"), "{e}");
    assert_eq!(get_version(&s).await, "blue", "the old worker still serves");
    std::fs::write(&s.proc.config_path, good).expect("restore");
    s.hx.reload(DEADLINE).await.expect("reload with the good config");
}
