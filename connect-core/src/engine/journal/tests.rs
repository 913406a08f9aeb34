//! `Journal::merge_history`, what a recovery uses to carry a lost server's history onto the server that
//! replaces it: only the history moves, in the order the operations started, capped, never twice.

use super::*;

/// A finished deploy `id` that started at `started_unix_ms`.
fn operation(id: &str, started_unix_ms: u64) -> OperationRecord {
    OperationRecord {
        id: id.to_string(),
        kind: OperationKind::Deploy,
        release: Some(Release::new("connect", id).expect("a valid tag")),
        live_before: Some(Color::Blue),
        live_after: Some(Color::Green),
        holder: "ops@lost-server".into(),
        started_unix_ms,
        duration_ms: 1,
        outcome: Outcome::Succeeded,
        steps: Vec::new(),
        restore_point: None,
        backup: None,
        as_worker: false,
    }
}

/// The journal of the server recovered in the lost one's place: blue live on v9, and the operations it
/// ran itself.
fn recovered(own: &[OperationRecord]) -> Journal {
    let mut journal = Journal {
        live: Some(Color::Blue),
        ..Journal::default()
    };
    journal.slots.insert(
        Color::Blue,
        SlotRecord {
            release: Release::new("connect", "v9").expect("a valid tag"),
            container: "connect_app1".into(),
            since_unix_ms: 1_000,
        },
    );
    for record in own {
        journal.push(record.clone());
    }
    journal
}

fn ids(journal: &Journal) -> Vec<&str> {
    journal.history.iter().map(|r| r.id.as_str()).collect()
}

#[test]
fn merge_history_adds_the_missing_records_in_start_order_once() {
    let lost = [
        operation("v1", 10),
        operation("v2", 20),
        operation("v3", 30),
        operation("v4", 40),
    ];
    // The new server already knows v2 (the same id): it is not added again.
    let mut journal = recovered(&[operation("v2", 20), operation("adopt", 35)]);
    let before = journal.clone();

    assert_eq!(journal.merge_history(&lost), 3, "v1, v3 and v4 were missing");
    assert_eq!(ids(&journal), ["v1", "v2", "v3", "adopt", "v4"]);
    assert_eq!(journal.history[0], lost[0], "a record is carried over whole");

    // Everything but the history is this server's own: the live color, the slots, the rest.
    let expected = Journal {
        history: journal.history.clone(),
        ..before
    };
    assert_eq!(journal, expected);
    assert_eq!(journal.live, Some(Color::Blue));
    assert_eq!(journal.slots[&Color::Blue].release.version, "v9");

    // A recovery run twice adds nothing the second time.
    let merged = journal.clone();
    assert_eq!(journal.merge_history(&lost), 0);
    assert_eq!(journal, merged);
}

#[test]
fn merge_history_keeps_the_last_hundred() {
    let lost: Vec<OperationRecord> = (0..150).map(|i| operation(&format!("v{i}"), i)).collect();
    let mut journal = recovered(&[operation("adopt", 1_000)]);

    journal.merge_history(&lost);

    assert_eq!(journal.history.len(), HISTORY_KEPT);
    let expected: Vec<String> = (51..150)
        .map(|i| format!("v{i}"))
        .chain(["adopt".to_string()])
        .collect();
    assert_eq!(
        ids(&journal),
        expected,
        "the oldest are dropped, the newest kept in order"
    );
    assert_eq!(journal.slots.len(), 1);
    assert_eq!(journal.live, Some(Color::Blue));
}
