use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use futures::StreamExt;

use super::assert_kind;
use crate::error::ErrorKind;
use crate::model::ImageRef;
use crate::runtime::{ContainerRuntime, ContainerSpec, ContainerState, Health, LogQuery, OneOff, labels};

/// What a runtime's suite needs from the test.
#[derive(Debug, Clone)]
pub struct RuntimeFixture {
    /// An image whose container becomes healthy.
    pub healthy_image: ImageRef,
    /// An image whose container never becomes healthy.
    pub unhealthy_image: ImageRef,
    /// A prefix for container names, unique to the test run.
    pub prefix: String,
    /// A free host port.
    pub host_port: u16,
    /// A command that prints `conformance` inside a running container.
    pub exec_echo: Vec<String>,
    /// A one-off job that exits 0, and one that exits non-zero.
    pub job_ok: OneOff,
    /// See `job_ok`.
    pub job_fail: OneOff,
}

/// The promises of [`ContainerRuntime`]: a container starts, turns healthy, is found by label, logs, runs
/// commands, stops and goes; names do not collide; an unhealthy one is reported with its check output;
/// missing things are `NotFound`; one-off jobs report their exit code.
pub async fn runtime_suite(rt: &dyn ContainerRuntime, f: &RuntimeFixture) {
    let since = SystemTime::now() - Duration::from_secs(1);
    let name = format!("{}-ok", f.prefix);
    let label = (labels::APP.to_string(), f.prefix.clone());
    let spec = ContainerSpec {
        name: name.clone(),
        image: f.healthy_image.clone(),
        labels: BTreeMap::from([label.clone()]),
        env: BTreeMap::from([("CONNECT_COLOR".into(), "blue".into())]),
        ports: vec![(3000, f.host_port)],
        command: None,
        health_path: Some("/api/health".into()),
        stop_grace: Duration::from_secs(5),
    };
    assert!(
        rt.image(&f.healthy_image).await.expect("image").is_some(),
        "the fixture's image exists"
    );
    let missing = f.healthy_image.with_tag("no-such-tag").expect("tag");
    assert!(
        rt.image(&missing).await.expect("image").is_none(),
        "a missing image is None"
    );

    rt.start(&spec).await.expect("start");
    assert_kind(
        rt.start(&spec).await,
        ErrorKind::Conflict,
        "a second container with the same name",
    );
    let info = rt
        .wait_healthy(&name, Duration::from_secs(60))
        .await
        .expect("becomes healthy");
    assert_eq!(info.health, Health::Healthy);
    assert_eq!(info.state, ContainerState::Running);
    let listed = rt.list(&BTreeMap::from([label.clone()])).await.expect("list");
    assert_eq!(
        listed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        [name.as_str()],
        "found by label"
    );
    rt.logs_since(&name, since).await.expect("logs");
    let tail: Vec<_> = rt
        .logs(
            &name,
            LogQuery {
                tail: Some(1),
                follow: false,
            },
        )
        .await
        .expect("the log's last line")
        .collect()
        .await;
    assert!(tail.len() <= 1, "tail 1 gives at most one line: {tail:?}");
    assert!(tail.iter().all(|l| l.is_ok()), "{tail:?}");
    let repository = f.healthy_image.repository();
    let images = rt.list_images(repository).await.expect("list images");
    assert!(
        images
            .iter()
            .any(|i| i.tags.contains(&f.healthy_image.to_string())),
        "the fixture's image is listed under {repository}: {images:?}"
    );
    assert_kind(
        rt.delete_image(&missing).await,
        ErrorKind::NotFound,
        "deleting a missing image",
    );
    // A followed log ends when its container stops: a reader is never left waiting on a dead one.
    let mut followed = rt
        .logs(
            &name,
            LogQuery {
                tail: Some(0),
                follow: true,
            },
        )
        .await
        .expect("follow the log");
    // Resource use of a running container: a reading with memory in use, or no such figures at all.
    match rt.stats(&name).await {
        Ok(Some(stats)) => assert!(
            stats.memory_bytes > 0,
            "a running container uses memory: {stats:?}"
        ),
        Ok(None) => panic!("stats of a running container said it is missing"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported, "stats: {e}"),
    }
    match rt.stats(&format!("{}-missing", f.prefix)).await {
        Ok(found) => assert!(found.is_none(), "stats of a missing container: {found:?}"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported, "stats: {e}"),
    }
    let out = rt.exec(&name, &f.exec_echo).await.expect("exec");
    assert_eq!(out.exit_code, 0, "exec exit code: {out:?}");
    assert!(out.output.contains("conformance"), "exec output: {out:?}");

    rt.stop(&name, Duration::from_secs(5)).await.expect("stop");
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while followed.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the followed log ended when the container stopped");
    rt.stop(&name, Duration::from_secs(5))
        .await
        .expect("stopping a stopped container is fine");
    assert_eq!(
        rt.inspect(&name)
            .await
            .expect("inspect")
            .expect("still there")
            .state,
        ContainerState::Exited
    );
    rt.remove(&name).await.expect("remove");
    assert!(rt.inspect(&name).await.expect("inspect").is_none(), "removed");
    assert_kind(
        rt.remove(&name).await,
        ErrorKind::NotFound,
        "removing a missing container",
    );
    assert_kind(
        rt.logs_since(&name, since).await,
        ErrorKind::NotFound,
        "logs of a missing container",
    );
    assert_kind(
        rt.logs(&name, LogQuery::default()).await.map(drop),
        ErrorKind::NotFound,
        "the log stream of a missing container",
    );

    let bad = format!("{}-bad", f.prefix);
    rt.start(&ContainerSpec {
        name: bad.clone(),
        image: f.unhealthy_image.clone(),
        ports: vec![],
        ..spec.clone()
    })
    .await
    .expect("start the unhealthy image");
    let err = rt
        .wait_healthy(&bad, Duration::from_secs(60))
        .await
        .expect_err("never healthy");
    assert!(
        matches!(err.kind(), ErrorKind::Unhealthy | ErrorKind::Timeout),
        "unhealthy or timeout: {err}"
    );
    assert!(!err.message().is_empty(), "the error carries the check output");
    rt.stop(&bad, Duration::from_secs(1)).await.expect("stop");
    rt.remove(&bad).await.expect("remove");

    assert_eq!(
        rt.run_once(&f.job_ok).await.expect("job").exit_code,
        0,
        "a job that succeeds exits 0"
    );
    assert_ne!(
        rt.run_once(&f.job_fail).await.expect("job").exit_code,
        0,
        "a failing job's exit code is kept"
    );
}
