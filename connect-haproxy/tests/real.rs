//! Against the real HAProxy: master-worker on 127.0.0.1, in front of two real HTTP apps (blue and green).
//! With `CONNECT_REAL_TESTS=1` a missing haproxy fails every test here.

use std::net::IpAddr;
use std::time::Duration;

use connect_core::conformance::{assert_kind, router_suite};
use connect_core::router::{AdminState, CheckState};
use connect_core::testing::{Signal, send_signal};
use connect_core::wait::poll_until;
use connect_core::{ErrorKind, TrafficRouter};
use connect_haproxy::stat::StatusWord;
use connect_haproxy::testing::{Load, TestStack, require_haproxy};
use connect_haproxy::{Haproxy, RuntimeApi, Socket, Weight};

const DEADLINE: Duration = Duration::from_secs(10);

/// A haproxy started with a config of the test's own, stopped (SIGTERM, then SIGKILL) when dropped, even
/// when an assertion fails first.
struct Stop(std::process::Child);

impl Stop {
    /// Installs `config` at `dir/haproxy.cfg` through `haproxy -c` and starts `haproxy -W [-S master] -f` on
    /// it.
    async fn start(
        program: &std::path::Path,
        dir: &std::path::Path,
        config: &str,
        master: Option<&std::path::Path>,
    ) -> Stop {
        let path = dir.join("haproxy.cfg");
        connect_haproxy::ConfigInstaller::new(program, &path)
            .install(config)
            .await
            .expect("haproxy -c accepts the config");
        let mut command = std::process::Command::new(program);
        command.arg("-W");
        if let Some(master) = master {
            command.arg("-S").arg(master);
        }
        let child = command
            .arg("-f")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("haproxy starts");
        Stop(child)
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = send_signal(self.0.id(), Signal::SIGTERM);
        for _ in 0..200 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The shared stack: blue (`app1`) live, green (`app2`) drained, both checked UP.
async fn stack(test: &str) -> Option<TestStack> {
    TestStack::start(test).await.expect("the test stack starts")
}

async fn live(hx: &Haproxy) -> Vec<String> {
    hx.servers()
        .await
        .expect("servers")
        .into_iter()
        .filter(|s| s.is_live())
        .map(|s| s.name)
        .collect()
}

/// One request through HAProxy on a fresh connection; returns the version that answered.
async fn get_version(stack: &TestStack) -> String {
    let load = Load::start(stack.proc.http_addr(), 1, Duration::from_secs(5));
    poll_until(
        "test.get",
        "haproxy",
        DEADLINE,
        Duration::from_millis(1),
        || async {
            Ok(if load.answered() > 0 {
                Ok(())
            } else {
                Err("no answer yet".to_string())
            })
        },
    )
    .await
    .expect("an answer");
    let report = load.stop().await;
    assert_eq!(report.failed, 0, "{:?}", report.errors);
    let mut versions: Vec<_> = report.by_version.keys().cloned().collect();
    assert_eq!(versions.len(), 1, "one version answered: {versions:?}");
    versions.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_against_real_haproxy() {
    let Some(s) = stack("conformance_suite_passes_against_real_haproxy").await else {
        return;
    };
    router_suite(&s.hx, "app1", "app2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_read_back_from_show_stat_and_servers_state() {
    let Some(s) = stack("states_read_back_from_show_stat_and_servers_state").await else {
        return;
    };
    s.hx.set_admin("app1", AdminState::Maint).await.expect("maint");
    let row = s.hx.stat().await.expect("stat");
    let app1 = row.iter().find(|r| r.name == "app1").expect("app1");
    assert_eq!(app1.status.word, StatusWord::Maint);
    assert_eq!(app1.check(), CheckState::Unknown);
    let state =
        s.hx.api()
            .show_servers_state(Some("be_app"))
            .await
            .expect("state");
    let app1 = state.rows.iter().find(|r| r.server == "app1").expect("app1 row");
    assert_eq!(app1.admin(), AdminState::Maint);

    s.hx.set_admin("app1", AdminState::Drain).await.expect("drain");
    let state =
        s.hx.api()
            .show_servers_state(Some("be_app"))
            .await
            .expect("state");
    let app1 = state.rows.iter().find(|r| r.server == "app1").expect("app1 row");
    assert_eq!(app1.admin(), AdminState::Drain);
    s.hx.set_admin("app1", AdminState::Ready).await.expect("ready");
    let st = s.hx.wait_up("app1", DEADLINE).await.expect("up again");
    assert_eq!(st.status.word, StatusWord::Up);
    // Every change was saved to the server-state-file, in HAProxy's own format.
    let saved = std::fs::read_to_string(&s.proc.state_file).expect("state file");
    assert!(saved.starts_with("1\n# be_id"), "{saved}");
    assert!(saved.contains(" be_app ") && saved.contains(" app1 "), "{saved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_absolute_and_percent() {
    let Some(s) = stack("weight_absolute_and_percent").await else {
        return;
    };
    s.hx.set_server_weight("app1", Weight::Absolute(37))
        .await
        .expect("37");
    assert_eq!(s.hx.server("app1").await.expect("app1").weight, 37);
    s.hx.set_server_weight("app1", Weight::Percent(50))
        .await
        .expect("50%");
    // Percent is of the configured weight (100).
    assert_eq!(s.hx.server("app1").await.expect("app1").weight, 50);
    s.hx.set_server_weight("app1", Weight::Absolute(0))
        .await
        .expect("0");
    let app1 = s.hx.server("app1").await.expect("app1");
    assert_eq!(
        (app1.weight, app1.check),
        (0, CheckState::Up),
        "weight 0 still reads UP"
    );
    assert!(!app1.is_live());
    // A weight put back while the server is in MAINT is the weight it comes back with, and reads so at
    // once (`show stat`'s effective weight would still say 0: the canary's undo read it as not put back).
    s.hx.set_state("app1", AdminState::Maint).await.expect("maint");
    s.hx.set_weight("app1", 100).await.expect("100");
    assert_eq!(s.hx.server("app1").await.expect("app1").weight, 100);
    s.hx.set_state("app1", AdminState::Ready).await.expect("ready");
    assert_eq!(s.hx.server("app1").await.expect("app1").weight, 100);
    assert_kind(
        s.hx.set_server_weight("app1", Weight::Percent(101)).await,
        ErrorKind::InvalidInput,
        "101%",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_and_port_change_moves_traffic() {
    let Some(s) = stack("address_and_port_change_moves_traffic").await else {
        return;
    };
    assert_eq!(get_version(&s).await, "blue");
    let green = s.green.addr;
    let said =
        s.hx.set_server_address("app1", green.ip(), green.port())
            .await
            .expect("addr");
    assert!(said.contains("changed"), "HAProxy's sentence: {said}");
    assert_eq!(
        s.hx.server("app1").await.expect("app1").address,
        green.to_string()
    );
    assert_eq!(
        get_version(&s).await,
        "green",
        "app1 now forwards to green's port"
    );
    let blue = s.blue.addr;
    s.hx.set_address("app1", &blue.ip().to_string(), blue.port())
        .await
        .expect("back");
    assert_eq!(get_version(&s).await, "blue");
    assert_kind(
        s.hx.set_address("app1", "not-an-ip", 80).await,
        ErrorKind::InvalidInput,
        "host name",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_off_and_on() {
    let Some(s) = stack("health_checks_off_and_on").await else {
        return;
    };
    s.hx.set_health_checks("app1", false).await.expect("disable");
    let app1 =
        s.hx.stat()
            .await
            .expect("stat")
            .into_iter()
            .find(|r| r.name == "app1")
            .expect("app1");
    assert_eq!(app1.status.word, StatusWord::NoCheck);
    assert_eq!(
        s.hx.server("app1").await.expect("app1").check,
        CheckState::NoCheck
    );
    s.hx.set_health_checks("app1", true).await.expect("enable");
    let state =
        s.hx.api()
            .show_servers_state(Some("be_app"))
            .await
            .expect("state");
    assert!(
        state
            .rows
            .iter()
            .find(|r| r.server == "app1")
            .expect("row")
            .checks_enabled()
    );
    s.hx.wait_up("app1", DEADLINE).await.expect("checked UP again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_server_added_used_and_deleted() {
    let Some(s) = stack("dynamic_server_added_used_and_deleted").await else {
        return;
    };
    let g = s.green.addr;
    s.hx.add_server("app3", g.ip(), g.port(), &["check", "inter", "100ms"])
        .await
        .expect("add");
    assert_eq!(
        s.hx.server("app3").await.expect("app3").admin,
        AdminState::Maint,
        "starts in maint"
    );
    assert_kind(
        s.hx.add_server("app3", g.ip(), g.port(), &[]).await,
        ErrorKind::Conflict,
        "same name twice",
    );
    s.hx.switch(Some("app1"), "app3", DEADLINE)
        .await
        .expect("switch to the dynamic server");
    assert_eq!(get_version(&s).await, "green");
    s.hx.switch(Some("app3"), "app1", DEADLINE)
        .await
        .expect("back to app1");
    let refused = s.hx.del_server("app3").await;
    assert!(
        refused.is_err(),
        "a draining server cannot be deleted: {refused:?}"
    );
    s.hx.set_admin("app3", AdminState::Maint).await.expect("maint");
    s.hx.del_server("app3").await.expect("del");
    assert_kind(s.hx.server("app3").await, ErrorKind::NotFound, "deleted");
    assert_kind(
        s.hx.add_server("bad name", g.ip(), g.port(), &[]).await,
        ErrorKind::InvalidInput,
        "name with a space",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_up_times_out_on_a_failing_health_endpoint_and_switch_refuses() {
    let Some(s) = stack("wait_up_times_out_on_a_failing_health_endpoint_and_switch_refuses").await else {
        return;
    };
    s.green.set_healthy(false);
    poll_until(
        "test",
        "app2 DOWN",
        DEADLINE,
        Duration::from_millis(20),
        || async {
            let r = s.hx.server("app2").await?;
            Ok(if r.check == CheckState::Down {
                Ok(())
            } else {
                Err(format!("{r:?}"))
            })
        },
    )
    .await
    .expect("app2 seen DOWN");
    assert_kind(
        s.hx.wait_up("app2", Duration::from_millis(300)).await,
        ErrorKind::Timeout,
        "wait_up of a DOWN server",
    );
    let e =
        s.hx.switch(Some("app1"), "app2", Duration::from_millis(300))
            .await
            .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("traffic stays"), "{e}");
    assert_eq!(live(&s.hx).await, ["app1"], "traffic never left blue");
    assert_eq!(
        s.hx.server("app2").await.expect("app2").admin,
        AdminState::Drain,
        "restored"
    );
    assert_eq!(get_version(&s).await, "blue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_both_ways_under_traffic_and_drain() {
    let Some(s) = stack("switch_both_ways_under_traffic_and_drain").await else {
        return;
    };
    let load = Load::start(s.proc.http_addr(), 8, Duration::from_secs(60));
    let report =
        s.hx.switch(Some("app1"), "app2", DEADLINE)
            .await
            .expect("to green");
    assert_eq!(
        (report.drained.as_slice(), report.live.as_str()),
        (&["app1".to_string()][..], "app2")
    );
    s.hx.wait_drained("app1", DEADLINE).await.expect("blue drained");
    let blue_after = s.blue.served();
    let green_before = s.green.served();
    poll_until(
        "test",
        "green serves",
        DEADLINE,
        Duration::from_millis(5),
        || async {
            Ok(if s.green.served() > green_before + 50 {
                Ok(())
            } else {
                Err("waiting".to_string())
            })
        },
    )
    .await
    .expect("green takes traffic");
    assert_eq!(s.blue.served(), blue_after, "a drained blue takes no new request");
    let back =
        s.hx.switch(Some("app2"), "app1", DEADLINE)
            .await
            .expect("rollback to blue");
    assert_eq!(back.drained, ["app2"]);
    assert_eq!(live(&s.hx).await, ["app1"]);
    let r = load.stop().await;
    assert_eq!(r.failed, 0, "{:?}", r.errors);
    assert!(
        r.by_version.contains_key("green") && r.by_version.contains_key("blue"),
        "{r:?}"
    );
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_error_replies_become_typed_errors() {
    let Some(s) = stack("haproxy_error_replies_become_typed_errors").await else {
        return;
    };
    let e =
        s.hx.set_admin("nope", AdminState::Ready)
            .await
            .expect_err("unknown server");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("No such server."), "{e}");
    let other = Haproxy::new(RuntimeApi::unix(&s.proc.admin_socket), "be_nope").expect("name");
    let e = other
        .set_admin("app1", AdminState::Ready)
        .await
        .expect_err("unknown backend");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("No such backend."), "{e}");
    assert_kind(
        other.servers().await,
        ErrorKind::NotFound,
        "servers of an unknown backend",
    );
    // A socket at `level user` reads but may not change.
    let monitor = s.proc.config.monitor_socket.clone().expect("monitor socket");
    let user = Haproxy::new(RuntimeApi::unix(monitor), "be_app").expect("name");
    assert_eq!(user.servers().await.expect("read").len(), 2);
    let e = user
        .set_admin("app1", AdminState::Drain)
        .await
        .expect_err("not admin");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert_eq!(
        s.hx.server("app1").await.expect("app1").admin,
        AdminState::Ready,
        "nothing applied"
    );
    // A socket that is not there.
    let gone = Haproxy::new(RuntimeApi::unix(s.proc.dir().join("missing.sock")), "be_app").expect("name");
    let e = gone.servers().await.expect_err("missing socket");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.hint().is_some_and(|h| h.contains("level admin")), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_over_any_byte_stream() {
    let Some(s) = stack("works_over_any_byte_stream").await else {
        return;
    };
    let path = s.proc.admin_socket.clone();
    let socket = Socket::custom("test stream", move || {
        let path = path.clone();
        async move {
            let stream = tokio::net::UnixStream::connect(path).await.map_err(|e| {
                connect_core::Error::new(ErrorKind::Unavailable, "connect", "test", e.to_string())
            })?;
            Ok::<connect_core::host::BoxStream, connect_core::Error>(Box::pin(stream))
        }
    });
    let hx = Haproxy::new(RuntimeApi::new(socket), "be_app").expect("name");
    hx.switch(Some("app1"), "app2", DEADLINE)
        .await
        .expect("switch over the stream");
    assert_eq!(live(&hx).await, ["app2"]);
    assert_eq!(get_version(&s).await, "green");
}

/// The one switch refuses before changing anything when a third party serves: here `switch(None, ..)` while
/// both colors are live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_refuses_when_another_server_serves() {
    let Some(s) = stack("switch_refuses_when_another_server_serves").await else {
        return;
    };
    s.hx.set_admin("app2", AdminState::Ready).await.expect("ready");
    s.hx.wait_live("app2", DEADLINE).await.expect("app2 live");
    let e =
        s.hx.switch(None, "app1", DEADLINE)
            .await
            .expect_err("app2 serves too");
    assert_eq!(e.kind(), ErrorKind::Drift, "{e}");
    assert_eq!(live(&s.hx).await, ["app1", "app2"], "nothing was changed");
    let report =
        s.hx.switch(Some("app2"), "app1", DEADLINE)
            .await
            .expect("named, app2 drains");
    assert_eq!(report.drained, ["app2"]);
    assert_eq!(
        report
            .servers
            .iter()
            .filter(|s| s.is_live())
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["app1"],
        "the report carries the confirming `show stat`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_drained_and_wait_live_report_the_server() {
    let Some(s) = stack("wait_drained_and_wait_live_report_the_server").await else {
        return;
    };
    let r = s.hx.wait_drained("app2", DEADLINE).await.expect("app2 idle");
    assert_eq!(r.current_sessions, 0);
    assert_kind(
        s.hx.wait_live("app2", Duration::from_millis(100)).await,
        ErrorKind::Timeout,
        "a draining server never becomes live by itself",
    );
    let ip: IpAddr = "127.0.0.1".parse().expect("ip");
    assert_eq!(
        s.hx.server("app2").await.expect("app2").address,
        format!("{ip}:{}", s.green.addr.port())
    );
}

/// While 32 keep-alive clients send requests through HAProxy: 20 switches and 3 reloads; every request is
/// answered 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_downtime_under_load_through_20_switches_and_3_reloads() {
    let Some(s) = stack("zero_downtime_under_load_through_20_switches_and_3_reloads").await else {
        return;
    };
    let load = Load::start(s.proc.http_addr(), 32, Duration::from_secs(120));
    let mut reloads = 0;
    for i in 0..20 {
        let (from, to) = if i % 2 == 0 {
            ("app1", "app2")
        } else {
            ("app2", "app1")
        };
        let before = load.answered();
        s.hx.switch(Some(from), to, DEADLINE).await.expect("switch");
        if i % 7 == 3 {
            s.hx.reload(DEADLINE).await.expect("reload");
            reloads += 1;
        }
        // Let traffic flow on the new color before the next switch: wait for answers, not for time.
        poll_until(
            "test",
            "traffic flows",
            DEADLINE,
            Duration::from_millis(2),
            || async {
                Ok(if load.answered() >= before + 64 {
                    Ok(())
                } else {
                    Err("waiting".to_string())
                })
            },
        )
        .await
        .expect("requests keep being answered");
    }
    let r = load.stop().await;
    eprintln!(
        "zero-downtime: {} requests answered 200, {} failed, {} re-sent after an idle keep-alive close, by \
         version {:?}, {reloads} reloads, 20 switches",
        r.ok, r.failed, r.resent_on_closed_idle, r.by_version
    );
    assert_eq!(reloads, 3);
    assert_eq!(r.failed, 0, "every request answered 200: {:?}", r.errors);
    // `option idle-close-on-response`: an old worker never closes an idle connection under a client.
    assert_eq!(r.resent_on_closed_idle, 0, "no request needed a resend");
    assert!(r.ok > 20 * 64, "{r:?}");
    assert_eq!(live(&s.hx).await, ["app1"], "20 switches end where they began");
}

/// The admin socket reached through a `Host`'s byte stream (as over SSH), with the state file written
/// through the same `Host`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_through_a_host_connection_and_host_state_file() {
    use connect_core::host::{Endpoint, HostExt};
    use connect_core::memory::MemoryHost;
    use connect_haproxy::StateFile;
    use std::sync::Arc;

    let Some(s) = stack("works_through_a_host_connection_and_host_state_file").await else {
        return;
    };
    let host = Arc::new(MemoryHost::new("deploy@prod-host"));
    let endpoint = Endpoint::Unix("/run/haproxy/admin.sock".into());
    let mut incoming = host.listen(endpoint.clone());
    let admin = s.proc.admin_socket.clone();
    // The "server side" of the host: each stream is carried to the real admin socket.
    tokio::spawn(async move {
        while let Some(mut stream) = incoming.recv().await {
            let admin = admin.clone();
            tokio::spawn(async move {
                if let Ok(mut real) = tokio::net::UnixStream::connect(admin).await {
                    let _ = tokio::io::copy_bidirectional(&mut stream, &mut real).await;
                }
            });
        }
    });
    let hx = Haproxy::new(RuntimeApi::new(Socket::Host(host.clone(), endpoint)), "be_app")
        .expect("name")
        .with_state_file(StateFile::Host(
            host.clone(),
            "/var/lib/haproxy/server-state".into(),
        ));
    hx.switch(Some("app1"), "app2", DEADLINE)
        .await
        .expect("switch through the host");
    assert_eq!(live(&hx).await, ["app2"]);
    let saved = host
        .read_file("/var/lib/haproxy/server-state")
        .await
        .expect("read")
        .expect("the state file was written on the host");
    assert!(String::from_utf8_lossy(&saved).starts_with("1\n# be_id"));
    assert_eq!(get_version(&s).await, "green");
}

/// The HTTPS variant (certificate, redirect) is accepted by `haproxy -c`, and HTTP answers with the redirect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_config_validates_and_redirects() {
    use connect_core::testing::{free_port, require_program};
    use connect_haproxy::config::Https;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let test = "https_config_validates_and_redirects";
    let (Some(program), Some(openssl)) = (
        require_haproxy(test),
        require_program(test, "openssl", &["/usr/bin/openssl"]),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let made = std::process::Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let pem = dir.path().join("connect.pem");
    let bundle = [
        std::fs::read(&cert).expect("cert"),
        std::fs::read(&key).expect("key"),
    ]
    .concat();
    std::fs::write(&pem, bundle).expect("pem");

    let http: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut config = connect_haproxy::ProxyConfig::runbook(
        http,
        ([127, 0, 0, 1], free_port()).into(),
        ([127, 0, 0, 1], free_port()).into(),
        &dir.path().join("admin.sock"),
        &dir.path().join("server-state"),
    );
    config.https = Some(Https {
        bind: ([127, 0, 0, 1], free_port()).into(),
        certificate: pem.clone(),
    });
    let child = Stop::start(&program, dir.path(), &config.render().expect("render"), None).await;
    let answer = poll_until(test, "redirect", DEADLINE, Duration::from_millis(10), || async {
        let Ok(mut c) = tokio::net::TcpStream::connect(http).await else {
            return Ok(Err("not listening yet".to_string()));
        };
        let sent = c
            .write_all(b"GET /x HTTP/1.1\r\nHost: connect.test\r\nConnection: close\r\n\r\n")
            .await;
        let mut reply = String::new();
        let read = c.read_to_string(&mut reply).await;
        Ok(match (sent, read) {
            (Ok(()), Ok(_)) if !reply.is_empty() => Ok(reply),
            _ => Err("no answer yet".to_string()),
        })
    })
    .await;
    drop(child);
    let answer = answer.expect("HTTP answers");
    assert!(answer.starts_with("HTTP/1.1 301"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("location: https://connect.test/x"),
        "{answer}"
    );
}

/// A runtime map change is written back to the map file, so a reload keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_changes_are_written_back_and_survive_a_reload() {
    use connect_core::testing::free_port;
    use connect_haproxy::{MapFile, StateFile};

    let test = "map_changes_are_written_back_and_survive_a_reload";
    let Some(program) = require_haproxy(test) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let map = dir.path().join("live.map");
    std::fs::write(&map, "live blue\n").expect("map");
    let (admin, master) = (dir.path().join("admin.sock"), dir.path().join("master.sock"));
    let http: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = format!(
        "global\n    stats socket {} mode 600 level admin\n    master-worker\ndefaults\n    mode http\n    \
         timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {http}\n    \
         http-request return status 200 content-type text/plain lf-string \"%[str(live),map({},none)]\"\n\
         backend be_app\n    server app1 127.0.0.1:1 disabled\n",
        admin.display(),
        map.display()
    );
    let child = Stop::start(&program, dir.path(), &config, Some(&master)).await;
    let map_name = map.display().to_string();
    let hx = Haproxy::new(RuntimeApi::unix(&admin), "be_app")
        .expect("name")
        .with_master(RuntimeApi::unix(&master))
        .with_map(MapFile {
            name: map_name.clone(),
            file: StateFile::Local(map.clone()),
        });
    let ready = poll_until(
        test,
        "admin socket",
        DEADLINE,
        Duration::from_millis(10),
        || async {
            Ok(match RuntimeApi::unix(&master).show_proc().await {
                Ok(p) if !p.workers.is_empty() && hx.api().show_stat().await.is_ok() => Ok(()),
                other => Err(format!("{other:?}")),
            })
        },
    )
    .await;
    let outcome = async {
        ready?;
        hx.set_map_entry(&map_name, "live", "green").await?;
        hx.set_map_entry(&map_name, "since", "v2").await?;
        let written = std::fs::read_to_string(&map).expect("map file");
        assert_eq!(written, "live green\nsince v2\n");
        hx.reload(DEADLINE).await?;
        let after = hx
            .api()
            .execute(&connect_haproxy::Command::ShowMap {
                map: map_name.clone(),
            })
            .await?;
        assert!(after.contains(" live green"), "{after}");
        let e = hx
            .set_map_entry("/no/such.map", "live", "x")
            .await
            .expect_err("unknown map");
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        Ok::<(), connect_core::Error>(())
    }
    .await;
    drop(child);
    outcome.expect("map changes");
}

/// The group of the admin socket: HAProxy's own group when the test is root (a group that exists without
/// creating one), else the test user's primary group.
fn socket_group() -> (String, u32, bool) {
    let run = |argv: &[&str]| {
        std::process::Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let root = run(&["id", "-u"]).as_deref() == Some("0");
    let name = match run(&["getent", "group", "haproxy"]) {
        Some(_) if root => "haproxy".to_string(),
        _ => run(&["id", "-gn"]).expect("id -gn"),
    };
    let line = run(&["getent", "group", &name]).expect("getent group");
    let gid = line
        .split(':')
        .nth(2)
        .and_then(|g| g.parse().ok())
        .expect("a gid in getent's line");
    (name, gid, root)
}

/// `stats socket … mode 660 group G`: the rendered line says so, `haproxy -c` accepts it, the socket HAProxy
/// creates has that mode and group, and (as root) an unprivileged user reaches the runtime API through the
/// group alone: `nobody` with the group as a supplementary group gets `show info`, without it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_socket_takes_the_mode_and_group_asked_for() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use connect_core::testing::{free_port, require_program};
    use connect_haproxy::SocketAccess;

    let test = "admin_socket_takes_the_mode_and_group_asked_for";
    let Some(program) = require_haproxy(test) else {
        return;
    };
    let (group, gid, root) = socket_group();
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("admin.sock");
    let mut config = connect_haproxy::ProxyConfig::runbook(
        ([127, 0, 0, 1], free_port()).into(),
        ([127, 0, 0, 1], free_port()).into(),
        ([127, 0, 0, 1], free_port()).into(),
        &socket,
        &dir.path().join("server-state"),
    );
    config.admin_socket_access = SocketAccess::group(&group);
    let text = config.render().expect("render");
    let line = format!(
        "stats socket {} mode 660 group {group} level admin",
        socket.display()
    );
    assert!(text.contains(&line), "{text}");
    let _haproxy = Stop::start(&program, dir.path(), &text, None).await;
    let api = RuntimeApi::unix(&socket);
    poll_until(
        test,
        "admin socket",
        DEADLINE,
        Duration::from_millis(10),
        || async { Ok(api.show_stat().await.map(drop).map_err(|e| e.to_string())) },
    )
    .await
    .expect("the admin socket answers");
    let meta = std::fs::metadata(&socket).expect("socket metadata");
    assert_eq!(meta.mode() & 0o777, 0o660, "mode {:o}", meta.mode());
    assert_eq!(meta.gid(), gid, "the socket's group");

    if !root {
        eprintln!("{test}: not root, so the unprivileged-user half is skipped");
        return;
    }
    let (Some(setpriv), Some(perl)) = (
        require_program(test, "setpriv", &["/usr/bin/setpriv"]),
        require_program(test, "perl", &["/usr/bin/perl"]),
    ) else {
        return;
    };
    // `nobody` must be able to walk to the socket; the socket's own mode is what is under test.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod dir");
    let as_nobody = |groups: &str| {
        let script = "my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0]) \
                      or die \"connect: $!\\n\"; print $s \"show info\\n\"; shutdown($s, 1); print while <$s>;";
        let mut c = std::process::Command::new(&setpriv);
        c.args(["--reuid=65534", "--regid=65534"]);
        if groups.is_empty() {
            c.arg("--clear-groups");
        } else {
            c.arg(format!("--groups={groups}"));
        }
        c.arg(&perl)
            .args(["-MSocket", "-MIO::Socket::UNIX", "-e", script])
            .arg(&socket)
            .output()
            .expect("setpriv runs")
    };
    let member = as_nobody(&gid.to_string());
    let out = String::from_utf8_lossy(&member.stdout);
    assert!(
        member.status.success() && out.contains("Name: HAProxy"),
        "a member of {group} reaches the admin socket: {out} {}",
        String::from_utf8_lossy(&member.stderr)
    );
    let stranger = as_nobody("");
    let err = String::from_utf8_lossy(&stranger.stderr);
    assert!(
        !stranger.status.success() && err.contains("Permission denied"),
        "a user outside {group} is refused: {err}"
    );
}
