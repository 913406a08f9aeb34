//! A color's container: start from a spec, stop with grace, remove, inspect, list by label, adopt what a
//! compose file created.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, StopContainerOptions,
};
use connect_core::runtime::{ContainerInfo, ContainerSpec, labels};
use connect_core::{Error, ErrorKind, Result};

use crate::client::Docker;
use crate::error::{is_not_found, is_not_modified, map_err};
use crate::inspect::container_info;
use crate::slot::{SlotOptions, create_body};

/// The label that marks a one-off job's container, so a crashed run's leftovers can be found.
pub const ONE_OFF_LABEL: &str = connect_core::runtime::labels::ONE_OFF;

/// A container's log since a time, with the runbook's post-deploy count of lines that mention an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogReport {
    /// The lines, oldest first (stdout and stderr interleaved).
    pub lines: Vec<String>,
    /// How many lines contain `error` in any case (the runbook's `grep -i error | wc -l`).
    pub error_lines: usize,
}

pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

impl Docker {
    /// Creates and starts a color's container. A taken name is `Conflict`, a missing image `NotFound`, a taken
    /// host port `Conflict`; when the start fails the created container is removed again, so nothing
    /// half-made is left.
    pub async fn start_slot(&self, spec: &ContainerSpec, options: &SlotOptions) -> Result<ContainerInfo> {
        let name = spec.name.as_str();
        if name.is_empty() {
            return Err(Error::invalid("docker.start", "", "the container name is empty"));
        }
        let body = create_body(spec, options);
        let created = self
            .api
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.to_string()),
                    ..Default::default()
                }),
                body,
            )
            .await;
        if let Err(e) = created {
            let err = map_err("docker.start", name, e);
            return Err(match err.kind() {
                ErrorKind::NotFound => Error::new(
                    ErrorKind::NotFound,
                    "docker.start",
                    name,
                    format!(
                        "image {} is not on {}: {}",
                        spec.image,
                        self.location,
                        err.message()
                    ),
                )
                .with_hint("build the release's image there or transfer it first"),
                ErrorKind::Conflict => Error::new(
                    ErrorKind::Conflict,
                    "docker.start",
                    name,
                    format!("the name {name} is already in use on {}", self.location),
                )
                .with_hint("stop and remove the old container, or adopt it"),
                _ => err,
            });
        }
        if let Err(e) = self.api.start_container(name, None).await {
            let err = map_err("docker.start", name, e);
            // A container that never ran is removed so a retry does not hit a name conflict.
            let _ = self
                .api
                .remove_container(
                    name,
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await;
            let hint = if spec.ports.is_empty() {
                "see the Engine's message".to_string()
            } else {
                let ports: Vec<String> = spec.ports.iter().map(|p| p.1.to_string()).collect();
                format!("check that host port(s) {} are free (ss -ltnp)", ports.join(", "))
            };
            return Err(Error::new(
                err.kind(),
                "docker.start",
                name,
                format!(
                    "the container was created but did not start (removed again): {}",
                    err.message()
                ),
            )
            .with_hint(hint));
        }
        tracing::info!(container = name, image = %spec.image, secrets = ?options.secrets, "started");
        self.inspect_container(name).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Drift,
                "docker.start",
                name,
                "the container vanished right after it started",
            )
        })
    }

    /// The container's state; `None` when there is none by that name.
    pub async fn inspect_container(&self, name: &str) -> Result<Option<ContainerInfo>> {
        match self.api.inspect_container(name, None).await {
            Ok(r) => Ok(Some(container_info(r))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(map_err("docker.inspect", name, e)),
        }
    }

    /// Stops a container: SIGTERM, then SIGKILL after `grace`. A stopped container is fine; a missing one is
    /// `NotFound`.
    pub async fn stop_container(&self, name: &str, grace: Duration) -> Result<()> {
        let t = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        match self
            .api
            .stop_container(
                name,
                Some(StopContainerOptions {
                    t: Some(t),
                    signal: None,
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_modified(&e) => Ok(()),
            Err(e) => Err(map_err("docker.stop", name, e)),
        }
    }

    /// Removes a stopped container (and its anonymous volumes). A running one is `Conflict`; a missing one
    /// `NotFound`.
    pub async fn remove_container(&self, name: &str) -> Result<()> {
        self.api
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    v: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| {
                let err = map_err("docker.remove", name, e);
                if err.kind() == ErrorKind::Conflict {
                    err.with_hint("stop it first")
                } else {
                    err
                }
            })
    }

    /// Containers (running or not) whose labels include all of `labels`, by name.
    pub async fn list_containers(&self, labels: &BTreeMap<String, String>) -> Result<Vec<ContainerInfo>> {
        let filters = HashMap::from([(
            "label".to_string(),
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        )]);
        let summaries = self
            .api
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| map_err("docker.list", &self.location, e))?;
        let mut out = Vec::new();
        for s in summaries {
            let Some(id) = s.id else { continue };
            // Inspect for the health log the summary lacks; a container removed meanwhile is skipped.
            if let Some(info) = self.inspect_container(&id).await? {
                out.push(info);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Takes over a container created outside Connect Ops (the runbook's compose file made `connect_app1` and
    /// `connect_app2`): returns it with the app, color and release labels it would have had. Docker cannot
    /// relabel a container, so the labels are filled in the returned value only (the release from the image
    /// tag); the next deploy of that color creates a labelled container.
    pub async fn adopt(
        &self,
        name: &str,
        app: &str,
        color: connect_core::model::Color,
    ) -> Result<ContainerInfo> {
        let mut info = self.inspect_container(name).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "docker.adopt",
                name,
                format!("no container {name} on {}", self.location),
            )
            .with_hint("check the name with docker ps -a (compose names them <project>_<service>)")
        })?;
        info.labels
            .entry(labels::APP.into())
            .or_insert_with(|| app.to_string());
        info.labels
            .entry(labels::COLOR.into())
            .or_insert_with(|| color.to_string());
        if !info.labels.contains_key(labels::RELEASE) {
            let image = info
                .image
                .rsplit_once('@')
                .map_or(info.image.as_str(), |(i, _)| i);
            let tag = image
                .rsplit_once(':')
                .filter(|(_, t)| !t.contains('/'))
                .map_or("latest", |(_, t)| t);
            info.labels.insert(labels::RELEASE.into(), tag.to_string());
        }
        Ok(info)
    }
}
