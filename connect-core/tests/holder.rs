//! The deploy lock's holder names the user and machine from the system (passwd entry of the effective uid,
//! `gethostname`), whatever `$USER` and `$HOSTNAME` say.

use std::process::Command;

use connect_core::engine::default_holder;

const CHILD_ENV: &str = "CONNECT_HOLDER_CHILD";

fn system(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .expect("run a coreutils program");
    assert!(out.status.success(), "{program} failed: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// Not a test of its own: prints the holder as the child process of the test below sees it.
#[test]
#[ignore = "the child process of the_holder_comes_from_the_system_not_the_environment"]
fn holder_child() {
    if std::env::var_os(CHILD_ENV).is_some() {
        println!("HOLDER={}", default_holder());
    }
}

#[test]
fn the_holder_comes_from_the_system_not_the_environment() {
    let child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--ignored",
            "--exact",
            "holder_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env("USER", "not-the-user")
        .env("LOGNAME", "not-the-user")
        .env("HOSTNAME", "not-the-host")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let pid = child.id();
    let out = child.wait_with_output().expect("the child ends");
    assert!(out.status.success(), "the child failed: {out:?}");
    // libtest writes "test holder_child ... " without a line end before the child's line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let holder = stdout
        .lines()
        .find_map(|l| l.split_once("HOLDER=").map(|(_, holder)| holder))
        .unwrap_or_else(|| panic!("no HOLDER line in {stdout}"));
    let expected = format!(
        "{}@{} pid {pid}",
        system("id", &["-un"]),
        system("uname", &["-n"])
    );
    assert_eq!(holder, expected);
}

#[test]
fn this_process_holds_as_itself() {
    assert_eq!(
        default_holder(),
        format!(
            "{}@{} pid {}",
            system("id", &["-un"]),
            system("uname", &["-n"]),
            std::process::id()
        )
    );
}
