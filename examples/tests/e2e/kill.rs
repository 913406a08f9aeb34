//! A deploy process SIGKILLed at every step of a deploy, on the real stack under load, each time followed by a
//! NEW process running the same deploy, as an operator would re-run the command: it waits out the dead
//! process's lock lease, settles what it left, and deploys, with no manual step.
//!
//! The deploying process is this test binary run again as [`deploy_child`] (an ignored test that acts only
//! when `CONNECT_E2E_CHILD` names a stack): it connects its own SSH connection and prints the engine's events
//! as JSON lines, which the parent reads to kill it at a chosen step.

use std::process::Stdio;
use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::engine::{Event, Outcome, Step};
use connect_core::wait::poll_until;
use connect_examples::stack::{StackAddress, StackOptions};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::{
    assert_journal_true, assert_nothing_half_made, assert_one_healthy_color, load, serial, stop_load, v1_live,
};

/// What the child process is asked to do.
#[derive(Debug, Serialize, Deserialize)]
struct ChildJob {
    stack: StackAddress,
    version: String,
    image: String,
}

/// What the child prints last: how its deploy ended.
#[derive(Debug, Serialize, Deserialize)]
struct ChildResult {
    ok: bool,
    kind: Option<String>,
    message: String,
}

const CHILD_ENV: &str = "CONNECT_E2E_CHILD";

/// Not a test of its own: the deploying process of the test below, run as a child with [`CHILD_ENV`] set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the deploying child process of a_deploy_process_killed_at_each_step_is_finished_by_a_new_one"]
async fn deploy_child() {
    let Ok(job) = std::env::var(CHILD_ENV) else {
        return;
    };
    let job: ChildJob = serde_json::from_str(&job).expect("a job");
    let backends = job.stack.connect().await.expect("the child connects");
    let deployer =
        connect_core::engine::Deployer::new(backends, job.stack.deploy_config()).expect("a deployer");
    let mut events = deployer.subscribe();
    let printer = tokio::spawn(async move {
        use std::io::Write;
        while let Ok(event) = events.recv().await {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string(&event).expect("events serialize")
            );
            let _ = out.flush();
        }
    });
    let mut release = connect_core::model::Release::new(&job.stack.prefix, &job.version).expect("a release");
    release.image = connect_core::model::ImageRef::parse(&job.image).expect("an image");
    let result = deployer.deploy(release).await;
    drop(deployer);
    let _ = printer.await;
    let result = match result {
        Ok(_) => ChildResult {
            ok: true,
            kind: None,
            message: "deployed".into(),
        },
        Err(e) => ChildResult {
            ok: false,
            kind: Some(e.kind().to_string()),
            message: e.to_string(),
        },
    };
    println!("RESULT {}", serde_json::to_string(&result).expect("serializes"));
}

/// Runs the child deploy of `version`; kills it (SIGKILL) when it starts `kill_at`. Returns whether it was
/// killed, or its result.
async fn run_child(job: &ChildJob, kill_at: Option<Step>) -> Result<ChildResult, Step> {
    let exe = std::env::current_exe().expect("this test binary");
    let mut child = tokio::process::Command::new(exe)
        .args([
            "kill::deploy_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, serde_json::to_string(job).expect("serializes"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the child starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut result = None;
    let mut other = Vec::new();
    while let Some(line) = lines.next_line().await.expect("the child's output") {
        // libtest writes "test kill::deploy_child ... " without a line end before the child's first line.
        if let Some((_, json)) = line.split_once("RESULT ") {
            result = Some(serde_json::from_str(json).expect("a result"));
            continue;
        }
        let json = line.find('{').map_or("", |i| &line[i..]);
        let Ok(event) = serde_json::from_str::<Event>(json) else {
            other.push(line);
            continue;
        };
        if let (Event::StepStarted { step }, Some(at)) = (&event, kill_at)
            && *step == at
        {
            child.start_kill().expect("SIGKILL");
            child.wait().await.expect("the child ends");
            return Err(at);
        }
    }
    let status = child.wait().await.expect("the child ends");
    assert!(status.success(), "the child process failed: {status}");
    Ok(result.unwrap_or_else(|| panic!("the child printed no result: {other:?}")))
}

/// Re-runs the deploy in new processes until one gets past the dead one's lock (its lease runs out).
async fn rerun_until_done(job: &ChildJob, lease: Duration) -> ChildResult {
    poll_until(
        "re-run",
        &job.version,
        lease * 4,
        Duration::from_millis(200),
        || async {
            let result = run_child(job, None).await.expect("not killed");
            Ok(match result.kind.as_deref() {
                Some(kind) if kind == ErrorKind::Conflict.to_string() => Err(result.message),
                _ => Ok(result),
            })
        },
    )
    .await
    .unwrap_or_else(|e| panic!("a new process gets the lock once the lease ran out: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_process_killed_at_each_step_is_finished_by_a_new_one() {
    let _one = serial().await;
    let Some((stack, deployer)) = v1_live(StackOptions::new("e2e_sigkill")).await else {
        return;
    };
    let address = stack.address();
    let lease = deployer.config().policy.lock_lease;
    let kill_points = [
        Step::Reconcile,
        Step::Preflight,
        Step::StageImage,
        Step::RestorePoint,
        Step::Migrate,
        Step::StartIdle,
        Step::HealthGate,
        Step::Switch,
        Step::Drain,
        Step::Verify,
        Step::Record,
    ];
    let traffic = load(&stack, "kills");
    // Each iteration: the killed deploy, then new processes until one deploys.
    let mut live_version = "v1".to_string();
    let mut killed = 0;
    for (i, at) in kill_points.into_iter().enumerate() {
        let version = if i % 2 == 0 { "v2" } else { "v3" };
        let release = stack.release(version);
        let job = ChildJob {
            stack: address.clone(),
            version: version.into(),
            image: release.image.to_string(),
        };
        match run_child(&job, Some(at)).await {
            Err(_) => killed += 1,
            // The deploy ended before the kill could land (the step was the last): nothing to finish.
            Ok(result) => assert!(
                result.ok,
                "the deploy to be killed at {at} failed: {}",
                result.message
            ),
        }
        // Killed while recording, the record may still have been written whole: then the killed deploy was
        // verified and is live, and the re-run's standby is that release.
        let last = deployer.journal().await.expect("journal").history.pop();
        if let Some(record) = last
            && record.outcome == Outcome::Succeeded
            && record.release.as_ref().is_some_and(|r| r.version == version)
        {
            live_version = version.to_string();
        }
        let result = rerun_until_done(&job, lease).await;
        assert!(
            result.ok,
            "killed at {at}: the new process's deploy failed: {}",
            result.message
        );

        let color = assert_one_healthy_color(&stack, &deployer).await;
        let journal = deployer.journal().await.expect("journal");
        assert_eq!(
            journal.slots[&color].release.version, version,
            "killed at {at}: the new process deployed {version}"
        );
        let standby = journal.standby().expect("a warm standby");
        assert_eq!(
            journal.slots[&standby].release.version, live_version,
            "killed at {at}: the standby is the release that was verified and live before, never the killed one"
        );
        let leftovers: Vec<String> = std::fs::read_dir(stack.state_dir())
            .expect("the state dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name != "journal.json")
            .collect();
        assert!(
            leftovers.is_empty(),
            "killed at {at}: left in the state dir: {leftovers:?}"
        );
        assert!(
            journal
                .history
                .iter()
                .all(|r| !matches!(&r.outcome, Outcome::Failed { .. })),
            "killed at {at}: no operation failed: {:?}",
            journal.history.iter().map(|r| &r.outcome).collect::<Vec<_>>()
        );
        assert_journal_true(&deployer).await;
        live_version = version.to_string();
    }
    let report = stop_load(traffic).await;
    eprintln!(
        "sigkill: {killed} of {} deploy processes killed mid-deploy; {} requests, {} failed",
        kill_points.len(),
        report.total.requests,
        report.total.failed
    );
    assert!(
        killed >= kill_points.len() - 1,
        "the kills landed inside the deploys: {killed}"
    );
    assert_eq!(
        report.total.failed, 0,
        "no request failed through eleven kills: {:?}",
        report.total.failures
    );
    assert_nothing_half_made(&stack, &deployer).await;
}
