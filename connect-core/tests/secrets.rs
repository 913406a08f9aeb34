//! Secrets stay secret: a deploy whose app environment holds a password, run with every tracing level on,
//! failing once and succeeding once, never shows the password in its logs, events, journal, errors or in
//! anything a `{:?}` prints.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Fixture, release};
use connect_core::engine::DeployConfig;
use connect_core::host::HostExt;
use connect_core::memory::AppBehavior;

const SECRET: &str = "s3cr3t-Pa55w0rd-7f3a";

/// Everything tracing writes, kept.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_password_in_the_apps_environment_never_shows() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut config = DeployConfig {
        holder: "test".into(),
        ..DeployConfig::runbook()
    };
    config.app.env.insert(
        "DATABASE_URL".into(),
        format!("postgresql://connect:{SECRET}@db.internal:5432/connect"),
    );
    config.app.env.insert("SESSION_SECRET".into(), SECRET.into());
    config.app.migration = Some(vec!["migrate".into()]);
    let f = Fixture::with_config(config);
    let mut events = f.deployer.subscribe();
    let mut seen = Vec::new();

    f.deployer.deploy(release("v1")).await.unwrap();
    let broken = f.image(
        "v2",
        AppBehavior {
            becomes_healthy: false,
            ..AppBehavior::default()
        },
    );
    let err = f.deployer.deploy(broken).await.unwrap_err();
    seen.push(format!("{err} {err:?}"));
    f.deployer.deploy(release("v3")).await.unwrap();

    while let Ok(event) = events.try_recv() {
        seen.push(serde_json::to_string(&event).unwrap());
        seen.push(format!("{event:?}"));
    }
    let journal = f
        .stack
        .host
        .read_file("/opt/connect/state/journal.json")
        .await
        .unwrap()
        .unwrap();
    seen.push(String::from_utf8(journal).unwrap());
    let config = format!("{:?}", f.deployer.config());
    assert!(
        config.contains(r#""DATABASE_URL": "<redacted>""#),
        "names shown, values not: {config}"
    );
    seen.push(config);
    seen.push(format!(
        "{:?} {:?}",
        f.deployer,
        f.deployer.status().await.unwrap()
    ));
    seen.push(format!("{:?}", f.stack.runtime.jobs()));
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("StageImage") && logs.contains("DEBUG"),
        "the logs ran at every level"
    );
    seen.push(logs);

    for (i, text) in seen.iter().enumerate() {
        assert!(!text.contains(SECRET), "output {i} shows the secret: {text}");
    }
}
