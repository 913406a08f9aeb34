//! Programs in containers: exec in a running one, and one-off containers (migrations) run to completion.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, RemoveContainerOptions, WaitContainerOptions,
};
use connect_core::runtime::{ContainerSpec, ExecOutput, OneOff};
use connect_core::{Error, ErrorKind, Result};
use futures::StreamExt;

use crate::client::Docker;
use crate::containers::ONE_OFF_LABEL;
use crate::error::map_err;
use crate::slot::{SlotOptions, create_body};

impl Docker {
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
        let spec = ContainerSpec {
            // Not in the body: `with_one_off` names the container.
            name: String::new(),
            image: job.image.clone(),
            labels: job.labels.clone(),
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
        let refused = |e| {
            let err = map_err("docker.run_once", &job.image.to_string(), e);
            if err.kind() == ErrorKind::NotFound {
                err.with_hint("build or transfer the image first")
            } else {
                err
            }
        };
        self.with_one_off(
            "connect-one-off",
            create_body(&spec, &options),
            refused,
            |name| async move { self.run_created(&name, job).await },
        )
        .await
    }

    /// Creates a container from `body` that is never reused: a fresh name (`{prefix}-{pid}-{nanos}`) and
    /// [`ONE_OFF_LABEL`], so one a killed process left is found and removed. Runs `work` with its name, then
    /// removes it (forced, with its volumes) whatever `work` returned. `refused` turns the Engine's refusal
    /// to create it into the caller's error.
    pub(crate) async fn with_one_off<T, F, Fut>(
        &self,
        prefix: &str,
        mut body: ContainerCreateBody,
        refused: impl FnOnce(bollard::errors::Error) -> Error,
        work: F,
    ) -> Result<T>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("{prefix}-{}-{nanos}", std::process::id());
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
            .map_err(refused)?;
        let result = work(name.clone()).await;
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
