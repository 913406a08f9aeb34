//! Patroni's REST API.

mod access;
mod audit;
mod http;
mod model;

use std::sync::Arc;
use std::time::Duration;

use connect_core::database::{Member, Role};
use connect_core::host::Host;
use connect_core::wait::poll_until;
use connect_core::{Error, ErrorKind, Result};
use serde_json::Value;

use crate::names::http_base_url;
pub use access::BasicAuth;
pub(crate) use access::CA_SETTING;
use access::PatroniTls;
/// The system-CA TLS setup, for the test harness's own HTTP client (etcd).
#[cfg(feature = "testing")]
pub(crate) use access::PatroniTls as PatroniTlsForTesting;
pub use audit::RestAccess;
pub(crate) use http::too_large;
use http::{refusal, unreachable_all};
pub use model::{HealthCheck, PatroniHistoryEntry, PatroniMember};
use model::{parse_cluster, parse_history};

/// How long one action request (switchover, failover, restart, reload, pause) may take, answer included:
/// Patroni answers a switchover when it is done.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A client of Patroni's REST API. Given every node's API address, it asks the first that answers, so one
/// node down does not blind it. Directly (reqwest), or with [`Patroni::through`] over a
/// [`connect_core::Host`]'s byte streams, e.g. the one SSH connection to the server.
#[derive(Debug, Clone)]
pub struct Patroni {
    nodes: Vec<String>,
    http: reqwest::Client,
    /// How `https://` nodes are verified (the CA), shared with requests carried through a host.
    tls: PatroniTls,
    /// `restapi.authentication`, sent with every request when set.
    auth: Option<BasicAuth>,
    /// When set, every request is carried through this host instead of a TCP connection from here.
    via: Option<Arc<dyn Host>>,
    /// How long switchover, failover and restart may take before [`ErrorKind::Timeout`].
    pub action_deadline: Duration,
    /// How long one node may take to answer a read (`/cluster`, `/history`, a health endpoint) before the
    /// next node is asked: a hung node costs this much, not the caller's whole budget.
    pub read_timeout: Duration,
}

impl Patroni {
    /// A client for the nodes' REST addresses (`http://127.0.0.1:8008`): `http` or `https`, a host and a
    /// port, nothing else (a user or password in the URL, a path or a query is refused). `https` nodes are
    /// verified against the system's CAs unless [`Patroni::with_ca_file`] names one; credentials come with
    /// [`Patroni::with_auth`].
    pub fn new<S: AsRef<str>>(nodes: &[S]) -> Result<Patroni> {
        if nodes.is_empty() {
            return Err(Error::invalid("patroni.new", "", "no Patroni address given")
                .with_hint("give each node's REST API, e.g. http://patroni1.internal:8008"));
        }
        let nodes = nodes
            .iter()
            .map(|n| http_base_url("patroni.new", n.as_ref()))
            .collect::<Result<Vec<String>>>()?;
        let tls = PatroniTls::system()?;
        let http = tls.http_client(&nodes[0])?;
        Ok(Patroni {
            nodes,
            http,
            tls,
            auth: None,
            via: None,
            action_deadline: Duration::from_secs(90),
            read_timeout: Duration::from_secs(3),
        })
    }

    /// Sends every request through `host` (each on its own `host.connect` stream to the node's address as
    /// the server sees it), so Patroni's API need not be reachable from here.
    pub fn through(mut self, host: Arc<dyn Host>) -> Patroni {
        self.via = Some(host);
        self
    }

    /// The host requests go through, when not direct.
    pub fn via(&self) -> Option<&Arc<dyn Host>> {
        self.via.as_ref()
    }

    /// The configured node addresses.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// `GET /cluster` from the first node that answers, each given [`Patroni::read_timeout`].
    pub async fn cluster(&self) -> Result<Vec<PatroniMember>> {
        self.first_answer("patroni.cluster", "/cluster", parse_cluster)
            .await
    }

    /// A read from the first node that answers well: a node that does not answer in time, or answers with
    /// something that is not Patroni's, is passed over for the next.
    async fn first_answer<T>(&self, op: &str, path: &str, parse: fn(&Value, &str) -> Result<T>) -> Result<T> {
        let mut last = None;
        for node in &self.nodes {
            match self.get_json(node, path).await.and_then(|v| parse(&v, node)) {
                Ok(t) => return Ok(t),
                Err(e) if e.is_retryable() || e.kind() == ErrorKind::Corrupt => {
                    tracing::debug!(node, error = %e, "Patroni node passed over");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(unreachable_all(op, &self.nodes, last))
    }

    /// Every member with its role, state, lag and timeline.
    pub async fn members(&self) -> Result<Vec<Member>> {
        Ok(self.cluster().await?.into_iter().map(|m| m.member).collect())
    }

    /// The running leader, with its addresses; [`ErrorKind::Unhealthy`] when there is none.
    pub async fn leader(&self) -> Result<PatroniMember> {
        let members = self.cluster().await?;
        members
            .iter()
            .find(|m| m.member.role == Role::Leader && m.member.is_running())
            .cloned()
            .ok_or_else(|| no_leader("patroni.leader", &members))
    }

    /// Whether `node`'s health endpoint answers 200. A node that does not answer at all is an error
    /// ([`ErrorKind::Unavailable`]), not a `false`.
    pub async fn health(&self, node: &str, check: HealthCheck) -> Result<bool> {
        let url = format!("{}{}", http_base_url("patroni.health", node)?, check.path());
        let (status, _) = self
            .send("patroni.health", "GET", &url, None, self.read_timeout)
            .await?;
        Ok(status == 200)
    }

    /// `GET /patroni` of one node: its own view (role `master` in Patroni 3, `primary` in 4).
    pub async fn node_status(&self, node: &str) -> Result<Value> {
        self.get_json(&http_base_url("patroni.node_status", node)?, "/patroni")
            .await
    }

    /// The timeline history (`GET /history`), oldest first.
    pub async fn history(&self) -> Result<Vec<PatroniHistoryEntry>> {
        self.first_answer("patroni.history", "/history", parse_history)
            .await
    }

    /// Hands leadership from the running leader to `candidate` (or to any healthy replica), then waits until
    /// the new leader runs and every other member runs again. Returns the new leader.
    pub async fn switchover(&self, candidate: Option<&str>) -> Result<Member> {
        let op = "patroni.switchover";
        let members = self.cluster().await?;
        let leader = members
            .iter()
            .find(|m| m.member.role == Role::Leader && m.member.is_running())
            .cloned()
            .ok_or_else(|| no_leader(op, &members))?;
        let candidate = match candidate {
            Some(c) => {
                check_candidate(op, c, &members)?;
                if c == leader.member.name {
                    return Err(
                        Error::new(ErrorKind::Refused, op, c, "the candidate already leads")
                            .with_hint("name a replica, or none to let Patroni pick one"),
                    );
                }
                Some(c.to_string())
            }
            None => None,
        };
        self.switchover_from(&leader.member.name, candidate.as_deref())
            .await
    }

    /// Patroni's own switchover request: from `leader` (which Patroni checks is still the leader, answering
    /// 412 when it is not: someone else switched in between) to `candidate` or any healthy replica; waits until
    /// done like [`Patroni::switchover`].
    pub async fn switchover_from(&self, leader: &str, candidate: Option<&str>) -> Result<Member> {
        let op = "patroni.switchover";
        let members = self.cluster().await?;
        check_candidate(op, leader, &members)?;
        if let Some(c) = candidate {
            check_candidate(op, c, &members)?;
        }
        let via = members
            .iter()
            .find(|m| m.member.name == leader)
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::Refused, op, leader, "no such member"))?;
        let mut body = serde_json::json!({ "leader": leader });
        if let Some(c) = candidate {
            body["candidate"] = Value::String(c.to_string());
        }
        let timeline = via.member.timeline;
        self.post_action(op, &via, "/switchover", &body).await?;
        self.wait_for_new_leader(op, leader, candidate, timeline).await
    }

    /// Promotes `candidate` even without a healthy leader (`POST /failover`), then waits until it leads.
    pub async fn failover(&self, candidate: &str) -> Result<Member> {
        let op = "patroni.failover";
        let members = self.cluster().await?;
        check_candidate(op, candidate, &members)?;
        let via = members
            .iter()
            .find(|m| m.member.name == candidate)
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::Refused, op, candidate, "no such member"))?;
        let old_name = members
            .iter()
            .find(|m| m.member.role == Role::Leader)
            .map(|m| m.member.name.clone())
            .unwrap_or_default();
        let timeline = members.iter().filter_map(|m| m.member.timeline).max();
        let body = serde_json::json!({ "candidate": candidate });
        self.post_action(op, &via, "/failover", &body).await?;
        self.wait_for_new_leader(op, &old_name, Some(candidate), timeline)
            .await
    }

    /// Restarts PostgreSQL on `member` through Patroni and waits until it runs again.
    pub async fn restart(&self, member: &str) -> Result<()> {
        let op = "patroni.restart";
        let m = self.member(op, member).await?;
        self.post_action(op, &m, "/restart", &serde_json::json!({}))
            .await?;
        poll_until(
            op,
            member,
            self.action_deadline,
            Duration::from_millis(250),
            || async {
                match self.cluster().await {
                    Ok(ms) => Ok(match ms.iter().find(|x| x.member.name == member) {
                        Some(x) if x.member.is_running() => Ok(()),
                        Some(x) => Err(format!("state {}", x.member.state)),
                        None => Err("not listed".into()),
                    }),
                    Err(e) if e.is_retryable() => Ok(Err(e.to_string())),
                    Err(e) => Err(e),
                }
            },
        )
        .await
    }

    /// Makes `member`'s Patroni re-read its configuration (`POST /reload`).
    pub async fn reload(&self, member: &str) -> Result<()> {
        let op = "patroni.reload";
        let m = self.member(op, member).await?;
        self.post_action(op, &m, "/reload", &serde_json::json!({})).await
    }

    /// Pauses or resumes automatic failover (`PATCH /config {"pause": …}`), e.g. around maintenance.
    pub async fn set_paused(&self, paused: bool) -> Result<()> {
        let op = "patroni.pause";
        let body = serde_json::json!({ "pause": paused });
        let mut last = None;
        for node in &self.nodes {
            let url = format!("{node}/config");
            match self.send(op, "PATCH", &url, Some(&body), REQUEST_TIMEOUT).await {
                Ok((200..=299, _)) => return Ok(()),
                Ok((status, text)) => {
                    return Err(refusal(op, node, status, &String::from_utf8_lossy(&text)));
                }
                // A certificate or setting problem is the same on every node: say it, not "unreachable".
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(unreachable_all(op, &self.nodes, last))
    }

    async fn member(&self, op: &str, name: &str) -> Result<PatroniMember> {
        let members = self.cluster().await?;
        check_candidate(op, name, &members)?;
        members
            .into_iter()
            .find(|m| m.member.name == name)
            .ok_or_else(|| Error::new(ErrorKind::Refused, op, name, "no such member"))
    }

    async fn wait_for_new_leader(
        &self,
        op: &str,
        old: &str,
        candidate: Option<&str>,
        old_timeline: Option<u64>,
    ) -> Result<Member> {
        let target = candidate.unwrap_or("any replica");
        poll_until(
            op,
            target,
            self.action_deadline,
            Duration::from_millis(200),
            || async {
                let members = match self.cluster().await {
                    Ok(m) => m,
                    // Nodes restart during a switchover: not answering for a moment is expected.
                    Err(e) if e.is_retryable() => return Ok(Err(e.to_string())),
                    Err(e) => return Err(e),
                };
                let Some(leader) = members
                    .iter()
                    .find(|m| m.member.role == Role::Leader && m.member.is_running())
                else {
                    return Ok(Err("no running leader yet".into()));
                };
                let moved = match candidate {
                    Some(c) => leader.member.name == c,
                    None => leader.member.name != old,
                };
                if !moved {
                    return Ok(Err(format!("{} still leads", leader.member.name)));
                }
                // Patroni lists the new leader one loop before it reports the timeline its promotion started.
                if let (Some(old_tl), Some(tl)) = (old_timeline, leader.member.timeline)
                    && tl <= old_tl
                {
                    return Ok(Err(format!("{} still on timeline {tl}", leader.member.name)));
                }
                // "Done" means the cluster answers again: every other member is back and running.
                if let Some(down) = members.iter().find(|m| !m.member.is_running()) {
                    return Ok(Err(format!("{} is {}", down.member.name, down.member.state)));
                }
                Ok(Ok(leader.member.clone()))
            },
        )
        .await
    }

    async fn post_action(&self, op: &str, via: &PatroniMember, path: &str, body: &Value) -> Result<()> {
        let mut last = None;
        let preferred = via.api_url.iter().cloned();
        for node in preferred.chain(self.nodes.iter().cloned()) {
            let url = format!("{node}{path}");
            let (status, text) = match self.send(op, "POST", &url, Some(body), REQUEST_TIMEOUT).await {
                Ok(r) => r,
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            return match status {
                200..=299 => Ok(()),
                _ => Err(refusal(
                    op,
                    &via.member.name,
                    status,
                    &String::from_utf8_lossy(&text),
                )),
            };
        }
        Err(unreachable_all(op, &self.nodes, last))
    }

    async fn get_json(&self, node: &str, path: &str) -> Result<Value> {
        let url = format!("{node}{path}");
        let (status, bytes) = self
            .send("patroni.get", "GET", &url, None, self.read_timeout)
            .await?;
        if !(200..300).contains(&status) {
            return Err(refusal(
                "patroni.get",
                &url,
                status,
                &String::from_utf8_lossy(&bytes),
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(ErrorKind::Corrupt, "patroni.get", &url, format!("not JSON: {e}"))
                .with_hint("is this address Patroni's REST API (restapi.listen)?")
                .with_source(e)
        })
    }
}

fn check_candidate(op: &str, name: &str, members: &[PatroniMember]) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(op, name, "the member name is empty"));
    }
    if !members.iter().any(|m| m.member.name == name) {
        let names: Vec<&str> = members.iter().map(|m| m.member.name.as_str()).collect();
        return Err(Error::new(
            ErrorKind::Refused,
            op,
            name,
            format!("no member named {name:?}; members: {names:?}"),
        )
        .with_hint("use a name from `patronictl list`"));
    }
    Ok(())
}

fn no_leader(op: &str, members: &[PatroniMember]) -> Error {
    let seen: Vec<String> = members
        .iter()
        .map(|m| format!("{} {:?} {}", m.member.name, m.member.role, m.member.state))
        .collect();
    Error::new(
        ErrorKind::Unhealthy,
        op,
        "cluster",
        format!("no running leader; members: {seen:?}"),
    )
    .with_hint("check Patroni (`patronictl list`) and etcd; a failover needs a healthy replica")
}
