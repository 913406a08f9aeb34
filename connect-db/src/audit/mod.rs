//! The hardening audit's checks that need this crate's clients: PostgreSQL's `listen_addresses` and
//! `pg_hba` trust lines (read from `pg_hba_file_rules`, the server's own parse of the file), and Redis's
//! `protected-mode`, `requirepass` and `bind`. Patroni's REST auth is `patroni::audit`. Each client is an
//! [`AuditSource`](connect_core::audit::AuditSource), so `connect_core::audit` runs them without importing
//! this crate; a check that cannot run is a "not checked" finding, never a pass.

mod postgres;
mod redis;

use connect_core::audit::is_loopback;

/// The addresses of a list (`listen_addresses`, Redis `bind`) that reach past loopback: `*`, `0.0.0.0`,
/// `::` or any other address. Redis's `-` prefix (optional address) is ignored.
pub(crate) fn wider_than_loopback(list: &str) -> Vec<String> {
    list.split([',', ' '])
        .map(|a| a.trim().trim_start_matches('-'))
        .filter(|a| !a.is_empty() && !is_loopback(a))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_wider_than_loopback() {
        assert_eq!(
            wider_than_loopback("localhost, 127.0.0.1,::1"),
            Vec::<String>::new()
        );
        assert_eq!(wider_than_loopback("*"), ["*"]);
        assert_eq!(wider_than_loopback("127.0.0.1 -::1"), Vec::<String>::new());
        // Any address but loopback's is wider; the wildcard stands for all of them (parsed, never contacted).
        assert_eq!(wider_than_loopback("127.0.0.1,0.0.0.0"), ["0.0.0.0"]);
    }
}
