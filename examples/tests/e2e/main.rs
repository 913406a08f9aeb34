//! The whole runbook on a real local stack (sshd, Docker through it, HAProxy, etcd + Patroni + PostgreSQL,
//! Redis), under load, and each fault on its own stack. Real programs only: with `CONNECT_REAL_TESTS=1` a
//! missing one fails the test.
//!
//! The tests of this binary run one at a time (each holds [`serial`]): a stack is a dozen processes, and two
//! at once on a 2-core machine measure the machine, not the deploy.

mod cli;
mod common;
mod faults;
mod kill;
mod prometheus;
mod recover;
mod runbook;
mod safety_net;
mod ship;
mod watch;
