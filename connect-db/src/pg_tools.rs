//! Running programs on the host for backups and restores: PostgreSQL's client programs with the password
//! kept out of argv and out of files, files created private, every run bounded by a deadline.

use std::time::Duration;

use connect_core::host::{Command, Host, Output};
use connect_core::{Error, ErrorKind, Result};

use crate::postgres::PgTarget;

/// The POSIX `sh` script every backup program runs under (its arguments are the program and its
/// arguments). `umask 077`: whatever the server's umask, what the program creates (a dump, a listing, a
/// directory) is readable by its owner only. The password, when there is one, arrives on stdin and goes into
/// `PGPASSWORD` of the program alone: never in an argument list that `ps` shows to every user, never in a
/// file that a crash could leave behind (`/proc/<pid>/environ` is readable by the same user and root only,
/// who can read the credentials anyway). 125 and 127 are `sh`'s own failures, told apart from the program's.
const WRAPPER: &str =
    "umask 077 || exit 125; if IFS= read -r PGPASSWORD; then export PGPASSWORD; fi; exec \"$@\"";

/// `$0` of the wrapper, which `sh` names in its own messages.
const WRAPPER_NAME: &str = "connect-ops";

/// `argv` wrapped in [`WRAPPER`], with `password` (one line) on stdin.
pub(crate) fn private_command(argv: Vec<String>, password: Option<&str>) -> Command {
    let mut full = vec!["sh".to_string(), "-c".into(), WRAPPER.into(), WRAPPER_NAME.into()];
    full.extend(argv);
    Command::new(full).stdin(password.map(|p| format!("{p}\n")).unwrap_or_default())
}

/// Runs `command` on the host, giving up after `deadline`: the future is dropped, which ends the program
/// (`LocalHost` kills it; a remote one is the `Host`'s to end). [`ErrorKind::Timeout`] then.
pub(crate) async fn run_bounded(
    host: &dyn Host,
    command: &Command,
    op: &str,
    target: &str,
    deadline: Duration,
) -> Result<Output> {
    // The host stops the program at its own deadline (the host's default would cut a long dump short); the
    // outer bound, a little later, is for a host that does not.
    let command = command.clone().timeout(deadline);
    match tokio::time::timeout(deadline + Duration::from_secs(5), host.run(&command)).await {
        Ok(r) => r,
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            op,
            target,
            format!("{} did not finish within {deadline:?}", program_name(&command)),
        )
        .with_hint("the program was stopped; raise the deadline if the database is that large, or find what blocks it")),
    }
}

/// Runs a PostgreSQL client program (`argv[0]`) for `target` through [`WRAPPER`] within `deadline`. The
/// caller passes the connection as `-d <target.conninfo(db)>`, so no name can be read as a connection
/// string. A program the host does not have is [`ErrorKind::NotFound`].
pub(crate) async fn run_pg_tool(
    host: &dyn Host,
    target: &PgTarget,
    op: &str,
    argv: Vec<String>,
    deadline: Duration,
) -> Result<Output> {
    target.validate(op)?;
    let command = private_command(argv, target.password.as_deref());
    let out = run_bounded(host, &command, op, &target.to_string(), deadline).await?;
    check_wrapper(op, &command, &out)?;
    Ok(out)
}

/// Turns `sh`'s own exits (no such program, no umask) into errors of their own.
pub(crate) fn check_wrapper(op: &str, command: &Command, out: &Output) -> Result<()> {
    let program = program_name(command);
    match out.status {
        Some(127) | Some(126) => Err(Error::new(
            ErrorKind::NotFound,
            op,
            program,
            format!(
                "the host cannot run {program}: {}",
                crate::util::stderr_tail(out, 2)
            ),
        )
        .with_hint("install PostgreSQL's client programs on the host, or set bin_dir")),
        Some(125) => Err(Error::new(
            ErrorKind::Failed,
            op,
            program,
            "sh could not set umask 077",
        )),
        _ => Ok(()),
    }
}

/// libpq's words for a TLS failure (it reports no SQLSTATE for them), as a kind and the setting to fix.
pub(crate) fn tls_failure(stderr: &str) -> Option<(ErrorKind, &'static str)> {
    let hint = if stderr.contains("does not support SSL") {
        "the server does not accept TLS: turn ssl on in PostgreSQL, or set sslmode to prefer or disable"
    } else if stderr.contains("does not match host name") {
        "the server's certificate does not name this host: connect by a name it lists, or use sslmode verify-ca"
    } else if stderr.contains("root certificate file") {
        "the root CA file is missing on the host: set host_ssl_root_cert (server_ssl_root_cert in connect.toml) to its path there"
    } else if stderr.contains("certificate verify failed") {
        "the server's certificate is not signed by the CA in the root CA file: set ssl_root_cert / host_ssl_root_cert to the CA that signed it"
    } else if stderr.contains("SSL") {
        "a TLS failure: check sslmode, the root CA file and PostgreSQL's ssl settings"
    } else {
        return None;
    };
    Some((ErrorKind::Refused, hint))
}

/// The program a (wrapped) command runs, for messages.
fn program_name(command: &Command) -> &str {
    let argv = &command.argv;
    let i = if argv.first().map(String::as_str) == Some("sh")
        && argv.get(3).map(String::as_str) == Some(WRAPPER_NAME)
    {
        4
    } else {
        0
    };
    argv.get(i).map_or("", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_travels_on_stdin_only() {
        let c = private_command(
            vec!["pg_dump".into(), "-d".into(), "dbname='x'".into()],
            Some("s3cret"),
        );
        assert!(c.argv.iter().all(|a| !a.contains("s3cret")), "{:?}", c.argv);
        assert_eq!(c.stdin.as_deref(), Some(&b"s3cret\n"[..]));
        assert_eq!(program_name(&c), "pg_dump");
        assert_eq!(
            private_command(vec!["ls".into()], None).stdin.as_deref(),
            Some(&b""[..])
        );
    }
}
