//! Network namespaces a test made itself (`unshare --net`, as root): sockets opened inside one from this
//! process, commands run inside one, and veth pairs linking two, so several "machines" with their own
//! addresses run on one box without touching its network.
//!
//! A namespace is named by a process that lives in it (`/proc/<pid>/ns/net`): anonymous namespaces go with
//! their last process, and the veth pairs in them with it, so nothing is left behind. `ip netns` is not used:
//! `ip netns exec` mounts a fresh /sys, which hides the cgroup mounts dockerd needs.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Error, ErrorKind, Result};

/// The network namespace of a process the test started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetNs {
    pid: u32,
}

impl NetNs {
    /// The namespace process `pid` lives in.
    pub fn of_pid(pid: u32) -> NetNs {
        NetNs { pid }
    }

    /// The process that names it.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Runs `open` on a thread of its own that first enters the namespace: a socket keeps the namespace it
    /// was made in, so the result works from any thread. Never a pooled thread: the namespace would stay
    /// with the thread and leak into whatever ran on it next.
    fn inside<T: Send + 'static>(
        &self,
        open: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let path = PathBuf::from(format!("/proc/{}/ns/net", self.pid));
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path)?;
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )?;
            open()
        })
        .join()
        .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
    }

    /// A TCP connection to `addr` as seen from inside the namespace.
    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
        let ns = self.clone();
        let stream = tokio::task::spawn_blocking(move || {
            ns.inside(move || {
                let s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
        })
        .await
        .map_err(std::io::Error::other)??;
        tokio::net::TcpStream::from_std(stream)
    }

    /// A listener on `addr` inside the namespace: a port taken there, as another program would take it.
    pub fn listen(&self, addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
        self.inside(move || std::net::TcpListener::bind(addr))
    }

    /// The argv prefix that runs a program inside the namespace (`nsenter -t <pid> -n`; nsenter execs it,
    /// so the child's pid is the program's).
    pub fn command_prefix(&self) -> Vec<OsString> {
        vec![
            "nsenter".into(),
            "-t".into(),
            self.pid.to_string().into(),
            "-n".into(),
        ]
    }

    /// Runs `ip args…` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        let mut argv: Vec<String> = ["nsenter", "-t", &self.pid.to_string(), "-n", "ip"]
            .map(String::from)
            .to_vec();
        argv.extend(args.iter().map(|a| a.to_string()));
        run(&argv)
    }
}

fn run(argv: &[String]) -> Result<()> {
    let fail = |m: String| Error::new(ErrorKind::Failed, "testing.netns", argv.join(" "), m);
    let out = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

static PAIRS: AtomicU32 = AtomicU32::new(0);

/// Links two namespaces with a veth pair, `a_addr` (an `address/prefix` the harness declares, as the Swarm
/// and fleet harnesses do theirs) on `a`'s end and `b_addr` on `b`'s, both ends and both loopbacks up.
/// The pair goes when either namespace goes.
pub fn veth(a: &NetNs, a_addr: &str, b: &NetNs, b_addr: &str) -> Result<()> {
    // Interface names are at most 15 bytes and live in this namespace until moved: unique per call.
    let n = std::process::id() % 100_000 * 100 + PAIRS.fetch_add(1, Ordering::Relaxed) % 100;
    let (ea, eb) = (format!("cve{n}a"), format!("cve{n}b"));
    let ip = |args: &[&str]| {
        let mut argv = vec!["ip".to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        run(&argv)
    };
    ip(&["link", "add", &ea, "type", "veth", "peer", "name", &eb])?;
    let moved = ip(&["link", "set", &ea, "netns", &a.pid.to_string()])
        .and_then(|()| ip(&["link", "set", &eb, "netns", &b.pid.to_string()]));
    if let Err(e) = moved {
        // An end still here would outlive the test in this machine's namespace: deleting either end
        // deletes the pair.
        let _ = ip(&["link", "del", &ea]);
        let _ = ip(&["link", "del", &eb]);
        return Err(e);
    }
    for (ns, dev, addr) in [(a, &ea, a_addr), (b, &eb, b_addr)] {
        ns.ip(&["addr", "add", addr, "dev", dev])?;
        ns.ip(&["link", "set", dev, "up"])?;
        ns.ip(&["link", "set", "lo", "up"])?;
    }
    Ok(())
}
