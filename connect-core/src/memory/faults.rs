//! Faults injected into the in-memory backends, so every step of the engine can be made to fail.
//!
//! Two ways to aim a fault: a rule names an operation (and optionally a target) and fails its calls
//! ([`Faults::fail`] and friends); a trap names one call by its number in the sequence of every call made
//! through these faults ([`Faults::trap`]). A [`super::MemoryStack`] shares one `Faults` between its five
//! backends, so the numbers run across all of them: a sweep counts the calls of a clean run, then traps each
//! one in turn with each [`FaultKind`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::lock;
use crate::error::{Error, ErrorKind, Result};

/// What a trapped call does instead of its plain work.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Fails with this kind before acting: nothing changed (a refused connection, a rejected command).
    FailBefore(ErrorKind),
    /// Acts, then fails with this kind instead of returning the result: the change happened but the caller
    /// cannot know it (HAProxy applied a state but saving the state file failed; the SSH reply was lost).
    ApplyThenFail(ErrorKind),
    /// Never returns (a peer that stopped answering): only the caller's timeout, or dropping the call's
    /// future (the process dying), ends it.
    Hang,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::FailBefore(kind) => write!(f, "fail-before({kind})"),
            FaultKind::ApplyThenFail(kind) => write!(f, "apply-then-fail({kind})"),
            FaultKind::Hang => f.write_str("hang"),
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    operation: String,
    target: Option<String>,
    kind: ErrorKind,
    message: String,
    remaining: Option<u32>,
    /// Matching calls that still pass before this rule starts failing.
    skip: u32,
}

/// Run at every call, before it acts: the call's number, operation and target.
type Hook = Arc<dyn Fn(u64, &str, &str) + Send + Sync>;

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    /// Calls so far; the next call's number is `calls + 1`.
    calls: u64,
    /// (operation, target) of every call, in order: call `n` is `log[n - 1]`.
    log: Vec<(String, String)>,
    traps: BTreeMap<u64, FaultKind>,
    hook: Option<Hook>,
}

struct Shared {
    state: Mutex<State>,
    /// The number of the call at which a trap last fired; `None` again whenever a trap is set.
    tripped: watch::Sender<Option<u64>>,
}

/// A set of injected faults, shared by clones.
///
/// Operations are named `<backend>.<method>`, the trait method's name: `host.run`, `host.put_file`,
/// `runtime.start`, `runtime.run_once`, `router.set_state`, `database.members`, `cache.ping`, …
/// Every trait method of every in-memory backend is one call, numbered from 1.
#[derive(Clone)]
pub struct Faults {
    shared: Arc<Shared>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            shared: Arc::new(Shared {
                state: Mutex::default(),
                tripped: watch::Sender::new(None),
            }),
        }
    }
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared.state);
        f.debug_struct("Faults")
            .field("rules", &state.rules)
            .field("calls", &state.calls)
            .field("traps", &state.traps)
            .finish_non_exhaustive()
    }
}

impl Faults {
    /// Every operation the in-memory backends pass through their faults, `<backend>.<method>` with backend
    /// `host`, `runtime`, `router`, `database` or `cache`: the names a fault rule can aim at.
    pub const OPERATIONS: [&'static str; 41] = [
        "host.connect",
        "host.disk_usage",
        "host.get_file",
        "host.put_file",
        "host.remove_file",
        "host.rename",
        "host.run",
        "runtime.delete_image",
        "runtime.exec",
        "runtime.image",
        "runtime.inspect",
        "runtime.list",
        "runtime.list_images",
        "runtime.logs",
        "runtime.logs_since",
        "runtime.read_image_dir",
        "runtime.remove",
        "runtime.run_once",
        "runtime.ship",
        "runtime.start",
        "runtime.stats",
        "runtime.stop",
        "runtime.wait_healthy",
        "router.figures",
        "router.maintenance",
        "router.servers",
        "router.set_address",
        "router.set_maintenance",
        "router.set_state",
        "router.set_weight",
        "database.backup",
        "database.check_query",
        "database.figures",
        "database.members",
        "database.migration_tables",
        "database.restore_point",
        "database.switchover",
        "cache.figures",
        "cache.info",
        "cache.ping",
        "cache.save",
    ];

    /// Every call of `operation` fails with `kind` until [`Faults::clear`].
    pub fn fail(&self, operation: &str, kind: ErrorKind) {
        self.push(operation, None, kind, None);
    }

    /// Calls of `operation` on `target` (a container, server, path…) fail with `kind`.
    pub fn fail_on(&self, operation: &str, target: &str, kind: ErrorKind) {
        self.push(operation, Some(target), kind, None);
    }

    /// The next `times` calls of `operation` fail with `kind`, then it works again.
    pub fn fail_times(&self, operation: &str, kind: ErrorKind, times: u32) {
        self.push(operation, None, kind, Some(times));
    }

    /// The next `times` calls of `operation` on `target` fail with `kind`, then it works again.
    pub fn fail_on_times(&self, operation: &str, target: &str, kind: ErrorKind, times: u32) {
        self.push(operation, Some(target), kind, Some(times));
    }

    /// Calls of `operation` on `target` pass `skip` times, then fail with `kind`: for failing the second of two
    /// calls, e.g. the switch's `set_state` after the start step's.
    pub fn fail_after(&self, operation: &str, target: &str, skip: u32, kind: ErrorKind) {
        self.push(operation, Some(target), kind, None);
        if let Some(rule) = lock(&self.shared.state).rules.last_mut() {
            rule.skip = skip;
        }
    }

    /// Removes every fault of `operation`.
    pub fn clear(&self, operation: &str) {
        lock(&self.shared.state)
            .rules
            .retain(|r| r.operation != operation);
    }

    /// The call numbered `call` (counting every call through these faults from 1, see [`Faults::calls`])
    /// does `kind` instead of its plain work. Also resets what [`Faults::tripped`] waits for.
    pub fn trap(&self, call: u64, kind: FaultKind) {
        lock(&self.shared.state).traps.insert(call, kind);
        self.shared.tripped.send_replace(None);
    }

    /// Removes every trap that has not fired yet.
    pub fn clear_traps(&self) {
        lock(&self.shared.state).traps.clear();
    }

    /// Resolves with the trapped call's number once a trap fires, at once if one fired since the last
    /// [`Faults::trap`]. A harness races it against the operation and drops the operation's future when it
    /// resolves, as if the process died at that call.
    pub fn tripped(&self) -> impl Future<Output = u64> + Send + 'static {
        let mut rx = self.shared.tripped.subscribe();
        async move {
            // The borrowed value is released within this statement: it must not live across an await.
            let fired = rx.wait_for(Option::is_some).await.ok().and_then(|call| *call);
            match fired {
                Some(call) => call,
                // The sender went with the last `Faults` clone: no trap can fire any more.
                None => std::future::pending().await,
            }
        }
    }

    /// How many calls were made so far; the next call is number `calls() + 1`.
    pub fn calls(&self) -> u64 {
        lock(&self.shared.state).calls
    }

    /// The (operation, target) of every call so far, in order: call `n` is at index `n - 1`.
    pub fn call_log(&self) -> Vec<(String, String)> {
        lock(&self.shared.state).log.clone()
    }

    /// Runs `hook` with the number, operation and target of every later call, before the call acts (so it
    /// sees the state between two calls), replacing any earlier hook. The hook must not call a backend's
    /// trait methods (that would be a call of its own); synchronous snapshots such as
    /// [`super::MemoryRouter::snapshot`] and [`super::MemoryRuntime::is_serving`] are fine.
    pub fn on_call(&self, hook: impl Fn(u64, &str, &str) + Send + Sync + 'static) {
        lock(&self.shared.state).hook = Some(Arc::new(hook));
    }

    fn push(&self, operation: &str, target: Option<&str>, kind: ErrorKind, remaining: Option<u32>) {
        lock(&self.shared.state).rules.push(Rule {
            operation: operation.to_string(),
            target: target.map(str::to_string),
            kind,
            message: format!("injected fault in {operation}"),
            remaining,
            skip: 0,
        });
    }

    /// Runs one call of `operation` on `target`: counts it, runs the hook, then does `body` unless a trap or
    /// a rule says otherwise. Every in-memory trait method is its body wrapped in this.
    pub(crate) async fn around<T>(
        &self,
        operation: &str,
        target: &str,
        body: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let (call, trap) = self.enter(operation, target)?;
        match trap {
            None => body.await,
            Some(FaultKind::FailBefore(kind)) => Err(Error::new(
                kind,
                operation,
                target,
                format!("injected fault at call {call}"),
            )),
            Some(FaultKind::ApplyThenFail(kind)) => {
                // The body's own result is lost, as a reply lost on the way back would be.
                let _ = body.await;
                Err(Error::new(
                    kind,
                    operation,
                    target,
                    format!("injected fault at call {call}, after it applied"),
                ))
            }
            Some(FaultKind::Hang) => std::future::pending().await,
        }
    }

    /// Counts the call and runs the hook; fails at once if a rule matches, else returns the call's number and
    /// its trap, if any.
    fn enter(&self, operation: &str, target: &str) -> Result<(u64, Option<FaultKind>)> {
        // Keeps `OPERATIONS` whole: every test that reaches a new operation fails until it is listed.
        debug_assert!(
            Self::OPERATIONS.contains(&operation),
            "{operation} is missing from Faults::OPERATIONS"
        );
        let (call, trap, hook, failed) = {
            let mut state = lock(&self.shared.state);
            state.calls += 1;
            let call = state.calls;
            state.log.push((operation.to_string(), target.to_string()));
            let trap = state.traps.remove(&call);
            // A trapped call does only what its trap says, so it leaves the rules' counts alone.
            let failed = if trap.is_none() {
                Self::match_rule(&mut state.rules, operation, target)
            } else {
                None
            };
            (call, trap, state.hook.clone(), failed)
        };
        // Outside the lock: the hook may read the backends, whose own calls never come back here.
        if let Some(hook) = hook {
            hook(call, operation, target);
        }
        if trap.is_some() {
            self.shared.tripped.send_replace(Some(call));
        }
        match failed {
            Some(e) => Err(e),
            None => Ok((call, trap)),
        }
    }

    /// The error of the first rule matching this call, counting the call against that rule.
    fn match_rule(rules: &mut Vec<Rule>, operation: &str, target: &str) -> Option<Error> {
        let i = rules
            .iter()
            .position(|r| r.operation == operation && r.target.as_deref().is_none_or(|t| t == target))?;
        if rules[i].skip > 0 {
            rules[i].skip -= 1;
            return None;
        }
        let rule = rules[i].clone();
        if let Some(n) = rules[i].remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                rules.remove(i);
            }
        }
        Some(Error::new(rule.kind, operation, target, rule.message))
    }
}
