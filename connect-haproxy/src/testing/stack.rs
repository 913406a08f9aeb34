//! The stack most real HAProxy tests start from.

use std::time::Duration;

use connect_core::Result;
use connect_core::router::AdminState;

use super::{HaproxyProcess, TestApp, require_haproxy};
use crate::haproxy::Haproxy;

/// How long the stack's servers get to be checked UP.
const DEADLINE: Duration = Duration::from_secs(10);

/// HAProxy with the runbook's config in front of two test apps: blue (`app1`, live) and green (`app2`,
/// drained warm standby), both checked UP. Everything stops when it is dropped.
#[derive(Debug)]
pub struct TestStack {
    /// The app behind `app1`, answering as version `blue`.
    pub blue: TestApp,
    /// The app behind `app2`, answering as version `green`.
    pub green: TestApp,
    /// The HAProxy process.
    pub proc: HaproxyProcess,
    /// A client of its admin socket.
    pub hx: Haproxy,
}

impl TestStack {
    /// Starts the stack; `Ok(None)` when haproxy is missing and the test is skipped (with
    /// `CONNECT_REAL_TESTS=1` a missing haproxy fails the test instead).
    pub async fn start(test: &str) -> Result<Option<TestStack>> {
        let Some(program) = require_haproxy(test) else {
            return Ok(None);
        };
        // The runbook's config checks `/api/health`.
        let health = "/api/health";
        let blue = TestApp::start("blue", health).await.map_err(app_error)?;
        let green = TestApp::start("green", health).await.map_err(app_error)?;
        let proc = HaproxyProcess::start(&program, blue.addr, green.addr).await?;
        let hx = proc.haproxy();
        hx.wait_up("app1", DEADLINE).await?;
        hx.wait_up("app2", DEADLINE).await?;
        hx.set_admin("app2", AdminState::Drain).await?;
        Ok(Some(TestStack {
            blue,
            green,
            proc,
            hx,
        }))
    }
}

fn app_error(e: std::io::Error) -> connect_core::Error {
    connect_core::Error::new(
        connect_core::ErrorKind::Unavailable,
        "testing.stack",
        "127.0.0.1",
        format!("a test app could not listen: {e}"),
    )
    .with_source(e)
}
