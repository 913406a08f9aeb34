//! Shared by the real tests: a scope per test, cleaned up whether the test passes or panics.

use std::future::Future;

use connect_docker::Docker;
use connect_docker::testing::{TestScope, local_docker};

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
