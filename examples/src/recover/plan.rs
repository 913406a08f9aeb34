//! What a recovery would do and from which backups: the dry run, and the first step of every recovery. It
//! reads (the set's copy on this machine, the server's journal and containers, `pgbackrest info` with its
//! options on the command line) and writes nothing anywhere.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use connect_core::backup_set::{BackupManifest, PartSummary, list_sets, read_manifest};
use connect_core::engine::{Deployer, Journal, OperationRecord};
use connect_core::host::HostExt;
use connect_core::{Error, ErrorKind, LocalHost, Result};
use serde::Serialize;

use super::{PlannedStep, RecoverOptions, STEPS};
use crate::config::ConnectConfig;

/// The backup set chosen.
#[derive(Debug, Clone, Serialize)]
pub struct SetChoice {
    /// The directory of the copies on this machine.
    pub dir: String,
    /// The set's name.
    pub id: String,
    /// When it was taken (RFC 3339).
    pub taken_at: String,
    /// How old it is, in seconds.
    pub age_s: u64,
    /// Its bytes, all parts.
    pub bytes: u64,
    /// Each part's files and bytes.
    pub parts: Vec<PartSummary>,
    /// The manifest, with every file's SHA-256.
    #[serde(skip)]
    pub manifest: BackupManifest,
}

/// The base backup the database comes back from, and the archive after it.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseChoice {
    /// The repository on the server.
    pub repo: String,
    /// pgBackRest's stanza.
    pub stanza: String,
    /// The newest base backup (the recovery replays the archive after it).
    pub backup: String,
    /// Its kind (`full`, `diff`, `incr`).
    pub kind: String,
    /// How old it is, in seconds.
    pub age_s: u64,
    /// The database's size it holds.
    pub size_bytes: u64,
    /// What it takes in the repository.
    pub repo_bytes: u64,
    /// The newest WAL segment archived: how far "latest" reaches.
    pub wal_max: Option<String>,
}

/// The release deployed afterwards.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseChoice {
    /// Its version, as the set's journal records it live.
    pub version: String,
    /// The image the journal recorded.
    pub recorded_image: String,
    /// The image deployed: this config's repository at that version.
    pub image: String,
    /// Operations in the set's journal, carried over to the new server's before the deploy.
    pub history_records: usize,
    /// Those operations, each release's image this config's repository at its version (as `image`).
    #[serde(skip)]
    pub history: Vec<OperationRecord>,
}

/// What a recovery would do.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The server, as the config names it.
    pub server: String,
    /// The set.
    pub set: SetChoice,
    /// The database's backup.
    pub database: DatabaseChoice,
    /// The release.
    pub release: ReleaseChoice,
    /// Why the server is not fresh (empty: it is).
    pub not_fresh: Vec<String>,
    /// The steps, in order.
    pub steps: Vec<PlannedStep>,
}

/// Reads what a recovery would use and says so; changes nothing anywhere. Bad input (no `[backup_all]`, no
/// copy directory, no set, no `[database.pitr]`, no backup in the repository, no live release in the set's
/// journal) is refused here, before anything is changed.
pub async fn plan(config: &ConnectConfig, options: &RecoverOptions, deployer: &Deployer) -> Result<Plan> {
    let op = "recover.check";
    let section = config.backup_all.as_ref().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            op,
            "connect.toml",
            "no [backup_all] section",
        )
        .with_hint("add [backup_all] with copy_to (where backup-all copies the sets), or give --from DIR")
    })?;
    let dir = match (&options.from, &section.copy_to) {
        (Some(d), _) | (None, Some(d)) => d.display().to_string(),
        (None, None) => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                op,
                "backup_all.copy_to",
                "no directory of set copies: [backup_all] has no copy_to",
            )
            .with_hint("give --from DIR (the directory holding the sets' copies)"));
        }
    };
    let local = LocalHost::new();
    let sets = list_sets(&local, &dir).await?;
    let id = match &options.set {
        Some(id) if sets.contains(id) => id.clone(),
        Some(id) => {
            return Err(Error::new(ErrorKind::NotFound, op, id, format!("no set {id} in {dir}"))
                .with_hint(format!("the sets there: {}", sets.join(", "))));
        }
        None => sets.last().cloned().ok_or_else(|| {
            Error::new(ErrorKind::NotFound, op, &dir, "no backup set here")
                .with_hint("take one with `connect-ops backup-all` (with [backup_all] copy_to), or point --from at the copies")
        })?,
    };
    let manifest = read_manifest(&local, &dir, &id).await?;
    let release = release_of(config, &local, &dir, &manifest).await?;
    let pitr = config.pitr_config().ok_or_else(|| {
        Error::new(ErrorKind::InvalidInput, op, "connect.toml", "no [database.pitr] section")
            .with_hint("add [database.pitr] with repo (where the pgBackRest repository is on the server) and the members")
    })?;
    let host = deployer.backends().host.clone();
    let info = connect_db::pitr::info_read_only(host.as_ref(), &pitr).await?;
    let newest = info.backups.last().filter(|_| info.status_code == 0).ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            op,
            &pitr.repo_path,
            format!("no pgBackRest backup of stanza {} there: {}", pitr.stanza, info.status_message),
        )
        .with_hint("mount the backup disk where [database.pitr] repo says (or set repo to where the repository is); nothing was changed")
    })?;
    let now = SystemTime::now();
    let age = |unix: u64| {
        now.duration_since(UNIX_EPOCH + Duration::from_secs(unix))
            .map_or(0, |d| d.as_secs())
    };
    let database = DatabaseChoice {
        repo: pitr.repo_path.clone(),
        stanza: pitr.stanza.clone(),
        backup: newest.label.clone(),
        kind: newest.kind.clone(),
        age_s: age(newest.stop_unix),
        size_bytes: newest.size_bytes,
        repo_bytes: newest.repo_bytes,
        wal_max: info.wal_max.clone(),
    };
    let not_fresh = freshness(config, deployer).await?;
    let set = SetChoice {
        dir,
        id,
        taken_at: manifest.taken_at.clone(),
        age_s: manifest.age(now).as_secs(),
        bytes: manifest.bytes(),
        parts: manifest.parts.clone(),
        manifest,
    };
    let steps = STEPS
        .iter()
        .map(|(step, what)| PlannedStep {
            step: step.to_string(),
            what: match *step {
                "database" => format!(
                    "{what} (from {} and the WAL up to {})",
                    database.backup,
                    database.wal_max.as_deref().unwrap_or("-")
                ),
                "deploy" => format!("{what}: {} as {}", release.version, release.image),
                "journal" => format!("{what}: {} operations", release.history_records),
                "configs" | "redis" | "uploads" => {
                    let part = set.parts.iter().find(|p| p.name == *step);
                    let (files, bytes) = part.map_or((0, 0), |p| (p.files, p.bytes));
                    format!("{what}: {files} files, {bytes} bytes of set {}", set.id)
                }
                _ => what.to_string(),
            },
        })
        .collect();
    Ok(Plan {
        server: config.server.host.clone(),
        set,
        database,
        release,
        not_fresh,
        steps,
    })
}

/// The live release of the journal kept in the set (`journal/<state_dir>/journal.json`).
async fn release_of(
    config: &ConnectConfig,
    local: &LocalHost,
    dir: &str,
    manifest: &BackupManifest,
) -> Result<ReleaseChoice> {
    let op = "recover.check";
    let missing = || {
        Error::new(
            ErrorKind::NotFound,
            op,
            &manifest.id,
            "the set holds no journal with a live release",
        )
        .with_hint("use a set taken after a deploy (--set), or recover it and deploy by hand")
    };
    let file = manifest
        .part_files("journal")
        .find(|f| f.path.ends_with("/journal.json"))
        .ok_or_else(missing)?;
    let path = format!("{dir}/{}/{}", manifest.id, file.path);
    let bytes = local.read_file(&path).await?.ok_or_else(missing)?;
    let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(ErrorKind::Corrupt, op, &path, format!("not a journal: {e}"))
            .with_hint("use another set (--set)")
            .with_source(e)
    })?;
    let live = journal
        .live
        .and_then(|c| journal.slots.get(&c))
        .ok_or_else(missing)?;
    let version = live.release.version.clone();
    let recorded_image = live.release.image.to_string();
    let mut history = journal.history;
    // As for the live release: a release is this config's repository at its version. A record whose image
    // was another repository's loses its content id too, which pinned that repository's image.
    for release in history.iter_mut().filter_map(|r| r.release.as_mut()) {
        if let Ok(here) = config.release(&release.version)
            && here.image != release.image
        {
            release.image = here.image;
            release.digest = None;
        }
    }
    Ok(ReleaseChoice {
        recorded_image,
        image: config.release(&version)?.image.to_string(),
        version,
        history_records: history.len(),
        history,
    })
}

/// Why the server is not fresh: its journal records a live color, or a slot's container exists.
async fn freshness(config: &ConnectConfig, deployer: &Deployer) -> Result<Vec<String>> {
    let backends = deployer.backends();
    let mut why = Vec::new();
    let path = format!("{}/journal.json", config.state_dir.trim_end_matches('/'));
    if let Some(bytes) = backends.host.read_file(&path).await?
        && let Ok(journal) = serde_json::from_slice::<Journal>(&bytes)
        && let Some(color) = journal.live
    {
        why.push(format!("{path} records {color} live"));
    }
    let topology = &deployer.config().topology;
    for slot in [&topology.blue, &topology.green] {
        if backends.runtime.inspect(&slot.container).await?.is_some() {
            why.push(format!("container {} exists", slot.container));
        }
    }
    Ok(why)
}
