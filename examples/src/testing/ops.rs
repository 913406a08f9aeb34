//! The `connect-ops` command as the tests run it: built for this test run, then run with `--json`.

use std::path::{Path, PathBuf};

/// The `connect-ops` command built for this test run (`target/<profile>/examples/connect-ops`, in the profile of
/// the test or bench binary), built first
/// when a test runs without it or with one older than the test binary (`cargo test --test cli` builds only
/// the test, and a stale command would test yesterday's code).
pub fn connect_ops() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // The test binary is target/<profile>/deps/<name>; the examples are beside `deps`.
            let exe = std::env::current_exe().expect("the test binary");
            let profile = exe
                .parent()
                .and_then(Path::parent)
                .expect("target/<profile>/deps");
            let binary = profile.join("examples").join("connect-ops");
            let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            let stale = match (modified(&binary), modified(&exe)) {
                (Some(command), Some(test)) => command < test,
                _ => true,
            };
            if stale {
                // In the profile of the binary asking (a bench runs in `release`): the command is looked for
                // beside it.
                let profile_name = profile.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
                let profile_flag = match profile_name {
                    "debug" => "--profile=dev".to_string(),
                    other => format!("--profile={other}"),
                };
                let status = std::process::Command::new(env!("CARGO"))
                    .args([
                        "build",
                        "-p",
                        "connect-examples",
                        "--features",
                        "ops",
                        "--example",
                        "connect-ops",
                        &profile_flag,
                    ])
                    .status()
                    .expect("cargo runs");
                assert!(status.success(), "building connect-ops failed");
            }
            binary
        })
        .clone()
}

/// Runs `connect-ops args…` in `dir` to its end, as an operator would in that directory: `RUST_LOG` removed (the
/// output is the command's own) and `SSH_AUTH_SOCK` too (only the keys a test set up are offered).
pub fn connect_ops_in(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(connect_ops())
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .expect("connect-ops runs")
}

/// How a `connect-ops --json` run ended.
#[derive(Debug)]
pub struct OpsRun {
    /// Its exit code (`None`: ended by a signal).
    pub code: Option<i32>,
    /// Its output, one JSON value a line.
    pub lines: Vec<serde_json::Value>,
    /// Its standard error.
    pub stderr: String,
}

/// Runs `connect-ops --json --config <config> args…` with `env` added (such as the password variable the config
/// names) and `RUST_LOG` removed. A line of its output that is not JSON fails the test, naming the command; its
/// standard error is printed when it fails, so a failing test shows why.
pub fn connect_ops_json(config: &Path, args: &[&str], env: &[(&str, &str)]) -> OpsRun {
    let out = std::process::Command::new(connect_ops())
        .arg("--json")
        .arg("--config")
        .arg(config)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .expect("connect-ops runs");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {l}")))
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        eprintln!("{args:?}: {stderr}");
    }
    OpsRun {
        code: out.status.code(),
        lines,
        stderr,
    }
}
