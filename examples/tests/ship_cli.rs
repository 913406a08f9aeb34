//! `connect-ops ship` as a subprocess, its output not a terminal: plain progress lines on stderr and the
//! result on stdout, then `--json` events and the result as JSON lines. The server is a second dockerd (its
//! own socket, data root and network namespace) reached with `host = "local"`; the build machine is this
//! machine's Docker Engine.

use std::path::Path;
use std::process::Output;

use connect_docker::testing::{SecondDaemon, TestScope, incompressible, local_docker, test_app_binary};
use connect_examples::testing::connect_ops_in;
use serde_json::Value;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_context(dir: &Path, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(test_app_binary().unwrap(), dir.join("app")).unwrap();
    std::fs::write(dir.join("data"), incompressible(3 << 20, seed)).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY app /app\nCOPY data /data\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
}

/// Every stdout line as JSON (a line that is not JSON fails the test).
fn json_lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ship_prints_plain_progress_then_json_events_and_a_second_ship_sends_nothing() {
    let Some(docker) = local_docker("ship-cli").await else {
        return;
    };
    let Some(daemon) = SecondDaemon::start("ship-cli").await else {
        return;
    };
    let scope = TestScope::new("ship-cli");
    let work = tempfile::tempdir().unwrap();
    let config = format!(
        "state_dir = \"{state}\"\n[server]\nhost = \"local\"\n[docker]\nsocket = \"{socket}\"\n[app]\nimage = \"{image}\"\n",
        state = work.path().join("state").display(),
        socket = daemon.socket(),
        image = scope.prefix,
    );
    std::fs::write(work.path().join("connect.toml"), config).unwrap();
    write_context(&work.path().join("v1"), 21);
    write_context(&work.path().join("v2"), 22);

    let outcome = tokio::task::spawn_blocking({
        let dir = work.path().to_path_buf();
        move || {
            // Not a terminal: plain lines on stderr, the summary on stdout.
            let plain = connect_ops_in(&dir, &["ship", "v1", "--context", "v1"]);
            let (stdout, stderr) = (text(&plain.stdout), text(&plain.stderr));
            assert!(plain.status.success(), "{stdout}\n{stderr}");
            assert!(stderr.contains("ship: asking the server"), "{stderr}");
            assert!(stderr.contains("ship: building"), "{stderr}");
            assert!(
                stderr.contains("ship: sending, layer 2/2") && stderr.contains("(100%)"),
                "{stderr}"
            );
            assert!(stderr.contains("  ok   ship"), "{stderr}");
            assert!(
                !stderr.contains('\r') && !stderr.contains('\u{1b}'),
                "no bar drawn: {stderr:?}"
            );
            assert_eq!(stdout.lines().count(), 1, "the result only: {stdout}");
            assert!(stdout.contains("built locally, sent 2 of 2 layers"), "{stdout}");

            // --json: events then the report, every line JSON; v2 shares no layer with v1 but is reported whole.
            let json = connect_ops_in(&dir, &["--json", "ship", "v2", "--context", "v2"]);
            assert!(json.status.success(), "{}", text(&json.stderr));
            let lines = json_lines(&json);
            assert_eq!(lines.first().unwrap()["event"], "step_started");
            let progress: Vec<&Value> = lines.iter().filter(|l| l["event"] == "ship_progress").collect();
            let send: Vec<&&Value> = progress.iter().filter(|p| p["phase"] == "send").collect();
            assert!(send.len() >= 2, "{lines:?}");
            for w in send.windows(2) {
                assert!(
                    w[1]["bytes_done"].as_u64() >= w[0]["bytes_done"].as_u64(),
                    "{lines:?}"
                );
            }
            let last = send.last().unwrap();
            assert_eq!(last["bytes_done"], last["bytes_total"], "{last}");
            assert_eq!(last["layers_done"], last["layers_total"], "{last}");
            assert!(
                lines
                    .iter()
                    .any(|l| l["event"] == "shipped" && l["outcome"] == "sent")
            );
            let result = lines.last().unwrap();
            assert_eq!(result["outcome"], "sent", "{result}");
            assert!(result["image"].as_str().unwrap().ends_with(":v2"), "{result}");

            // The same release again: a no-op that says so.
            let again = connect_ops_in(&dir, &["--json", "ship", "v2", "--context", "v2"]);
            assert!(again.status.success(), "{}", text(&again.stderr));
            let lines = json_lines(&again);
            assert!(!lines.iter().any(|l| l["event"] == "ship_progress"), "{lines:?}");
            assert_eq!(lines.last().unwrap()["outcome"], "already_present");

            // A context without a Dockerfile: exit 1, the error as JSON, nothing on the server.
            std::fs::create_dir_all(dir.join("empty")).unwrap();
            let bad = connect_ops_in(&dir, &["--json", "ship", "v3", "--context", "empty"]);
            assert_eq!(bad.status.code(), Some(1), "{}", text(&bad.stdout));
            let error = json_lines(&bad).pop().unwrap();
            assert_eq!(error["error"]["kind"], "not_found", "{error}");
            assert!(
                error["error"]["hint"].as_str().unwrap().contains("Dockerfile"),
                "{error}"
            );
        }
    })
    .await;
    scope.clean(&docker).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
