//! Backups are private whatever the server's umask, the password never rests in argv or a
//! file, and pruning removes nothing but dumps and their checksums.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use connect_core::host::{Host, HostExt, PutOptions};
use connect_db::backup::{BackupConfig, list_backups, logical_backup, prune_backups};
use connect_db::restore::{RestoreOptions, restore_logical};
use connect_db::testing::{OpenUmaskHost, PG_PASSWORD, pg_bin};

use crate::common::{LEADERSHIP, app_database, cluster, leader_target};

fn config(dir: &str) -> BackupConfig {
    let bin = pg_bin("pg_dump");
    let mut c = BackupConfig::new(dir).bin_dir(bin.parent().and_then(|p| p.to_str()).expect("bin dir"));
    c.keep = 2;
    c
}

fn mode(p: impl AsRef<Path>) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            found.extend(files_containing(&p, needle));
        } else if let Ok(bytes) = std::fs::read(&p)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(p.display().to_string());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_are_private_under_a_permissive_umask_and_the_password_is_never_in_argv_or_a_file() {
    let Some(c) = cluster("backup_privacy").await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let db = app_database(c, "private_db", 20).await;
    let target = leader_target(&db).await;
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let host = OpenUmaskHost::new();

    // A directory that does not exist yet (nor its parent), and one someone left 0777.
    let fresh_dir = root.path().join("new/backups");
    let wide_dir = root.path().join("wide");
    std::fs::create_dir(&wide_dir).expect("mkdir");
    std::fs::set_permissions(&wide_dir, std::fs::Permissions::from_mode(0o777)).expect("chmod 777");
    // A password file an older version left behind after a crash.
    let stale = wide_dir.join(".pgpass-4242-17");
    std::fs::write(&stale, format!("*:*:*:postgres:{PG_PASSWORD}\n")).expect("stale pgpass");

    for dir in [&fresh_dir, &wide_dir] {
        let cfg = config(dir.to_str().expect("utf-8"));
        let b = logical_backup(&host, &target, "d1", &cfg).await.expect("backup");
        assert_eq!(mode(dir), 0o700, "{} is private", dir.display());
        assert_eq!(mode(&b.path), 0o600, "the dump is private");
        assert_eq!(
            mode(format!("{}.sha256", b.path)),
            0o600,
            "the checksum is private"
        );
        // A restore runs pg_restore the same way.
        restore_logical(&host, &target, &b.path, &cfg, &RestoreOptions::default())
            .await
            .expect("restore");
    }
    assert!(
        !stale.exists(),
        "a stale password file is removed at the start of a run"
    );
    assert_eq!(
        mode(root.path().join("new")),
        0o700,
        "parents created for it are private too"
    );

    let pw = PG_PASSWORD.as_bytes();
    for argv in host.argvs() {
        assert!(
            argv.iter().all(|a| !a.contains(PG_PASSWORD)),
            "the password in argv (ps shows it): {argv:?}"
        );
    }
    for (path, bytes) in host.writes() {
        assert!(
            !bytes.windows(pw.len()).any(|w| w == pw),
            "the password written to {path}"
        );
    }
    assert_eq!(
        files_containing(root.path(), pw),
        Vec::<String>::new(),
        "no file holds the password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_directory_that_cannot_be_made_private_is_refused() {
    let host = OpenUmaskHost::new();
    let root = tempfile::tempdir().expect("temp dir");
    let file = root.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let target = connect_db::PgTarget::new("postgres", "postgres").at("127.0.0.1", 1);
    let e = logical_backup(&host, &target, "d1", &config(file.to_str().expect("utf-8")))
        .await
        .expect_err("not a directory");
    assert_eq!(e.kind(), connect_core::ErrorKind::PermissionDenied, "{e}");
    assert!(e.message().contains("private"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_removes_only_dumps_and_their_checksums() {
    let Some(c) = cluster("backup_prune_only_ours").await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let db = app_database(c, "prune", 3).await;
    let target = leader_target(&db).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().to_str().expect("utf-8");
    let cfg = config(base);
    let host = connect_core::local::LocalHost::new();
    // Files that are not ours to remove, several of which sort before every real backup.
    let unrelated = [
        "prune-1.dump",
        "prune-0-manual.dump",
        "prune-keep-me.dump",
        "prune-00000000T000000.000Z-.dump",
        "notes.txt",
        "redis-20250101T000000.000Z.rdb",
        ".restore-other.json",
    ];
    for name in unrelated {
        host.write_file(&format!("{base}/{name}"), b"keep".to_vec(), PutOptions::default())
            .await
            .expect("plant");
    }
    std::fs::create_dir(dir.path().join("prune-00000000T000000.000Z-sub.dump"))
        .expect("a directory named like a dump");
    let mut made = Vec::new();
    for deploy in ["p1", "p2", "p3", "p4"] {
        made.push(
            logical_backup(&host, &target, deploy, &cfg)
                .await
                .expect("backup")
                .path,
        );
        prune_backups(&host, &cfg, "prune").await.expect("prune");
    }
    assert_eq!(
        list_backups(&host, &cfg, "prune").await.expect("list"),
        made[2..].to_vec()
    );
    for name in unrelated {
        assert!(dir.path().join(name).exists(), "{name} must survive pruning");
    }
    assert!(dir.path().join("prune-00000000T000000.000Z-sub.dump").is_dir());
    for gone in &made[..2] {
        assert!(!Path::new(gone).exists() && !Path::new(&format!("{gone}.sha256")).exists());
    }
    assert!(host.get_file(&format!("{}.sha256", made[3])).await.is_ok());
}
