//! Backup sets (issue 17.3) with the real `rsync`, `find`, `sha256sum`, `xargs` and `ln`: the server reached
//! through connect-core's test sshd (one `SshHost`), the off-host copy on this machine (`LocalHost`). A set
//! holds every part with a manifest that matches the files; the next set copies only changed uploads (the
//! rest are hard links), the next off-host copy sends only changed files; retention removes only sets; a
//! tampered file fails the copy and leaves nothing; preflight fails on no set and on an old one; files put
//! back get their recorded mode and owner (an old manifest's get the fallback mode, and the report says so).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use connect_core::backup_set::{
    BackupManifest, SetWriter, age_check, copy_set, list_sets, prune_sets, put_back, read_manifest, set_id,
};
use connect_core::engine::{DeployConfig, Deployer};
use connect_core::host::{HostExt, PutOptions};
use connect_core::memory::MemoryStack;
use connect_core::model::BackupSetPolicy;
use connect_core::ssh::SshHost;
use connect_core::testing::{Sshd, require_program};
use connect_core::vocabulary::CheckStatus;
use connect_core::wait::poll_until;
use connect_core::{ErrorKind, Host, LocalHost};
use sha2::{Digest, Sha256};

fn sha(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(bytes))
}

fn ino(p: &Path) -> u64 {
    std::fs::metadata(p).expect("stat").ino()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Waits until the clock shows a second other than `id`'s (sets are named to the second).
async fn next_second(id: &str) {
    poll_until(
        "test.clock",
        id,
        Duration::from_secs(3),
        Duration::from_millis(20),
        || async {
            let now = set_id(SystemTime::now());
            Ok(if now.as_str() > id { Ok(()) } else { Err(now) })
        },
    )
    .await
    .expect("the clock moves on");
}

async fn take(host: &dyn Host, server: &Path, sets: &str, rdb: &[u8]) -> (BackupManifest, u64, u64) {
    let mut set = SetWriter::begin(host, sets).await.expect("begin");
    let redis = set.part_dir("redis").unwrap();
    host.run_checked(&connect_core::host::Command::new(["mkdir", "-p", &redis]))
        .await
        .unwrap();
    host.write_file(&format!("{redis}/dump.rdb"), rdb.to_vec(), PutOptions::default())
        .await
        .unwrap();
    let uploads = set
        .sync_dir("uploads", &path(&server.join("uploads")))
        .await
        .expect("rsync");
    set.copy_files("journal", &[path(&server.join("state/journal.json"))])
        .await
        .unwrap();
    set.copy_files(
        "configs",
        &[
            path(&server.join("etc/haproxy.cfg")),
            path(&server.join("etc/absent.yml")),
        ],
    )
    .await
    .unwrap();
    (
        set.finish().await.expect("finish"),
        uploads.files,
        uploads.files_copied,
    )
}

#[tokio::test]
async fn sets_copy_only_what_changed_on_the_server_and_off_it_and_keep_the_newest() {
    if require_program("backup_sets", "rsync", &[]).is_none() {
        return;
    }
    let Some(sshd) = Sshd::start("backup_sets").await else {
        return;
    };
    let ssh = SshHost::connect(sshd.config()).await.expect("ssh");
    let host: &dyn Host = &ssh;
    let tmp = tempfile::tempdir().unwrap();
    let server = tmp.path().join("server");
    for dir in ["uploads/sub", "state", "etc"] {
        std::fs::create_dir_all(server.join(dir)).unwrap();
    }
    std::fs::write(server.join("uploads/a.txt"), "one").unwrap();
    std::fs::write(server.join("uploads/sub/b name.png"), [0u8, 159, 146, 150]).unwrap();
    std::fs::write(server.join("uploads/c.txt"), "three").unwrap();
    std::fs::write(server.join("state/journal.json"), "{\"format\":1}").unwrap();
    std::fs::write(server.join("etc/haproxy.cfg"), "global\n").unwrap();
    let sets_dir = tmp.path().join("sets");
    let sets = path(&sets_dir);
    // Not sets: never listed, never removed.
    std::fs::create_dir_all(sets_dir.join("notes")).unwrap();
    std::fs::write(sets_dir.join("README"), "mine").unwrap();

    let (first, files, copied) = take(host, &server, &sets, b"REDIS0011").await;
    assert_eq!((files, copied), (3, 3), "the first set copies every upload");
    let s = |p: &str| (p.to_string(), sha(&std::fs::read(server.join(p)).unwrap()));
    let mut want = vec![
        ("redis/dump.rdb".to_string(), sha(b"REDIS0011")),
        s("uploads/a.txt"),
        s("uploads/c.txt"),
        s("uploads/sub/b name.png"),
    ];
    let journal = format!("journal{}", path(&server.join("state/journal.json")));
    let config = format!("configs{}", path(&server.join("etc/haproxy.cfg")));
    want.push((journal.clone(), sha(b"{\"format\":1}")));
    want.push((config.clone(), sha(b"global\n")));
    want.sort();
    let got: Vec<(String, String)> = first
        .files
        .iter()
        .map(|f| (f.path.clone(), f.sha256.clone()))
        .collect();
    assert_eq!(got, want, "the manifest names every file with its SHA-256");
    assert_eq!(first.missing, vec![path(&server.join("etc/absent.yml"))]);
    let parts: Vec<(&str, u64)> = first.parts.iter().map(|p| (p.name.as_str(), p.files)).collect();
    assert_eq!(
        parts,
        [("redis", 1), ("uploads", 3), ("journal", 1), ("configs", 1)]
    );
    let first_dir = sets_dir.join(&first.id);
    assert_eq!(
        std::fs::metadata(&sets_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(read_manifest(host, &sets, &first.id).await.unwrap(), first);

    let offhost_dir = tmp.path().join("offhost");
    let offhost = path(&offhost_dir);
    let local = LocalHost::new();
    let copy = copy_set(host, &sets, &first, &local, &offhost, 2)
        .await
        .expect("copy");
    assert_eq!((copy.files_sent, copy.files_linked), (6, 0));
    for f in &first.files {
        let bytes = std::fs::read(offhost_dir.join(&first.id).join(&f.path)).unwrap();
        assert_eq!(sha(&bytes), f.sha256, "{} off the host", f.path);
    }
    let again = copy_set(host, &sets, &first, &local, &offhost, 2).await.unwrap();
    assert!(again.already_there && again.files_sent == 0);

    // Changed, added, removed, untouched.
    next_second(&first.id).await;
    std::fs::write(server.join("uploads/c.txt"), "three, edited").unwrap();
    std::fs::write(server.join("uploads/d.txt"), "four").unwrap();
    std::fs::remove_file(server.join("uploads/a.txt")).unwrap();
    let (second, files, copied) = take(host, &server, &sets, b"REDIS0011").await;
    assert_eq!(
        (files, copied),
        (3, 2),
        "only the changed and the new upload are copied"
    );
    let second_dir = sets_dir.join(&second.id);
    assert_eq!(
        ino(&second_dir.join("uploads/sub/b name.png")),
        ino(&first_dir.join("uploads/sub/b name.png")),
        "an unchanged upload is a hard link to the previous set"
    );
    assert!(!second_dir.join("uploads/a.txt").exists());
    assert!(second.part_files("uploads").all(|f| f.path != "uploads/a.txt"));

    let copy = copy_set(host, &sets, &second, &local, &offhost, 2).await.unwrap();
    // c.txt and d.txt are new bytes; redis, b, the journal and the config are the same as in the first copy.
    assert_eq!((copy.files_sent, copy.files_linked), (2, 4), "{copy:?}");
    assert_eq!(
        ino(&offhost_dir.join(&second.id).join("uploads/sub/b name.png")),
        ino(&offhost_dir.join(&first.id).join("uploads/sub/b name.png"))
    );
    assert_eq!(
        std::fs::read(offhost_dir.join(&second.id).join("uploads/c.txt")).unwrap(),
        b"three, edited"
    );

    // Retention: the newest one kept on the server, the notes and the README untouched.
    let removed = prune_sets(host, &sets, 1).await.unwrap();
    assert_eq!(removed, vec![first.id.clone()]);
    assert_eq!(list_sets(host, &sets).await.unwrap(), vec![second.id.clone()]);
    assert!(sets_dir.join("notes").is_dir() && sets_dir.join("README").is_file());
    assert_eq!(
        std::fs::read(second_dir.join("uploads/sub/b name.png")).unwrap(),
        [0u8, 159, 146, 150],
        "a hard link outlives the set it came from"
    );

    // A file changed on the server after its manifest: the copy fails and leaves nothing at the destination.
    std::fs::write(second_dir.join("uploads/d.txt"), "FOUR").unwrap();
    let fresh = path(&tmp.path().join("fresh"));
    let e = copy_set(host, &sets, &second, &local, &fresh, 2)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.hint().is_some_and(|h| h.contains("take a new set")), "{e}");
    assert!(list_sets(&local, &fresh).await.unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(tmp.path().join("fresh")).unwrap().count(),
        0,
        "no partial copy left"
    );
    assert_eq!(
        sshd.accepted_connections(),
        1,
        "everything over one SSH connection"
    );
}

#[tokio::test]
async fn files_put_back_get_their_mode_and_owner_and_an_old_set_says_what_it_assumed() {
    if require_program("backup_sets_modes", "rsync", &[]).is_none() {
        return;
    }
    // Both ends on this machine: the modes and owners are `find`'s and `chown`'s, whatever the transport.
    let local = LocalHost::new();
    let tmp = tempfile::tempdir().unwrap();
    let etc = tmp.path().join("server/etc");
    std::fs::create_dir_all(&etc).unwrap();
    let (secret, public) = (etc.join("secret.env"), etc.join("app.conf"));
    std::fs::write(&secret, "TOKEN=1\n").unwrap();
    std::fs::write(&public, "workers = 4\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
    let root = nix::unistd::geteuid().is_root();
    // nobody:nogroup, which every Debian has; only root may give a file away.
    let nobody = 65534;
    if root {
        std::os::unix::fs::chown(&secret, Some(nobody), Some(nobody)).unwrap();
    }
    let sets = path(&tmp.path().join("sets"));
    let mut set = SetWriter::begin(&local, &sets).await.expect("begin");
    set.copy_files("configs", &[path(&secret), path(&public)])
        .await
        .unwrap();
    let manifest = set.finish().await.expect("finish");
    let recorded: Vec<Option<u32>> = manifest.files.iter().map(|f| f.mode).collect();
    assert_eq!(recorded, [Some(0o644), Some(0o600)], "{manifest:?}");
    if root {
        let owner = manifest.files[1].owner.as_ref().expect("an owner");
        assert_eq!((owner.uid, owner.user.as_deref()), (nobody, Some("nobody")));
    }
    // The off-host copy keeps every file 0600: the manifest is what carries the modes.
    let offhost = path(&tmp.path().join("offhost"));
    copy_set(&local, &sets, &manifest, &local, &offhost, 2)
        .await
        .expect("copy");
    let set_dir = format!("{offhost}/{}", manifest.id);

    let restored = tmp.path().join("restored");
    let report = put_back(
        &local,
        &set_dir,
        &manifest,
        "configs",
        &local,
        &path(&restored),
        0o640,
    )
    .await
    .expect("put back");
    let back = |p: &Path| restored.join(p.strip_prefix("/").unwrap());
    let meta = |p: &Path| std::fs::metadata(back(p)).expect("put back");
    assert_eq!(meta(&secret).permissions().mode() & 0o7777, 0o600);
    assert_eq!(meta(&public).permissions().mode() & 0o7777, 0o644);
    assert_eq!(std::fs::read(back(&secret)).unwrap(), b"TOKEN=1\n");
    if root {
        assert_eq!((meta(&secret).uid(), meta(&secret).gid()), (nobody, nobody));
        assert_eq!(meta(&public).uid(), 0);
        assert_eq!(report.owners_applied, 2, "{report:?}");
        assert!(report.notes.is_empty(), "{report:?}");
    }

    // A manifest from before modes and owners were kept: the fallback mode, and a note saying so.
    let mut old = manifest.clone();
    for f in &mut old.files {
        (f.mode, f.owner) = (None, None);
    }
    let restored = tmp.path().join("restored-old");
    let report = put_back(&local, &set_dir, &old, "configs", &local, &path(&restored), 0o640)
        .await
        .expect("put back an old set");
    let back = |p: &Path| restored.join(p.strip_prefix("/").unwrap());
    for p in [&secret, &public] {
        let mode = std::fs::metadata(back(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640, "{}", p.display());
    }
    assert_eq!(report.owners_applied, 0);
    assert!(
        report.notes.len() == 1
            && report.notes[0].contains("2 of the part's files have no recorded mode")
            && report.notes[0].contains("0640"),
        "{report:?}"
    );
}

#[tokio::test]
async fn preflight_fails_without_a_set_and_when_the_newest_is_too_old() {
    let tmp = tempfile::tempdir().unwrap();
    let sets = path(&tmp.path().join("sets"));
    let config = {
        let mut c = DeployConfig::runbook();
        c.policy.backup_sets = Some(BackupSetPolicy::new(sets.clone(), Duration::from_secs(26 * 3600)));
        c.policy.disk_paths = vec![path(tmp.path())];
        c
    };
    let stack = MemoryStack::new(&config.topology);
    let mut backends = stack.backends();
    backends.host = Arc::new(LocalHost::new());
    let deployer = Deployer::new(backends, config).unwrap();
    let verdict = |report: connect_core::vocabulary::CheckReport| {
        report
            .checks
            .into_iter()
            .find(|c| c.name == "backup set")
            .map(|c| (c.status, c.detail))
            .expect("preflight judges the backup sets")
    };
    let (status, detail) = verdict(deployer.preflight().await.unwrap());
    assert_eq!(status, CheckStatus::Fail);
    assert!(
        detail.contains("no backup set yet") && detail.contains("backup-all"),
        "{detail}"
    );

    // A set taken two days ago (its manifest says when).
    let old = SystemTime::now() - Duration::from_secs(2 * 86_400);
    let id = set_id(old);
    std::fs::create_dir_all(tmp.path().join("sets").join(&id)).unwrap();
    let manifest = BackupManifest {
        version: 1,
        id: id.clone(),
        taken_at_unix: old.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
        taken_at: String::new(),
        took_ms: 1,
        source: "local".into(),
        parts: vec![],
        missing: vec![],
        files: vec![],
    };
    std::fs::write(
        tmp.path().join("sets").join(&id).join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let (status, detail) = verdict(deployer.preflight().await.unwrap());
    assert_eq!(status, CheckStatus::Fail, "{detail}");
    assert!(detail.contains(&id) && detail.contains("2days"), "{detail}");

    // A set taken now passes.
    let local = LocalHost::new();
    let set = SetWriter::begin(&local, &sets).await.unwrap();
    let now = set.finish().await.unwrap();
    let (status, detail) = verdict(deployer.preflight().await.unwrap());
    assert_eq!(status, CheckStatus::Pass, "{detail}");
    assert!(detail.contains(&now.id), "{detail}");
    let (status, _) = age_check(&local, &sets, Duration::from_secs(26 * 3600)).await;
    assert_eq!(status, CheckStatus::Pass);
}
