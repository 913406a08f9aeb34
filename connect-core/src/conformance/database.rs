use super::assert_kind;
use crate::database::{DatabaseCluster, DatabaseClusterExt, Role};
use crate::error::ErrorKind;

/// The promises of [`DatabaseCluster`]: one running leader; a switchover moves leadership and waits until
/// done; a bad candidate is refused; restore points are named and move forward; the check query answers.
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
