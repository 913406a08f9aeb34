//! [`GroupedRouter`]: each color one server to the engine, a server per node in the router.
//!
//! A Swarm service publishes its port in host mode on whichever node runs its task, so HAProxy has, per
//! color, one server per node (the node's address, the slot's port), each with a health check, and only the
//! node running the task passes it. The engine knows one server per color. This layer presents each group
//! of servers as that one server and drives its members together, so `switch`, `wait_live`,
//! `wait_drained`, status and reconcile run unchanged, and "the target is the only live server" still
//! means what it says: no other color's server on any node takes traffic.
//!
//! ```
//! use std::sync::Arc;
//! use connect_core::layers::{GroupedRouter, ServerGroup};
//! use connect_core::memory::MemoryRouter;
//! use connect_core::model::Topology;
//!
//! let haproxy = MemoryRouter::new("be_app");
//! let topology = Topology::runbook();
//! let nodes = ["manager", "worker1"];
//! let groups = vec![
//!     ServerGroup::per_node(&topology.blue, &nodes),   // app1 = manager_blue + worker1_blue
//!     ServerGroup::per_node(&topology.green, &nodes),  // app2 = manager_green + worker1_green
//! ];
//! let router = GroupedRouter::new(Arc::new(haproxy), groups).unwrap();
//! ```

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result};
use crate::model::Slot;
use crate::router::{AdminState, CheckState, ServerFigures, ServerStatus, TrafficRouter, check_names};

/// One server as the engine sees it, several in the router: a color's server on every node that may run
/// its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerGroup {
    /// The name the engine knows: the slot's server (`app1`).
    pub name: String,
    /// The router's servers behind it (`manager_blue`, `worker1_blue`).
    pub members: Vec<String>,
}

impl ServerGroup {
    /// `slot`'s server as one member per node, each named `<node>_<color>` (`worker1_blue`).
    pub fn per_node<S: AsRef<str>>(slot: &Slot, nodes: &[S]) -> ServerGroup {
        ServerGroup {
            name: slot.server.clone(),
            members: nodes
                .iter()
                .map(|node| format!("{}_{}", node.as_ref(), slot.color))
                .collect(),
        }
    }
}

/// A router whose groups of servers each read and change as one server (see the module's docs).
///
/// A group is live when any member is live (the one whose node runs the task); its admin state, check,
/// weight and address are that member's, or, with none live, those of the member closest to serving
/// (ready before drain before maint, checks up before down); its sessions are the members' sum. Setting a
/// group's state sets every member's in one change ([`TrafficRouter::set_states`]: one runtime-API
/// exchange on HAProxy); a weight goes to every member. Servers in no group pass through as they are, so a
/// stray live server is still seen. A member's own name is refused: it changes only with its group.
#[derive(Debug, Clone)]
pub struct GroupedRouter {
    inner: Arc<dyn TrafficRouter>,
    groups: Vec<ServerGroup>,
}

impl GroupedRouter {
    /// Groups `inner`'s servers. A group without members, a name used twice (as a group or a member), or a
    /// group named as a server of another group is [`ErrorKind::InvalidInput`].
    pub fn new(inner: Arc<dyn TrafficRouter>, groups: Vec<ServerGroup>) -> Result<GroupedRouter> {
        let mut seen = HashSet::new();
        for group in &groups {
            if group.members.is_empty() {
                return Err(
                    Error::invalid("router.groups", &group.name, "a group without servers")
                        .with_hint("give each color a server per node that may run its task"),
                );
            }
            for name in std::iter::once(&group.name).chain(&group.members) {
                if !seen.insert(name.as_str()) {
                    return Err(Error::invalid(
                        "router.groups",
                        name,
                        "the name is used twice among the groups and their servers",
                    )
                    .with_hint("name each color's servers after their nodes (`<node>_<color>`), apart from the colors' own names"));
                }
            }
        }
        Ok(GroupedRouter { inner, groups })
    }

    /// The groups.
    pub fn groups(&self) -> &[ServerGroup] {
        &self.groups
    }

    fn group(&self, name: &str) -> Option<&ServerGroup> {
        self.groups.iter().find(|g| g.name == name)
    }

    fn member_of(&self, name: &str) -> Option<&ServerGroup> {
        self.groups.iter().find(|g| g.members.iter().any(|m| m == name))
    }

    /// The router's servers behind `name`: a group's members, or the name itself for a server in no group.
    fn resolve(&self, operation: &str, name: &str) -> Result<Vec<String>> {
        if let Some(group) = self.group(name) {
            return Ok(group.members.clone());
        }
        if let Some(group) = self.member_of(name) {
            return Err(Error::new(
                ErrorKind::NotFound,
                operation,
                format!("{}/{name}", self.inner.backend()),
                format!("{name} is one of {}'s servers, which change together", group.name),
            )
            .with_hint(format!(
                "change {} instead: every node's server at once",
                group.name
            )));
        }
        Ok(vec![name.to_string()])
    }

    /// `group`'s members among `all`; a member the router lacks is [`ErrorKind::NotFound`] naming the fix.
    fn members<'a>(&self, group: &ServerGroup, all: &'a [ServerStatus]) -> Result<Vec<&'a ServerStatus>> {
        group
            .members
            .iter()
            .map(|member| {
                all.iter().find(|s| &s.name == member).ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        "router.servers",
                        format!("{}/{member}", self.inner.backend()),
                        format!("{}'s server {member} is not in the backend", group.name),
                    )
                    .with_hint(
                        "add a server per node and color to the HAProxy backend (`server <node>_<color> \
                         <node address>:<slot port> check`), or list only the nodes it has",
                    )
                })
            })
            .collect()
    }
}

/// Closer to serving ranks higher: ready, then drain, then maint.
fn admin_rank(admin: AdminState) -> u8 {
    match admin {
        AdminState::Ready => 2,
        AdminState::Drain => 1,
        AdminState::Maint => 0,
    }
}

/// Passing checks rank higher.
fn check_rank(check: CheckState) -> u8 {
    match check {
        CheckState::Up => 3,
        CheckState::NoCheck => 2,
        CheckState::Down => 1,
        CheckState::Unknown => 0,
    }
}

/// The group as one server: its live member's view (the first one's), else the member closest to serving;
/// the sessions of all of them. Live exactly when a member is.
fn aggregate(name: &str, members: &[&ServerStatus]) -> Option<ServerStatus> {
    // `max_by_key` keeps the last of equals: reversed, the first member wins a tie.
    let lead = members.iter().find(|m| m.is_live()).or_else(|| {
        members
            .iter()
            .rev()
            .max_by_key(|m| (admin_rank(m.admin), check_rank(m.check)))
    })?;
    Some(ServerStatus {
        name: name.to_string(),
        current_sessions: members.iter().map(|m| m.current_sessions).sum(),
        ..(*lead).clone()
    })
}

/// The IP of `ip:port` (`[::1]:3000` → `::1`).
fn ip_of(address: &str) -> &str {
    let ip = address.rsplit_once(':').map_or(address, |(ip, _)| ip);
    ip.trim_start_matches('[').trim_end_matches(']')
}

#[async_trait]
impl TrafficRouter for GroupedRouter {
    fn backend(&self) -> &str {
        self.inner.backend()
    }

    async fn servers(&self) -> Result<Vec<ServerStatus>> {
        let all = self.inner.servers().await?;
        let mut grouped = Vec::with_capacity(self.groups.len());
        for group in &self.groups {
            let members = self.members(group, &all)?;
            grouped.extend(aggregate(&group.name, &members));
        }
        // In the router's order, each group where its first member is.
        let mut shown = Vec::new();
        for s in all {
            match self.member_of(&s.name) {
                None => shown.push(s),
                Some(group) => {
                    if let Some(at) = grouped.iter().position(|g| g.name == group.name) {
                        shown.push(grouped.swap_remove(at));
                    }
                }
            }
        }
        Ok(shown)
    }

    async fn set_state(&self, server: &str, state: AdminState) -> Result<()> {
        match self.group(server) {
            Some(group) => self.inner.set_states(&group.members, state).await,
            None => {
                self.resolve("router.set_state", server)?;
                self.inner.set_state(server, state).await
            }
        }
    }

    async fn set_states(&self, servers: &[String], state: AdminState) -> Result<()> {
        let known = self.servers().await?;
        check_names(self.backend(), &known, servers, &[])?;
        let mut members = Vec::new();
        for server in servers {
            members.extend(self.resolve("router.set_states", server)?);
        }
        self.inner.set_states(&members, state).await
    }

    async fn set_weight(&self, server: &str, weight: u32) -> Result<()> {
        for member in self.resolve("router.set_weight", server)? {
            self.inner.set_weight(&member, weight).await?;
        }
        Ok(())
    }

    /// A group's servers keep their nodes' addresses: `address` must be one of them, and `port` becomes
    /// every member's (the slot's port is the same on every node).
    async fn set_address(&self, server: &str, address: &str, port: u16) -> Result<()> {
        let Some(group) = self.group(server) else {
            self.resolve("router.set_address", server)?;
            return self.inner.set_address(server, address, port).await;
        };
        let all = self.inner.servers().await?;
        let members = self.members(group, &all)?;
        if !members.iter().any(|m| ip_of(&m.address) == address) {
            let nodes: Vec<&str> = members.iter().map(|m| m.address.as_str()).collect();
            return Err(Error::invalid(
                "router.set_address",
                format!("{}/{server}", self.backend()),
                format!("{address} is none of {server}'s nodes ({})", nodes.join(", ")),
            )
            .with_hint(
                "a group's servers keep their nodes' addresses: give one of them to move every node's port",
            ));
        }
        for m in members {
            self.inner.set_address(&m.name, ip_of(&m.address), port).await?;
        }
        Ok(())
    }

    /// A group's counters are its members' sums; its response time the slowest member's.
    async fn figures(&self) -> Result<Vec<ServerFigures>> {
        let all = self.inner.figures().await?;
        let mut shown: Vec<ServerFigures> = Vec::new();
        for f in all {
            let Some(group) = self.member_of(&f.name) else {
                shown.push(f);
                continue;
            };
            match shown.iter_mut().find(|s| s.name == group.name) {
                Some(sum) => {
                    sum.responses += f.responses;
                    sum.responses_5xx += f.responses_5xx;
                    sum.response_time_ms = sum.response_time_ms.max(f.response_time_ms);
                    sum.current_sessions += f.current_sessions;
                    sum.total_sessions += f.total_sessions;
                }
                None => shown.push(ServerFigures {
                    name: group.name.clone(),
                    ..f
                }),
            }
        }
        Ok(shown)
    }

    async fn set_maintenance(&self, on: bool) -> Result<()> {
        self.inner.set_maintenance(on).await
    }

    async fn maintenance(&self) -> Result<bool> {
        self.inner.maintenance().await
    }

    // `switch`, `wait_live`, `wait_drained` and `set_states_together` are the provided ones on purpose: they
    // work on this view, where a group is live when one member is; the router's own overrides would wait
    // for every member of a group, and only one node runs the task.
}

#[cfg(test)]
mod tests;
