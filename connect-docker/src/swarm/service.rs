//! A color as a Swarm service: the service spec built from a [`ContainerSpec`] and the slot options.

use std::collections::HashMap;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, EndpointSpec,
    Limit, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec,
    TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use connect_core::runtime::ContainerSpec;

use crate::slot::{Restart, SlotOptions, health_config, nanos};

/// The service for a color: one replica of the spec's image, its labels on the service and on the task's
/// container, the health check the plain slot would have, and each port published in host mode.
///
/// Host mode because the ingress routing mesh needs iptables (and IPVS) on every node: on an engine run with
/// `--iptables=false` an ingress-published port refuses every connection. Host mode binds the port on the node
/// that runs the task, so HAProxy has a server per node and color and its checks find the node the task runs
/// on (after a reschedule too).
pub(crate) fn service_spec(spec: &ContainerSpec, options: &SlotOptions) -> ServiceSpec {
    let labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.extend(options.secrets.iter().map(|(k, v)| format!("{k}={v}")));
    // A node that goes down has its tasks rescheduled only under a restart condition that allows it: `none`
    // leaves the service without a task. A failed task is still reported by `wait_healthy` at once.
    let (condition, max_attempts) = match options.restart {
        Restart::No => (TaskSpecRestartPolicyConditionEnum::NONE, None),
        Restart::OnFailure(n) => (TaskSpecRestartPolicyConditionEnum::ON_FAILURE, Some(i64::from(n))),
        Restart::UnlessStopped | Restart::Always => (TaskSpecRestartPolicyConditionEnum::ANY, None),
    };
    let ports: Vec<EndpointPortConfig> = spec
        .ports
        .iter()
        .map(|(container, host)| EndpointPortConfig {
            protocol: Some(EndpointPortConfigProtocolEnum::TCP),
            target_port: Some(i64::from(*container)),
            published_port: Some(i64::from(*host)),
            publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
            ..Default::default()
        })
        .collect();
    ServiceSpec {
        name: Some(spec.name.clone()),
        labels: Some(labels.clone()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(spec.image.to_string()),
                labels: Some(labels),
                // The command replaces the image's CMD, not its ENTRYPOINT, as on a plain slot.
                args: spec.command.clone(),
                env: Some(env),
                health_check: health_config(spec, options, None),
                stop_grace_period: Some(nanos(spec.stop_grace)),
                init: Some(options.init),
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: options.cpus.map(|c| (c * 1e9) as i64),
                    memory_bytes: options.memory_bytes,
                    pids: None,
                }),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(condition),
                max_attempts,
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            ports: (!ports.is_empty()).then_some(ports),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_color_is_one_replica_published_in_host_mode_with_the_slot_health_check() {
        let spec = ContainerSpec {
            name: "connect_app2".into(),
            image: connect_core::model::ImageRef::parse("connect:v2").unwrap(),
            labels: [("ops.connect.color".to_string(), "green".to_string())].into(),
            env: [("PORT".to_string(), "3000".to_string())].into(),
            ports: vec![(3000, 3001)],
            command: Some(vec!["serve".into()]),
            health_path: Some("/api/health".into()),
            stop_grace: Duration::from_secs(10),
        };
        let s = service_spec(&spec, &SlotOptions::default());
        assert_eq!(s.name.as_deref(), Some("connect_app2"));
        let mode = s.mode.unwrap().replicated.unwrap();
        assert_eq!(mode.replicas, Some(1));
        let port = &s.endpoint_spec.unwrap().ports.unwrap()[0];
        assert_eq!(port.publish_mode, Some(EndpointPortConfigPublishModeEnum::HOST));
        assert_eq!((port.target_port, port.published_port), (Some(3000), Some(3001)));
        let task = s.task_template.unwrap();
        let c = task.container_spec.unwrap();
        assert_eq!(c.args, Some(vec!["serve".to_string()]));
        assert_eq!(c.command, None, "the image's entrypoint stays");
        assert_eq!(c.labels.unwrap()["ops.connect.color"], "green");
        let probe = c.health_check.unwrap().test.unwrap();
        assert!(
            probe.iter().any(|a| a.contains("127.0.0.1:3000/api/health")),
            "{probe:?}"
        );
        assert_eq!(c.stop_grace_period, Some(10_000_000_000));
        assert_eq!(
            task.restart_policy.unwrap().condition,
            Some(TaskSpecRestartPolicyConditionEnum::ANY)
        );
    }
}
