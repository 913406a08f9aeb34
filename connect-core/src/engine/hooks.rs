//! Hooks: the operator's own commands at named points of an operation (a smoke test of their own before the
//! switch, a chat message after a deploy), run on this machine or on the server with the operation's facts
//! in their environment. A hook that fails before the switch stops the deploy (and the usual undo follows);
//! after the switch, traffic has moved and a failed hook only says so.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Deployer;
use super::run::Run;
use crate::error::{Error, ErrorKind, Result};
use crate::host::{Command, Host};
use crate::local::LocalHost;
use crate::vocabulary::Step;

/// Where in an operation a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HookPoint {
    /// Before a deploy or full rollback does anything (after the lock and reconcile): a gate.
    BeforeDeploy,
    /// Once the release's image is on the server.
    AfterShip,
    /// The new color is healthy and about to take traffic: the last gate.
    BeforeSwitch,
    /// A deploy succeeded (traffic moved, verified). Its failure does not change the outcome.
    AfterDeploy,
    /// A rollback (instant or full) succeeded. Its failure does not change the outcome.
    AfterRollback,
}

impl HookPoint {
    /// Its name in configs and in the hook's `CONNECT_HOOK`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookPoint::BeforeDeploy => "before_deploy",
            HookPoint::AfterShip => "after_ship",
            HookPoint::BeforeSwitch => "before_switch",
            HookPoint::AfterDeploy => "after_deploy",
            HookPoint::AfterRollback => "after_rollback",
        }
    }

    /// Whether its failure stops the operation (before traffic moves) or is only reported.
    pub fn gates(self) -> bool {
        matches!(
            self,
            HookPoint::BeforeDeploy | HookPoint::AfterShip | HookPoint::BeforeSwitch
        )
    }

    /// What a failed hook here means for the operation, as its error's hint.
    fn on_failure(self) -> &'static str {
        if self.gates() {
            "the operation stopped before traffic moved; fix the hook or what it checks"
        } else {
            "traffic already moved; the hook's failure does not change the outcome"
        }
    }
}

/// Where a hook's command runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookSite {
    /// On the machine running the deploy.
    #[default]
    Local,
    /// On the server, through the deploy's host connection.
    Server,
}

/// A command at a point of every operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// When.
    pub point: HookPoint,
    /// The program and its arguments (never a shell string: `["sh", "-c", "…"]` when a shell is wanted).
    pub command: Vec<String>,
    /// Where.
    #[serde(default)]
    pub site: HookSite,
    /// How long it may run before it is killed (and counts as failed).
    #[serde(with = "crate::model::duration_ms")]
    pub timeout: Duration,
}

impl Hook {
    /// `command` at `point`, on this machine, within a minute.
    pub fn new<S: Into<String>>(point: HookPoint, command: impl IntoIterator<Item = S>) -> Hook {
        Hook {
            point,
            command: command.into_iter().map(Into::into).collect(),
            site: HookSite::Local,
            timeout: Duration::from_secs(60),
        }
    }

    /// Runs it on the server instead.
    pub fn on_server(mut self) -> Hook {
        self.site = HookSite::Server;
        self
    }

    /// Refuses an empty command or a zero timeout.
    pub fn validate(&self) -> Result<()> {
        if self.command.first().is_none_or(|p| p.is_empty()) {
            return Err(Error::invalid(
                "hook.validate",
                self.point.as_str(),
                "a hook needs a program to run",
            )
            .with_hint("give the command as an argv, e.g. [\"./scripts/smoke.sh\"]"));
        }
        if self.timeout.is_zero() {
            return Err(Error::invalid(
                "hook.validate",
                self.point.as_str(),
                "a timeout of zero can never be met",
            ));
        }
        Ok(())
    }
}

impl Deployer {
    /// Runs the hooks configured for `point`, each as a step of its own. A gate's failure is returned; a
    /// later hook's failure is recorded as its step's and the operation goes on.
    pub(crate) async fn run_hooks(&self, run: &mut Run, point: HookPoint) -> Result<()> {
        self.run_hooks_with(run, point, &[]).await
    }

    /// [`Deployer::run_hooks`] with more facts in the hooks' environment (a fleet's hosts).
    pub(crate) async fn run_hooks_with(
        &self,
        run: &mut Run,
        point: HookPoint,
        extra: &[(String, String)],
    ) -> Result<()> {
        let hooks: Vec<&Hook> = self.config.hooks.iter().filter(|h| h.point == point).collect();
        for hook in hooks {
            let mut env = self.hook_env(run, point);
            env.extend_from_slice(extra);
            let result = run.step(Step::Hook, self.run_hook(hook, env)).await;
            if point.gates() {
                result?;
            }
        }
        Ok(())
    }

    fn hook_env(&self, run: &Run, point: HookPoint) -> Vec<(String, String)> {
        let r = &run.record;
        let color = |c: Option<crate::model::Color>| c.map(|c| c.to_string()).unwrap_or_default();
        vec![
            ("CONNECT_HOOK".into(), point.as_str().into()),
            ("CONNECT_OPERATION".into(), r.id.clone()),
            // As the journal writes it (`instant_rollback`): one word, for scripts.
            ("CONNECT_KIND".into(), r.kind.to_string().replace(' ', "_")),
            (
                "CONNECT_RELEASE".into(),
                r.release.as_ref().map(|r| r.version.clone()).unwrap_or_default(),
            ),
            (
                "CONNECT_IMAGE".into(),
                r.release
                    .as_ref()
                    .map(|r| r.image.to_string())
                    .unwrap_or_default(),
            ),
            ("CONNECT_LIVE_BEFORE".into(), color(r.live_before)),
            ("CONNECT_LIVE_AFTER".into(), color(r.live_after)),
            ("CONNECT_HOLDER".into(), r.holder.clone()),
        ]
    }

    async fn run_hook(&self, hook: &Hook, env: Vec<(String, String)>) -> Result<String> {
        // `env` sets the facts for the program alone, on either side, without a shell.
        let argv: Vec<String> = std::iter::once("env".to_string())
            .chain(env.into_iter().map(|(k, v)| format!("{k}={v}")))
            .chain(hook.command.iter().cloned())
            .collect();
        let command = Command::new(argv).timeout(hook.timeout);
        let shown = format!("{} `{}`", hook.point.as_str(), hook.command.join(" "));
        let out = match hook.site {
            HookSite::Local => LocalHost::new().run(&command).await,
            HookSite::Server => self.backends.host.run(&command).await,
        }
        .map_err(|e| {
            Error::new(e.kind(), "deploy.hook", &shown, e.message().to_string())
                .with_hint(hook.point.on_failure())
        })?;
        let tail = |text: &[u8]| {
            let text = String::from_utf8_lossy(text);
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            lines[lines.len().saturating_sub(3)..].join(" | ")
        };
        if !out.success() {
            return Err(Error::new(
                ErrorKind::Failed,
                "deploy.hook",
                &shown,
                format!(
                    "{}: {}",
                    out.status
                        .map_or("killed by a signal".into(), |c| format!("exited {c}")),
                    tail(&out.stderr)
                ),
            )
            .with_hint(hook.point.on_failure()));
        }
        Ok(format!("{shown}: {}", tail(&out.stdout)))
    }
}
