//! One file per step of the runbook, each an `impl Deployer` block the orchestrator (`deploy.rs`) calls in
//! order. A step returns a one-line summary for the journal, or the error that stops the operation.

mod balance;
mod canary;
mod health_gate;
mod lint;
mod migrate;
mod rollback;
mod ship;
mod stage;
mod start_idle;
mod switch;
mod verify;
pub(crate) mod watch;
