//! A service's tasks as the state of a color: the current task is the container, its state the container's
//! state and health.
//!
//! Swarm holds a task with a health check in `starting` until the check passes, then `running`; an unhealthy
//! container fails its task (`task: non-zero exit (137): dockerexec: unhealthy container`). So the manager
//! alone tells health, for a task on any node, without reaching that node's engine.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bollard::models::{Service, Task, TaskState};
use connect_core::runtime::{ContainerInfo, ContainerState, Health};

use crate::inspect::parse_rfc3339;

/// What a service's tasks say about the color.
#[derive(Debug, Clone)]
pub(crate) struct ServiceState {
    pub(crate) info: ContainerInfo,
    /// The current task's node and container, when it has one.
    pub(crate) node: Option<String>,
    pub(crate) container: Option<String>,
    /// A task of this service life that failed, with Swarm's error: why it is not serving.
    pub(crate) failure: Option<String>,
}

fn created(t: &Task) -> Option<SystemTime> {
    t.created_at.as_deref().and_then(parse_rfc3339)
}

fn state(t: &Task) -> TaskState {
    t.status.as_ref().and_then(|s| s.state).unwrap_or(TaskState::NEW)
}

/// How a task ended or why it is not running, in Swarm's words.
pub(crate) fn task_error(t: &Task) -> String {
    let status = t.status.clone().unwrap_or_default();
    let mut why = format!("task {} {}", t.id.as_deref().unwrap_or("?"), state(t));
    if let Some(m) = status.message.filter(|m| !m.is_empty()) {
        why.push_str(&format!(" ({m})"));
    }
    if let Some(e) = status.err.filter(|e| !e.is_empty()) {
        why.push_str(&format!(": {e}"));
    }
    if let Some(code) = status.container_status.and_then(|c| c.exit_code) {
        why.push_str(&format!(", exit code {code}"));
    }
    why
}

/// The color's state from its service and tasks. The current task is the newest one Swarm wants running (or,
/// for a stopped service, the newest one); failures count only since the service was last changed, so a
/// failure before a stop and a start is not this life's.
pub(crate) fn service_state(service: &Service, mut tasks: Vec<Task>) -> ServiceState {
    let spec = service.spec.clone().unwrap_or_default();
    let replicas = spec
        .mode
        .as_ref()
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or(0);
    let changed = service.updated_at.as_deref().and_then(parse_rfc3339);
    tasks.sort_by_key(created);
    let wanted = |t: &&Task| t.desired_state == Some(TaskState::RUNNING);
    let current = tasks.iter().rev().find(wanted).or_else(|| tasks.last());
    let failure = tasks
        .iter()
        .rev()
        .filter(|t| matches!(state(t), TaskState::FAILED | TaskState::REJECTED))
        .find(|t| changed.is_none() || created(t) >= changed)
        .map(task_error);
    let (container_state, health) = match current.map(state) {
        _ if replicas == 0 => (ContainerState::Exited, Health::None),
        // Whether the task's container has a health check cannot be read back here (bollard reads
        // `HealthCheck`, the Engine answers `Healthcheck`): the container's own health replaces this when its
        // node's engine is known (`Swarm::service`). Swarm only lets a checked task reach `running` healthy.
        Some(TaskState::RUNNING) => (ContainerState::Running, Health::None),
        Some(TaskState::STARTING) => (ContainerState::Running, Health::Starting),
        Some(TaskState::FAILED | TaskState::REJECTED) => (ContainerState::Exited, Health::Unhealthy),
        Some(
            TaskState::NEW
            | TaskState::ALLOCATED
            | TaskState::PENDING
            | TaskState::ASSIGNED
            | TaskState::ACCEPTED
            | TaskState::PREPARING
            | TaskState::READY,
        )
        | None => (ContainerState::Created, Health::None),
        Some(_) => (ContainerState::Exited, Health::None),
    };
    let image = spec
        .task_template
        .as_ref()
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let restarts = tasks
        .iter()
        .filter(|t| matches!(state(t), TaskState::FAILED | TaskState::REJECTED))
        .count();
    let info = ContainerInfo {
        name: spec.name.clone().unwrap_or_default(),
        id: service.id.clone().unwrap_or_default(),
        image,
        labels: spec
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        state: container_state,
        health,
        health_log: failure.iter().cloned().collect(),
        started_at: current
            .filter(|t| state(t) == TaskState::RUNNING)
            .and_then(|t| t.status.as_ref())
            .and_then(|s| s.timestamp.as_deref())
            .and_then(parse_rfc3339),
        restart_count: u32::try_from(restarts).unwrap_or(u32::MAX),
    };
    ServiceState {
        info,
        node: current.and_then(|t| t.node_id.clone()),
        container: current
            .and_then(|t| t.status.as_ref())
            .and_then(|s| s.container_status.as_ref())
            .and_then(|c| c.container_id.clone()),
        failure,
    }
}

/// Whether a task still holds its container (and its published port) or may yet start one. A task that has
/// not started and that Swarm no longer wants running (scaled down, or replaced while it waited out a restart
/// delay) never starts: its agent moves it straight to shutdown, or it waits in its state until the history
/// reaper takes it. Counting it would make a stop wait for a task that never ends.
pub(crate) fn is_live(t: &Task) -> bool {
    match state(t) {
        TaskState::STARTING | TaskState::RUNNING => true,
        TaskState::NEW
        | TaskState::ALLOCATED
        | TaskState::PENDING
        | TaskState::ASSIGNED
        | TaskState::ACCEPTED
        | TaskState::PREPARING
        | TaskState::READY => matches!(
            t.desired_state,
            None | Some(TaskState::READY | TaskState::RUNNING)
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::{ServiceSpec, TaskStatus};

    use super::*;

    fn task(id: &str, created: &str, state: TaskState, desired: TaskState, err: Option<&str>) -> Task {
        Task {
            id: Some(id.into()),
            created_at: Some(created.into()),
            desired_state: Some(desired),
            node_id: Some("node1".into()),
            status: Some(TaskStatus {
                state: Some(state),
                err: err.map(String::from),
                timestamp: Some(created.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn service(updated: &str) -> Service {
        let spec = crate::swarm::service::service_spec(
            &connect_core::runtime::ContainerSpec {
                name: "connect_app1".into(),
                image: connect_core::model::ImageRef::parse("connect:v1").unwrap(),
                labels: Default::default(),
                env: Default::default(),
                ports: vec![],
                command: None,
                health_path: Some("/api/health".into()),
                stop_grace: std::time::Duration::from_secs(1),
            },
            &crate::SlotOptions::default(),
        );
        Service {
            id: Some("svc".into()),
            updated_at: Some(updated.into()),
            spec: Some(ServiceSpec { ..spec }),
            ..Default::default()
        }
    }

    #[test]
    fn a_starting_task_is_health_pending_and_a_running_one_healthy() {
        let s = service("2026-12-06T10:00:00Z");
        let t = task(
            "t1",
            "2026-12-06T10:00:01Z",
            TaskState::STARTING,
            TaskState::RUNNING,
            None,
        );
        let st = service_state(&s, vec![t.clone()]);
        assert_eq!(
            (st.info.state, st.info.health),
            (ContainerState::Running, Health::Starting)
        );
        let running = Task {
            status: Some(TaskStatus {
                state: Some(TaskState::RUNNING),
                ..t.status.clone().unwrap()
            }),
            ..t
        };
        let st = service_state(&s, vec![running]);
        assert!(st.info.is_serving(), "{:?}", st.info);
    }

    #[test]
    fn a_failed_task_of_this_life_is_quoted_and_an_older_one_is_not() {
        let s = service("2026-12-06T10:00:00Z");
        let old = task(
            "t0",
            "2026-12-06T09:00:00Z",
            TaskState::FAILED,
            TaskState::SHUTDOWN,
            Some("old failure"),
        );
        let failed = task(
            "t1",
            "2026-12-06T10:00:01Z",
            TaskState::FAILED,
            TaskState::SHUTDOWN,
            Some("task: non-zero exit (137): dockerexec: unhealthy container"),
        );
        let st = service_state(&s, vec![old.clone(), failed]);
        let why = st.failure.expect("a failure");
        assert!(why.contains("unhealthy container"), "{why}");
        assert_eq!(st.info.health, Health::Unhealthy);
        assert!(service_state(&s, vec![old]).failure.is_none());
    }

    #[test]
    fn a_task_swarm_no_longer_wants_is_live_only_once_started() {
        let t = |state, desired| task("t", "2026-12-06T10:00:01Z", state, desired, None);
        assert!(is_live(&t(TaskState::READY, TaskState::RUNNING)));
        assert!(is_live(&t(TaskState::PENDING, TaskState::READY)));
        assert!(is_live(&t(TaskState::RUNNING, TaskState::SHUTDOWN)));
        assert!(is_live(&t(TaskState::STARTING, TaskState::SHUTDOWN)));
        assert!(!is_live(&t(TaskState::READY, TaskState::SHUTDOWN)));
        assert!(!is_live(&t(TaskState::PREPARING, TaskState::REMOVE)));
        assert!(!is_live(&t(TaskState::SHUTDOWN, TaskState::SHUTDOWN)));
        assert!(!is_live(&t(TaskState::FAILED, TaskState::RUNNING)));
    }
}
