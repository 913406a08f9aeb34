//! sshd's `Match` blocks. `sshd -T` prints the settings of no connection in particular, so a block that turns
//! password or root login back on for some users or addresses is not in its view. For each `Match` line of
//! the config (and of the files its `Include`s name), a connection that satisfies it is built and
//! `sshd -T -C user=…,host=…,addr=…` gives that connection's effective settings, judged like the global ones.
//! A weakness only a block has is reported against the block (its file and line); `--fix` leaves it alone,
//! since a global keyword does not override a `Match` block.

use std::collections::BTreeSet;

use super::sshd::{SSHD_TIMEOUT, judge, parse_effective};
use super::{AuditCheck, Finding, FindingStatus};
use crate::error::{Error, ErrorKind};
use crate::host::{Command, Host, HostExt};

/// A `Match` line: where it is and its criteria as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MatchBlock {
    /// The file.
    pub(crate) file: String,
    /// Its line, 1-based.
    pub(crate) line: usize,
    /// What follows `Match`.
    pub(crate) criteria: String,
}

/// The `Match` lines of a config file's text, and the `Include` patterns it names (in order).
pub(crate) fn parse_config(file: &str, text: &str) -> (Vec<MatchBlock>, Vec<String>) {
    let mut blocks = Vec::new();
    let mut includes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if keyword.eq_ignore_ascii_case("match") {
            blocks.push(MatchBlock {
                file: file.to_string(),
                line: i + 1,
                criteria: rest.trim().to_string(),
            });
        } else if keyword.eq_ignore_ascii_case("include") {
            includes.extend(rest.split_whitespace().map(str::to_string));
        }
    }
    (blocks, includes)
}

/// A connection spec (`sshd -T -C`) that satisfies `criteria`, or why none can be built here (a `Group`
/// needs a user in it; a list of negations alone names nothing).
pub(crate) fn connection_spec(criteria: &str) -> Result<String, String> {
    let (mut user, mut host, mut addr) = (
        "root".to_string(),
        "unknown.invalid".to_string(),
        // A remote client's address (TEST-NET-3, never contacted: `sshd -T -C` only evaluates it), so that a
        // block without an Address criterion is not judged with a loopback exemption some configs grant.
        "203.0.113.1".to_string(),
    );
    let mut extra = Vec::new();
    let mut words = criteria.split_whitespace();
    while let Some(keyword) = words.next() {
        let keyword = keyword.to_ascii_lowercase();
        if keyword == "all" {
            continue;
        }
        let Some(patterns) = words.next() else {
            return Err(format!("`{keyword}` has no pattern"));
        };
        let pattern = patterns
            .split(',')
            .find(|p| !p.starts_with('!'))
            .ok_or_else(|| format!("`{keyword} {patterns}` only excludes"))?;
        let concrete = pattern.replace(['*', '?'], "1");
        match keyword.as_str() {
            "user" => user = concrete,
            "host" => host = concrete,
            "address" => addr = address(&concrete),
            "localaddress" => extra.push(format!("laddr={}", address(&concrete))),
            "localport" => extra.push(format!("lport={concrete}")),
            "rdomain" => extra.push(format!("rdomain={concrete}")),
            "group" => return Err(format!("`Group {patterns}` needs a user in that group")),
            other => return Err(format!("`{other}` is not a criterion this audit can satisfy")),
        }
    }
    let mut spec = format!("user={user},host={host},addr={addr}");
    for e in extra {
        spec.push(',');
        spec.push_str(&e);
    }
    if spec.contains(char::is_whitespace) || spec.matches('=').count() != spec.split(',').count() {
        return Err(format!("a pattern in `{criteria}` holds a comma or a space"));
    }
    Ok(spec)
}

/// An address inside a pattern: a CIDR's network, a wildcard's octets filled in.
fn address(pattern: &str) -> String {
    let base = pattern.split('/').next().unwrap_or(pattern);
    if base.contains(':') {
        return base.to_string();
    }
    let mut octets: Vec<&str> = base.split('.').filter(|o| !o.is_empty()).collect();
    while octets.len() < 4 {
        octets.push("1");
    }
    octets.join(".")
}

/// Every `Match` block of `config` (sshd's default file when `None`) and of its includes, judged for a
/// connection that satisfies it. Only weaknesses the global settings (`global`, the checks already weak)
/// do not have are returned.
pub(crate) async fn audit_match_blocks(
    host: &dyn Host,
    program: &str,
    config: Option<&str>,
    global: &BTreeSet<AuditCheck>,
) -> Vec<Finding> {
    let main = config.unwrap_or("/etc/ssh/sshd_config");
    let mut findings = Vec::new();
    let mut blocks = Vec::new();
    let mut files = vec![main.to_string()];
    let mut seen = BTreeSet::new();
    while let Some(file) = files.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let text = match host.read_file(&file).await {
            Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Ok(None) => continue,
            Err(e) => {
                findings.push(Finding::not_checked(
                    AuditCheck::SshdPasswordAuthentication,
                    &file,
                    &e,
                ));
                continue;
            }
        };
        let (found, includes) = parse_config(&file, &text);
        blocks.extend(found);
        for pattern in includes {
            files.extend(expand_include(host, &pattern).await);
        }
    }
    for block in blocks {
        let subject = format!("{}:{} Match {}", block.file, block.line, block.criteria);
        let spec = match connection_spec(&block.criteria) {
            Ok(spec) => spec,
            Err(why) => {
                findings.push(Finding::note(
                    AuditCheck::SshdPasswordAuthentication,
                    &subject,
                    format!("this Match block is not judged: {why}"),
                    "check it by hand: `sshd -T -C user=…,host=…,addr=…` for a connection it matches",
                ));
                continue;
            }
        };
        let mut argv = vec![program.to_string(), "-T".into()];
        if let Some(path) = config {
            argv.extend(["-f".into(), path.to_string()]);
        }
        argv.extend(["-C".into(), spec.clone()]);
        let command = Command::new(argv).timeout(SSHD_TIMEOUT);
        let settings = match host.run(&command).await {
            Ok(out) if out.success() => parse_effective(&out.stdout_text()),
            Ok(out) => {
                let e = Error::new(
                    ErrorKind::Failed,
                    "audit.sshd_match",
                    &subject,
                    format!(
                        "`{command}` failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                );
                findings.push(Finding::not_checked(
                    AuditCheck::SshdPasswordAuthentication,
                    &subject,
                    &e,
                ));
                continue;
            }
            Err(e) => {
                findings.push(Finding::not_checked(
                    AuditCheck::SshdPasswordAuthentication,
                    &subject,
                    &e,
                ));
                continue;
            }
        };
        for mut f in judge(&settings, &subject) {
            if f.status != FindingStatus::Weak || global.contains(&f.check) {
                continue;
            }
            f.message = format!("for connections matching it ({spec}): {}", f.message);
            f.fix = format!("in this Match block: {}", f.fix);
            // A global keyword does not override a Match block: only an edit of the block fixes it.
            f.safe_fix = None;
            findings.push(f);
        }
    }
    findings
}

/// The files an `Include` pattern names: relative ones are under `/etc/ssh`, wherever the config is (as
/// sshd reads them); a `*` or `?` is allowed in the last component.
async fn expand_include(host: &dyn Host, pattern: &str) -> Vec<String> {
    let pattern = if pattern.starts_with('/') {
        pattern.to_string()
    } else {
        format!("/etc/ssh/{pattern}")
    };
    let Some((dir, name)) = pattern.rsplit_once('/') else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return vec![pattern.clone()];
    }
    let argv = [
        "find",
        dir,
        "-mindepth",
        "1",
        "-maxdepth",
        "1",
        "-name",
        name,
        "-printf",
        "%p\\0",
    ];
    match host.run(&Command::new(argv).timeout(SSHD_TIMEOUT)).await {
        Ok(out) if out.success() => {
            let mut files: Vec<String> = out
                .stdout
                .split(|b| *b == 0)
                .filter_map(|p| std::str::from_utf8(p).ok())
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            files.sort();
            files
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_lines_and_includes_are_found_with_their_lines() {
        let text = "Port 22\nInclude /etc/ssh/sshd_config.d/*.conf\n# Match User x\nMatch User deploy Address 127.0.0.0/8\n  PasswordAuthentication yes\nmatch all\n";
        let (blocks, includes) = parse_config("/etc/ssh/sshd_config", text);
        assert_eq!(includes, vec!["/etc/ssh/sshd_config.d/*.conf"]);
        assert_eq!(
            blocks
                .iter()
                .map(|b| (b.line, b.criteria.as_str()))
                .collect::<Vec<_>>(),
            vec![(4, "User deploy Address 127.0.0.0/8"), (6, "all")]
        );
    }

    #[test]
    fn a_connection_is_built_for_each_criterion() {
        assert_eq!(
            connection_spec("User deploy Address 127.0.0.0/8").unwrap(),
            "user=deploy,host=unknown.invalid,addr=127.0.0.0"
        );
        assert_eq!(
            connection_spec("Address 127.0.*,!127.0.0.1 LocalPort 2222").unwrap(),
            "user=root,host=unknown.invalid,addr=127.0.1.1,lport=2222"
        );
        assert_eq!(
            connection_spec("Host *.example.com User !root,ops*").unwrap(),
            "user=ops1,host=1.example.com,addr=203.0.113.1"
        );
        assert_eq!(
            connection_spec("All").unwrap(),
            "user=root,host=unknown.invalid,addr=203.0.113.1"
        );
        assert!(connection_spec("Group admins").unwrap_err().contains("Group"));
        assert!(
            connection_spec("User !root")
                .unwrap_err()
                .contains("only excludes")
        );
        assert!(connection_spec("User").is_err());
        assert!(connection_spec("User a=b").is_err());
    }
}
