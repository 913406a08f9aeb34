//! The audit's firewall and listening-socket checks against the real `nft` and `ss`, inside a network
//! namespace each test creates (its own loopback, its own ruleset; the machine's are never touched): no
//! firewall and a socket on every address is found, a default-deny ruleset turns the socket into a low
//! finding and flags the port it lets in that is not public, and a hardened namespace yields neither.

use std::process::{Child, Stdio};

use async_trait::async_trait;
use connect_core::audit::{AuditCheck, AuditReport, HostAuditConfig, Severity, audit};
use connect_core::host::{BoxReader, BoxStream, Command, DiskUsage, Endpoint, Output, PutOptions};
use connect_core::testing::{real_tests_required, require_program};
use connect_core::{Host, LocalHost, Result};

/// A network namespace of the test's own, removed on drop.
struct Netns {
    name: String,
    listeners: Vec<Child>,
}

impl Netns {
    fn create(test: &str) -> Option<Netns> {
        require_program(test, "ip", &["/usr/sbin/ip"])?;
        require_program(test, "nft", &["/usr/sbin/nft"])?;
        require_program(test, "ss", &[])?;
        require_program(test, "python3", &["/usr/bin/python3"])?;
        if !nix::unistd::geteuid().is_root() {
            assert!(
                !real_tests_required(),
                "{test}: CONNECT_REAL_TESTS=1 needs root (ip netns)"
            );
            eprintln!("SKIP (real test) {test}: a network namespace needs root");
            return None;
        }
        let name = format!("connect-audit-{}-{test}", std::process::id());
        let ns = Netns {
            name,
            listeners: Vec::new(),
        };
        ns.sh(&["ip", "netns", "add", &ns.name]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        Some(ns)
    }

    fn sh(&self, argv: &[&str]) {
        let out = std::process::Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn exec(&self, argv: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend(argv);
        self.sh(&full);
    }

    /// A program listening on `address:port` inside the namespace until the namespace is dropped; returns
    /// once it listens.
    fn listen(&mut self, address: &str, port: u16) {
        let python = if std::path::Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let script = format!(
            "import socket,sys\ns=socket.socket()\ns.bind(('{address}',{port}))\ns.listen()\nprint('up',flush=True)\nsys.stdin.read()"
        );
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &self.name, python, "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn listener");
        // It prints once bound: the line is the event to wait on.
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listener output");
        assert_eq!(line.trim(), "up");
        self.listeners.push(child);
    }

    fn ruleset(&self, rules: &str) {
        let path = std::env::temp_dir().join(format!("{}.nft", self.name));
        std::fs::write(&path, format!("flush ruleset\n{rules}")).expect("write rules");
        self.exec(&["nft", "-f", &path.display().to_string()]);
        let _ = std::fs::remove_file(path);
    }

    fn host(&self) -> NetnsHost {
        NetnsHost {
            name: self.name.clone(),
            local: LocalHost::new(),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for mut c in self.listeners.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `LocalHost` whose programs run inside the namespace.
#[derive(Debug)]
struct NetnsHost {
    name: String,
    local: LocalHost,
}

#[async_trait]
impl Host for NetnsHost {
    fn name(&self) -> &str {
        &self.name
    }
    async fn run(&self, command: &Command) -> Result<Output> {
        let mut inside = command.clone();
        inside.argv = ["ip", "netns", "exec", self.name.as_str()]
            .into_iter()
            .map(str::to_string)
            .chain(command.argv.iter().cloned())
            .collect();
        self.local.run(&inside).await
    }
    async fn put_file(&self, path: &str, data: BoxReader, options: PutOptions) -> Result<u64> {
        self.local.put_file(path, data, options).await
    }
    async fn get_file(&self, path: &str) -> Result<BoxReader> {
        self.local.get_file(path).await
    }
    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.local.rename(from, to).await
    }
    async fn remove_file(&self, path: &str) -> Result<()> {
        self.local.remove_file(path).await
    }
    async fn disk_usage(&self, path: &str) -> Result<DiskUsage> {
        self.local.disk_usage(path).await
    }
    async fn connect(&self, endpoint: &Endpoint) -> Result<BoxStream> {
        self.local.connect(endpoint).await
    }
}

async fn network_findings(ns: &Netns) -> AuditReport {
    // sshd's checks run too (the machine's config): only the network checks are looked at here.
    let report = audit(&ns.host(), &HostAuditConfig::default(), &[]).await;
    AuditReport::new(
        report
            .findings
            .into_iter()
            .filter(|f| matches!(f.check, AuditCheck::Firewall | AuditCheck::ListeningSockets))
            .collect(),
    )
}

const DEFAULT_DENY: &str = "table inet filter {\n  chain input {\n    type filter hook input priority 0; policy drop;\n    \
                            iifname \"lo\" accept\n    ct state established,related accept\n    \
                            tcp dport { 22, 80, 443 } accept\n    %EXTRA%\n  }\n}\n";

/// A namespace of the test's own with a socket on `address:7001` and, when given, `ruleset` loaded: its
/// network findings; `None` where the test is skipped.
async fn audited(test: &str, address: &str, ruleset: Option<&str>) -> Option<AuditReport> {
    let mut ns = Netns::create(test)?;
    ns.listen(address, 7001);
    if let Some(ruleset) = ruleset {
        ns.ruleset(ruleset);
    }
    Some(network_findings(&ns).await)
}

/// What a report found, in its order: (check, severity, subject).
fn found(report: &AuditReport) -> Vec<(AuditCheck, Severity, &str)> {
    report
        .findings
        .iter()
        .map(|f| (f.check, f.severity, f.subject.as_str()))
        .collect()
}

#[tokio::test]
async fn no_firewall_and_a_socket_on_every_address_are_found() {
    let Some(report) = audited("fw-open", "0.0.0.0", None).await else {
        return;
    };
    assert_eq!(
        found(&report),
        [
            (AuditCheck::Firewall, Severity::High, "incoming"),
            (AuditCheck::ListeningSockets, Severity::High, "0.0.0.0:7001")
        ],
        "{}",
        report.text()
    );
}

#[tokio::test]
async fn a_default_deny_ruleset_keeps_the_socket_in_and_flags_a_port_it_lets_in() {
    let ruleset = DEFAULT_DENY.replace("%EXTRA%", "tcp dport 5432 accept");
    let Some(report) = audited("fw-deny", "0.0.0.0", Some(&ruleset)).await else {
        return;
    };
    assert_eq!(
        found(&report),
        [
            (AuditCheck::Firewall, Severity::Medium, "nftables tcp/5432"),
            (AuditCheck::ListeningSockets, Severity::Low, "0.0.0.0:7001")
        ],
        "{}",
        report.text()
    );
}

#[tokio::test]
async fn a_hardened_namespace_yields_no_network_finding() {
    let ruleset = DEFAULT_DENY.replace("%EXTRA%", "");
    let Some(report) = audited("fw-hard", "127.0.0.1", Some(&ruleset)).await else {
        return;
    };
    assert_eq!(report.findings, vec![], "{}", report.text());
}
