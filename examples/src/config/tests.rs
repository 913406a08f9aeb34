//! The template and a dozen broken files.

use super::{ConnectConfig, TEMPLATE};
use connect_core::engine::fleet::Role;

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
    // In [server], these default to what the ssh config says: no value written here is their default.
    const SERVER_EXAMPLES: [&str; 3] = ["port", "user", "proxy_jump"];
    const EXAMPLES: [&str; 34] = [
        "secret_files",
        "context",
        "image",
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
        // [haproxy] socket access and [database] TLS: examples, no default to state.
        "socket_user",
        "socket_group",
        "patroni_username",
        "patroni_password",
        "patroni_ca_file",
        "ssl_root_cert",
        "server_ssl_root_cert",
        // [policy] pruning and the watch's window are off unless set; a canary table is off unless written.
        "keep_releases",
        "window",
        "steps",
        "hold",
        // [fleet]: every host is required unless a number is written.
        "min_healthy_hosts",
        // [backup_all]: where the uploads and configs are, and the off-host copy, depend on the server.
        "uploads_dir",
        "configs",
        "copy_to",
        // [swarm]: the manager's socket defaults to [docker]'s, which the line cannot show as unset; its
        // name's default is left unset in the file, so written it reads as set.
        "manager_socket",
        "manager_name",
        // [roles.worker]: the worker's command is the image's unless written.
        "command",
    ];
    // Tables that are off unless written: their keys are compared with the table written empty.
    const OPTIONAL_TABLES: [&str; 2] = ["backup_all", "swarm"];
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
        if EXAMPLES.contains(&key)
            || section.starts_with("slots")
            // [database.pitr] needs its repository and nodes together: its keys are checked below.
            || section.starts_with("database.pitr")
            || section.starts_with('[')
            || (section == "server" && SERVER_EXAMPLES.contains(&key))
        {
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
        let base = if OPTIONAL_TABLES.contains(&section.as_str()) {
            let empty = format!("{BASE}[{section}]\n");
            format!("{:?}", ConnectConfig::parse("connect.toml", &empty).unwrap())
        } else {
            base.clone()
        };
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
const BROKEN: [(&str, &str, &str); 17] = [
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
    (
        "[server]\nhost = \"x\"\n[app]\nimage = \"c\"\n[release]\ncontext = \".\"\nimage = \"c:dev\"\n",
        ":7:1",
        "not both",
    ),
    (
        "[server]\nhost = \"x\"\n[app]\nimage = \"c\"\n[release]\nbuild_on = \"server\"\n",
        ":6:1",
        "only from a context",
    ),
    (
        "[server]\nhost = \"x\"\n[app]\nimage = \"c\"\n[release]\nbuild_on = \"remote\"\n",
        ":6:12",
        "unknown variant",
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
fn the_watch_the_canary_pruning_and_webhooks_read_into_the_policy() {
    // `$$` is a literal `$`: the URL reads no environment variable here.
    let text = format!(
        "{BASE}[policy]\nkeep_releases = 4\n[policy.watch]\nwindow = \"2m\"\ninterval = \"10s\"\n\
         max_restarts = 2\n[policy.canary]\nsteps = [5, 25, 60]\nhold = \"30s\"\n\
         [[webhooks]]\nurl = \"https://127.0.0.1:9/hooks/$${{not-a-reference}}\"\ntimeout = \"3s\"\n"
    );
    let config = ConnectConfig::parse("connect.toml", &text).unwrap();
    let deploy = config.deploy_config();
    let policy = &deploy.policy;
    assert_eq!(policy.keep_releases, Some(4));
    assert_eq!(policy.watch.window, std::time::Duration::from_secs(120));
    assert_eq!(policy.watch.interval, std::time::Duration::from_secs(10));
    assert_eq!(policy.watch.max_restarts, 2);
    let defaults = connect_core::model::WatchPolicy::default();
    assert_eq!(policy.watch.min_responses, defaults.min_responses);
    let canary = policy.canary.as_ref().expect("a canary");
    assert_eq!(canary.steps, [5, 25, 60]);
    assert_eq!(canary.hold, std::time::Duration::from_secs(30));
    assert_eq!(deploy.webhooks.len(), 1);
    assert_eq!(
        deploy.webhooks[0].url,
        "https://127.0.0.1:9/hooks/${not-a-reference}"
    );
    assert_eq!(deploy.webhooks[0].timeout, std::time::Duration::from_secs(3));
    assert!(!format!("{config:?}").contains("hooks/$"), "the URL is a secret");
}

#[test]
fn the_engines_policy_rules_are_answered_at_their_place_in_the_file() {
    // A canary needs the watch: the engine's rule, pointed at the file.
    let text = format!("{BASE}[policy.canary]\nsteps = [50, 10]\nhold = \"1m\"\n");
    let e = ConnectConfig::parse("connect.toml", &text).unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("connect.toml:6:1"), "{shown}");
    assert!(shown.contains("policy.canary.steps"), "{shown}");
    assert!(shown.contains("rising"), "{shown}");

    let text = format!("{BASE}[policy.canary]\nhold = \"1m\"\n");
    let e = ConnectConfig::parse("connect.toml", &text).unwrap_err();
    assert!(e.to_string().contains("needs the watch"), "{e}");
    assert!(e.hint().unwrap().contains("watch.window"), "{e}");

    let text = format!("{BASE}[policy.watch]\nwindow = \"10s\"\ninterval = \"1m\"\n");
    let e = ConnectConfig::parse("connect.toml", &text).unwrap_err();
    assert!(e.to_string().contains("connect.toml:7:1"), "{e}");

    let text = format!("{BASE}[[webhooks]]\nurl = \"chat.example/hook\"\n");
    let e = ConnectConfig::parse("connect.toml", &text).unwrap_err();
    assert!(e.to_string().contains("http:// or https://"), "{e}");
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

#[test]
fn a_bad_jump_host_is_located_at_its_key() {
    let text = "[server]\nhost = \"x\"\nproxy_jump = \"ops@bastion:none\"\n[app]\nimage = \"c\"\n";
    let e = ConnectConfig::parse("connect.toml", text).expect_err("bad port");
    let shown = e.to_string();
    assert!(shown.contains("connect.toml:3:14"), "{shown}");
    assert!(shown.contains("1 to 65535"), "{shown}");
}

/// `[server]` leaves to the ssh config file what it does not set, and what it sets wins.
#[test]
fn the_server_is_completed_by_the_ssh_config_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ssh_config = dir.path().join("ssh_config");
    std::fs::write(
        &ssh_config,
        "Host prod\n  HostName 127.0.0.5\n  User ops\n  Port 2222\n  ProxyJump jump@bastion:2200\n",
    )
    .expect("ssh config");
    let file = |server: &str| {
        format!(
            "[server]\nhost = \"prod\"\nssh_config = {:?}\n{server}[app]\nimage = \"c\"\n",
            ssh_config.display()
        )
    };
    let from_file = ConnectConfig::parse("connect.toml", &file("")).expect("parse");
    assert_eq!(
        from_file.server_address().expect("resolved"),
        "ops@127.0.0.5:2222 via jump@bastion:2200"
    );
    let explicit = ConnectConfig::parse(
        "connect.toml",
        &file("user = \"deploy\"\nport = 22\nproxy_jump = \"other:2022,third\"\n"),
    )
    .expect("parse");
    assert_eq!(
        explicit.server_address().expect("resolved"),
        "deploy@127.0.0.5:22 via other:2022,third"
    );
    let without = ConnectConfig::parse(
        "connect.toml",
        "[server]\nhost = \"prod\"\nuser = \"deploy\"\nssh_config = false\n[app]\nimage = \"c\"\n",
    )
    .expect("parse");
    assert_eq!(without.server_address().expect("no file read"), "deploy@prod:22");

    let missing = ConnectConfig::parse(
        "connect.toml",
        "[server]\nhost = \"prod\"\nssh_config = \"/nonexistent/ssh_config\"\n[app]\nimage = \"c\"\n",
    )
    .expect("parse");
    let e = missing
        .server_address()
        .expect_err("a named ssh config must exist");
    assert!(e.to_string().contains("/nonexistent/ssh_config"), "{e}");
}

/// `[haproxy]` socket access and `[database]` TLS keys: broken values, each located at its key.
const TLS_BROKEN: [(&str, &str, &str); 5] = [
    ("[haproxy]\nsocket_mode = \"666\"\n", ":6:1", "every local user"),
    ("[haproxy]\nsocket_mode = \"rw\"\n", ":6:1", "octal"),
    (
        "[database]\nsslmode = \"verify_full\"\n",
        ":6:11",
        "not an sslmode",
    ),
    (
        "[database]\nsslmode = \"verify-full\"\n",
        ":6:1",
        "no CA is given",
    ),
    (
        "[database]\npatroni_username = \"patroni\"\n",
        ":6:1",
        "both a username and a password",
    ),
];

#[test]
fn broken_socket_and_tls_keys_are_answered_at_their_place() {
    for (section, at, words) in TLS_BROKEN {
        let text = format!("{BASE}{section}");
        let e = ConnectConfig::parse("connect.toml", &text).expect_err(section);
        let shown = e.to_string();
        assert_eq!(e.kind(), connect_core::ErrorKind::InvalidInput, "{shown}");
        assert!(
            shown.contains(&format!("connect.toml{at}")),
            "{section:?}: expected {at} in {shown}"
        );
        assert!(
            shown.contains(words),
            "{section:?}: expected {words:?} in {shown}"
        );
        assert!(e.hint().is_some(), "{shown}");
    }
}

/// The keys reach the backends: the socket access renders as haproxy.cfg must say it, the Patroni client
/// carries the credentials (never printed), PostgreSQL's login the sslmode and both CA paths.
#[tokio::test]
async fn socket_and_tls_keys_reach_the_backends() {
    use std::sync::Arc;

    use connect_core::local::LocalHost;
    use connect_db::SslMode;

    let text = format!(
        "{BASE}[haproxy]\nsocket_mode = \"660\"\nsocket_group = \"deploy\"\n\
         [database]\npatroni = [\"https://db1.internal:8008\"]\npatroni_username = \"patroni\"\n\
         patroni_password = \"pa$$ss\"\nsslmode = \"verify-full\"\nssl_root_cert = \"/etc/connect/pg-ca.pem\"\n\
         server_ssl_root_cert = \"/etc/ssl/pg-ca.pem\"\n"
    );
    let config = ConnectConfig::parse("connect.toml", &text).expect("parses");
    assert!(
        !format!("{config:?}").contains("pa$ss"),
        "the password never prints"
    );
    let access = config.haproxy.socket_access().expect("socket access");
    assert_eq!(access.options().expect("options"), "mode 660 group deploy");

    let db = config
        .database(Arc::new(LocalHost::new()))
        .expect("the cluster client");
    let auth = db.patroni().auth().expect("credentials");
    assert_eq!(auth.username, "patroni");
    assert!(!format!("{db:?}").contains("pa$ss"), "{db:?}");
    let login = db.login();
    assert_eq!(login.ssl_mode, SslMode::VerifyFull);
    assert_eq!(
        login.root_cert(),
        Some(std::path::Path::new("/etc/connect/pg-ca.pem"))
    );
    assert_eq!(login.host_ssl_root_cert.as_deref(), Some("/etc/ssl/pg-ca.pem"));

    // The Patroni CA is read when the backends are built: a missing file names the key.
    let missing = format!("{text}patroni_ca_file = \"/nonexistent/patroni-ca.pem\"\n");
    let config = ConnectConfig::parse("connect.toml", &missing).expect("parses");
    let e = config
        .database(Arc::new(LocalHost::new()))
        .expect_err("no CA file");
    assert_eq!(e.kind(), connect_core::ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("patroni_ca_file"), "{e}");

    // The runbook's defaults: no TLS, a private socket.
    let plain = ConnectConfig::parse("connect.toml", BASE).expect("parses");
    assert_eq!(plain.database.sslmode, SslMode::Disable);
    assert_eq!(
        plain
            .haproxy
            .socket_access()
            .expect("access")
            .options()
            .expect("options"),
        "mode 600"
    );
}

/// `[audit]`: broken values, each located at its key; the section reaches the audit's reference points.
#[test]
fn the_audit_section_is_checked_and_reaches_the_audit() {
    for (section, at, words) in [
        (
            "[audit]\npermit_root_login = \"yes\"\n",
            ":6:1",
            "not a hardened PermitRootLogin",
        ),
        ("[audit]\nsshd_reload = []\n", ":6:1", "empty"),
        ("[audit]\nfail_on = \"severe\"\n", ":6:11", "unknown variant"),
        ("[audit]\npublic_ports = [70000]\n", ":6:17", "u16"),
    ] {
        let text = format!("{BASE}{section}");
        let e = ConnectConfig::parse("connect.toml", &text).expect_err(section);
        let shown = e.to_string();
        assert!(
            shown.contains(&format!("connect.toml{at}")),
            "{section:?}: expected {at} in {shown}"
        );
        assert!(
            shown.contains(words),
            "{section:?}: expected {words:?} in {shown}"
        );
    }
    let text = format!(
        "{BASE}[audit]\npublic_ports = [22, 443]\nsecret_files = [\"/etc/connect/app.env\"]\nfail_on = \"high\"\n"
    );
    let config = ConnectConfig::parse("connect.toml", &text).expect("parses");
    let host = config.host_audit();
    assert_eq!(host.public_ports, [22, 443]);
    assert!(host.private_paths.contains(&(
        connect_core::audit::AuditCheck::SecretFiles,
        "/etc/connect/app.env".to_string()
    )));
    assert_eq!(config.audit.fail_on, connect_core::audit::Severity::High);
    assert_eq!(config.sshd_fix().reload, ["systemctl", "reload", "ssh"]);
}

/// README's "several servers" config: HAProxy, the database and Redis on `[server]`, three app hosts.
pub(crate) const THREE_APP_HOSTS: &str = r#"
[server]
host = "lb.example"
user = "deploy"
[app]
image = "connect"
[[app_hosts]]
name = "web1"
host = "web1.internal"
[[app_hosts]]
name = "web2"
host = "web2.internal"
[[app_hosts]]
name = "web3"
host = "web3.internal"
port = 2222
[fleet]
min_healthy_hosts = 2
"#;

#[test]
fn three_app_hosts_read_with_their_defaults() {
    let config = ConnectConfig::parse("connect.toml", THREE_APP_HOSTS).unwrap();
    assert!(config.is_fleet());
    let names: Vec<&str> = config.app_hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["web1", "web2", "web3"]);
    assert_eq!(config.app_hosts[2].port, Some(2222));
    assert_eq!(config.app_hosts[0].blue_server, None, "defaults to web1_blue");
    assert_eq!(config.fleet.min_healthy_hosts, Some(2));
    assert!(!ConnectConfig::parse("connect.toml", BASE).unwrap().is_fleet());
}

#[test]
fn a_fleet_config_that_cannot_work_names_the_key() {
    let too_many = THREE_APP_HOSTS.replace("min_healthy_hosts = 2", "min_healthy_hosts = 4");
    let err = ConnectConfig::parse("connect.toml", &too_many).unwrap_err();
    assert!(
        err.to_string()
            .contains("fleet.min_healthy_hosts: 4 is not between 1 and the 3"),
        "{err}"
    );
    assert!(err.to_string().contains("connect.toml:"), "located: {err}");

    let twice = THREE_APP_HOSTS.replace("name = \"web2\"", "name = \"web1\"");
    let err = ConnectConfig::parse("connect.toml", &twice).unwrap_err();
    assert!(
        err.to_string().contains("two app hosts are named \"web1\""),
        "{err}"
    );

    let unknown = THREE_APP_HOSTS.replace("port = 2222", "prot = 2222");
    let err = ConnectConfig::parse("connect.toml", &unknown).unwrap_err();
    assert!(err.to_string().contains("unknown field `prot`"), "{err}");
}

#[test]
fn a_worker_host_runs_the_worker_role_and_has_no_server() {
    let with_worker = format!(
        "{THREE_APP_HOSTS}[[app_hosts]]\nname = \"jobs1\"\nhost = \"jobs1.internal\"\nrole = \"worker\"\n\
         [roles.worker]\ncommand = [\"bin/jobs\"]\nenv = {{ QUEUES = \"default\" }}\n"
    );
    let config = ConnectConfig::parse("connect.toml", &with_worker).unwrap();
    let roles: Vec<Role> = config.app_hosts.iter().map(|h| h.role).collect();
    assert_eq!(roles, [Role::Web, Role::Web, Role::Web, Role::Worker]);
    let app = config.deploy_config().app;
    let worker = config.worker_app(&app);
    assert_eq!(worker.command, Some(vec!["bin/jobs".to_string()]));
    assert_eq!(worker.env["QUEUES"], "default");
    assert!(
        !worker.serves_http(),
        "no HTTP asked of a worker unless it names a path"
    );
    assert!(worker.smoke_paths.is_empty());
    assert_eq!((worker.name, worker.stop_grace), (app.name, app.stop_grace));

    for (change, says) in [
        (
            with_worker.replace(
                "role = \"worker\"",
                "role = \"worker\"\nblue_server = \"jobs1_b\"",
            ),
            "jobs1 is a worker, which has no HAProxy server",
        ),
        (
            with_worker.replace("min_healthy_hosts = 2", "min_healthy_hosts = 4"),
            "4 is not between 1 and the 3 web hosts listed",
        ),
        (
            with_worker.replace("role = \"worker\"", "role = \"cron\""),
            "unknown variant `cron`",
        ),
        (
            with_worker.replace("[roles.worker]", "[roles.cron]"),
            "unknown field `cron`",
        ),
    ] {
        let err = ConnectConfig::parse("connect.toml", &change).unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
    }
    let only_workers = r#"
[server]
host = "lb.example"
[app]
image = "connect"
[[app_hosts]]
name = "jobs1"
host = "jobs1.internal"
role = "worker"
"#;
    let err = ConnectConfig::parse("connect.toml", only_workers).unwrap_err();
    assert!(err.to_string().contains("every app host is a worker"), "{err}");
}

#[test]
fn backup_all_is_off_unless_written_and_its_paths_must_be_absolute() {
    let base = ConnectConfig::parse("connect.toml", BASE).unwrap();
    assert!(base.backup_all.is_none() && base.deploy_config().policy.backup_sets.is_none());
    let on =
        ConnectConfig::parse("connect.toml", &format!("{BASE}[backup_all]\nmax_age = \"2h\"\n")).unwrap();
    let policy = on
        .deploy_config()
        .policy
        .backup_sets
        .expect("preflight checks the sets");
    assert_eq!(
        (policy.dir.as_str(), policy.max_age.as_secs()),
        ("/backups/connect", 7200)
    );
    for (setting, line, key) in [
        ("dir = \"backups\"", ":6:1", "backup_all.dir"),
        ("uploads_dir = \"../up\"", ":6:1", "backup_all.uploads_dir"),
        ("configs = [\"etc/haproxy.cfg\"]", ":6:1", "backup_all.configs"),
        ("keep = 0", ":6:1", "backup_all.keep"),
        ("copy_to = \"copies\"", ":6:1", "backup_all.copy_to"),
    ] {
        let e =
            ConnectConfig::parse("connect.toml", &format!("{BASE}[backup_all]\n{setting}\n")).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains(&format!("connect.toml{line}")) && shown.contains(key),
            "{setting}: {shown}"
        );
        assert!(e.hint().is_some(), "{shown}");
    }
}

#[test]
fn the_templates_pitr_table_uncommented_is_a_valid_section_at_its_defaults() {
    let mut table = String::new();
    let mut inside = false;
    for line in TEMPLATE.lines() {
        if line.starts_with("# [database.pitr]") {
            inside = true;
        } else if inside && !line.starts_with("# ") {
            break;
        }
        if inside {
            table.push_str(line.trim_start_matches("# "));
            table.push('\n');
        }
    }
    let text = BASE.replacen("[app]", &format!("{table}[app]"), 1);
    let c = ConnectConfig::parse("connect.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let p = c.database.pitr.expect("the table is read");
    assert_eq!((p.repo.as_str(), p.nodes.len()), ("/mnt/backup/pgbackrest", 1));
    let defaults = format!(
        "{BASE}[database.pitr]\nrepo = \"/mnt/backup/pgbackrest\"\nrun_as = [\"sudo\", \"-n\", \"-u\", \"postgres\", \"--\"]\netcd = \"http://127.0.0.1:2379\"\n[[database.pitr.nodes]]\nmember = \"patroni1\"\ndata_dir = \"/var/lib/postgresql/15/patroni1\"\nport = 5432\n"
    );
    let d = ConnectConfig::parse("connect.toml", &defaults)
        .unwrap()
        .database
        .pitr
        .unwrap();
    assert_eq!(
        format!("{p:?}"),
        format!("{d:?}"),
        "every other key states its default"
    );
}

/// README's Swarm config: the manager is the server (HAProxy there too), a worker's engine over SSH.
pub(crate) const SWARM: &str = r#"
[server]
host = "manager.example"
user = "deploy"
[app]
image = "connect"
[swarm]
[[swarm.nodes]]
host = "worker1.internal"
[[swarm.nodes]]
name = "worker2"
host = "worker2.internal"
port = 2222
socket = "/run/docker.sock"
"#;

#[test]
fn swarm_reads_with_its_defaults_and_is_off_unless_written() {
    let config = ConnectConfig::parse("connect.toml", SWARM).unwrap();
    assert!(config.is_swarm() && !config.is_fleet());
    let swarm = config.swarm.as_ref().unwrap();
    assert_eq!(swarm.manager_socket, None, "defaults to [docker] socket");
    let hosts: Vec<&str> = swarm.nodes.iter().map(|n| n.host.as_str()).collect();
    assert_eq!(hosts, ["worker1.internal", "worker2.internal"]);
    assert_eq!(
        (swarm.nodes[1].port, swarm.nodes[1].socket.as_deref()),
        (Some(2222), Some("/run/docker.sock"))
    );
    assert_eq!(swarm.nodes[0].user, None, "defaults to [server]'s");
    assert!(!ConnectConfig::parse("connect.toml", BASE).unwrap().is_swarm());
    let alone = ConnectConfig::parse("connect.toml", &format!("{BASE}[swarm]\n")).unwrap();
    assert!(alone.is_swarm() && alone.swarm.unwrap().nodes.is_empty());
}

#[test]
fn a_swarm_gives_each_color_a_server_per_node() {
    let config = ConnectConfig::parse("connect.toml", SWARM).unwrap();
    assert_eq!(
        config.swarm_node_names(),
        ["manager", "worker1.internal", "worker2"],
        "the manager's default, a node's host, a node's name"
    );
    let groups = config.swarm_groups(&config.deploy_config().topology);
    let shown: Vec<(&str, Vec<&str>)> = groups
        .iter()
        .map(|g| (g.name.as_str(), g.members.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        shown,
        [
            (
                "app1",
                vec!["manager_blue", "worker1.internal_blue", "worker2_blue"]
            ),
            (
                "app2",
                vec!["manager_green", "worker1.internal_green", "worker2_green"]
            ),
        ]
    );
    let plain = ConnectConfig::parse("connect.toml", BASE).unwrap();
    assert!(plain.swarm_groups(&plain.deploy_config().topology).is_empty());
}

#[test]
fn a_swarm_config_that_cannot_work_names_the_key_and_the_fix() {
    // Each broken file, where its error must point, and words of the message.
    let with_hosts = format!("{SWARM}[[app_hosts]]\nname = \"web1\"\nhost = \"web1.internal\"\n");
    let with_network = SWARM.replace("[app]", "[docker]\nnetwork = \"connect_default\"\n[app]");
    let twice = SWARM.replace(
        "host = \"worker2.internal\"\nport = 2222",
        "host = \"worker1.internal\"",
    );
    let unknown = SWARM.replace("port = 2222", "prot = 2222");
    let same_name = SWARM.replace("name = \"worker2\"", "name = \"manager\"");
    let bad_name = SWARM.replace("name = \"worker2\"", "name = \"worker 2\"");
    let slot_taken = SWARM.replace(
        "[swarm]",
        "[slots.blue]\ncontainer = \"a\"\nserver = \"manager_blue\"\nport = 3000\n[swarm]",
    );
    let cases = [
        (
            with_hosts,
            "app_hosts.host: [[app_hosts]] and [swarm]",
            "keep [swarm]",
        ),
        (
            with_network,
            "connect.toml:6:1): docker.network",
            "remove network",
        ),
        (twice, "listed twice", "list each node"),
        (
            unknown,
            "connect.toml:13:1): unknown field `prot`",
            "connect-ops init",
        ),
        (same_name, "two nodes are named \"manager\"", "its own name"),
        (bad_name, "cannot name a HAProxy server", "letters, digits"),
        (slot_taken, "is a color's own server", "apart"),
    ];
    for (file, message, fix) in cases {
        let err = ConnectConfig::parse("connect.toml", &file).unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
        assert!(
            err.hint().unwrap_or_default().contains(fix),
            "{err}: {:?}",
            err.hint()
        );
    }
}
