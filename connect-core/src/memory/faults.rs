//! Faults injected into the in-memory backends, so every step of the engine can be made to fail.

use std::sync::{Arc, Mutex};

use crate::error::{Error, ErrorKind, Result};

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

/// A set of injected faults, shared by clones.
///
/// Operations are named `<backend>.<method>`, the trait method's name: `host.run`, `host.put_file`,
/// `runtime.start`, `runtime.run_once`, `router.set_state`, `database.members`, `cache.ping`, …
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Arc<Mutex<Vec<Rule>>>,
}

impl Faults {
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

    /// Calls of `operation` on `target` pass `skip` times, then fail with `kind`: for failing the second of two
    /// calls, e.g. the switch's `set_state` after the start step's.
    pub fn fail_after(&self, operation: &str, target: &str, skip: u32, kind: ErrorKind) {
        self.push(operation, Some(target), kind, None);
        if let Some(rule) = self.rules.lock().unwrap_or_else(|p| p.into_inner()).last_mut() {
            rule.skip = skip;
        }
    }

    /// Removes every fault of `operation`.
    pub fn clear(&self, operation: &str) {
        self.rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|r| r.operation != operation);
    }

    fn push(&self, operation: &str, target: Option<&str>, kind: ErrorKind, remaining: Option<u32>) {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).push(Rule {
            operation: operation.to_string(),
            target: target.map(str::to_string),
            kind,
            message: format!("injected fault in {operation}"),
            remaining,
            skip: 0,
        });
    }

    /// Fails if a fault matches this call; used by every in-memory operation before it acts.
    pub(crate) fn check(&self, operation: &str, target: &str) -> Result<()> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let Some(i) = rules
            .iter()
            .position(|r| r.operation == operation && r.target.as_deref().is_none_or(|t| t == target))
        else {
            return Ok(());
        };
        if rules[i].skip > 0 {
            rules[i].skip -= 1;
            return Ok(());
        }
        let rule = rules[i].clone();
        if let Some(n) = rules[i].remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                rules.remove(i);
            }
        }
        Err(Error::new(rule.kind, operation, target, rule.message))
    }
}
