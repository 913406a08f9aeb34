//! Patroni's REST API.

use std::sync::Arc;
use std::time::Duration;

use connect_core::database::{Member, Role};
use connect_core::host::Host;
use connect_core::wait::poll_until;
use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One member as `GET /cluster` describes it, with where to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatroniMember {
    /// Role, state, lag and timeline.
    pub member: Member,
    /// Its REST API (`http://patroni1.internal:8008`), without the `/patroni` suffix Patroni adds.
    pub api_url: Option<String>,
    /// Where its PostgreSQL listens.
    pub host: Option<String>,
    /// Its PostgreSQL port.
    pub port: Option<u16>,
}

/// One line of `GET /history`: a timeline switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatroniHistoryEntry {
    /// The timeline that ended.
    pub timeline: u64,
    /// The WAL position where it ended.
    pub lsn: u64,
    /// PostgreSQL's reason (`no recovery target specified`).
    pub reason: String,
    /// When, as Patroni wrote it.
    pub timestamp: Option<String>,
    /// Who became leader, when Patroni recorded it.
    pub new_leader: Option<String>,
}

/// Patroni's health endpoints, for load balancers and checks: each answers 200 when the condition holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// `/primary`: this node is the running leader.
    Primary,
    /// `/replica`: a running replica.
    Replica,
    /// `/replica?lag=N`: a running replica at most N bytes behind.
    ReplicaWithLag(u64),
    /// `/read-only`: leader or replica, anything that serves reads.
    ReadOnly,
    /// `/health`: PostgreSQL is running.
    Health,
    /// `/liveness`: Patroni's heartbeat loop runs.
    Liveness,
    /// `/readiness`: ready to take traffic (leader, or replica streaming).
    Readiness,
}

impl HealthCheck {
    fn path(&self) -> String {
        match self {
            HealthCheck::Primary => "/primary".into(),
            HealthCheck::Replica => "/replica".into(),
            HealthCheck::ReplicaWithLag(n) => format!("/replica?lag={n}"),
            HealthCheck::ReadOnly => "/read-only".into(),
            HealthCheck::Health => "/health".into(),
            HealthCheck::Liveness => "/liveness".into(),
            HealthCheck::Readiness => "/readiness".into(),
        }
    }
}

/// How long one request may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A client of Patroni's REST API. Given every node's API address, it asks the first that answers, so one
/// node down does not blind it. Directly (reqwest), or with [`Patroni::through`] over a
/// [`connect_core::Host`]'s byte streams, e.g. the one SSH connection to the server.
#[derive(Debug, Clone)]
pub struct Patroni {
    nodes: Vec<String>,
    http: reqwest::Client,
    /// When set, every request is carried through this host instead of a TCP connection from here.
    via: Option<Arc<dyn Host>>,
    /// How long switchover, failover and restart may take before [`ErrorKind::Timeout`].
    pub action_deadline: Duration,
}

impl Patroni {
    /// A client for the nodes' REST addresses (`http://127.0.0.1:8008`).
    pub fn new<S: AsRef<str>>(nodes: &[S]) -> Result<Patroni> {
        let nodes: Vec<String> = nodes
            .iter()
            .map(|n| n.as_ref().trim_end_matches('/').to_string())
            .collect();
        if nodes.is_empty() {
            return Err(Error::invalid("patroni.new", "", "no Patroni address given")
                .with_hint("give each node's REST API, e.g. http://patroni1.internal:8008"));
        }
        if let Some(bad) = nodes
            .iter()
            .find(|n| !n.starts_with("http://") && !n.starts_with("https://"))
        {
            return Err(Error::invalid("patroni.new", bad, "not an http(s) URL")
                .with_hint("write it as http://HOST:8008"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Error::new(ErrorKind::Failed, "patroni.new", &nodes[0], e.to_string()))?;
        Ok(Patroni {
            nodes,
            http,
            via: None,
            action_deadline: Duration::from_secs(90),
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

    /// One request, directly or through the host: the status and the whole body. Not answering at all is
    /// [`ErrorKind::Unavailable`] (retryable) or [`ErrorKind::Timeout`].
    async fn send(&self, op: &str, method: &str, url: &str, body: Option<&Value>) -> Result<(u16, Vec<u8>)> {
        let body = body.map(Value::to_string);
        if let Some(host) = &self.via {
            let reply =
                crate::via_host::http_request(host.as_ref(), op, method, url, body, REQUEST_TIMEOUT).await?;
            return Ok((reply.status, reply.body));
        }
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| Error::invalid(op, url, e.to_string()))?;
        let mut request = self.http.request(method, url);
        if let Some(b) = body {
            request = request.header("content-type", "application/json").body(b);
        }
        let resp = request.send().await.map_err(|e| transport(op, url, e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| transport(op, url, e))?;
        Ok((status, bytes.to_vec()))
    }

    /// The configured node addresses.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// `GET /cluster` from the first node that answers.
    pub async fn cluster(&self) -> Result<Vec<PatroniMember>> {
        let mut last = None;
        for node in &self.nodes {
            match self.get_json(node, "/cluster").await {
                Ok(v) => return parse_cluster(&v, node),
                Err(e) if e.kind() == ErrorKind::Unavailable => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(unreachable_all("patroni.cluster", &self.nodes, last))
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
        let url = format!("{}{}", node.trim_end_matches('/'), check.path());
        let (status, _) = self.send("patroni.health", "GET", &url, None).await?;
        Ok(status == 200)
    }

    /// `GET /patroni` of one node: its own view (role `master` in Patroni 3, `primary` in 4).
    pub async fn node_status(&self, node: &str) -> Result<Value> {
        self.get_json(node, "/patroni").await
    }

    /// The timeline history (`GET /history`), oldest first.
    pub async fn history(&self) -> Result<Vec<PatroniHistoryEntry>> {
        let mut last = None;
        for node in &self.nodes {
            match self.get_json(node, "/history").await {
                Ok(v) => return parse_history(&v, node),
                Err(e) if e.kind() == ErrorKind::Unavailable => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(unreachable_all("patroni.history", &self.nodes, last))
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
            match self.send(op, "PATCH", &url, Some(&body)).await {
                Ok((200..=299, _)) => return Ok(()),
                Ok((status, text)) => {
                    return Err(refusal(op, node, status, &String::from_utf8_lossy(&text)));
                }
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
            let (status, text) = match self.send(op, "POST", &url, Some(body)).await {
                Ok(r) => r,
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
        let (status, bytes) = self.send("patroni.get", "GET", &url, None).await?;
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

/// Patroni's "no": 412 (precondition: wrong leader, bad candidate), 503 (it could not do it now), 400 (the
/// request makes no sense, e.g. no leader to switch from), each with Patroni's own sentence.
fn refusal(op: &str, target: &str, status: u16, text: &str) -> Error {
    let text = text.trim();
    let (kind, hint) = match status {
        412 => (
            ErrorKind::Refused,
            "check the leader and candidate names against `patronictl list`",
        ),
        503 => (
            ErrorKind::Unavailable,
            "Patroni could not do it now; check its log and the members' state",
        ),
        400 => (
            ErrorKind::Refused,
            "the cluster is not in a state that allows it (is there a leader?)",
        ),
        401 | 403 => (
            ErrorKind::PermissionDenied,
            "set restapi.authentication credentials",
        ),
        404 => (
            ErrorKind::NotFound,
            "is this Patroni's REST API, and a version that has this endpoint?",
        ),
        _ => (ErrorKind::Failed, "see Patroni's log"),
    };
    Error::new(kind, op, target, format!("Patroni answered {status}: {text}")).with_hint(hint)
}

fn transport(op: &str, url: &str, e: reqwest::Error) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Unavailable
    };
    Error::new(kind, op, url, format!("Patroni did not answer: {e}"))
        .with_hint("is Patroni running and restapi.listen reachable from here?")
        .with_retryable(true)
}

fn unreachable_all(op: &str, nodes: &[String], last: Option<Error>) -> Error {
    let why = last.map(|e| e.message().to_string()).unwrap_or_default();
    Error::new(
        ErrorKind::Unavailable,
        op,
        nodes.join(","),
        format!("no Patroni node answered; last: {why}"),
    )
    .with_hint("is Patroni running and restapi.listen reachable from here?")
}

pub(crate) fn parse_cluster(v: &Value, node: &str) -> Result<Vec<PatroniMember>> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::Corrupt,
            "patroni.cluster",
            node,
            format!("unexpected /cluster answer: {why}"),
        )
    };
    let members = v
        .get("members")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no members array"))?;
    members
        .iter()
        .map(|m| {
            let name = m
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a member without a name"))?
                .to_string();
            let role = match m.get("role").and_then(Value::as_str).unwrap_or("") {
                "leader" | "master" | "primary" => Role::Leader,
                "replica" | "sync_standby" | "quorum_standby" => Role::Replica,
                _ => Role::Other,
            };
            let state = m
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string();
            // Patroni reports lag as a number of bytes, or the string "unknown" when it cannot tell.
            let lag_bytes = m.get("lag").and_then(Value::as_u64);
            let timeline = m.get("timeline").and_then(Value::as_u64);
            let api_url = m
                .get("api_url")
                .and_then(Value::as_str)
                .map(|u| u.trim_end_matches('/').trim_end_matches("/patroni").to_string());
            Ok(PatroniMember {
                member: Member {
                    name,
                    role,
                    state,
                    lag_bytes: if role == Role::Leader { None } else { lag_bytes },
                    timeline,
                },
                api_url,
                host: m.get("host").and_then(Value::as_str).map(str::to_string),
                port: m
                    .get("port")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok()),
            })
        })
        .collect()
}

fn parse_history(v: &Value, node: &str) -> Result<Vec<PatroniHistoryEntry>> {
    let bad = || {
        Error::new(
            ErrorKind::Corrupt,
            "patroni.history",
            node,
            "unexpected /history answer",
        )
    };
    v.as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|row| {
            let row = row.as_array().ok_or_else(bad)?;
            Ok(PatroniHistoryEntry {
                timeline: row.first().and_then(Value::as_u64).ok_or_else(bad)?,
                lsn: row.get(1).and_then(Value::as_u64).unwrap_or(0),
                reason: row.get(2).and_then(Value::as_str).unwrap_or("").to_string(),
                timestamp: row.get(3).and_then(Value::as_str).map(str::to_string),
                new_leader: row.get(4).and_then(Value::as_str).map(str::to_string),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_of_patroni_3() {
        let v: Value = serde_json::from_str(
            r#"{"members":[{"name":"node1","role":"leader","state":"running","api_url":"http://127.0.0.1:8008/patroni","host":"127.0.0.1","port":5432,"timeline":2},
            {"name":"node2","role":"replica","state":"streaming","api_url":"http://127.0.0.1:8009/patroni","host":"127.0.0.1","port":5433,"timeline":2,"lag":"unknown"}],"scope":"x"}"#,
        )
        .unwrap();
        let ms = parse_cluster(&v, "n").unwrap();
        assert_eq!(ms[0].member.role, Role::Leader);
        assert_eq!(ms[0].api_url.as_deref(), Some("http://127.0.0.1:8008"));
        assert_eq!(ms[1].member.lag_bytes, None);
        assert_eq!(ms[1].port, Some(5433));
        assert!(parse_cluster(&serde_json::json!({}), "n").is_err());
    }

    #[test]
    fn refusals_keep_patrons_message() {
        let e = refusal(
            "patroni.switchover",
            "node1",
            412,
            "candidate name does not match\n",
        );
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert!(e.message().contains("412: candidate name does not match"));
        assert_eq!(refusal("x", "y", 503, "").kind(), ErrorKind::Unavailable);
    }
}
