//! [`Guarded`] for [`ContainerRuntime`]: waits and jobs are bounded by their own deadlines, not by the call
//! timeout.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{Guarded, Repeat};
use crate::error::Result;
use crate::model::ImageRef;
use crate::runtime::{
    ContainerInfo, ContainerRuntime, ContainerSpec, ExecOutput, ImageFile, ImageInfo, OneOff,
};

#[async_trait]
impl<T: ContainerRuntime + ?Sized> ContainerRuntime for Guarded<T> {
    async fn image(&self, image: &ImageRef) -> Result<Option<ImageInfo>> {
        let target = image.to_string();
        self.call("runtime.image", &target, Repeat::Safe, || self.inner.image(image))
            .await
    }

    async fn start(&self, spec: &ContainerSpec) -> Result<ContainerInfo> {
        // A start whose answer was lost may have created the container: a second would be a name conflict.
        self.call("runtime.start", &spec.name, Repeat::Never, || {
            self.inner.start(spec)
        })
        .await
    }

    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>> {
        self.call("runtime.inspect", name, Repeat::Safe, || self.inner.inspect(name))
            .await
    }

    async fn wait_healthy(&self, name: &str, deadline: Duration) -> Result<ContainerInfo> {
        let limit = self.policy.beyond(deadline);
        self.call_within("runtime.wait_healthy", name, limit, Repeat::Never, || {
            self.inner.wait_healthy(name, deadline)
        })
        .await
    }

    async fn stop(&self, name: &str, grace: Duration) -> Result<()> {
        // Stopping a stopped container is fine, so a lost answer may be asked again; the app gets its grace.
        let limit = self.policy.beyond(grace);
        self.call_within("runtime.stop", name, limit, Repeat::Safe, || {
            self.inner.stop(name, grace)
        })
        .await
    }

    async fn remove(&self, name: &str) -> Result<()> {
        // Once removed, a second remove is NotFound: repeating would turn a success into an error.
        self.call("runtime.remove", name, Repeat::Never, || self.inner.remove(name))
            .await
    }

    async fn logs_since(&self, name: &str, since: SystemTime) -> Result<Vec<String>> {
        self.call("runtime.logs_since", name, Repeat::Safe, || {
            self.inner.logs_since(name, since)
        })
        .await
    }

    async fn exec(&self, name: &str, command: &[String]) -> Result<ExecOutput> {
        self.call("runtime.exec", name, Repeat::Never, || {
            self.inner.exec(name, command)
        })
        .await
    }

    async fn run_once(&self, job: &OneOff) -> Result<ExecOutput> {
        // A migration job runs once: its deadline is the job's, and a second run would migrate again.
        let target = job.image.to_string();
        let limit = self.policy.beyond(job.deadline);
        self.call_within("runtime.run_once", &target, limit, Repeat::Never, || {
            self.inner.run_once(job)
        })
        .await
    }

    async fn list(&self, labels: &BTreeMap<String, String>) -> Result<Vec<ContainerInfo>> {
        self.call("runtime.list", "", Repeat::Safe, || self.inner.list(labels))
            .await
    }

    async fn read_image_dir(&self, image: &ImageRef, dir: &str, max_bytes: u64) -> Result<Vec<ImageFile>> {
        self.call("runtime.read_image_dir", &image.to_string(), Repeat::Safe, || {
            self.inner.read_image_dir(image, dir, max_bytes)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::error::ErrorKind;
    use crate::layers::CallPolicy;
    use crate::memory::{AppBehavior, MemoryRuntime};
    use crate::model::Release;

    fn spec(name: &str, release: &Release) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: release.image.clone(),
            labels: BTreeMap::new(),
            env: BTreeMap::new(),
            ports: vec![(3000, 3000)],
            command: None,
            health_path: Some("/api/health".into()),
            stop_grace: Duration::from_secs(10),
        }
    }

    fn runtime_with(behavior: AppBehavior) -> (MemoryRuntime, Release) {
        let runtime = MemoryRuntime::new();
        let release = Release::new("connect", "v1").unwrap();
        runtime.add_image(&release.image, behavior);
        (runtime, release)
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_wait_healthy_within_its_deadline_is_not_cut() {
        let (runtime, release) = runtime_with(AppBehavior {
            ready_after: Duration::from_secs(90),
            ..AppBehavior::default()
        });
        let dyn_runtime: Arc<dyn ContainerRuntime> = Arc::new(runtime);
        let guarded = Guarded::shared(dyn_runtime, CallPolicy::default());
        guarded.start(&spec("connect_app1", &release)).await.unwrap();
        let t = tokio::time::Instant::now();
        let info = guarded
            .wait_healthy("connect_app1", Duration::from_secs(120))
            .await
            .expect("90 s of start-up is within the 120 s deadline, whatever the 10 s call timeout");
        assert!(info.is_serving());
        assert!(t.elapsed() >= Duration::from_secs(90), "{:?}", t.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_is_bounded_by_its_deadline_and_never_run_twice() {
        let (runtime, release) = runtime_with(AppBehavior::default());
        runtime
            .faults()
            .fail_times("runtime.run_once", ErrorKind::Unavailable, 1);
        let guarded = Guarded::new(runtime.clone(), CallPolicy::default());
        let job = OneOff {
            image: release.image.clone(),
            command: vec!["migrate".into()],
            env: BTreeMap::new(),
            deadline: Duration::from_secs(600),
            labels: Default::default(),
        };
        assert_eq!(
            guarded.run_once(&job).await.unwrap_err().kind(),
            ErrorKind::Unavailable,
            "returned as it came"
        );
        assert!(runtime.jobs().is_empty(), "not run a second time");
        guarded.run_once(&job).await.expect("runs when asked again");
    }

    #[tokio::test(start_paused = true)]
    async fn non_repeatable_calls_are_not_retried_and_reads_are() {
        let (runtime, release) = runtime_with(AppBehavior::default());
        let guarded = Guarded::new(runtime.clone(), CallPolicy::default());
        runtime
            .faults()
            .fail_times("runtime.start", ErrorKind::Unavailable, 1);
        assert_eq!(
            guarded
                .start(&spec("connect_app1", &release))
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::Unavailable
        );
        assert!(runtime.container_names().is_empty(), "start was not sent again");

        guarded.start(&spec("connect_app1", &release)).await.unwrap();
        runtime
            .faults()
            .fail_times("runtime.remove", ErrorKind::Timeout, 1);
        assert_eq!(
            guarded.remove("connect_app1").await.unwrap_err().kind(),
            ErrorKind::Timeout
        );
        assert_eq!(
            runtime.container_names(),
            ["connect_app1"],
            "remove was not sent again"
        );

        runtime
            .faults()
            .fail_times("runtime.inspect", ErrorKind::Unavailable, 2);
        assert!(
            guarded.inspect("connect_app1").await.unwrap().is_some(),
            "a read is asked again"
        );
    }

    /// A runtime that never answers.
    #[derive(Debug)]
    struct Silent;

    #[async_trait]
    impl ContainerRuntime for Silent {
        async fn image(&self, _: &ImageRef) -> Result<Option<ImageInfo>> {
            std::future::pending().await
        }
        async fn start(&self, _: &ContainerSpec) -> Result<ContainerInfo> {
            std::future::pending().await
        }
        async fn inspect(&self, _: &str) -> Result<Option<ContainerInfo>> {
            std::future::pending().await
        }
        async fn wait_healthy(&self, _: &str, _: Duration) -> Result<ContainerInfo> {
            std::future::pending().await
        }
        async fn stop(&self, _: &str, _: Duration) -> Result<()> {
            std::future::pending().await
        }
        async fn remove(&self, _: &str) -> Result<()> {
            std::future::pending().await
        }
        async fn logs_since(&self, _: &str, _: SystemTime) -> Result<Vec<String>> {
            std::future::pending().await
        }
        async fn exec(&self, _: &str, _: &[String]) -> Result<ExecOutput> {
            std::future::pending().await
        }
        async fn run_once(&self, _: &OneOff) -> Result<ExecOutput> {
            std::future::pending().await
        }
        async fn list(&self, _: &BTreeMap<String, String>) -> Result<Vec<ContainerInfo>> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_runtime_times_out() {
        let policy = CallPolicy {
            retries: 0,
            ..CallPolicy::default()
        };
        let guarded = Guarded::new(Silent, policy);
        let t = tokio::time::Instant::now();
        let e = guarded.inspect("connect_app1").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(t.elapsed(), Duration::from_secs(10));

        let t = tokio::time::Instant::now();
        let e = guarded
            .wait_healthy("connect_app1", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no answer within 70s"), "{e}");
        assert_eq!(
            t.elapsed(),
            Duration::from_secs(70),
            "its deadline plus the call timeout"
        );
    }
}
