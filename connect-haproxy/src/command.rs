//! Typed runtime API commands and how their replies are judged.

use std::net::IpAddr;

use connect_core::router::AdminState;
use connect_core::{Error, ErrorKind, Result};

/// A server weight: absolute (0 to 256) or a percentage of the weight in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// `weight N`, 0 to 256.
    Absolute(u32),
    /// `weight N%` of the configured (initial) weight, 0 to 100.
    Percent(u32),
}

/// A command of the runtime API or the master CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `set server be/srv state ready|drain|maint`.
    SetState {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
        /// New state.
        state: AdminState,
    },
    /// `set server be/srv weight N|N%`.
    SetWeight {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
        /// New weight.
        weight: Weight,
    },
    /// `set server be/srv addr IP port P`.
    SetAddr {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
        /// New address.
        addr: IpAddr,
        /// New port.
        port: u16,
    },
    /// `enable health be/srv` or `disable health be/srv`.
    Health {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
        /// Checks on or off.
        enabled: bool,
    },
    /// `set server be/srv health down`: the server counts as down until its checks pass again (`rise` of
    /// them), whatever its last check said. Only for a server with checks: nothing else would bring it up.
    HealthDown {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
    },
    /// `add server be/srv IP:PORT [check inter …]`: a dynamic server, which starts in maintenance.
    AddServer {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
        /// Address.
        addr: IpAddr,
        /// Port.
        port: u16,
        /// Extra server keywords (`check`, `inter 2s`, `weight 100`), each validated as one word.
        options: Vec<String>,
    },
    /// `del server be/srv` (the server must be in maintenance).
    DelServer {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
    },
    /// `set map <map> <key> <value>` (the key must exist).
    SetMap {
        /// The map file as the configuration names it.
        map: String,
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// `add map <map> <key> <value>`.
    AddMap {
        /// The map file as the configuration names it.
        map: String,
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// `show map <map>`: the entries as `0x… key value` lines.
    ShowMap {
        /// The map file as the configuration names it.
        map: String,
    },
    /// `show stat`.
    ShowStat,
    /// `show servers state [backend]`.
    ShowServersState {
        /// Only this backend.
        backend: Option<String>,
    },
    /// Master CLI: `show proc`.
    ShowProc,
    /// Master CLI: `reload`.
    Reload,
}

/// Checks a proxy or server name: HAProxy's names are `[A-Za-z0-9_.:-]`; anything else could smuggle a
/// second command (`;`) or a keyword into the line.
pub(crate) fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "haproxy.command",
            name,
            format!("{what} name {name:?} is not a HAProxy name (letters, digits, `_.:-`)"),
        ))
    }
}

fn validate_option(option: &str) -> Result<()> {
    let ok = !option.is_empty()
        && option
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-' | '/' | '%'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "haproxy.add_server",
            option,
            "a server option must be one word of `[A-Za-z0-9_.:/%-]`",
        ))
    }
}

fn validate_map_word(what: &str, word: &str) -> Result<()> {
    let ok = !word.is_empty()
        && word.len() <= 1024
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-' | '/' | '#'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "haproxy.set_map",
            word,
            format!("a map {what} must be one word of `[A-Za-z0-9_.:/#-]`"),
        ))
    }
}

impl Command {
    /// `be/srv` of a server command.
    pub fn target(&self) -> String {
        match self {
            Command::SetState { backend, server, .. }
            | Command::SetWeight { backend, server, .. }
            | Command::SetAddr { backend, server, .. }
            | Command::Health { backend, server, .. }
            | Command::HealthDown { backend, server }
            | Command::AddServer { backend, server, .. }
            | Command::DelServer { backend, server } => format!("{backend}/{server}"),
            Command::SetMap { map, key, .. } | Command::AddMap { map, key, .. } => {
                format!("{map} {key}")
            }
            Command::ShowMap { map } => map.clone(),
            Command::ShowServersState { backend: Some(b) } => b.clone(),
            _ => String::new(),
        }
    }

    /// The operation's name in errors.
    pub fn operation(&self) -> &'static str {
        match self {
            Command::SetState { .. } => "haproxy.set_state",
            Command::SetWeight { .. } => "haproxy.set_weight",
            Command::SetAddr { .. } => "haproxy.set_address",
            Command::Health { .. } | Command::HealthDown { .. } => "haproxy.set_health",
            Command::AddServer { .. } => "haproxy.add_server",
            Command::DelServer { .. } => "haproxy.del_server",
            Command::SetMap { .. } | Command::AddMap { .. } => "haproxy.set_map",
            Command::ShowMap { .. } => "haproxy.show_map",
            Command::ShowStat => "haproxy.show_stat",
            Command::ShowServersState { .. } => "haproxy.show_servers_state",
            Command::ShowProc => "haproxy.show_proc",
            Command::Reload => "haproxy.reload",
        }
    }

    /// Whether this is a change (answered with nothing on success), rather than a `show`.
    pub fn is_set(&self) -> bool {
        !matches!(
            self,
            Command::ShowStat
                | Command::ShowServersState { .. }
                | Command::ShowProc
                | Command::Reload
                | Command::ShowMap { .. }
        )
    }

    /// The command line, validated.
    pub fn line(&self) -> Result<String> {
        let names = |backend: &str, server: &str| -> Result<()> {
            validate_name("backend", backend)?;
            validate_name("server", server)
        };
        Ok(match self {
            Command::SetState {
                backend,
                server,
                state,
            } => {
                names(backend, server)?;
                format!("set server {backend}/{server} state {state}")
            }
            Command::SetWeight {
                backend,
                server,
                weight,
            } => {
                names(backend, server)?;
                match *weight {
                    Weight::Absolute(w) if w <= 256 => {
                        format!("set server {backend}/{server} weight {w}")
                    }
                    Weight::Percent(p) if p <= 100 => {
                        format!("set server {backend}/{server} weight {p}%")
                    }
                    w => {
                        return Err(Error::invalid(
                            "haproxy.set_weight",
                            self.target(),
                            format!("weight {w:?} is out of range (0 to 256, or 0% to 100%)"),
                        ));
                    }
                }
            }
            Command::SetAddr {
                backend,
                server,
                addr,
                port,
            } => {
                names(backend, server)?;
                format!("set server {backend}/{server} addr {addr} port {port}")
            }
            Command::Health {
                backend,
                server,
                enabled,
            } => {
                names(backend, server)?;
                let verb = if *enabled { "enable" } else { "disable" };
                format!("{verb} health {backend}/{server}")
            }
            Command::HealthDown { backend, server } => {
                names(backend, server)?;
                format!("set server {backend}/{server} health down")
            }
            Command::AddServer {
                backend,
                server,
                addr,
                port,
                options,
            } => {
                names(backend, server)?;
                options.iter().try_for_each(|o| validate_option(o))?;
                let addr = match addr {
                    IpAddr::V4(a) => format!("{a}:{port}"),
                    IpAddr::V6(a) => format!("[{a}]:{port}"),
                };
                let mut line = format!("add server {backend}/{server} {addr}");
                for o in options {
                    line.push(' ');
                    line.push_str(o);
                }
                line
            }
            Command::DelServer { backend, server } => {
                names(backend, server)?;
                format!("del server {backend}/{server}")
            }
            Command::SetMap { map, key, value } | Command::AddMap { map, key, value } => {
                validate_map_word("map", map)?;
                validate_map_word("key", key)?;
                validate_map_word("value", value)?;
                let verb = if matches!(self, Command::SetMap { .. }) {
                    "set"
                } else {
                    "add"
                };
                format!("{verb} map {map} {key} {value}")
            }
            Command::ShowMap { map } => {
                validate_map_word("map", map)?;
                format!("show map {map}")
            }
            Command::ShowStat => "show stat".into(),
            Command::ShowServersState { backend } => match backend {
                Some(b) => {
                    validate_name("backend", b)?;
                    format!("show servers state {b}")
                }
                None => "show servers state".into(),
            },
            Command::ShowProc => "show proc".into(),
            Command::Reload => "reload".into(),
        })
    }

    /// Judges a reply: HAProxy answers errors in text (and socket tools exit 0 either way), so the words
    /// decide. Returns the reply's meaningful text on success.
    pub fn check_reply(&self, reply: &str) -> Result<String> {
        if self.is_set() {
            let mut info = Vec::new();
            for line in reply.lines().map(str::trim).filter(|l| !l.is_empty()) {
                if let Some(err) = line.strip_prefix("[err]:") {
                    return Err(self.error(err.trim()));
                }
                let text = ["[warning]:", "[notice]:", "[info]:", "[debug]:"]
                    .iter()
                    .find_map(|p| line.strip_prefix(p));
                match text {
                    Some(t) => info.push(t.trim().to_string()),
                    // An untagged line means the severity prefix was not understood: judge by the words.
                    None => {
                        if self.untagged_success(line) {
                            info.push(line.to_string());
                        } else {
                            return Err(self.error(line));
                        }
                    }
                }
            }
            return Ok(info.join("\n"));
        }
        let first = reply.lines().next().unwrap_or("").trim();
        // An empty map is one blank line; zero bytes means HAProxy closed without answering.
        let may_be_blank = matches!(self, Command::ShowMap { .. }) && !reply.is_empty();
        if reply.trim().is_empty() && !matches!(self, Command::Reload) && !may_be_blank {
            return Err(Error::new(
                ErrorKind::Corrupt,
                self.operation(),
                self.target(),
                "empty reply: HAProxy closed the connection without answering",
            )
            .with_retryable(true));
        }
        let known_error = first.starts_with("Unknown command")
            || first.starts_with("Unknown map")
            || first.starts_with("Permission denied")
            || first.starts_with("No such")
            || first.starts_with("Can't find");
        if known_error {
            return Err(self.error(first));
        }
        Ok(reply.to_string())
    }

    fn untagged_success(&self, line: &str) -> bool {
        matches!(self, Command::SetAddr { .. })
            && (line.starts_with("IP changed")
                || line.starts_with("no need to change")
                || line.starts_with("port changed"))
            || matches!(self, Command::AddServer { .. } | Command::DelServer { .. })
                && (line.starts_with("New server registered") || line.starts_with("Server deleted"))
    }

    /// An error reply as a typed error carrying HAProxy's words.
    pub fn error(&self, words: &str) -> Error {
        let lower = words.to_ascii_lowercase();
        let (kind, hint) = if lower.starts_with("no such")
            || lower.starts_with("can't find")
            || lower.starts_with("unknown map")
            || lower.starts_with("entry not found")
        {
            (
                ErrorKind::NotFound,
                "check the backend and server names against `show stat`",
            )
        } else if lower.contains("permission denied") {
            (
                ErrorKind::PermissionDenied,
                "the socket must be at admin level: `stats socket <path> mode 600 level admin`",
            )
        } else if lower.starts_with("unknown command") {
            (
                ErrorKind::Unsupported,
                "this HAProxy does not know the command (too old?), or the socket is not at admin level",
            )
        } else if lower.contains("already exists") {
            (ErrorKind::Conflict, "pick another server name")
        } else if lower.contains("maintenance") || lower.contains("still has") {
            (
                ErrorKind::Conflict,
                "put the server in maintenance first (`state maint`) and wait until it is drained",
            )
        } else {
            (ErrorKind::Refused, "read HAProxy's message above")
        };
        Error::new(kind, self.operation(), self.target(), words.to_string()).with_hint(hint)
    }
}
