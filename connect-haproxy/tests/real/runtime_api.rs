//! The runtime API itself: HAProxy's error replies become typed errors, and the socket works over any
//! byte stream, including a `Host`'s connection with the state file written through the same `Host`.

use connect_core::conformance::assert_kind;
use connect_core::router::AdminState;
use connect_core::{ErrorKind, TrafficRouter};
use connect_haproxy::{Haproxy, RuntimeApi, Socket};

use super::{DEADLINE, get_version, live, stack};

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
