//! HAProxy through its runtime API (`connect_haproxy::Haproxy`): the real `TrafficRouter`, plus the switch,
//! waits and reload a script drives directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use connect_core::host::{Endpoint, Host};
use connect_core::router::{AdminState, SwitchReport, TrafficRouter};
use connect_haproxy::{RuntimeApi, Socket, StateFile};
use pyo3::prelude::*;
use serde_json::json;

use crate::bridge::{awaitable, block};
use crate::convert::{seconds, typed, typed_list, whole};
use crate::errors::{invalid, py as core_py};
use crate::hosts::server_host;

fn admin_state(state: &str) -> PyResult<AdminState> {
    match state {
        "ready" => Ok(AdminState::Ready),
        "drain" => Ok(AdminState::Drain),
        "maint" => Ok(AdminState::Maint),
        other => Err(invalid(
            "router.set_state",
            other,
            "unknown server state; expected \"ready\", \"drain\" or \"maint\"",
            "ready takes traffic, drain finishes what it has, maint is out of service",
        )),
    }
}

/// A switch's report as `connect_ops._types.SwitchReport.from_dict` reads it.
fn switch_report(r: &SwitchReport) -> serde_json::Value {
    json!({
        "live": r.live,
        "drained": r.drained,
        "took_seconds": r.took.as_secs_f64(),
        "servers": r.servers,
    })
}

/// Where a socket is: a unix path or `ip:port`, on this machine or on `host`.
fn socket_at(
    host: Option<Arc<dyn Host>>,
    path: Option<String>,
    address: Option<String>,
    role: &str,
) -> PyResult<Socket> {
    match (host, path, address) {
        (None, Some(p), None) => Ok(Socket::Unix(PathBuf::from(p))),
        (None, None, Some(a)) => {
            let addr = SocketAddr::from_str(&a).map_err(|_| {
                invalid(
                    "haproxy.new",
                    &a,
                    format!("{role} address is not ip:port"),
                    "e.g. 127.0.0.1:9999",
                )
            })?;
            Ok(Socket::Tcp(addr))
        }
        (Some(h), Some(p), None) => Ok(Socket::Host(h, Endpoint::Unix(p))),
        (Some(h), None, Some(a)) => {
            let (ip, port) = a.rsplit_once(':').ok_or_else(|| {
                invalid(
                    "haproxy.new",
                    &a,
                    format!("{role} address is not host:port"),
                    "e.g. 127.0.0.1:9999",
                )
            })?;
            let port = u16::from_str(port).map_err(|_| {
                invalid(
                    "haproxy.new",
                    &a,
                    format!("{role} port is not a number"),
                    "e.g. 127.0.0.1:9999",
                )
            })?;
            Ok(Socket::Host(
                h,
                Endpoint::Tcp {
                    host: ip.trim_matches(['[', ']']).to_string(),
                    port,
                },
            ))
        }
        (_, Some(_), Some(_)) => Err(invalid(
            "haproxy.new",
            role,
            format!("both a {role} socket path and a {role} address"),
            "give one: socket=\"/run/haproxy/admin.sock\" or address=\"127.0.0.1:9999\"",
        )),
        (_, None, None) => Err(invalid(
            "haproxy.new",
            role,
            format!("no {role} socket"),
            "give socket=\"/run/haproxy/admin.sock\" (stats socket ... level admin) or address=\"ip:port\"",
        )),
    }
}

/// One backend of a running HAProxy (`be_app`), driven through the runtime API (the admin `stats socket`).
#[pyclass(frozen, module = "connect_ops")]
#[derive(Debug, Clone)]
pub struct Haproxy {
    pub(crate) inner: connect_haproxy::Haproxy,
}

impl Haproxy {
    fn call<T: Send, F>(&self, py: Python<'_>, f: impl FnOnce(connect_haproxy::Haproxy) -> F) -> PyResult<T>
    where
        F: std::future::Future<Output = connect_core::Result<T>> + Send,
    {
        let fut = f(self.inner.clone());
        block(py, async move { core_py(fut.await) })
    }
}

#[pymethods]
impl Haproxy {
    /// The backend `backend` behind the admin socket: a unix `socket` path or a TCP `address` (`ip:port`), on
    /// this machine, or on `host` (an `SshHost` or `LocalHost`) when given. `state_file` (the config's
    /// `server-state-file`) is rewritten after every change so a reload keeps it; `master_socket` (`haproxy
    /// -W -S <path>`) enables `reload()`; both are on `host` when given. Nothing is contacted until a call.
    #[new]
    #[pyo3(signature = (
        backend="be_app", *, socket=None, address=None, host=None, timeout=5.0, state_file=None,
        master_socket=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        backend: &str,
        socket: Option<String>,
        address: Option<String>,
        host: Option<&Bound<'_, PyAny>>,
        timeout: f64,
        state_file: Option<String>,
        master_socket: Option<String>,
    ) -> PyResult<Haproxy> {
        let host = server_host(host)?;
        let timeout = seconds("timeout", timeout)?;
        let api = RuntimeApi::new(socket_at(host.clone(), socket, address, "admin")?).with_timeout(timeout);
        let mut inner = core_py(connect_haproxy::Haproxy::new(api, backend))?;
        if let Some(path) = state_file {
            inner = inner.with_state_file(match &host {
                Some(h) => StateFile::Host(h.clone(), path),
                None => StateFile::Local(PathBuf::from(path)),
            });
        }
        if let Some(path) = master_socket {
            let master = socket_at(host, Some(path), None, "master")?;
            inner = inner.with_master(RuntimeApi::new(master).with_timeout(timeout));
        }
        Ok(Haproxy { inner })
    }

    /// The backend's name.
    #[getter]
    fn backend(&self) -> String {
        self.inner.backend().to_string()
    }

    /// Every server of the backend (`show stat`), as `ServerStatus`.
    fn servers(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        let servers = self.call(py, |h| async move { h.servers().await })?;
        typed_list(py, "ServerStatus", &servers)
    }

    /// One server; `NotFoundError` when the backend has none of that name.
    fn server(&self, py: Python<'_>, name: String) -> PyResult<Py<PyAny>> {
        let s = self.call(py, |h| async move { h.server(&name).await })?;
        typed(py, "ServerStatus", &s)
    }

    /// `set server <backend>/<server> state ready|drain|maint`.
    fn set_state(&self, py: Python<'_>, server: String, state: &str) -> PyResult<()> {
        let state = admin_state(state)?;
        self.call(py, |h| async move { h.set_state(&server, state).await })
    }

    /// `set server <backend>/<server> weight N` (0 to 256; 0 takes no new traffic).
    fn set_weight(&self, py: Python<'_>, server: String, weight: i64) -> PyResult<()> {
        let weight: u32 = whole("weight", weight, "a weight from 0 to 256")?;
        self.call(py, |h| async move { h.set_weight(&server, weight).await })
    }

    /// `set server <backend>/<server> addr IP port P`.
    fn set_address(&self, py: Python<'_>, server: String, address: String, port: i64) -> PyResult<()> {
        let port: u16 = whole("port", port, "a port from 1 to 65535")?;
        self.call(
            py,
            |h| async move { h.set_address(&server, &address, port).await },
        )
    }

    /// Waits until the server takes traffic (ready, weight > 0, checks passing); `TimeoutError` after `deadline`
    /// seconds.
    #[pyo3(signature = (server, deadline=10.0))]
    fn wait_live(&self, py: Python<'_>, server: String, deadline: f64) -> PyResult<Py<PyAny>> {
        let deadline = seconds("deadline", deadline)?;
        let s = self.call(py, |h| async move { h.wait_live(&server, deadline).await })?;
        typed(py, "ServerStatus", &s)
    }

    /// Waits until the server has no session in flight.
    #[pyo3(signature = (server, deadline=30.0))]
    fn wait_drained(&self, py: Python<'_>, server: String, deadline: f64) -> PyResult<Py<PyAny>> {
        let deadline = seconds("deadline", deadline)?;
        let s = self.call(py, |h| async move { h.wait_drained(&server, deadline).await })?;
        typed(py, "ServerStatus", &s)
    }

    /// The blue-green switch (HAProxy's, in three round trips): `to` is made ready and seen live, then `from_`
    /// drained; `DriftError` unless `to` is then the only live server (or, before anything changes, when a
    /// server other than these two takes traffic). If `to` does not become live in time its previous state
    /// is restored. Instant rollback is the same call the other way. Returns a `SwitchReport`.
    #[pyo3(signature = (from_, to, deadline=10.0))]
    fn switch(
        &self,
        py: Python<'_>,
        from_: Option<String>,
        to: String,
        deadline: f64,
    ) -> PyResult<Py<PyAny>> {
        let deadline = seconds("deadline", deadline)?;
        let r = self.call(
            py,
            |h| async move { h.switch(from_.as_deref(), &to, deadline).await },
        )?;
        typed(py, "SwitchReport", &switch_report(&r))
    }

    /// Writes `show servers state` to the state file (done after every change already).
    fn save_state(&self, py: Python<'_>) -> PyResult<()> {
        self.call(py, |h| async move { h.save_state().await })
    }

    /// Reloads HAProxy through the master CLI (needs `master_socket`), keeping the runtime state; confirmed
    /// from `show proc`. Returns a `ReloadReport`.
    #[pyo3(signature = (deadline=10.0))]
    fn reload(&self, py: Python<'_>, deadline: f64) -> PyResult<Py<PyAny>> {
        let deadline = seconds("deadline", deadline)?;
        let r = self.call(py, |h| async move { h.reload(deadline).await })?;
        let report = json!({
            "old_workers": r.old_workers,
            "new_workers": r.new_workers,
            "took_seconds": r.took.as_secs_f64(),
        });
        typed(py, "ReloadReport", &report)
    }

    /// `servers()` for asyncio.
    fn servers_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let h = self.inner.clone();
        awaitable(py, async move {
            let servers = core_py(h.servers().await)?;
            Python::attach(|py| typed_list(py, "ServerStatus", &servers))
        })
    }

    /// `set_state()` for asyncio.
    fn set_state_async<'py>(
        &self,
        py: Python<'py>,
        server: String,
        state: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let state = admin_state(state)?;
        let h = self.inner.clone();
        awaitable(py, async move { core_py(h.set_state(&server, state).await) })
    }

    /// `switch()` for asyncio.
    #[pyo3(signature = (from_, to, deadline=10.0))]
    fn switch_async<'py>(
        &self,
        py: Python<'py>,
        from_: Option<String>,
        to: String,
        deadline: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let deadline = seconds("deadline", deadline)?;
        let h = self.inner.clone();
        awaitable(py, async move {
            let r = core_py(h.switch(from_.as_deref(), &to, deadline).await)?;
            Python::attach(|py| typed(py, "SwitchReport", &switch_report(&r)))
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "Haproxy({:?}, socket={:?})",
            self.inner.backend(),
            self.inner.api().socket().to_string()
        )
    }
}
