//! The real servers: this machine (`LocalHost`) and a server over SSH (`SshHost`), with the `Host` operations
//! a script needs (run a program, read and write files) besides being a `Backends` host.

use std::path::PathBuf;
use std::sync::Arc;

use connect_core::host::{Command, Host, HostExt, PutOptions};
use connect_core::local;
use connect_core::ssh::{self, SshConfig};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::bridge::block;
use crate::convert::{seconds, type_name, whole};
use crate::errors::{invalid, py as core_py};

/// What a program printed and how it exited.
#[pyclass(frozen, module = "connect_ops")]
#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// The exit status; `None` when a signal killed the program.
    #[pyo3(get)]
    status: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

#[pymethods]
impl CommandOutput {
    /// What the program wrote to its standard output.
    #[getter]
    fn stdout<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.stdout)
    }

    /// What the program wrote to its standard error.
    #[getter]
    fn stderr<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.stderr)
    }

    /// Whether it exited 0.
    #[getter]
    fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// Standard output as text (invalid UTF-8 replaced).
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn __repr__(&self) -> String {
        let status = self.status.map_or_else(|| "None".to_string(), |s| s.to_string());
        format!(
            "CommandOutput(status={status}, stdout={} bytes, stderr={} bytes)",
            self.stdout.len(),
            self.stderr.len()
        )
    }
}

/// How full a file system is.
#[pyclass(frozen, get_all, module = "connect_ops")]
#[derive(Debug, Clone)]
pub struct DiskUsage {
    /// Its size.
    total_bytes: u64,
    /// What an unprivileged user may still write.
    available_bytes: u64,
    /// Its inodes.
    total_inodes: u64,
    /// The inodes left.
    free_inodes: u64,
    /// Used space in percent, as `df` rounds it.
    used_percent: u8,
}

#[pymethods]
impl DiskUsage {
    fn __repr__(&self) -> String {
        format!(
            "DiskUsage(used_percent={}, available_bytes={})",
            self.used_percent, self.available_bytes
        )
    }
}

fn argv_arg(argv: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if argv.is_instance_of::<pyo3::types::PyString>() {
        return Err(PyTypeError::new_err(
            "argv is a list of str (the program and its arguments, never a shell line), e.g. ['df', '-h'], not a str",
        ));
    }
    argv.extract::<Vec<String>>()
        .map_err(|_| PyTypeError::new_err("argv must be a list of str, e.g. ['df', '-h']"))
}

/// The `Host` operations, shared by every real host class.
pub(crate) fn run(
    py: Python<'_>,
    host: Arc<dyn Host>,
    argv: &Bound<'_, PyAny>,
    stdin: Option<Vec<u8>>,
    check: bool,
) -> PyResult<CommandOutput> {
    let mut command = Command::new(argv_arg(argv)?);
    if let Some(bytes) = stdin {
        command = command.stdin(bytes);
    }
    core_py(command.validate())?;
    let out = block(py, async move {
        let out = core_py(host.run(&command).await)?;
        if check {
            core_py(out.check(&command))
        } else {
            Ok(out)
        }
    })?;
    Ok(CommandOutput {
        status: out.status,
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

/// Generates the host methods (`run`, files, disk usage) of a class whose `host()` gives its `Arc<dyn Host>`,
/// together with the class's own items (constructor, repr).
macro_rules! host_methods {
    ($class:ty; $($own:tt)*) => {
        #[pymethods]
        impl $class {
            $($own)*

            /// The host's name in messages (`local`, `deploy@prod-host:22`).
            #[getter]
            fn name(&self) -> String {
                self.host().name().to_string()
            }

            /// Runs a program (an argv, never a shell line) and returns its output; with `check=True` a non-zero
            /// exit raises `FailedError`. `stdin` is fed to the program.
            #[pyo3(signature = (argv, *, stdin=None, check=false))]
            fn run(
                &self,
                py: Python<'_>,
                argv: &Bound<'_, PyAny>,
                stdin: Option<Vec<u8>>,
                check: bool,
            ) -> PyResult<crate::hosts::CommandOutput> {
                crate::hosts::run(py, self.host(), argv, stdin, check)
            }

            /// A whole (small) file's content; `None` when it does not exist.
            fn read_file<'py>(&self, py: Python<'py>, path: String) -> PyResult<Option<Bound<'py, pyo3::types::PyBytes>>> {
                let host = self.host();
                let data = crate::bridge::block(py, async move {
                    crate::errors::py(host.read_file(&path).await)
                })?;
                Ok(data.map(|d| pyo3::types::PyBytes::new(py, &d)))
            }

            /// Writes a whole file atomically (a reader sees the old content or the new); returns the bytes
            /// written. `create_new=True` raises `ConflictError` when the file exists.
            #[pyo3(signature = (path, data, *, mode=0o644, create_new=false))]
            fn write_file(
                &self,
                py: Python<'_>,
                path: String,
                data: Vec<u8>,
                mode: u32,
                create_new: bool,
            ) -> PyResult<u64> {
                let host = self.host();
                let options = PutOptions { mode, create_new };
                crate::bridge::block(py, async move {
                    crate::errors::py(host.write_file(&path, data, options).await)
                })
            }

            /// Renames a file, replacing `to` atomically.
            fn rename(&self, py: Python<'_>, from_: String, to: String) -> PyResult<()> {
                let host = self.host();
                crate::bridge::block(py, async move { crate::errors::py(host.rename(&from_, &to).await) })
            }

            /// Removes a file; `NotFoundError` when there is none.
            fn remove_file(&self, py: Python<'_>, path: String) -> PyResult<()> {
                let host = self.host();
                crate::bridge::block(py, async move { crate::errors::py(host.remove_file(&path).await) })
            }

            /// How full the file system holding `path` is.
            fn disk_usage(&self, py: Python<'_>, path: String) -> PyResult<crate::hosts::DiskUsage> {
                let host = self.host();
                let u = crate::bridge::block(py, async move {
                    crate::errors::py(host.disk_usage(&path).await)
                })?;
                Ok(crate::hosts::DiskUsage {
                    total_bytes: u.total_bytes,
                    available_bytes: u.available_bytes,
                    total_inodes: u.total_inodes,
                    free_inodes: u.free_inodes,
                    used_percent: u.used_percent(),
                })
            }
        }
    };
}

/// `SshHost(agent=...)`: `True` uses `SSH_AUTH_SOCK`, `False` no agent, a path that agent's socket.
#[derive(Debug, Clone)]
pub(crate) enum Agent {
    /// Whether to use the agent of `SSH_AUTH_SOCK`.
    Default(bool),
    /// The agent listening on this socket.
    Socket(PathBuf),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Agent {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Agent> {
        if let Ok(b) = obj.extract::<bool>() {
            return Ok(Agent::Default(b));
        }
        obj.extract::<PathBuf>().map(Agent::Socket).map_err(|_| {
            PyTypeError::new_err(
                "agent must be True (SSH_AUTH_SOCK), False (no agent) or the agent socket's path",
            )
        })
    }
}

/// This machine: programs run as child processes, files are written atomically, the deploy lock is a hard link.
#[pyclass(frozen, module = "connect_ops")]
#[derive(Debug, Clone)]
pub struct LocalHost {
    pub(crate) inner: local::LocalHost,
}

impl LocalHost {
    pub(crate) fn host(&self) -> Arc<dyn Host> {
        Arc::new(self.inner.clone())
    }
}

host_methods! {
    LocalHost;
    /// This machine, named `name` in messages; `connect_timeout` bounds opening a TCP stream.
    #[new]
    #[pyo3(signature = (name="local", *, connect_timeout=10.0))]
    fn new(name: &str, connect_timeout: f64) -> PyResult<LocalHost> {
        Ok(LocalHost {
            inner: local::LocalHost::new()
                .with_name(name)
                .with_connect_timeout(seconds("connect_timeout", connect_timeout)?),
        })
    }

    fn __repr__(&self) -> String {
        format!("LocalHost({:?})", self.inner.name())
    }
}

/// A server over SSH: ONE authenticated connection (russh) carries every program, file and stream.
#[pyclass(frozen, module = "connect_ops")]
#[derive(Debug, Clone)]
pub struct SshHost {
    pub(crate) inner: ssh::SshHost,
}

impl SshHost {
    pub(crate) fn host(&self) -> Arc<dyn Host> {
        Arc::new(self.inner.clone())
    }
}

host_methods! {
    SshHost;
    /// Connects, checks the server's key against `known_hosts` (`~/.ssh/known_hosts`) and authenticates with
    /// `key_file` and/or the ssh-agent (`None` or `True`: `SSH_AUTH_SOCK`; a path; `False`: none). Blocks with the GIL
    /// released; a refused connection, an unknown or changed host key or a rejected key raise the matching
    /// `ConnectError`.
    #[new]
    #[pyo3(signature = (
        host, port=22, *, user, key_file=None, passphrase=None, agent=None, known_hosts=None,
        trust_on_first_use=false, connect_timeout=10.0, auth_timeout=10.0, keepalive_interval=15.0,
        keepalive_max=3, max_sessions=10
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        host: &str,
        port: i64,
        user: &str,
        key_file: Option<PathBuf>,
        passphrase: Option<String>,
        agent: Option<Agent>,
        known_hosts: Option<PathBuf>,
        trust_on_first_use: bool,
        connect_timeout: f64,
        auth_timeout: f64,
        keepalive_interval: f64,
        keepalive_max: i64,
        max_sessions: i64,
    ) -> PyResult<SshHost> {
        let mut config = SshConfig::new(host, user)
            .port(whole("port", port, "a port from 1 to 65535")?)
            .trust_on_first_use(trust_on_first_use)
            .connect_timeout(seconds("connect_timeout", connect_timeout)?)
            .auth_timeout(seconds("auth_timeout", auth_timeout)?)
            .keepalive(
                seconds("keepalive_interval", keepalive_interval)?,
                whole("keepalive_max", keepalive_max, "a count of 0 or more")?,
            )
            .max_sessions(whole("max_sessions", max_sessions, "a count of 1 or more")?);
        if let Some(k) = key_file {
            config = config.key_file(k);
        }
        if let Some(p) = passphrase {
            config = config.passphrase(p);
        }
        if let Some(k) = known_hosts {
            config = config.known_hosts(k);
        }
        match agent.unwrap_or(Agent::Default(true)) {
            Agent::Default(true) => {}
            Agent::Default(false) => config = config.no_agent(),
            Agent::Socket(path) => config = config.agent(path),
        }
        if config.port == 0 {
            return Err(invalid(
                "ssh.connect",
                host,
                "port 0",
                "give sshd's port, e.g. 22",
            ));
        }
        let inner = block(py, async move { core_py(ssh::SshHost::connect(config).await) })?;
        Ok(SshHost { inner })
    }

    /// How many SSH connections this host has opened (1 unless the connection was lost and reopened).
    fn connections_opened(&self) -> usize {
        self.inner.connections_opened()
    }

    /// Closes the connection; the next operation opens a new one.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let inner = self.inner.clone();
        block(py, async move {
            inner.close().await;
            Ok(())
        })
    }

    /// `with SshHost(...) as host:` closes the connection when the block ends, however it ends.
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Closes the connection; an exception from the block propagates unchanged.
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc_value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("SshHost({:?})", self.inner.config().target())
    }
}

/// A `Host` from a Python object, for the APIs that take one; `None` when it is not a real host.
pub(crate) fn real_host(obj: &Bound<'_, PyAny>) -> Option<Arc<dyn Host>> {
    if let Ok(h) = obj.cast::<LocalHost>() {
        return Some(h.get().host());
    }
    if let Ok(h) = obj.cast::<SshHost>() {
        return Some(h.get().host());
    }
    None
}

/// The optional `host=` of a class that reaches its service through a real server (`Docker`, `Haproxy`).
pub(crate) fn server_host(host: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Arc<dyn Host>>> {
    host.map(|h| {
        real_host(h).ok_or_else(|| {
            PyTypeError::new_err(format!(
                "host must be a connect_ops.SshHost or LocalHost, not {}",
                type_name(h)
            ))
        })
    })
    .transpose()
}

/// A `Host` argument of the backup and backend functions: a real host or a `MemoryHost`.
pub(crate) fn any_host(role: &str, obj: &Bound<'_, PyAny>) -> PyResult<Arc<dyn Host>> {
    if let Some(h) = real_host(obj) {
        return Ok(h);
    }
    if let Ok(h) = obj.cast::<crate::memory::MemoryHost>() {
        return Ok(Arc::new(h.get().inner.clone()));
    }
    Err(PyTypeError::new_err(format!(
        "{role} must be a connect_ops.SshHost, LocalHost or MemoryHost, not {}",
        type_name(obj)
    )))
}
