//! `connect-ops` shipping on the real stack: `[release]` names a build context to build on the server, so
//! `deploy v9` builds it there through the one SSH connection (the ship step), then deploys it blue-green
//! with the whole safety net, under load: its migrations linted, a verified backup, the migration checked in
//! `_prisma_migrations`, the new color watched, old images pruned. `ship v9` afterwards is a no-op that says
//! so.

use std::path::Path;

use connect_core::model::Color;
use connect_examples::demo_image;
use connect_examples::stack::{StackOptions, runbook};
use connect_examples::testing::connect_ops_json;

use crate::common::{assert_journal_true, assert_one_healthy_color, load, serial, stop_load, v1_live};

/// Runs `connect-ops --json --config <file> args…`: its exit code and its JSON lines.
fn ops(config: &Path, args: &[&str]) -> (Option<i32>, Vec<serde_json::Value>) {
    let run = connect_ops_json(
        config,
        args,
        &[("CONNECT_E2E_PG_PASSWORD", connect_db::testing::PG_PASSWORD)],
    );
    (run.code, run.lines)
}

/// Removes the test's own release from the engine when dropped (after the stack removed its containers).
struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", &self.0])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_builds_a_release_on_the_server_from_the_release_section_and_ship_then_does_nothing() {
    let _one = serial().await;
    let Some((stack, deployer)) = v1_live(StackOptions::new("e2e_ship")).await else {
        return;
    };
    let v9 = stack.release("v9");
    let _cleanup = RemoveImage(v9.image.to_string());
    let dir = tempfile::tempdir().expect("temp dir");
    let context = dir.path().join("context");
    std::fs::create_dir_all(&context).unwrap();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let binary = tokio::task::spawn_blocking(move || demo_image::build_static(&workspace))
        .await
        .unwrap()
        .expect("the demo app, built already for the stack");
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    demo_image::write_context(&context, &binary, "v9", Some(&migrations)).expect("the context");
    let config = dir.path().join("connect.toml");
    let text = format!(
        "{}keep_releases = 3\n[policy.watch]\nwindow = \"6s\"\ninterval = \"2s\"\n\
         [release]\ncontext = {:?}\nbuild_on = \"server\"\n",
        stack.address().connect_toml().replacen(
            "migration = [\"migrate\"]\n",
            &format!(
                "migration = [\"migrate\"]\nmigrations_dir = {:?}\n",
                demo_image::IMAGE_MIGRATIONS
            ),
            1
        ),
        context.display().to_string()
    );
    std::fs::write(&config, text).unwrap();

    let load = load(&stack, "deploy v9");
    // Off the runtime's threads: the load runs on them meanwhile.
    let deploy = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || ops(&config, &["deploy", "v9"]))
    };
    let (code, lines) = deploy.await.expect("connect-ops ran");
    let traffic = stop_load(load).await;
    assert_eq!(code, Some(0), "{lines:?}");
    let p = traffic.phase("deploy v9").expect("phase");
    assert!(
        p.requests > 0 && p.failed == 0,
        "no failed request during the deploy: {p:?}"
    );
    let shipped = lines
        .iter()
        .find(|l| l["event"] == "shipped")
        .unwrap_or_else(|| panic!("a shipped event: {lines:?}"));
    assert_eq!(shipped["outcome"], "built_on_server", "{shipped}");
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "ship_progress" && l["phase"] == "build"),
        "the build is reported: {lines:?}"
    );
    let record = lines.last().expect("the record");
    assert_eq!(record["outcome"]["result"], "succeeded", "{record}");
    assert_eq!(record["release"]["version"], "v9", "{record}");
    let steps: Vec<(&str, &str)> = record["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap_or(""),
                s["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for step in ["ship", "check_migrations", "backup", "migrate", "watch", "prune"] {
        assert!(steps.contains(&(step, "ok")), "{step} ran and passed: {steps:?}");
    }
    assert!(
        record["backup"]["sha256"].is_string(),
        "the backup is recorded: {record}"
    );
    assert_eq!(
        runbook::applied_migrations(&stack).await.expect("the table"),
        [runbook::V2_MIGRATION],
        "the migration is in _prisma_migrations"
    );
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Green);

    let (code, lines) = ops(&config, &["ship", "v9"]);
    assert_eq!(code, Some(0), "{lines:?}");
    assert_eq!(
        lines.last().expect("the report")["outcome"],
        "already_present",
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l["event"] == "ship_progress"), "{lines:?}");
    assert_journal_true(&deployer).await;
}
