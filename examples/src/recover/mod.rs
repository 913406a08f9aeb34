//! Disaster recovery in one call (issue 17.4): the runbook's "Complete System Failure" section. Onto a fresh
//! server (its programs installed, nothing of ours running), from the newest backup set's off-host copy and
//! the pgBackRest repository: the rendered configs, the database (point-in-time recovery to the latest, the
//! cluster re-formed), Redis, the uploads, the journal's history (so `history` goes on and a full rollback
//! finds the releases before the loss), then the release the set's journal names as live, deployed
//! blue-green and verified. Every step is timed; [`plan`] alone is the dry run.
//!
//! It composes connect-core (backup sets, the engine), connect-db (pgBackRest, Redis) and the config file,
//! so it lives here, beside `connect-ops`, and the engine crate imports no backend.
//!
//! Safety: [`plan`] refuses a server that is not fresh (its journal has a live color, or a slot's container
//! exists) unless `force`: a recovery replaces the whole database cluster. The deploy lock is held from the
//! configs to the uploads; the deploy then takes it as every deploy does. A failed step's error names the
//! step (`recover.<step>`) and what the steps before it left.

mod plan;
mod run;

use std::path::PathBuf;

use serde::Serialize;

pub use plan::{DatabaseChoice, Plan, ReleaseChoice, SetChoice, plan};
pub use run::{RecoverReport, StepTiming, recover};

/// What to recover from, and how.
#[derive(Debug, Clone, Default)]
pub struct RecoverOptions {
    /// The directory on this machine holding the backup sets' copies; `[backup_all] copy_to` when `None`.
    pub from: Option<PathBuf>,
    /// The set to use (`20261206T081500Z`); the newest when `None`.
    pub set: Option<String>,
    /// Recover even when the server is not fresh (a live deploy there is replaced).
    pub force: bool,
}

/// The steps, in order, with what each does.
pub const STEPS: [(&str, &str); 7] = [
    (
        "configs",
        "put the set's configs back under their own paths (each file's SHA-256 checked)",
    ),
    (
        "database",
        "pgBackRest: restore the newest base backup, replay the archive to the latest, re-form the cluster, archive again",
    ),
    (
        "redis",
        "place the set's dump.rdb, start Redis, check it loaded the file's keys",
    ),
    ("uploads", "put the set's uploads back into the uploads directory"),
    (
        "journal",
        "carry the set's journal history over to the new server's journal (the history, not the lost containers)",
    ),
    (
        "deploy",
        "deploy the release the set's journal names as live, blue-green, through the health gate",
    ),
    (
        "verify",
        "the post-deploy checks on the live color, the database's check query and every table's rows",
    ),
];

/// One planned step, as `--dry-run` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    /// `configs`, `database`, `redis`, `uploads`, `journal`, `deploy`, `verify`.
    pub step: String,
    /// What it does, from which backup.
    pub what: String,
}
