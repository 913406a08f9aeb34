//! Connect Ops' HAProxy backend: the runbook's traffic switch through HAProxy's runtime API instead of `sed`
//! on `haproxy.cfg` and a reload.
//!
//! - [`RuntimeApi`]: typed commands over a unix socket, a TCP socket or any byte stream (such as
//!   [`connect_core::Host::connect`] over SSH); HAProxy's error replies become typed errors in its words.
//! - [`stat`]: panic-free parsers of `show stat`, `show servers state` and `show proc`.
//! - [`Haproxy`]: one backend; ready/drain/maint, weights, addresses, health checks, dynamic servers, waits
//!   with deadlines, the blue-green switch in three round trips confirmed from `show stat` (its override of
//!   [`TrafficRouter::switch`](connect_core::TrafficRouter::switch)), the server-state-file
//!   saved after every change, and [`Haproxy::reload`] through the master CLI confirmed from `show proc`.
//!   It implements [`connect_core::TrafficRouter`].
//! - [`config`]: the runbook's topology rendered from settings, installed only after `haproxy -c` accepts it;
//!   the admin socket's mode, owner and group ([`SocketAccess`]) let a non-root deploy user in through a group.
//!
//! ```no_run
//! use std::time::Duration;
//! use connect_core::TrafficRouter;
//! use connect_haproxy::{Haproxy, RuntimeApi, StateFile};
//!
//! # async fn run() -> connect_core::Result<()> {
//! let haproxy = Haproxy::new(RuntimeApi::unix("/run/haproxy/admin.sock"), "be_app")?
//!     .with_state_file(StateFile::Local("/var/lib/haproxy/server-state".into()))
//!     .with_master(RuntimeApi::unix("/run/haproxy/master.sock"));
//! let report = haproxy.switch(Some("app1"), "app2", Duration::from_secs(30)).await?; // green takes the traffic
//! println!("switched in {:?}, draining {:?}", report.took, report.drained);
//! haproxy.reload(Duration::from_secs(10)).await?; // the switch survives the reload
//! # Ok(())
//! # }
//! ```

mod access;
mod client;
mod command;
pub mod config;
mod files;
mod haproxy;
mod reload;
pub mod stat;
mod switch;
#[cfg(feature = "testing")]
pub mod testing;

pub use client::{RuntimeApi, Socket};
pub use command::{Command, Weight};
pub use config::{ConfigInstaller, MaintenancePage, ProxyConfig, ServerSpec, SocketAccess};
pub use files::{MapFile, StateFile, map_file_text};
pub use haproxy::{Haproxy, MAINTENANCE_KEY};
pub use reload::ReloadReport;
