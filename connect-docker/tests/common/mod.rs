//! Shared by the real tests: a scope per test, cleaned up whether the test passes or panics, and the
//! runtime conformance suite's fixture on the test app.

// Each test binary uses part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use connect_core::conformance::RuntimeFixture;
use connect_core::model::ImageRef;
use connect_core::runtime::OneOff;
use connect_core::testing::free_port;
use connect_docker::Docker;
use connect_docker::testing::{TestScope, incompressible, local_docker, test_app_context};

/// The runtime suite's fixture on the test app: `healthy` and `unhealthy` images, containers named after
/// `prefix`, `/app echo` as the exec, `exit 0` and `exit 3` as the jobs.
pub(crate) fn test_app_fixture(healthy: &ImageRef, unhealthy: &ImageRef, prefix: String) -> RuntimeFixture {
    let job = |code: &str| OneOff {
        image: healthy.clone(),
        command: vec!["exit".into(), code.into()],
        env: BTreeMap::new(),
        deadline: Duration::from_secs(30),
        labels: Default::default(),
    };
    RuntimeFixture {
        healthy_image: healthy.clone(),
        unhealthy_image: unhealthy.clone(),
        prefix,
        host_port: free_port(),
        exec_echo: vec!["/app".into(), "echo".into(), "conformance".into()],
        job_ok: job("0"),
        job_fail: job("3"),
    }
}

/// Runs `body` with the local engine and a fresh scope, then removes the scope's containers and images,
/// then re-raises the body's panic, if any. Skips (loudly) when there is no engine and real tests are not
/// required.
pub(crate) async fn with_scope<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Docker, TestScope) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(docker) = local_docker(test).await else {
        return;
    };
    let scope = TestScope::new(test);
    let outcome = tokio::spawn(body(docker.clone(), scope.clone())).await;
    scope.clean(&docker).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Two releases as a deploy ships them: `v1` holding `base` incompressible bytes, and `v2` on top of it with a
/// 10 kB layer of its own, so a destination that has v1 lacks one layer of v2. `seed` varies the bytes (and
/// `seed + 1` v2's), so tests running at once share no layer.
pub(crate) async fn base_and_release(
    docker: &Docker,
    scope: &TestScope,
    base: usize,
    seed: u64,
) -> (ImageRef, ImageRef) {
    let v1 = scope
        .build(
            docker,
            "v1",
            test_app_context(None, &[("data", incompressible(base, seed))], &[]).unwrap(),
        )
        .await
        .unwrap();
    let v2 = scope
        .build(
            docker,
            "v2",
            test_app_context(
                Some(&v1.to_string()),
                &[("release", incompressible(10_000, seed + 1))],
                &[],
            )
            .unwrap(),
        )
        .await
        .unwrap();
    (v1, v2)
}
