//! Runnable pieces that compose the Connect Ops SDK, and the parts of the end-to-end run that are not SDK:
//!
//! - [`demo_app`]: the stand-in for the Connect web app, shipped as a `FROM scratch` image by the end-to-end
//!   harness (binary `connect-demo-app`): health, version, a main route with one PostgreSQL query and one
//!   Redis call, switches to make it slow, unhealthy or erroring, and a Prisma-style `migrate` command.
//! - [`load`]: a keep-alive HTTP/1.1 load generator that reports requests, failures (with reasons) and
//!   p50/p99 latency per phase of a deploy.
//! - `config` (feature `ops`): `connect.toml` and the one composition of a server's backends from it, used by
//!   the `connect-ops` command.
//! - `ops` (feature `ops`): the `connect-ops` command itself (clap definitions, subcommands, output), so
//!   the binary is one line and completions and the man page come from the same definitions.
//! - `testing` (feature `testing`): the demo app, PostgreSQL and Redis started on 127.0.0.1 for tests.
//! - `stack` (feature `testing`): the whole production setup on 127.0.0.1 (sshd, Docker through it, HAProxy,
//!   etcd + Patroni + PostgreSQL, Redis) and the runbook run end to end on it.
//!
//! ```no_run
//! # async fn run() -> connect_core::Result<()> {
//! use connect_examples::load::{Load, LoadConfig};
//! let load = Load::start(LoadConfig::new("127.0.0.1:8080".parse().unwrap()))?;
//! load.phase("switch");
//! let report = load.stop().await;
//! println!("{report}");
//! # Ok(()) }
//! ```

#[cfg(feature = "ops")]
pub mod config;
pub mod demo_app;
pub mod demo_image;
pub mod http;
pub mod load;
#[cfg(feature = "ops")]
pub mod ops;
#[cfg(feature = "testing")]
pub mod prometheus;
#[cfg(feature = "ops")]
pub mod recover;
#[cfg(feature = "testing")]
pub mod stack;
#[cfg(feature = "testing")]
pub mod testing;
