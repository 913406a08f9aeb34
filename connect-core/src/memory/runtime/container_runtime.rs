//! The in-memory runtime's [`ContainerRuntime`] calls, each wrapped in the injected faults. Separate from
//! `runtime.rs` (the simulated containers and the test-facing controls) because it is the contract side:
//! the same calls, in the same order, as the trait and the Docker backend.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::time::Instant;

use super::{Container, MemoryRuntime, lock};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{ImageRef, Release};
use crate::runtime::{
    ContainerInfo, ContainerRuntime, ContainerSpec, ContainerStats, ExecOutput, Health, ImageFile, ImageInfo,
    LogQuery, LogStream, OneOff,
};
use crate::ship::{ReleaseSource, ShipProgressFn, ShipReport};

#[async_trait]
impl ContainerRuntime for MemoryRuntime {
    async fn image(&self, image: &ImageRef) -> Result<Option<ImageInfo>> {
        self.faults
            .around("runtime.image", &image.to_string(), async {
                Ok(lock(&self.state)
                    .images
                    .get(&image.to_string())
                    .map(|(i, _)| i.clone()))
            })
            .await
    }

    async fn start(&self, spec: &ContainerSpec) -> Result<ContainerInfo> {
        self.faults
            .around("runtime.start", &spec.name, async {
                let mut state = lock(&self.state);
                if state.containers.contains_key(&spec.name) {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        "runtime.start",
                        &spec.name,
                        "the name is already in use",
                    )
                    .with_hint("stop and remove the old container first"));
                }
                let behavior = state
                    .images
                    .get(&spec.image.to_string())
                    .map(|(_, b)| b.clone())
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::NotFound,
                            "runtime.start",
                            spec.image.to_string(),
                            "no such image",
                        )
                    })?;
                for (_, host_port) in &spec.ports {
                    if let Some(other) = state
                        .containers
                        .values()
                        .find(|c| c.running && c.spec.ports.iter().any(|(_, p)| p == host_port))
                    {
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            "runtime.start",
                            &spec.name,
                            format!("host port {host_port} is taken by {}", other.spec.name),
                        ));
                    }
                }
                state.next_id += 1;
                let now = SystemTime::now();
                let logs = (0..behavior.error_lines)
                    .map(|i| (now, format!("ERROR request {i} failed")))
                    .collect();
                let c = Container {
                    id: format!("{:012x}", state.next_id),
                    spec: spec.clone(),
                    behavior,
                    running: true,
                    started: Instant::now(),
                    started_wall: now,
                    logs,
                };
                let info = c.info(Instant::now());
                state.containers.insert(spec.name.clone(), c);
                Ok(info)
            })
            .await
    }

    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>> {
        self.faults
            .around("runtime.inspect", name, async {
                Ok(lock(&self.state)
                    .containers
                    .get(name)
                    .map(|c| c.info(Instant::now())))
            })
            .await
    }

    async fn stats(&self, name: &str) -> Result<Option<ContainerStats>> {
        self.faults
            .around("runtime.stats", name, async {
                Ok(lock(&self.state)
                    .containers
                    .get(name)
                    .map(|c| c.stats(Instant::now())))
            })
            .await
    }

    async fn wait_healthy(&self, name: &str, deadline: Duration) -> Result<ContainerInfo> {
        self.faults
            .around("runtime.wait_healthy", name, async {
                if deadline.is_zero() {
                    return Err(Error::invalid(
                        "runtime.wait_healthy",
                        name,
                        "a deadline of zero can never be met",
                    ));
                }
                let until = Instant::now() + deadline;
                loop {
                    let (info, changes_at) = {
                        let state = lock(&self.state);
                        let c = state
                            .containers
                            .get(name)
                            .ok_or_else(|| Self::not_found("runtime.wait_healthy", name))?;
                        (c.info(Instant::now()), c.started + c.behavior.ready_after)
                    };
                    match info.health {
                        Health::Healthy | Health::None => return Ok(info),
                        Health::Unhealthy => {
                            return Err(Error::new(
                                ErrorKind::Unhealthy,
                                "runtime.wait_healthy",
                                name,
                                format!("the health check failed: {}", info.health_log.join("; ")),
                            ));
                        }
                        Health::Starting if Instant::now() >= until => {
                            return Err(Error::new(
                                ErrorKind::Timeout,
                                "runtime.wait_healthy",
                                name,
                                format!(
                                    "still starting after {deadline:?}: {}",
                                    info.health_log.join("; ")
                                ),
                            ));
                        }
                        // The simulated health changes at a known instant: wait for exactly that event.
                        Health::Starting => tokio::time::sleep_until(changes_at.min(until)).await,
                    }
                }
            })
            .await
    }

    async fn stop(&self, name: &str, _grace: Duration) -> Result<()> {
        self.faults
            .around("runtime.stop", name, async {
                let mut state = lock(&self.state);
                let c = state
                    .containers
                    .get_mut(name)
                    .ok_or_else(|| Self::not_found("runtime.stop", name))?;
                c.running = false;
                state.log_ended(name);
                Ok(())
            })
            .await
    }

    async fn remove(&self, name: &str) -> Result<()> {
        self.faults
            .around("runtime.remove", name, async {
                let mut state = lock(&self.state);
                match state.containers.get(name) {
                    None => Err(Self::not_found("runtime.remove", name)),
                    Some(c) if c.running => Err(Error::new(
                        ErrorKind::Conflict,
                        "runtime.remove",
                        name,
                        "the container is running",
                    )
                    .with_hint("stop it first")),
                    Some(_) => {
                        state.containers.remove(name);
                        state.log_ended(name);
                        Ok(())
                    }
                }
            })
            .await
    }

    async fn logs_since(&self, name: &str, since: SystemTime) -> Result<Vec<String>> {
        self.faults
            .around("runtime.logs_since", name, async {
                let state = lock(&self.state);
                let c = state
                    .containers
                    .get(name)
                    .ok_or_else(|| Self::not_found("runtime.logs_since", name))?;
                Ok(c.logs
                    .iter()
                    .filter(|(t, _)| *t >= since)
                    .map(|(_, l)| l.clone())
                    .collect())
            })
            .await
    }

    async fn exec(&self, name: &str, command: &[String]) -> Result<ExecOutput> {
        self.faults
            .around("runtime.exec", name, async {
                let state = lock(&self.state);
                let c = state
                    .containers
                    .get(name)
                    .ok_or_else(|| Self::not_found("runtime.exec", name))?;
                if !c.running {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        "runtime.exec",
                        name,
                        "the container is not running",
                    ));
                }
                Ok(match command.first().map(String::as_str) {
                    Some("echo") => ExecOutput {
                        exit_code: 0,
                        output: format!("{}\n", command[1..].join(" ")),
                    },
                    Some("true") => ExecOutput::default(),
                    Some(other) => ExecOutput {
                        exit_code: 127,
                        output: format!("{other}: not found\n"),
                    },
                    None => return Err(Error::invalid("runtime.exec", name, "the command is empty")),
                })
            })
            .await
    }

    async fn run_once(&self, job: &OneOff) -> Result<ExecOutput> {
        self.faults
            .around("runtime.run_once", &job.image.to_string(), async {
                if job.command.is_empty() {
                    return Err(Error::invalid(
                        "runtime.run_once",
                        job.image.to_string(),
                        "the command is empty",
                    ));
                }
                let behavior = {
                    let mut state = lock(&self.state);
                    let behavior = state
                        .images
                        .get(&job.image.to_string())
                        .map(|(_, b)| b.clone())
                        .ok_or_else(|| {
                            Error::new(
                                ErrorKind::NotFound,
                                "runtime.run_once",
                                job.image.to_string(),
                                "no such image",
                            )
                        })?;
                    state.jobs.push(job.clone());
                    behavior
                };
                // The job runs in simulated time; past its deadline it is killed, as Docker's would be.
                if behavior.migration_takes > job.deadline {
                    tokio::time::sleep(job.deadline).await;
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        "runtime.run_once",
                        job.image.to_string(),
                        format!("still running after {:?}, killed", job.deadline),
                    ));
                }
                tokio::time::sleep(behavior.migration_takes).await;
                Ok(ExecOutput {
                    exit_code: behavior.migration_exit,
                    output: if behavior.migration_exit == 0 {
                        "All migrations have been successfully applied.\n".into()
                    } else {
                        "Error: P3018 A migration failed to apply.\n".into()
                    },
                })
            })
            .await
    }

    async fn ship(
        &self,
        release: &Release,
        source: &ReleaseSource,
        progress: ShipProgressFn,
    ) -> Result<ShipReport> {
        self.faults
            .around(
                "runtime.ship",
                &release.image.to_string(),
                self.ship_image(release, source, progress),
            )
            .await
    }

    async fn list(&self, labels: &BTreeMap<String, String>) -> Result<Vec<ContainerInfo>> {
        self.faults
            .around("runtime.list", "", async {
                let now = Instant::now();
                Ok(lock(&self.state)
                    .containers
                    .values()
                    .filter(|c| labels.iter().all(|(k, v)| c.spec.labels.get(k) == Some(v)))
                    .map(|c| c.info(now))
                    .collect())
            })
            .await
    }

    async fn read_image_dir(&self, image: &ImageRef, dir: &str, max_bytes: u64) -> Result<Vec<ImageFile>> {
        let target = image.to_string();
        self.faults
            .around("runtime.read_image_dir", &target, async {
                let state = lock(&self.state);
                if !state.images.contains_key(&target) {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        "runtime.read_image_dir",
                        &target,
                        "no such image",
                    ));
                }
                let prefix = format!("{}/", dir.trim_end_matches('/'));
                let files: Vec<ImageFile> = state
                    .files
                    .get(&target)
                    .into_iter()
                    .flatten()
                    .filter_map(|(path, data)| {
                        path.strip_prefix(&prefix).map(|rel| ImageFile {
                            path: rel.to_string(),
                            data: data.clone(),
                        })
                    })
                    .collect();
                let total: u64 = files.iter().map(|f| f.data.len() as u64).sum();
                if total > max_bytes {
                    return Err(Error::new(
                        ErrorKind::Refused,
                        "runtime.read_image_dir",
                        &target,
                        format!("{dir} holds {total} bytes, more than the {max_bytes} asked for"),
                    ));
                }
                Ok(files)
            })
            .await
    }

    async fn logs(&self, name: &str, query: LogQuery) -> Result<LogStream> {
        self.faults
            .around("runtime.logs", name, async { self.open_logs(name, query) })
            .await
    }

    async fn list_images(&self, repository: &str) -> Result<Vec<ImageInfo>> {
        self.faults
            .around("runtime.list_images", repository, async {
                Ok(self.images_of(repository))
            })
            .await
    }

    async fn delete_image(&self, image: &ImageRef) -> Result<()> {
        self.faults
            .around("runtime.delete_image", &image.to_string(), async {
                self.delete_reference(image)
            })
            .await
    }
}
