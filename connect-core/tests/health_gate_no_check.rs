//! A container with no health check (Docker reports none: an image without an HTTP client, run with the
//! check turned off) passes the health gate only when the app answers its health path from the host.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use common::{Fixture, release};
use connect_core::engine::{Backends, Deployer, Step};
use connect_core::host::Endpoint;
use connect_core::model::{Color, ImageRef};
use connect_core::runtime::{
    ContainerInfo, ContainerSpec, ExecOutput, Health, ImageInfo, LogQuery, LogStream, OneOff,
};
use connect_core::{ContainerRuntime, ErrorKind, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The in-memory runtime as Docker shows a container whose check is off: running means health `none`.
#[derive(Debug)]
struct NoCheck(Arc<dyn ContainerRuntime>);

fn unchecked(mut info: ContainerInfo) -> ContainerInfo {
    info.health = Health::None;
    info
}

#[async_trait]
impl ContainerRuntime for NoCheck {
    async fn image(&self, image: &ImageRef) -> Result<Option<ImageInfo>> {
        self.0.image(image).await
    }
    async fn start(&self, spec: &ContainerSpec) -> Result<ContainerInfo> {
        self.0.start(spec).await.map(unchecked)
    }
    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>> {
        Ok(self.0.inspect(name).await?.map(unchecked))
    }
    /// Docker returns at once for a running container without a check.
    async fn wait_healthy(&self, name: &str, _deadline: Duration) -> Result<ContainerInfo> {
        let info = self.0.inspect(name).await?.expect("the container exists");
        Ok(unchecked(info))
    }
    async fn stop(&self, name: &str, grace: Duration) -> Result<()> {
        self.0.stop(name, grace).await
    }
    async fn remove(&self, name: &str) -> Result<()> {
        self.0.remove(name).await
    }
    async fn logs_since(&self, name: &str, since: SystemTime) -> Result<Vec<String>> {
        self.0.logs_since(name, since).await
    }
    async fn exec(&self, name: &str, command: &[String]) -> Result<ExecOutput> {
        self.0.exec(name, command).await
    }
    async fn run_once(&self, job: &OneOff) -> Result<ExecOutput> {
        self.0.run_once(job).await
    }
    async fn list(&self, labels: &BTreeMap<String, String>) -> Result<Vec<ContainerInfo>> {
        Ok(self.0.list(labels).await?.into_iter().map(unchecked).collect())
    }
    async fn logs(&self, name: &str, query: LogQuery) -> Result<LogStream> {
        self.0.logs(name, query).await
    }
    async fn list_images(&self, repository: &str) -> Result<Vec<ImageInfo>> {
        self.0.list_images(repository).await
    }
    async fn delete_image(&self, image: &ImageRef) -> Result<()> {
        self.0.delete_image(image).await
    }
}

/// Answers every request on `port` of the in-memory server with 200, once `after` has passed: the app's
/// start-up time.
fn serve_after(f: &Fixture, port: u16, after: Duration) {
    let host = f.stack.host.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let mut conns = host.listen(Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
        });
        while let Some(mut conn) = conns.recv().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
}

fn unchecked_deployer(f: &Fixture) -> Deployer {
    let backends = Backends {
        runtime: Arc::new(NoCheck(f.stack.backends().runtime)),
        ..f.stack.backends()
    };
    Deployer::new(backends, f.deployer.config().clone()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_gate_waits_for_the_apps_answer() {
    let f = Fixture::new();
    let deployer = unchecked_deployer(&f);
    let port = deployer.config().topology.slot(Color::Blue).host_port;
    serve_after(&f, port, Duration::from_secs(3));
    let record = deployer.deploy(release("v1")).await.unwrap();
    let gate = record
        .steps
        .iter()
        .find(|s| s.step == Step::HealthGate)
        .expect("a health gate");
    assert!(
        gate.duration_ms >= 3000,
        "the gate passed before the app answered: {gate:?}"
    );
    assert!(
        gate.detail.contains("no health check in the container"),
        "{gate:?}"
    );
    f.assert_live(Color::Blue).await;
}

#[tokio::test(start_paused = true)]
async fn an_app_that_never_answers_times_out_and_traffic_stays() {
    let f = Fixture::with_v1_live().await;
    let deployer = unchecked_deployer(&f);
    let err = deployer.deploy(release("v2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("has no health check"), "{err}");
    f.assert_live(Color::Blue).await;
}
