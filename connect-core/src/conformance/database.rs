use super::assert_kind;
use crate::database::{DatabaseCluster, DatabaseClusterExt, Role};
use crate::error::ErrorKind;
use crate::model::BackupPolicy;

/// The promises of [`DatabaseCluster`]: one running leader; a switchover moves leadership and waits until
/// done; a bad candidate is refused; restore points are named and move forward; the check query answers;
/// a backup (when the cluster is set up for them) is verified, named after its label, and kept to the
/// policy's number; the migration tables (when readable) list each tool once.
///
/// The cluster needs a leader and at least one streaming replica.
pub async fn database_suite(db: &dyn DatabaseCluster) {
    let members = db.members().await.expect("members");
    let leaders = members.iter().filter(|m| m.role == Role::Leader).count();
    assert_eq!(leaders, 1, "exactly one leader in {members:?}");
    let leader = db.leader().await.expect("leader");
    let replica = members
        .iter()
        .find(|m| m.role == Role::Replica)
        .expect("a replica")
        .name
        .clone();

    // Figures (when the cluster has them): the reader's own connection, and the replica streaming.
    match db.figures().await {
        Ok(f) => {
            assert!(
                f.connections.values().sum::<u64>() >= 1,
                "the reader is connected: {f:?}"
            );
            assert!(f.max_connections >= 1, "{f:?}");
            assert!(
                f.replicas.iter().any(|r| r.name == replica),
                "the leader sees {replica} streaming: {f:?}"
            );
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported, "figures: {e}"),
    }

    let count = db.check_query().await.expect("check query");
    assert!(count >= 0, "the check query counts rows");

    let p1 = db.restore_point("conformance-1").await.expect("restore point");
    let p2 = db.restore_point("conformance-2").await.expect("restore point");
    assert_eq!(p1.name, "conformance-1");
    assert_ne!(p1.lsn, p2.lsn, "restore points move forward");
    assert_kind(
        db.restore_point("").await,
        ErrorKind::InvalidInput,
        "an empty restore point name",
    );

    let policy = BackupPolicy {
        keep: 2,
        ..BackupPolicy::default()
    };
    let mut taken = Vec::new();
    for label in ["conformance-a", "conformance-b", "conformance-c"] {
        match db.backup(label, &policy).await.expect("backup") {
            Some(b) => {
                assert!(b.path.contains(label), "named after its label: {b:?}");
                assert!(b.bytes > 0 && b.entries > 0, "a dump with contents: {b:?}");
                assert_eq!(b.sha256.len(), 64, "a SHA-256: {b:?}");
                assert!(b.sha256.bytes().all(|c| c.is_ascii_hexdigit()), "{b:?}");
                taken.push(b);
            }
            None => break,
        }
    }
    if let [a, _, c] = taken.as_slice() {
        assert_eq!(
            c.pruned,
            std::slice::from_ref(&a.path),
            "the third backup removed the first of two kept"
        );
    }

    if let Some(tables) = db.migration_tables().await.expect("migration tables") {
        let mut tools: Vec<_> = tables.iter().map(|t| t.tool).collect();
        tools.dedup();
        assert_eq!(tools.len(), tables.len(), "each tool once: {tables:?}");
    }

    assert_kind(
        db.switchover(Some("no-such-member")).await,
        ErrorKind::Refused,
        "switchover to an unknown member",
    );
    let new_leader = db.switchover(Some(&replica)).await.expect("switchover");
    assert_eq!(new_leader.name, replica, "the candidate leads");
    assert_eq!(
        db.leader().await.expect("leader").name,
        replica,
        "the cluster says so too"
    );
    let back = db.switchover(Some(&leader.name)).await.expect("switchover back");
    assert_eq!(back.name, leader.name);
}
