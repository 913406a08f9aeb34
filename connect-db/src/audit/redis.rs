//! Redis's `protected-mode`, `requirepass` and `bind`.

use async_trait::async_trait;
use connect_core::audit::{AuditCheck, AuditSource, Finding, Severity};

use super::wider_than_loopback;
use crate::Redis;

/// Redis's three settings as `CONFIG GET` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedisSecurity {
    /// `protected-mode` is `yes`.
    pub(crate) protected_mode: bool,
    /// `requirepass` is set (its value is never kept).
    pub(crate) has_password: bool,
    /// `bind`.
    pub(crate) bind: String,
}

/// Judges Redis's settings.
pub(crate) fn judge_redis(s: &RedisSecurity, subject: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let wide = wider_than_loopback(&s.bind);
    let exposed = !wide.is_empty() || s.bind.trim().is_empty();
    if exposed {
        let on = if wide.is_empty() {
            "every address".to_string()
        } else {
            wide.join(", ")
        };
        findings.push(Finding::weak(
            AuditCheck::RedisBind,
            Severity::High,
            subject,
            format!("Redis listens on {on} (bind '{}')", s.bind),
            "bind 127.0.0.1 -::1 in redis.conf (the app reaches it on the server), then restart Redis",
        ));
    }
    if !s.has_password {
        findings.push(Finding::weak(
            AuditCheck::RedisRequirepass,
            if exposed { Severity::Critical } else { Severity::Medium },
            subject,
            "no password: whoever connects reads and writes every key (and CONFIG SET rewrites files as Redis)",
            "requirepass <long random secret> in redis.conf (or an ACL user), the same in connect.toml's \
             [redis] password and the app's REDIS_URL",
        ));
    }
    if !s.protected_mode {
        let severity = match (s.has_password, exposed) {
            (true, _) => Severity::Low,
            (false, false) => Severity::Medium,
            (false, true) => Severity::Critical,
        };
        findings.push(Finding::weak(
            AuditCheck::RedisProtectedMode,
            severity,
            subject,
            "protected-mode is off: without a password Redis answers connections from other machines too",
            "protected-mode yes in redis.conf (CONFIG SET protected-mode yes takes effect at once)",
        ));
    }
    findings
}

impl Redis {
    async fn security(&self) -> connect_core::Result<RedisSecurity> {
        let get = |key: &'static str| async move {
            self.config_get(key).await.map_err(|e| match e.hint() {
                // Not reaching Redis has its own fix; a refused CONFIG has this one.
                Some(_) => e,
                None => e.with_hint(
                    "CONFIG may be renamed or denied to this user: audit with a user allowed CONFIG GET",
                ),
            })
        };
        Ok(RedisSecurity {
            protected_mode: get("protected-mode").await? == "yes",
            has_password: !get("requirepass").await?.is_empty(),
            bind: get("bind").await?,
        })
    }
}

#[async_trait]
impl AuditSource for Redis {
    fn audit_target(&self) -> String {
        self.target().to_string()
    }

    async fn audit(&self) -> Vec<Finding> {
        let target = self.target().to_string();
        match self.security().await {
            Ok(s) => judge_redis(&s, &target),
            Err(e) => [
                AuditCheck::RedisBind,
                AuditCheck::RedisRequirepass,
                AuditCheck::RedisProtectedMode,
            ]
            .into_iter()
            .map(|c| Finding::not_checked(c, &target, &e))
            .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_weaknesses_weigh_more_when_exposed() {
        let weak = RedisSecurity {
            protected_mode: false,
            has_password: false,
            bind: "127.0.0.1 -::1".into(),
        };
        let f = judge_redis(&weak, "redis");
        let checks: Vec<AuditCheck> = f.iter().map(|f| f.check).collect();
        assert_eq!(
            checks,
            [AuditCheck::RedisRequirepass, AuditCheck::RedisProtectedMode]
        );
        let exposed = RedisSecurity {
            bind: "* -::*".into(),
            ..weak
        };
        let f = judge_redis(&exposed, "redis");
        assert_eq!(f.len(), 3);
        assert!(f.iter().all(|f| f.severity >= Severity::High));
        let hard = RedisSecurity {
            protected_mode: true,
            has_password: true,
            bind: "127.0.0.1".into(),
        };
        assert_eq!(judge_redis(&hard, "redis"), vec![]);
    }
}
