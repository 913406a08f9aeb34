//! A real Prometheus for tests (Debian's `prometheus`): on 127.0.0.1, its own temp dir and free port,
//! scraping the given targets every second, stopped when dropped; instant PromQL queries over its HTTP API.

use std::net::SocketAddr;
use std::time::Duration;

use connect_core::testing::{free_port, require_program};

/// A running Prometheus.
#[derive(Debug)]
pub struct TestPrometheus {
    /// Its HTTP API.
    pub address: SocketAddr,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl TestPrometheus {
    /// Starts Prometheus scraping `targets` every second; `None` (with a loud SKIP) when it is not installed
    /// and real tests are not required. Returns once it is started; [`TestPrometheus::until`] waits for data.
    pub fn start(test: &str, targets: &[SocketAddr]) -> std::io::Result<Option<TestPrometheus>> {
        let Some(program) = require_program(test, "prometheus", &["/usr/bin/prometheus"]) else {
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: connect\n    \
                 static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )?;
        let address: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = tokio::process::Command::new(program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        Ok(Some(TestPrometheus {
            address,
            _child: child,
            _dir: dir,
        }))
    }

    /// One number from an instant PromQL query: `None` for an empty result, and while Prometheus is still
    /// starting (nothing listening yet, or 503).
    pub async fn query(&self, q: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={}", encode(q));
        let response = crate::testing::request(self.address, "GET", &path, "")
            .await
            .ok()?;
        let (status, body) = (response.status, String::from_utf8_lossy(&response.body));
        if status == 503 {
            return None;
        }
        assert_eq!(status, 200, "{q}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let result = json["data"]["result"].as_array()?.first()?.clone();
        result["value"][1].as_str()?.parse().ok()
    }

    /// Polls `q` (every 200 ms: Prometheus has no event to wait on) until `ok` accepts its value, for at most
    /// `within`; returns the last value.
    pub async fn until(&self, q: &str, within: Duration, ok: impl Fn(f64) -> bool) -> Option<f64> {
        let last = std::cell::Cell::new(None);
        let (last_ref, ok) = (&last, &ok);
        // Met or not, the caller judges the last value; the timeout's error adds nothing to it.
        let _ = connect_core::wait::poll_until(
            "prometheus",
            q,
            within,
            Duration::from_millis(200),
            || async move {
                let v = self.query(q).await;
                last_ref.set(v);
                Ok(match v {
                    Some(x) if ok(x) => Ok(()),
                    other => Err(format!("{other:?}")),
                })
            },
        )
        .await;
        last.get()
    }
}

/// Percent-encodes a query string value.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
