//! The `connect-ops` subcommands that live outside the binary's file (feature `ops`), each a module with its
//! clap arguments and its `run`, so the command's file stays a list of subcommands.

pub mod ship;
