//! A color's container: start from a spec, stop with grace, remove, inspect, list by label, adopt what a
//! compose file created; wait for health on the Engine's event stream; logs, exec and one-off jobs.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, KillContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use connect_core::runtime::{
    ContainerInfo, ContainerSpec, ContainerState, ExecOutput, Health, OneOff, labels,
};
use connect_core::{Error, ErrorKind, Result};
use futures::StreamExt;
use tokio::time::Instant;

use crate::client::Docker;
use crate::error::{is_not_found, is_not_modified, map_err};
use crate::inspect::{container_info, parse_rfc3339, why_not_serving};
use crate::slot::{SlotOptions, create_body};

/// The label that marks a one-off job's container, so a crashed run's leftovers can be found.
pub const ONE_OFF_LABEL: &str = "ops.connect.one-off";

/// A container's log since a time, with the runbook's post-deploy count of lines that mention an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogReport {
    /// The lines, oldest first (stdout and stderr interleaved).
    pub lines: Vec<String>,
    /// How many lines contain `error` in any case (the runbook's `grep -i error | wc -l`).
    pub error_lines: usize,
}

fn unix_secs(t: SystemTime) -> i64 {
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

    /// Waits until the container is healthy (or running, without a health check), woken by the Engine's
    /// events for it and confirmed by inspect. Fails `Unhealthy` when it turns unhealthy or exits, `Timeout`
    /// at the deadline; both carry its state and last health-check outputs.
    pub async fn wait_container_healthy(&self, name: &str, deadline: Duration) -> Result<ContainerInfo> {
        let until = Instant::now() + deadline;
        // Events are replayed from just before the first inspect, so a change between the two is not missed.
        let since = unix_secs(SystemTime::now()) - 1;
        let filters = HashMap::from([
            ("container".to_string(), vec![name.to_string()]),
            ("type".to_string(), vec!["container".to_string()]),
        ]);
        let mut events = self.api.events(Some(EventsOptions {
            since: Some(since.to_string()),
            until: None,
            filters: Some(filters),
        }));
        loop {
            let raw = match self.api.inspect_container(name, None).await {
                Ok(r) => r,
                Err(e) => return Err(map_err("docker.wait_healthy", name, e)),
            };
            let info = container_info(raw.clone());
            match (info.state, info.health) {
                (ContainerState::Running, Health::Healthy | Health::None) => return Ok(info),
                (ContainerState::Running, Health::Unhealthy) | (ContainerState::Exited, _) => {
                    return Err(Error::new(
                        ErrorKind::Unhealthy,
                        "docker.wait_healthy",
                        name,
                        why_not_serving(&raw),
                    )
                    .with_hint(format!("read its log: docker logs {name}")));
                }
                _ => {}
            }
            match tokio::time::timeout_at(until, events.next()).await {
                Err(_) => {
                    let raw = self.api.inspect_container(name, None).await.ok().unwrap_or(raw);
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        "docker.wait_healthy",
                        name,
                        format!("not healthy after {deadline:?}: {}", why_not_serving(&raw)),
                    ));
                }
                Ok(Some(Ok(_event))) => {}
                Ok(Some(Err(e))) => return Err(map_err("docker.wait_healthy", name, e)),
                Ok(None) => {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "docker.wait_healthy",
                        name,
                        "the Engine closed its event stream",
                    ));
                }
            }
        }
    }

    /// The container's log lines written since `since`, oldest first (stdout and stderr interleaved).
    pub async fn container_logs_since(&self, name: &str, since: SystemTime) -> Result<Vec<String>> {
        let mut stream = self.api.logs(
            name,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                // The API filters by whole seconds; the timestamps filter the rest exactly.
                since: i32::try_from(unix_secs(since)).unwrap_or(i32::MAX),
                timestamps: true,
                tail: "all".into(),
                ..Default::default()
            }),
        );
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| map_err("docker.logs", name, e))?;
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        Ok(text
            .lines()
            .filter_map(|line| {
                let (ts, rest) = line.split_once(' ').unwrap_or((line, ""));
                match parse_rfc3339(ts) {
                    Some(t) if t < since => None,
                    Some(_) => Some(rest.to_string()),
                    None => Some(line.to_string()),
                }
            })
            .collect())
    }

    /// The log since `since` with its count of error lines.
    pub async fn log_report(&self, name: &str, since: SystemTime) -> Result<LogReport> {
        let lines = self.container_logs_since(name, since).await?;
        let error_lines = lines
            .iter()
            .filter(|l| l.to_ascii_lowercase().contains("error"))
            .count();
        Ok(LogReport { lines, error_lines })
    }

    /// Runs a program inside a running container; its exit code and output.
    pub async fn exec_in(&self, name: &str, command: &[String]) -> Result<ExecOutput> {
        if command.is_empty() {
            return Err(Error::invalid("docker.exec", name, "the command is empty"));
        }
        let exec = self
            .api
            .create_exec(
                name,
                CreateExecOptions::<String> {
                    cmd: Some(command.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| map_err("docker.exec", name, e))?;
        let started = self
            .api
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| map_err("docker.exec", name, e))?;
        let mut output = String::new();
        if let StartExecResults::Attached { output: mut out, .. } = started {
            while let Some(chunk) = out.next().await {
                match chunk.map_err(|e| map_err("docker.exec", name, e))? {
                    LogOutput::StdOut { message }
                    | LogOutput::StdErr { message }
                    | LogOutput::Console { message } => {
                        output.push_str(&String::from_utf8_lossy(&message));
                    }
                    LogOutput::StdIn { .. } => {}
                }
            }
        }
        let inspected = self
            .api
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| map_err("docker.exec", name, e))?;
        Ok(ExecOutput {
            exit_code: inspected.exit_code.unwrap_or(-1),
            output,
        })
    }

    /// Runs a one-off container (a migration from the NEW release's image) to completion, with the slot
    /// options' secrets and network, and removes it whatever happens. A non-zero exit is returned, not an
    /// error; passing the deadline kills it and is `Timeout`.
    pub async fn run_one_off(&self, job: &OneOff) -> Result<ExecOutput> {
        if job.command.is_empty() {
            return Err(Error::invalid(
                "docker.run_once",
                job.image.to_string(),
                "the command is empty",
            ));
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("connect-one-off-{}-{nanos}", std::process::id());
        let spec = ContainerSpec {
            name: name.clone(),
            image: job.image.clone(),
            labels: BTreeMap::from([(ONE_OFF_LABEL.to_string(), "true".to_string())]),
            env: job.env.clone(),
            ports: vec![],
            command: Some(job.command.clone()),
            health_path: None,
            stop_grace: Duration::from_secs(1),
        };
        let options = SlotOptions {
            restart: crate::slot::Restart::No,
            ..self.slot_options.clone()
        };
        let mut body = create_body(&spec, &options);
        body.labels
            .get_or_insert_with(Default::default)
            .insert(ONE_OFF_LABEL.into(), "true".into());
        self.api
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| {
                let err = map_err("docker.run_once", &job.image.to_string(), e);
                if err.kind() == ErrorKind::NotFound {
                    err.with_hint("build or transfer the image first")
                } else {
                    err
                }
            })?;
        let result = self.run_created(&name, job).await;
        let _ = self
            .api
            .remove_container(
                &name,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await;
        result
    }

    async fn run_created(&self, name: &str, job: &OneOff) -> Result<ExecOutput> {
        let target = format!("{} ({name})", job.image);
        self.api
            .start_container(name, None)
            .await
            .map_err(|e| map_err("docker.run_once", &target, e))?;
        let mut wait = self.api.wait_container(name, None::<WaitContainerOptions>);
        let waited = tokio::time::timeout(job.deadline, wait.next()).await;
        if waited.is_err() {
            let _ = self.api.kill_container(name, None::<KillContainerOptions>).await;
            let tail = self
                .container_logs_since(name, UNIX_EPOCH)
                .await
                .unwrap_or_default();
            return Err(Error::new(
                ErrorKind::Timeout,
                "docker.run_once",
                &target,
                format!(
                    "still running after {:?}, killed; last output: {}",
                    job.deadline,
                    tail.iter()
                        .rev()
                        .take(5)
                        .rev()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" | ")
                ),
            ));
        }
        // bollard reports a non-zero exit as an error; the exit code comes from inspect either way.
        let inspected = self
            .api
            .inspect_container(name, None)
            .await
            .map_err(|e| map_err("docker.run_once", &target, e))?;
        let exit_code = inspected.state.and_then(|s| s.exit_code).unwrap_or(-1);
        let output = self.container_logs_since(name, UNIX_EPOCH).await?.join("\n");
        Ok(ExecOutput { exit_code, output })
    }
}
