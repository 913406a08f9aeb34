//! The template and a dozen broken files.

use super::{ConnectConfig, TEMPLATE};

const BASE: &str = "[server]\nhost = \"your-server\"\n[app]\nimage = \"connect\"\n";

#[test]
fn the_template_reads_back_as_the_defaults() {
    let template = ConnectConfig::parse("connect.toml", TEMPLATE).expect("the template parses");
    let base = ConnectConfig::parse("connect.toml", BASE).unwrap();
    assert_eq!(format!("{template:?}"), format!("{base:?}"));
}

/// Every commented `# key = value` in the template states the real default: uncommented alone, it changes
/// nothing. The keys shown as examples (no default, or a secret reference) are listed here.
#[test]
fn every_default_the_template_states_is_the_real_one() {
    const EXAMPLES: [&str; 13] = [
        "key_file",
        "passphrase",
        "known_hosts",
        "network",
        "master_socket",
        "state_file",
        "password",
        "smoke_paths",
        "migration",
        "env",
        "env_file",
        "pg_bin_dir",
        "migrations_dir",
    ];
    let base = format!("{:?}", ConnectConfig::parse("connect.toml", BASE).unwrap());
    let mut section = String::new();
    let mut checked = 0;
    for line in TEMPLATE.lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix("# [").or_else(|| line.strip_prefix('[')) {
            section = header.trim_end_matches(']').to_string();
            continue;
        }
        let Some(setting) = line.strip_prefix("# ") else {
            continue;
        };
        let Some((key, _)) = setting.split_once(" = ") else {
            continue;
        };
        let key = key.trim();
        // A slot is set whole (container, server, port), and so is a hook (`[[hooks]]`): their lines cannot
        // stand alone.
        if EXAMPLES.contains(&key) || section.starts_with("slots") || section.starts_with('[') {
            continue;
        }
        // Comments after the value are TOML comments too, so the line parses as written.
        let file = if section.is_empty() {
            format!("{setting}\n{BASE}")
        } else if section == "server" || section == "app" {
            BASE.replacen(&format!("[{section}]\n"), &format!("[{section}]\n{setting}\n"), 1)
        } else {
            format!("{BASE}[{section}]\n{setting}\n")
        };
        let parsed = ConnectConfig::parse("connect.toml", &file)
            .unwrap_or_else(|e| panic!("[{section}] {setting}: {e}"));
        assert_eq!(
            format!("{parsed:?}"),
            base,
            "[{section}] {setting} is not the default"
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} defaults checked");
}

/// Each broken file, the place its error must name, and a word of the message.
const BROKEN: [(&str, &str, &str); 14] = [
    (
        "[server]\nhots = \"x\"\n[app]\nimage = \"c\"\n",
        ":2:1",
        "unknown field `hots`",
    ),
    (
        "[server]\nport = 22\n[app]\nimage = \"c\"\n",
        ":1:1",
        "missing field `host`",
    ),
    (
        "[server]\nhost = \"x\"\nport = \"22\"\n[app]\nimage = \"c\"\n",
        ":3:8",
        "invalid type",
    ),
    (
        "[server]\nhost = \"x\"\nport = 70000\n[app]\nimage = \"c\"\n",
        ":3:8",
        "70000",
    ),
    (
        "[server]\nhost = \"x\"\n[app]\nimage = \"c\"\n[policy]\nhealth_deadline = \"soon\"\n",
        ":6:19",
        "not a duration",
    ),
    (
        "[server]\nhost = \"x\"\n[app]\nimage = \"c\"\n[policy]\ndrain_deadline = \"0s\"\n",
        ":6:18",
        "zero",
    ),
    (
        "[server]\nhost = \"x\"\n[app]\nimage = \"c\"\n[database]\npassword = \"${CONNECT_TEST_UNSET_9F2}\"\n",
        ":6:12",
        "CONNECT_TEST_UNSET_9F2 is not set",
    ),
    (
        "[server]\nhost = \"x\"\n[app]\nimage = \"c\"\n[policy]\nold_color = \"sometimes\"\n",
        ":6:13",
        "unknown variant",
    ),
    (
        "[server]\nhost = \"x\"\n[app]\nimage = \"c\"\n[policy]\nold_color = \"retire_after\"\n",
        ":6:1",
        "needs how long",
    ),
    (
        "[server]\nhost = \"x\"\n[app]\nimage = \"c\"\n[slots.green]\ncontainer = \"g\"\nserver = \"g\"\nport = 3000\n",
        ":8:1",
        "share a port",
    ),
    ("[server]\nhost = \"x\n[app]\nimage = \"c\"\n", ":2:", "string"),
    (
        "[server]\nhost = \"x\"\n[app]\nimage = \"c\"\nsmoke_paths = \"/\"\n",
        ":5:15",
        "invalid type",
    ),
    (
        "[server]\nhost = \"x\"\nhost = \"y\"\n[app]\nimage = \"c\"\n",
        ":3:1",
        "duplicate key",
    ),
    (
        "[server]\nhost = \"x\"\n[app]\nimage = \"c\"\n[[hooks]]\npoint = \"after_lunch\"\ncommand = [\"true\"]\n",
        ":6:9",
        "unknown variant `after_lunch`",
    ),
];

#[test]
fn hooks_read_into_the_deploy_config() {
    let config = ConnectConfig::parse(
        "connect.toml",
        &format!(
            "{BASE}[[hooks]]\npoint = \"before_switch\"\ncommand = [\"./smoke.sh\", \"--quick\"]\n\
             [[hooks]]\npoint = \"after_deploy\"\ncommand = [\"notify\"]\nsite = \"server\"\ntimeout = \"5s\"\n"
        ),
    )
    .unwrap();
    let hooks = config.deploy_config().hooks;
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[0].point, connect_core::engine::HookPoint::BeforeSwitch);
    assert_eq!(hooks[0].command, ["./smoke.sh", "--quick"]);
    assert_eq!(hooks[0].site, connect_core::engine::HookSite::Local);
    assert_eq!(hooks[0].timeout, std::time::Duration::from_secs(60));
    assert_eq!(hooks[1].site, connect_core::engine::HookSite::Server);
    assert_eq!(hooks[1].timeout, std::time::Duration::from_secs(5));
}

#[test]
fn a_broken_file_is_answered_with_its_file_line_and_column() {
    for (text, at, words) in BROKEN {
        let e = ConnectConfig::parse("connect.toml", text).expect_err(text);
        let shown = e.to_string();
        assert_eq!(e.kind(), connect_core::ErrorKind::InvalidInput, "{shown}");
        assert!(
            shown.contains(&format!("connect.toml{at}")),
            "{text:?}: expected {at} in {shown}"
        );
        assert!(shown.contains(words), "{text:?}: expected {words:?} in {shown}");
        assert!(e.hint().is_some(), "{shown}");
    }
}
