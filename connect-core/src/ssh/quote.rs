//! Quoting an argv for the remote shell: sshd hands the command line to the user's login shell, so every
//! argument is single-quoted and arrives exactly as given, whatever it contains, and the line starts with
//! `exec`, so the first word is always the program to run, as `execvp` would take it on `LocalHost`: never
//! a variable assignment (`A=1`), a reserved word (`if`), a builtin or a function of the user's shell
//! startup files.

use crate::error::Result;
use crate::host::Command;

/// Characters that mean nothing to a POSIX shell; an argument made only of them needs no quotes. Not `=`:
/// zsh expands a word starting with it (`=ls` is the path of `ls`).
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-./:,+@%".contains(c)
}

/// Quotes one argument for a POSIX shell (sh, dash, bash, zsh).
pub(crate) fn quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(is_plain) {
        return arg.to_string();
    }
    // Inside single quotes nothing is special except the closing quote, which is written as '\''.
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// What `SshHost` sends for a [`Command`]: a POSIX `sh` that prints its process group id on stderr (see
/// [`super::process`]) and then `exec`s the program, which keeps that id.
pub(crate) fn program_line(command: &Command) -> Result<String> {
    command.validate()?;
    Ok(sh_line(r#"exec "$@""#, command.argv.iter().map(String::as_str)))
}

/// What `SshHost` sends to run one of its own POSIX `script`s with `args` as `$1`, `$2`…: the script is
/// ours, the arguments are data and never parsed as code. It prints its process group id first, too.
pub(crate) fn script_line(script: &str, args: &[&str]) -> Result<String> {
    Command::new(["sh"].into_iter().chain(args.iter().copied())).validate()?;
    Ok(sh_line(script, args.iter().copied()))
}

fn sh_line<'a>(body: &str, args: impl Iterator<Item = &'a str>) -> String {
    // sshd makes the session a process group of its own and the login shell its leader; `exec` keeps
    // the pid, so `$$` is the group every process of the command is in.
    let script = format!("printf '{}%s\\n' \"$$\" >&2\n{body}", super::process::PGID_MARK);
    let mut line = format!("exec sh -c {} sh", quote(&script));
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The plain `exec` line, without `program_line`'s process-group preamble: what the quoting is tested
    /// through. Refuses what no program can receive (NUL).
    fn command_line(command: &Command) -> Result<String> {
        command.validate()?;
        let mut line = String::from("exec");
        for arg in &command.argv {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        Ok(line)
    }

    #[test]
    fn plain_words_stay_bare_and_the_rest_is_quoted() {
        assert_eq!(quote("docker"), "docker");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn the_first_word_is_always_the_program() {
        let line = command_line(&Command::new(["A=1", "if", "=ls"])).unwrap();
        assert_eq!(line, "exec 'A=1' if '=ls'");
    }

    #[test]
    fn nul_is_refused() {
        let e = command_line(&Command::new(["echo", "a\0b"])).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
    }

    /// Runs the quoted line through the local `sh` and reads back the arguments `printf` received.
    fn through_sh(args: &[String]) -> Vec<String> {
        let mut argv = vec!["printf".to_string(), "%s\\0".to_string()];
        argv.extend(args.iter().cloned());
        let line = command_line(&Command::new(argv)).expect("valid");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .expect("run sh");
        assert!(out.status.success(), "{line}: {out:?}");
        let text = String::from_utf8(out.stdout).expect("utf-8 back");
        let mut got: Vec<String> = text.split('\0').map(str::to_string).collect();
        got.pop();
        got
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn arbitrary_arguments_arrive_exactly(args in proptest::collection::vec(
            prop_oneof![
                "[^\\x00]{0,24}",
                Just("$(touch /tmp/pwned)".to_string()),
                Just("a'b\"c`d`\\e".to_string()),
                Just("*; ls\n#".to_string()),
                Just("ünïcødé ☃".to_string()),
            ],
            1..6,
        )) {
            prop_assert_eq!(through_sh(&args), args);
        }
    }
}
