//! Connecting to a Docker Engine: the local socket, `DOCKER_HOST`, or any [`Host`]'s socket.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use connect_core::{Error, ErrorKind, Host, Result};

use crate::error::map_err;
use crate::slot::SlotOptions;
use crate::transfer::ExportShare;
use crate::transport::client_through_host;

/// The engine's socket on a server, as the Docker package installs it.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// How long one API request may take to answer before it fails. Long operations (build, load, events) answer
/// at once and then stream, so this bounds a hung engine, not a slow build.
const REQUEST_TIMEOUT_SECS: u64 = 600;

/// A Docker Engine, reached through its API.
///
/// Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Docker {
    pub(crate) api: bollard::Docker,
    /// Where the engine is, for messages (`unix:///var/run/docker.sock`, `deploy@prod-host:/var/run/docker.sock`).
    pub(crate) location: String,
    /// What [`connect_core::ContainerRuntime::start`] uses for what a `ContainerSpec` does not say.
    pub(crate) slot_options: SlotOptions,
    /// The engine on the machine running the deploy, which [`connect_core::ContainerRuntime::ship`] builds
    /// on and sends from.
    pub(crate) build_machine: Option<Arc<Docker>>,
    /// What transfers from this engine share: every clone's (see `transfer/fanout.rs`).
    pub(crate) exports: Arc<ExportShare>,
}

impl fmt::Debug for Docker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Docker")
            .field("location", &self.location)
            .field(
                "build_machine",
                &self.build_machine.as_ref().map(|d| d.location.as_str()),
            )
            .finish()
    }
}

impl Docker {
    /// The engine named by `DOCKER_HOST`, or the local socket when it is unset; the API version negotiated
    /// down to the engine's.
    pub async fn connect() -> Result<Docker> {
        let location = std::env::var("DOCKER_HOST").unwrap_or_else(|_| format!("unix://{DEFAULT_SOCKET}"));
        let api = bollard::Docker::connect_with_defaults().map_err(|e| {
            map_err("docker.connect", &location, e)
                .with_hint("set DOCKER_HOST to unix:///path/to/docker.sock or tcp://host:port")
        })?;
        Docker::negotiate(
            api.with_timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS)),
            location,
        )
        .await
    }

    /// The engine listening on a local unix socket.
    pub async fn connect_socket(path: &str) -> Result<Docker> {
        let location = format!("unix://{path}");
        let api =
            bollard::Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                .map_err(|e| map_err("docker.connect", &location, e))?;
        Docker::negotiate(api, location).await
    }

    /// The engine behind `socket` on `host`: each HTTP connection is a stream `host` opens to the socket (over
    /// SSH, a `direct-streamlocal` channel), so nothing but the host's own connection is needed.
    pub async fn connect_via(host: Arc<dyn Host>, socket: &str) -> Result<Docker> {
        let location = format!("{}:{socket}", host.name());
        let api = client_through_host(host, socket, REQUEST_TIMEOUT_SECS)
            .map_err(|e| map_err("docker.connect", &location, e))?;
        Docker::negotiate(api, location).await
    }

    async fn negotiate(api: bollard::Docker, location: String) -> Result<Docker> {
        let api = api.negotiate_version().await.map_err(|e| {
            let err = map_err("docker.connect", &location, e);
            if err.kind() == ErrorKind::Unavailable || err.kind() == ErrorKind::Failed {
                Error::new(
                    ErrorKind::Unavailable,
                    "docker.connect",
                    &location,
                    format!("the Docker daemon does not answer: {}", err.message()),
                )
                .with_hint(
                    "start the Docker daemon (systemctl start docker) or point DOCKER_HOST at a running one",
                )
            } else {
                err
            }
        })?;
        Ok(Docker {
            api,
            location,
            slot_options: SlotOptions::default(),
            build_machine: None,
            exports: Arc::default(),
        })
    }

    /// The same engine, with other defaults for the containers [`connect_core::ContainerRuntime::start`]
    /// creates.
    pub fn with_slot_options(mut self, options: SlotOptions) -> Docker {
        self.slot_options = options;
        self
    }

    /// The defaults [`connect_core::ContainerRuntime::start`] uses.
    pub fn slot_options(&self) -> &SlotOptions {
        &self.slot_options
    }

    /// Where the engine is, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The API version in use after negotiation, e.g. `1.41`.
    pub fn api_version(&self) -> String {
        self.api.client_version().to_string()
    }

    /// The engine's version, e.g. `20.10.24`.
    pub async fn engine_version(&self) -> Result<String> {
        let v = self
            .api
            .version()
            .await
            .map_err(|e| map_err("docker.version", &self.location, e))?;
        Ok(v.version.unwrap_or_default())
    }

    /// The bollard client, for what this crate does not wrap.
    pub fn api(&self) -> &bollard::Docker {
        &self.api
    }
}
