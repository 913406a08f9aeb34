//! `exporter --listen 127.0.0.1:PORT`: the metrics source's snapshots in the OpenMetrics text format for
//! Prometheus (`GET /metrics`), with deploy events (deploys by outcome, rollbacks, step durations) counted
//! from the journal. One sampler reads the server once per `--interval`, however often and by how many
//! Prometheus servers it is scraped.

pub mod collect;
pub mod events;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use connect_core::engine::Deployer;
use connect_core::metrics::{Sampler, Snapshot};
use connect_core::{Error, ErrorKind, Result};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::Context;
use crate::http::{read_request, response_bytes};
pub use collect::{SNAPSHOT_FAMILIES, SnapshotCollector};
pub use events::{DeployEvents, EVENT_FAMILIES};

/// The OpenMetrics text format's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `exporter`.
#[derive(Debug, Args)]
pub struct ExporterArgs {
    /// Where to serve `/metrics` (keep it on loopback or a private interface: it needs no credentials).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// How often to read the server (every scrape gets the newest sample).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
}

impl ExporterArgs {
    /// Serves until the process is stopped.
    pub async fn run(&self, cx: &Context) -> Result<()> {
        let (_, deployer) = cx.deployer().await?;
        let listener = TcpListener::bind(self.listen).await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                "exporter.listen",
                self.listen.to_string(),
                e.to_string(),
            )
            .with_hint("choose a free port with --listen")
        })?;
        let exporter = Exporter::start(deployer, self.interval)?;
        cx.out.note(&format!(
            "serving OpenMetrics on http://{}/metrics",
            listener.local_addr().map_or(self.listen, |a| a)
        ));
        exporter.serve(listener).await
    }
}

/// The sampler and the registry a scrape encodes.
#[derive(Debug, Clone)]
pub struct Exporter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    _sampler: Option<Sampler>,
    view: watch::Receiver<Arc<Snapshot>>,
    registry: Registry,
    events: Mutex<DeployEvents>,
}

impl Exporter {
    /// Starts sampling through `deployer` every `interval`.
    pub fn start(deployer: Deployer, interval: Duration) -> Result<Exporter> {
        let sampler = Sampler::start(deployer, interval)?;
        let view = sampler.subscribe();
        Ok(Exporter::build(Some(sampler), view))
    }

    /// Over snapshots published elsewhere (a test's, a program's own sampler).
    pub fn over(view: watch::Receiver<Arc<Snapshot>>) -> Exporter {
        Exporter::build(None, view)
    }

    fn build(sampler: Option<Sampler>, view: watch::Receiver<Arc<Snapshot>>) -> Exporter {
        let mut registry = Registry::default();
        let events = DeployEvents::register(&mut registry);
        registry.register_collector(Box::new(SnapshotCollector::new(view.clone())));
        Exporter {
            inner: Arc::new(Inner {
                _sampler: sampler,
                view,
                registry,
                events: Mutex::new(events),
            }),
        }
    }

    /// A viewer of the snapshots it serves.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.inner.view.clone()
    }

    /// The newest snapshot in the OpenMetrics text format (ending in `# EOF`).
    pub fn render(&self) -> String {
        let snapshot = self.inner.view.borrow().clone();
        if let Some(deploy) = &snapshot.deploy {
            let mut events = self.inner.events.lock().unwrap_or_else(|p| p.into_inner());
            events.count(&deploy.history);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.inner.registry);
        text
    }

    /// Answers `GET /metrics` on `listener` (anything else 404) until the task is dropped.
    pub async fn serve(&self, listener: TcpListener) -> Result<()> {
        loop {
            let (stream, _) = listener.accept().await.map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    "exporter.accept",
                    "listener",
                    e.to_string(),
                )
            })?;
            let exporter = self.clone();
            tokio::spawn(async move {
                // A client that goes away mid-request is its own business.
                let _ = exporter.answer(stream).await;
            });
        }
    }

    async fn answer(&self, stream: TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        while let Ok(Some(request)) = read_request(&mut read).await {
            let reply = if request.method == "GET" && request.path == "/metrics" {
                response_bytes(200, CONTENT_TYPE, self.render().as_bytes(), request.keep_alive)
            } else {
                response_bytes(
                    404,
                    "text/plain",
                    b"only /metrics is served\n",
                    request.keep_alive,
                )
            };
            write.write_all(&reply).await?;
            if !request.keep_alive {
                break;
            }
        }
        Ok(())
    }
}
