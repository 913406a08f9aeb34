//! Real tests against etcd + two Patroni nodes of PostgreSQL 15, started once for this binary and shared:
//! tests that switch leaders hold [`common::LEADERSHIP`] for writing, the others for reading.

mod backup;
mod bounds;
mod common;
mod health;
mod names;
mod privacy;
mod restore_recovery;
mod via_ssh;
