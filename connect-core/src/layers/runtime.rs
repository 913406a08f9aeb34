//! [`Guarded`] for [`ContainerRuntime`]: waits and jobs are bounded by their own deadlines, not by the call
//! timeout; a ship by its progress.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::time::Instant;
use tracing::Instrument;

use super::{Guarded, Repeat};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{ImageRef, Release};
use crate::runtime::{
    ContainerInfo, ContainerRuntime, ContainerSpec, ContainerStats, ExecOutput, ImageFile, ImageInfo,
    LogQuery, LogStream, OneOff,
};
use crate::ship::{ReleaseSource, ShipProgress, ShipProgressFn, ShipReport};

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

    async fn stats(&self, name: &str) -> Result<Option<ContainerStats>> {
        self.call("runtime.stats", name, Repeat::Safe, || self.inner.stats(name))
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
    async fn ship(
        &self,
        release: &Release,
        source: &ReleaseSource,
        progress: ShipProgressFn,
    ) -> Result<ShipReport> {
        // A ship lasts as long as its image is big and its build slow: it is cut only after `long_timeout`
        // without progress (a silent build step compiling for minutes is not a stall). It is never repeated
        // here: the build and the export are consumed once and a second attempt would report progress from
        // zero again; the next deploy ships only what is still missing anyway.
        let idle = self.policy.long_timeout;
        let target = release.image.to_string();
        let last = Arc::new(Mutex::new(Instant::now()));
        let seen = Arc::clone(&last);
        let observed: ShipProgressFn = Arc::new(move |p: ShipProgress| {
            *lock(&seen) = Instant::now();
            progress(p);
        });
        let ship = self.inner.ship(release, source, observed);
        async {
            tokio::pin!(ship);
            loop {
                let stalled_at = *lock(&last) + idle;
                tokio::select! {
                    done = &mut ship => return done,
                    () = tokio::time::sleep_until(stalled_at) => {
                        // Progress may have come while this slept: only a full `idle` without any is a stall.
                        if *lock(&last) + idle <= Instant::now() {
                            return Err(Error::new(
                                ErrorKind::Timeout,
                                "runtime.ship",
                                &target,
                                format!("no progress for {idle:?}"),
                            )
                            .with_hint("check the build machine and the link to the server; nothing was tagged"));
                        }
                    }
                }
            }
        }
        .instrument(tracing::debug_span!(
            "backend",
            operation = "runtime.ship",
            target = %target
        ))
        .await
    }

    async fn logs(&self, name: &str, query: LogQuery) -> Result<LogStream> {
        let stream = self
            .call("runtime.logs", name, Repeat::Safe, || {
                self.inner.logs(name, query)
            })
            .await?;
        if query.follow {
            // A quiet app may write nothing for hours: a followed log is bounded by whoever reads it.
            return Ok(stream);
        }
        Ok(bounded_lines(stream, self.policy.timeout, name.to_string()))
    }

    async fn list_images(&self, repository: &str) -> Result<Vec<ImageInfo>> {
        self.call("runtime.list_images", repository, Repeat::Safe, || {
            self.inner.list_images(repository)
        })
        .await
    }

    async fn delete_image(&self, image: &ImageRef) -> Result<()> {
        // Once deleted, a second delete is NotFound: repeating would turn a success into an error.
        let target = image.to_string();
        self.call("runtime.delete_image", &target, Repeat::Never, || {
            self.inner.delete_image(image)
        })
        .await
    }
}

fn lock(last: &Mutex<Instant>) -> std::sync::MutexGuard<'_, Instant> {
    last.lock().unwrap_or_else(|p| p.into_inner())
}

/// A log read to its end gets at most `limit` between lines; past it the stream ends with a `Timeout`.
fn bounded_lines(stream: LogStream, limit: Duration, name: String) -> LogStream {
    use futures::StreamExt;
    futures::stream::unfold(Some(stream), move |state| {
        let name = name.clone();
        async move {
            let mut stream = state?;
            match tokio::time::timeout(limit, stream.next()).await {
                Ok(Some(item)) => Some((item, Some(stream))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(crate::error::Error::new(
                        crate::error::ErrorKind::Timeout,
                        "runtime.logs",
                        &name,
                        format!("no log line within {limit:?}"),
                    )),
                    None,
                )),
            }
        }
    })
    .boxed()
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

    /// A runtime that never answers; its ship reports progress `reports` times, 100 s apart, then succeeds
    /// (or, with no report, hangs).
    #[derive(Debug)]
    struct Silent {
        reports: u32,
    }

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
        async fn logs(&self, _: &str, _: LogQuery) -> Result<LogStream> {
            use futures::StreamExt;
            // Opens at once, then never gives a line.
            Ok(futures::stream::pending().boxed())
        }
        async fn list_images(&self, _: &str) -> Result<Vec<ImageInfo>> {
            std::future::pending().await
        }
        async fn delete_image(&self, _: &ImageRef) -> Result<()> {
            std::future::pending().await
        }
        async fn ship(
            &self,
            release: &Release,
            _: &ReleaseSource,
            progress: ShipProgressFn,
        ) -> Result<ShipReport> {
            if self.reports == 0 {
                std::future::pending::<()>().await;
            }
            for i in 1..=self.reports {
                // Simulated time between reports (paused time), not synchronisation.
                tokio::time::sleep(Duration::from_secs(100)).await;
                progress(ShipProgress {
                    phase: crate::ship::ShipPhase::Send,
                    layers_done: 0,
                    layers_total: 1,
                    bytes_done: u64::from(i),
                    bytes_total: u64::from(self.reports),
                });
            }
            Ok(ShipReport {
                image: release.image.to_string(),
                image_id: "sha256:1".into(),
                outcome: crate::ship::ShipOutcome::Sent,
                built_locally: false,
                layers_total: 1,
                layers_sent: 1,
                bytes_sent: u64::from(self.reports),
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_ship_is_cut_only_after_long_timeout_without_progress() {
        let release = Release::new("connect", "v1").unwrap();
        let source = ReleaseSource::local_image("connect:dev");
        let none: ShipProgressFn = Arc::new(|_| {});
        let policy = CallPolicy::default();

        // Twenty reports 100 s apart: 2000 s in all, far past long_timeout (300 s), never 300 s without one.
        let slow = Guarded::new(Silent { reports: 20 }, policy);
        let t = tokio::time::Instant::now();
        let report = slow
            .ship(&release, &source, none.clone())
            .await
            .expect("a slow ship that moves");
        assert_eq!(report.bytes_sent, 20);
        assert_eq!(t.elapsed(), Duration::from_secs(2000));

        let stuck = Guarded::new(Silent { reports: 0 }, policy);
        let t = tokio::time::Instant::now();
        let e = stuck.ship(&release, &source, none).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.to_string().contains("no progress for 300s"), "{e}");
        assert_eq!(t.elapsed(), policy.long_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_runtime_times_out() {
        let policy = CallPolicy {
            retries: 0,
            ..CallPolicy::default()
        };
        let guarded = Guarded::new(Silent { reports: 0 }, policy);
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

    #[tokio::test(start_paused = true)]
    async fn a_log_read_to_its_end_is_bounded_between_lines_and_a_followed_one_is_not() {
        use futures::StreamExt;
        let guarded = Guarded::new(Silent { reports: 0 }, CallPolicy::default());
        let t = tokio::time::Instant::now();
        let mut read = guarded
            .logs("connect_app1", LogQuery::default())
            .await
            .expect("opens");
        let e = read.next().await.expect("an item").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert_eq!(t.elapsed(), Duration::from_secs(10));
        assert!(read.next().await.is_none(), "the stream ends after its timeout");

        let mut followed = guarded
            .logs(
                "connect_app1",
                LogQuery {
                    tail: None,
                    follow: true,
                },
            )
            .await
            .expect("opens");
        let waited = tokio::time::timeout(Duration::from_secs(3600), followed.next()).await;
        assert!(waited.is_err(), "an hour of silence is no error while following");
    }
}
