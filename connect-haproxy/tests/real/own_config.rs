//! Tests that start a haproxy of their own with a config of their own rather than the shared stack: the
//! HTTPS variant, map files written back, the admin socket's mode and group.

use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::testing::{Signal, send_signal};
use connect_core::wait::poll_until;
use connect_haproxy::testing::require_haproxy;
use connect_haproxy::{Haproxy, RuntimeApi};

use super::DEADLINE;

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
