//! Bad input gives a clear error, never a panic, and a damaged journal is never overwritten.

mod common;

use std::time::Duration;

use common::{Fixture, release};
use connect_core::ErrorKind;
use connect_core::engine::{DeployConfig, Deployer};
use connect_core::host::{HostExt, PutOptions};
use connect_core::memory::MemoryStack;
use connect_core::model::{Color, Release};

const JOURNAL: &str = "/opt/connect/state/journal.json";

#[test]
fn invalid_release_strings_are_refused() {
    for v in ["", "has space", "-starts-with-dash", "ünïcode", &"x".repeat(129)] {
        let e = Release::new("connect", v).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{v:?}");
    }
    assert_eq!(
        Release::new("Connect", "v1").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[test]
fn smoke_paths_that_are_not_url_paths_are_refused_when_the_deployer_is_built() {
    for bad in ["", "login", "/a b", "/x\r\nHost: evil"] {
        let mut config = DeployConfig::runbook();
        config.app.smoke_paths = vec!["/".into(), bad.into()];
        let stack = MemoryStack::new(&config.topology);
        let e = Deployer::new(stack.backends(), config).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}");
        assert!(e.to_string().contains("smoke_paths"), "{e}");
    }
}

#[test]
fn zero_timeouts_are_refused_when_the_deployer_is_built() {
    let mut config = DeployConfig::runbook();
    config.policy.drain_deadline = Duration::ZERO;
    let stack = MemoryStack::new(&config.topology);
    let e = Deployer::new(stack.backends(), config).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("drain_deadline"), "{e}");
}

async fn corrupt_journal_is_kept_aside(content: &[u8], why: &str) {
    let f = Fixture::with_v1_live().await;
    f.stack
        .host
        .write_file(JOURNAL, content.to_vec(), PutOptions::default())
        .await
        .unwrap();

    // A deploy refuses and moves nothing: the damaged journal stays where a person will look for it.
    let err = f.deployer.deploy(release("v2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{why}: {err}");
    assert!(err.hint().unwrap().contains("adopt"), "{why}: {err}");
    assert_eq!(
        f.stack.host.read_file(JOURNAL).await.unwrap().unwrap(),
        content,
        "{why}"
    );
    assert_eq!(f.live_servers().await, ["app1"], "{why}: traffic untouched");

    // Adopting keeps it aside, byte for byte, and starts a journal from what runs.
    let journal = f.deployer.adopt().await.unwrap();
    assert_eq!(journal.live, Some(Color::Blue), "{why}");
    assert_eq!(journal.slots[&Color::Blue].release.version, "v1", "{why}");
    let aside: Vec<String> = f
        .stack
        .host
        .files()
        .into_iter()
        .filter(|p| p.contains("journal.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{why}: the damaged file is kept");
    let kept = f.stack.host.read_file(&aside[0]).await.unwrap().unwrap();
    assert_eq!(kept, content, "{why}: kept byte for byte");
    assert!(
        journal.history.last().unwrap().steps[0]
            .detail
            .contains(&aside[0]),
        "{why}: the record says where"
    );
    f.deployer.deploy(release("v2")).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn truncated_journal() {
    let f = Fixture::with_v1_live().await;
    let full = f.stack.host.read_file(JOURNAL).await.unwrap().unwrap();
    corrupt_journal_is_kept_aside(&full[..full.len() / 2], "truncated").await;
}

#[tokio::test(start_paused = true)]
async fn garbage_journal() {
    corrupt_journal_is_kept_aside(b"\x00\xffnot json at all", "garbage").await;
}

#[tokio::test(start_paused = true)]
async fn unknown_color_in_journal() {
    let f = Fixture::with_v1_live().await;
    let full = String::from_utf8(f.stack.host.read_file(JOURNAL).await.unwrap().unwrap()).unwrap();
    assert!(full.contains("\"blue\""));
    corrupt_journal_is_kept_aside(full.replace("\"blue\"", "\"purple\"").as_bytes(), "unknown color").await;
}

#[tokio::test(start_paused = true)]
async fn journal_of_an_unknown_older_format() {
    let f = Fixture::with_v1_live().await;
    let full = String::from_utf8(f.stack.host.read_file(JOURNAL).await.unwrap().unwrap()).unwrap();
    // A newer format is refused and left alone (see tests/recovery.rs); one below ours never existed.
    corrupt_journal_is_kept_aside(
        full.replacen("\"format\": 1", "\"format\": 0", 1).as_bytes(),
        "format 0",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn unreadable_lock_is_taken_over_with_a_warning() {
    let f = Fixture::with_v1_live().await;
    f.stack
        .host
        .write_file(
            "/opt/connect/state/deploy.lock",
            b"{oops".to_vec(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    // Locks are written whole (temp file, rename), so an unreadable one has no live holder: it has no lease.
    let mut events = f.deployer.subscribe();
    f.deployer.deploy(release("v2")).await.unwrap();
    let warned = connect_core::testing::drain_events(&mut events)
        .into_iter()
        .any(|e| {
            matches!(e, connect_core::engine::Event::Warning { message, .. }
            if message.contains("took over") && message.contains("unreadable lock"))
        });
    assert!(warned, "the takeover is reported");
    assert!(f.deployer.status().await.unwrap().lock.is_none());
}

#[test]
fn unknown_color_strings_are_refused() {
    let e = "purple".parse::<Color>().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.hint().unwrap().contains("blue"));
}
