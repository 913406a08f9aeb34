//! The engine's wall clock, read through tokio's time.
//!
//! Lock leases are judged by comparing unix times, so the clock must be wall time; but under
//! `#[tokio::test(start_paused = true)]` the engine's deadlines run on tokio's paused clock, and a test that
//! lets a lease expire advances that clock, not the system's. Reading wall time as "the system's time when
//! first asked, plus tokio's elapsed time since" gives both: real time in a real process (tokio's clock is the
//! monotonic clock there), simulated time in a simulation, and one consistent clock for every `Deployer` of
//! the process.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

static BASE: OnceLock<(SystemTime, std::time::Instant)> = OnceLock::new();

/// Unix milliseconds now.
pub(crate) fn now_unix_ms() -> u64 {
    let (base_wall, base_mono) = *BASE.get_or_init(|| (SystemTime::now(), std::time::Instant::now()));
    let mono = tokio::time::Instant::now().into_std();
    let wall = match mono.checked_duration_since(base_mono) {
        Some(ahead) => base_wall + ahead,
        // A paused runtime built before the first call starts its clock a little earlier.
        None => base_wall - base_mono.duration_since(mono),
    };
    wall.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn paused_time_moves_the_clock() {
        let before = super::now_unix_ms();
        tokio::time::sleep(Duration::from_secs(90)).await;
        let after = super::now_unix_ms();
        assert!(after - before >= 90_000, "{before} -> {after}");
    }
}
