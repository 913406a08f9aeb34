//! Docker Swarm as the engine: each color a Swarm service of one replica (`connect_app1` blue, `connect_app2`
//! green), created and scaled through the manager's Engine API, so the engine's switch, instant rollback, full
//! rollback and status work as on one host while Swarm places the task and reschedules it when a node goes.
//!
//! The mapping onto [`ContainerRuntime`]: `start` creates the service, `stop` scales it to 0 and waits for
//! its task to end, `remove` deletes it, `inspect` and `wait_healthy` read the service's tasks (see
//! `tasks.rs`: the manager knows a task's health on every node), `list` lists services by label. What acts on
//! the task's container itself (`exec`, `logs`, `logs_since`, `stats`) goes to the engine of the node that
//! runs it, when [`Swarm::with_node`] gave it; images, one-off jobs (a plain container on the manager) and
//! `read_image_dir` are the manager's engine's; `ship` ships to the manager and to every node engine given.

mod service;
mod tasks;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bollard::models::{ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec};
use bollard::query_parameters::{ListServicesOptions, ListTasksOptions, UpdateServiceOptions};
use connect_core::model::{ImageRef, Release};
use connect_core::runtime::{
    ContainerInfo, ContainerSpec, ContainerState, ContainerStats, ExecOutput, ImageFile, ImageInfo, LogQuery,
    LogStream, OneOff,
};
use connect_core::ship::{ReleaseSource, ShipProgressFn, ShipReport};
use connect_core::{ContainerRuntime, Error, ErrorKind, Result};

use crate::client::Docker;
use crate::error::{is_not_found, map_err};
use crate::slot::{SlotOptions, nanos};
use tasks::{ServiceState, is_live, service_state, task_error};

/// How often the manager is asked about a service's tasks while waiting.
const POLL: Duration = Duration::from_millis(200);

/// A Swarm, reached through a manager's engine, running each color as a service.
///
/// It is the engine's runtime: the journal and lock stay on a [`connect_core::Host`] (the manager's), HAProxy
/// has a server per node and color on the services' host-mode ports.
///
/// ```no_run
/// use std::sync::Arc;
/// use connect_core::ContainerRuntime;
/// use connect_docker::{DEFAULT_SOCKET, Docker, Swarm};
///
/// # async fn demo(manager: Arc<dyn connect_core::Host>, worker: Arc<dyn connect_core::Host>) -> connect_core::Result<()> {
/// let swarm = Swarm::new(Docker::connect_via(manager, DEFAULT_SOCKET).await?)
///     .await?
///     .with_node(Docker::connect_via(worker, DEFAULT_SOCKET).await?)
///     .await?;
/// // Blue is the service `connect_app1`: created, health-gated, then serving on its node's port 3000.
/// let blue = swarm.wait_healthy("connect_app1", std::time::Duration::from_secs(60)).await?;
/// println!("blue serves release {:?}", blue.release());
/// let runtime: Arc<dyn ContainerRuntime> = Arc::new(swarm); // `Backends::runtime` for the `Deployer`
/// # drop(runtime);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Swarm {
    manager: Docker,
    /// The engines of the nodes, by Swarm node id: where a task's container is reached.
    nodes: HashMap<String, Docker>,
    options: SlotOptions,
}

impl fmt::Debug for Swarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Swarm")
            .field("manager", &self.manager.location)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

impl Swarm {
    /// The swarm managed by `manager` (an engine that is a Swarm manager: `docker swarm init` was run on it).
    /// The manager's slot options ([`Docker::with_slot_options`]) shape the services: health probe, restart
    /// condition, limits, secrets. The manager's own engine is the first node engine.
    pub async fn new(manager: Docker) -> Result<Swarm> {
        let id = node_id(&manager, "swarm.connect").await?;
        let options = manager.slot_options.clone();
        let mut nodes = HashMap::new();
        nodes.insert(id, manager.clone());
        Ok(Swarm {
            manager,
            nodes,
            options,
        })
    }

    /// Adds a node's engine (a worker's, reached like any engine: its socket, or through its `Host` over
    /// SSH), so `exec`, `logs` and `stats` reach a task running there and `ship` puts images on it.
    pub async fn with_node(mut self, engine: Docker) -> Result<Swarm> {
        let id = node_id(&engine, "swarm.with_node").await?;
        self.nodes.insert(id, engine);
        Ok(self)
    }

    /// The manager's engine.
    pub fn manager(&self) -> &Docker {
        &self.manager
    }

    /// The service and its tasks; `None` when there is no such service.
    async fn service(&self, name: &str) -> Result<Option<ServiceState>> {
        let service = match self.manager.api.inspect_service(name, None).await {
            Ok(s) => s,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(map_err("swarm.inspect", name, e)),
        };
        let tasks = self.tasks(name).await?;
        let mut state = service_state(&service, tasks);
        // The container's own health and check outputs, when its node's engine is known: Swarm's task states
        // say running, not healthy.
        let engine = state.node.as_ref().and_then(|n| self.nodes.get(n));
        if let (Some(engine), Some(id), ContainerState::Running) =
            (engine, state.container.as_ref(), state.info.state)
        {
            // A node that just went away answers nothing: the task's own state stands.
            if let Ok(Some(c)) = engine.inspect_container(id).await {
                state.info.health = c.health;
                if !c.health_log.is_empty() {
                    state.info.health_log = c.health_log;
                }
            }
        }
        Ok(Some(state))
    }

    async fn tasks(&self, name: &str) -> Result<Vec<bollard::models::Task>> {
        let filters = HashMap::from([("service".to_string(), vec![name.to_string()])]);
        self.manager
            .api
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| map_err("swarm.tasks", name, e))
    }

    fn missing(operation: &str, name: &str) -> Error {
        Error::new(ErrorKind::NotFound, operation, name, "no such service")
            .with_hint("list the services with docker service ls on the manager")
    }

    /// The engine and container id of the service's current task, for what acts on the container.
    async fn task_container(&self, operation: &str, name: &str) -> Result<Option<(Docker, String)>> {
        let Some(state) = self.service(name).await? else {
            return Ok(None);
        };
        let (Some(node), Some(container)) = (state.node, state.container) else {
            return Err(Error::new(
                ErrorKind::Unavailable,
                operation,
                name,
                format!("the service has no task container yet ({:?})", state.info.state),
            )
            .with_hint("wait until its task runs (docker service ps)"));
        };
        let engine = self.nodes.get(&node).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                operation,
                name,
                format!("the task runs on node {node}, whose engine this Swarm was not given"),
            )
            .with_hint("add the node's engine with Swarm::with_node (its socket, or over SSH)")
        })?;
        Ok(Some((engine, container)))
    }

    /// The ids of the nodes the manager does not see ready (down, disconnected, unknown).
    async fn nodes_down(&self) -> Result<Vec<String>> {
        let nodes = self
            .manager
            .api
            .list_nodes(None)
            .await
            .map_err(|e| map_err("swarm.nodes", &self.manager.location, e))?;
        Ok(nodes
            .into_iter()
            .filter(|n| n.status.as_ref().and_then(|s| s.state) != Some(bollard::models::NodeState::READY))
            .filter_map(|n| n.id)
            .collect())
    }

    /// Sets the service's replicas (0 stops it, 1 runs it), with the stop grace on its tasks.
    async fn scale(&self, name: &str, replicas: i64, grace: Duration) -> Result<bool> {
        let service = match self.manager.api.inspect_service(name, None).await {
            Ok(s) => s,
            Err(e) if is_not_found(&e) => return Err(Swarm::missing("swarm.scale", name)),
            Err(e) => return Err(map_err("swarm.scale", name, e)),
        };
        let mut spec = service.spec.unwrap_or_default();
        let current = spec
            .mode
            .as_ref()
            .and_then(|m| m.replicated.as_ref())
            .and_then(|r| r.replicas);
        if current == Some(replicas) {
            return Ok(false);
        }
        spec.mode = Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(replicas),
            }),
            ..Default::default()
        });
        let template = spec.task_template.get_or_insert_with(TaskSpec::default);
        let container = template
            .container_spec
            .get_or_insert_with(TaskSpecContainerSpec::default);
        container.stop_grace_period = Some(nanos(grace));
        let version = service
            .version
            .and_then(|v| v.index)
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or(0);
        self.manager
            .api
            .update_service(
                name,
                spec,
                UpdateServiceOptions {
                    version,
                    ..Default::default()
                },
                None,
            )
            .await
            .map_err(|e| map_err("swarm.scale", name, e))?;
        Ok(true)
    }
}

async fn node_id(engine: &Docker, operation: &str) -> Result<String> {
    let info = engine
        .api
        .info()
        .await
        .map_err(|e| map_err(operation, &engine.location, e))?;
    let swarm = info.swarm.unwrap_or_default();
    match swarm.node_id.filter(|id| !id.is_empty()) {
        Some(id) => Ok(id),
        None => Err(Error::new(
            ErrorKind::Refused,
            operation,
            &engine.location,
            "this engine is not part of a swarm",
        )
        .with_hint("run docker swarm init on the manager and docker swarm join on each node")),
    }
}

#[async_trait]
impl ContainerRuntime for Swarm {
    async fn image(&self, image: &ImageRef) -> Result<Option<ImageInfo>> {
        self.manager.image_info(&image.to_string()).await
    }

    async fn start(&self, spec: &ContainerSpec) -> Result<ContainerInfo> {
        let name = spec.name.as_str();
        if name.is_empty() {
            return Err(Error::invalid("swarm.start", "", "the service name is empty"));
        }
        if self.service(name).await?.is_some() {
            return Err(Error::new(
                ErrorKind::Conflict,
                "swarm.start",
                name,
                format!("the service {name} already exists on {}", self.manager.location),
            )
            .with_hint("stop and remove the old service (docker service rm), or adopt it"));
        }
        // No registry: each node runs the image it has under that tag, so the manager must have it (and every
        // node that may run the task; `ship` puts it on the node engines given).
        if self.manager.image_info(&spec.image.to_string()).await?.is_none() {
            return Err(Error::new(
                ErrorKind::NotFound,
                "swarm.start",
                name,
                format!(
                    "image {} is not on the manager {}",
                    spec.image, self.manager.location
                ),
            )
            .with_hint("build the release's image there or transfer it to every node first"));
        }
        self.manager
            .api
            .create_service(service::service_spec(spec, &self.options), None)
            .await
            .map_err(|e| map_err("swarm.start", name, e))?;
        tracing::info!(service = name, image = %spec.image, secrets = ?self.options.secrets, "service created");
        self.service(name).await?.map(|s| s.info).ok_or_else(|| {
            Error::new(
                ErrorKind::Drift,
                "swarm.start",
                name,
                "the service vanished right after it was created",
            )
        })
    }

    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>> {
        Ok(self.service(name).await?.map(|s| s.info))
    }

    async fn wait_healthy(&self, name: &str, deadline: Duration) -> Result<ContainerInfo> {
        connect_core::wait::poll_until("swarm.wait_healthy", name, deadline, POLL, || {
            let this = self.clone();
            let name = name.to_string();
            async move {
                let Some(state) = this.service(&name).await? else {
                    return Err(Swarm::missing("swarm.wait_healthy", &name));
                };
                if let Some(why) = state.failure {
                    return Err(Error::new(
                        ErrorKind::Unhealthy,
                        "swarm.wait_healthy",
                        &name,
                        format!("the service's task failed: {why}"),
                    )
                    .with_hint("see docker service ps --no-trunc and the task's log"));
                }
                if state.info.is_serving() {
                    return Ok(Ok(state.info));
                }
                Ok(Err(format!(
                    "state {:?}, health {}",
                    state.info.state, state.info.health
                )))
            }
        })
        .await
        .map_err(|e| {
            if e.kind() == ErrorKind::Timeout {
                e.with_hint(
                    "see docker service ps --no-trunc: a task pending for lack of a node or of the image",
                )
            } else {
                e
            }
        })
    }

    async fn stop(&self, name: &str, grace: Duration) -> Result<()> {
        self.scale(name, 0, grace).await?;
        // The task's end frees its published port: a stop returns once no task of the service is live. A task
        // on a node that is down never reports its end (its engine is gone, and its container with it).
        connect_core::wait::poll_until(
            "swarm.stop",
            name,
            grace + Duration::from_secs(30),
            POLL,
            || async {
                let down = self.nodes_down().await?;
                let live: Vec<String> = self
                    .tasks(name)
                    .await?
                    .iter()
                    .filter(|t| is_live(t) && !t.node_id.as_ref().is_some_and(|n| down.contains(n)))
                    .map(|t| {
                        let desired = t.desired_state.map(|d| d.to_string()).unwrap_or_default();
                        format!("{}, desired {desired}", task_error(t))
                    })
                    .collect();
                Ok(if live.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{} task(s) still live: {}", live.len(), live.join("; ")))
                })
            },
        )
        .await
    }

    async fn remove(&self, name: &str) -> Result<()> {
        let Some(state) = self.service(name).await? else {
            return Err(Swarm::missing("swarm.remove", name));
        };
        if state.info.state == ContainerState::Running {
            return Err(Error::new(
                ErrorKind::Conflict,
                "swarm.remove",
                name,
                "the service's task is running",
            )
            .with_hint("stop it first"));
        }
        self.manager
            .api
            .delete_service(name)
            .await
            .map_err(|e| map_err("swarm.remove", name, e))
    }

    async fn logs_since(&self, name: &str, since: SystemTime) -> Result<Vec<String>> {
        match self.task_container("swarm.logs", name).await? {
            Some((engine, container)) => engine.container_logs_since(&container, since).await,
            None => Err(Swarm::missing("swarm.logs", name)),
        }
    }

    async fn exec(&self, name: &str, command: &[String]) -> Result<ExecOutput> {
        match self.task_container("swarm.exec", name).await? {
            Some((engine, container)) => engine.exec_in(&container, command).await,
            None => Err(Swarm::missing("swarm.exec", name)),
        }
    }

    async fn run_once(&self, job: &OneOff) -> Result<ExecOutput> {
        // A migration runs once, to completion: a plain container on the manager, not a service.
        self.manager.run_one_off(job).await
    }

    async fn list(&self, labels: &BTreeMap<String, String>) -> Result<Vec<ContainerInfo>> {
        let filters = HashMap::from([(
            "label".to_string(),
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        )]);
        let services = self
            .manager
            .api
            .list_services(Some(ListServicesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| map_err("swarm.list", &self.manager.location, e))?;
        let mut out = Vec::new();
        for s in services {
            let Some(name) = s.spec.and_then(|s| s.name) else {
                continue;
            };
            // A service removed meanwhile is skipped.
            if let Some(state) = self.service(&name).await? {
                out.push(state.info);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn logs(&self, name: &str, query: LogQuery) -> Result<LogStream> {
        match self.task_container("swarm.logs", name).await? {
            Some((engine, container)) => engine.container_logs(&container, query).await,
            None => Err(Swarm::missing("swarm.logs", name)),
        }
    }

    async fn list_images(&self, repository: &str) -> Result<Vec<ImageInfo>> {
        self.manager.images(Some(repository)).await
    }

    async fn delete_image(&self, image: &ImageRef) -> Result<()> {
        self.manager.remove_image(&image.to_string(), false).await
    }

    async fn read_image_dir(&self, image: &ImageRef, dir: &str, max_bytes: u64) -> Result<Vec<ImageFile>> {
        self.manager.read_image_dir(image, dir, max_bytes).await
    }

    async fn stats(&self, name: &str) -> Result<Option<ContainerStats>> {
        match self.task_container("swarm.stats", name).await? {
            Some((engine, container)) => engine.container_stats(&container).await,
            None => Ok(None),
        }
    }

    async fn ship(
        &self,
        release: &Release,
        source: &ReleaseSource,
        progress: ShipProgressFn,
    ) -> Result<ShipReport> {
        // Every node must have the image: Swarm has no registry here to pull from. The manager's report is
        // returned; the other nodes are shipped to in turn and fail the ship if one fails.
        let report = self
            .manager
            .ship_release(release, source, progress.clone())
            .await?;
        for (id, engine) in &self.nodes {
            if engine.location == self.manager.location {
                continue;
            }
            engine
                .ship_release(release, source, progress.clone())
                .await
                .map_err(|e| {
                    Error::new(
                        e.kind(),
                        "swarm.ship",
                        release.image.to_string(),
                        format!("node {id} ({}): {}", engine.location, e.message()),
                    )
                    .with_source(e)
                })?;
        }
        Ok(report)
    }
}
