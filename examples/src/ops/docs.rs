//! `completions <shell>` and `man`: generated from the same clap definitions as the parser, so they never
//! disagree with it.

use std::path::PathBuf;

use clap::{Args, CommandFactory};
use clap_complete::Shell;
use connect_core::{Error, ErrorKind, Result};

use super::{Cli, Context};

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

impl CompletionsArgs {
    /// Prints the completion script on stdout (`connect-ops completions bash > /etc/bash_completion.d/…`).
    pub fn run(&self) -> Result<()> {
        let mut command = Cli::command();
        // Rendered into memory first: clap_complete panics when its writer fails (a closed pipe).
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut command, "connect-ops", &mut script);
        write_stdout(&script)
    }
}

/// `man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `connect-ops.1` and a page per subcommand (`connect-ops-deploy.1`, …) into this directory
    /// instead of printing `connect-ops.1` on stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl ManArgs {
    /// Renders the man page(s).
    pub fn run(&self, cx: &Context) -> Result<()> {
        let command = Cli::command();
        let Some(dir) = &self.dir else {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(|e| failed("man", "stdout", e))?;
            return write_stdout(&page);
        };
        std::fs::create_dir_all(dir).map_err(|e| failed("man", &dir.display().to_string(), e))?;
        clap_mangen::generate_to(command, dir).map_err(|e| failed("man", &dir.display().to_string(), e))?;
        let mut written: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| failed("man", &dir.display().to_string(), e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("connect-ops") && n.ends_with(".1"))
            .collect();
        written.sort();
        cx.out.result(
            &serde_json::json!({"dir": dir, "pages": written}),
            &format!("wrote {} man pages into {}", written.len(), dir.display()),
        );
        Ok(())
    }
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(failed("write", "stdout", e)),
        _ => Ok(()),
    }
}

fn failed(operation: &str, target: &str, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Failed, operation, target, e.to_string())
        .with_hint("check the directory exists and is writable")
        .with_source(e)
}
