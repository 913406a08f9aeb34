//! `connect-ops`: deploy, roll back and look at a server from one config file (`connect.toml`).
//!
//! ```text
//! connect-ops init                 # writes a commented connect.toml
//! connect-ops config check         # reads it, touches nothing
//! connect-ops check                # preflight
//! connect-ops deploy v2            # blue-green deploy of <image>:v2 (shipped first when [release] says how)
//! connect-ops ship v2 [--context DIR | --image REF]   # build and send only the missing layers
//! connect-ops rollback [--to v1]   # instant rollback, or a full one
//! connect-ops status | history | verify | lock status | lock break
//! ```
//!
//! Human output: progress on stderr, the result on stdout. `--json`: events and the result (or the error) as
//! JSON lines on stdout. Exit codes are listed in `--help`. The command itself is
//! `connect_examples::ops`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    connect_examples::ops::main().await
}
