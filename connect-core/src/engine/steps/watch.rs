//! The watch after the switch: for a window, the new color's 5xx share and response time (the
//! router's per-server counters), its container's restarts and its error lines are sampled and compared with
//! the old color's figures from before the switch; a breach fails the step, and the operation's undo puts
//! traffic back on the warm standby. Waiting is tokio's time, so a paused-time scenario costs no wall time.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::engine::Deployer;
use crate::engine::checks::is_error_line;
use crate::engine::events::{Event, Events};
use crate::error::{Error, ErrorKind, Result};
use crate::metrics::percent;
use crate::metrics::{TrafficDelta, read_traffic};
use crate::model::Color;
use crate::router::ServerFigures;
use crate::vocabulary::Step;

/// The old color's figures from before the switch, which the watched color is held to.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Baseline {
    /// Its 5xx share in percent since the router started counting.
    pub(crate) rate_5xx_percent: f64,
    /// Its average response time (ms).
    pub(crate) response_time_ms: u64,
    /// Error lines it logged in one window before the switch.
    pub(crate) error_lines: usize,
}

/// One reading of the watched color, relative to the watch's start.
#[derive(Debug, Clone, Default)]
struct Sample {
    responses: u64,
    responses_5xx: u64,
    rate_5xx_percent: f64,
    response_time_ms: u64,
    restarts: u32,
    error_lines: usize,
}

/// Where a watch looks.
pub(crate) struct Watched<'a> {
    pub(crate) events: &'a Events,
    pub(crate) color: Color,
    /// Its share of the traffic in percent.
    pub(crate) share: u8,
    pub(crate) window: Duration,
    pub(crate) baseline: &'a Baseline,
}

impl Deployer {
    /// The figures `old` shows before traffic leaves it; zeros when there is no old color (a first deploy
    /// is held to the thresholds alone).
    pub(crate) async fn watch_baseline(&self, old: Option<Color>) -> Result<Baseline> {
        let Some(old) = old else {
            return Ok(Baseline::default());
        };
        let slot = self.config.topology.slot(old);
        let figures = self.color_figures(old).await?;
        let window = self.config.policy.watch.window;
        let since = SystemTime::now()
            .checked_sub(window)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let error_lines = match self.backends.runtime.logs_since(&slot.container, since).await {
            Ok(lines) => lines.iter().filter(|l| is_error_line(l)).count(),
            // No log of the old color: the new one is held to the threshold alone.
            Err(e) if e.kind() == ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(Baseline {
            rate_5xx_percent: percent(figures.responses_5xx, figures.responses),
            response_time_ms: figures.response_time_ms,
            error_lines,
        })
    }

    /// A color's counters, read as the metrics sampler reads them ([`read_traffic`]), so what an operator
    /// watching sees is what the deploy judged.
    async fn color_figures(&self, color: Color) -> Result<ServerFigures> {
        let mut traffic = read_traffic(self.backends.router.as_ref(), &self.config.topology).await?;
        traffic.remove(&color).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "deploy.watch",
                self.config.topology.slot(color).server.clone(),
                "the router counts no such server",
            )
        })
    }

    /// Watches `w.color` for `w.window`, one sample every `policy.watch.interval`, each emitted as
    /// [`Event::WatchSample`]. A breach is an [`ErrorKind::Unhealthy`] error with the figures. A sample that
    /// cannot be read is a warning; a watch that read fewer than half its samples fails, since it saw too
    /// little to vouch for the release.
    pub(crate) async fn watch(&self, w: Watched<'_>) -> Result<String> {
        let policy = &self.config.policy.watch;
        let slot = self.config.topology.slot(w.color);
        let started = Instant::now();
        let since = SystemTime::now();
        let first = self.color_figures(w.color).await?;
        let restarts_before = self.restarts(&slot.container).await?;
        let end = started + w.window;
        let (mut read, mut missed) = (0u32, 0u32);
        let mut last = Sample::default();
        let mut next = started;
        while next < end {
            next = (next + policy.interval).min(end);
            tokio::time::sleep_until(next).await;
            let sample = match self
                .sample(w.color, &slot.container, &first, restarts_before, since)
                .await
            {
                Ok(sample) => sample,
                Err(e) => {
                    missed += 1;
                    w.events.warn(
                        Step::Watch,
                        format!("a sample of {} could not be read: {}", w.color, e.summary()),
                    );
                    continue;
                }
            };
            read += 1;
            let breach = self.breach(&sample, w.baseline);
            w.events.emit(Event::WatchSample {
                color: w.color,
                share_percent: w.share,
                elapsed: started.elapsed(),
                responses: sample.responses,
                responses_5xx: sample.responses_5xx,
                rate_5xx_percent: sample.rate_5xx_percent,
                baseline_5xx_percent: w.baseline.rate_5xx_percent,
                response_time_ms: sample.response_time_ms,
                baseline_response_time_ms: w.baseline.response_time_ms,
                restarts: sample.restarts,
                error_lines: sample.error_lines,
                breach: breach.clone(),
            });
            if let Some(why) = breach {
                return Err(Error::new(
                    ErrorKind::Unhealthy,
                    "deploy.watch",
                    &slot.server,
                    format!(
                        "{} at {} % of the traffic crossed a threshold {:.1} s into the watch: {why}",
                        w.color,
                        w.share,
                        started.elapsed().as_secs_f64()
                    ),
                )
                .with_hint(
                    "the release was taken out of traffic; read its logs and the watch's samples, fix it and \
                     deploy again (or loosen policy.watch if the threshold is wrong)",
                ));
            }
            last = sample;
        }
        if read < missed || read == 0 {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "deploy.watch",
                &slot.server,
                format!(
                    "only {read} of {} samples of {} could be read",
                    read + missed,
                    w.color
                ),
            )
            .with_hint("the router or the runtime did not answer; check them and deploy again"));
        }
        Ok(format!(
            "{} at {} % watched for {:.1} s: {} responses, {} 5xx ({:.1} %, before {:.1} %), {} ms (before {} \
             ms), {} restarts, {} error lines",
            w.color,
            w.share,
            w.window.as_secs_f64(),
            last.responses,
            last.responses_5xx,
            last.rate_5xx_percent,
            w.baseline.rate_5xx_percent,
            last.response_time_ms,
            w.baseline.response_time_ms,
            last.restarts,
            last.error_lines
        ))
    }

    async fn restarts(&self, container: &str) -> Result<u32> {
        match self.backends.runtime.inspect(container).await? {
            Some(info) => Ok(info.restart_count),
            None => Err(Error::new(
                ErrorKind::NotFound,
                "deploy.watch",
                container,
                "the watched container is gone",
            )),
        }
    }

    async fn sample(
        &self,
        color: Color,
        container: &str,
        first: &ServerFigures,
        restarts_before: u32,
        since: SystemTime,
    ) -> Result<Sample> {
        let now = self.color_figures(color).await?;
        let delta = TrafficDelta::between(first, &now);
        let restarts = self.restarts(container).await?.saturating_sub(restarts_before);
        let lines = self.backends.runtime.logs_since(container, since).await?;
        Ok(Sample {
            responses: delta.responses,
            responses_5xx: delta.responses_5xx,
            rate_5xx_percent: delta.rate_5xx_percent(),
            response_time_ms: now.response_time_ms,
            restarts,
            error_lines: lines.iter().filter(|l| is_error_line(l)).count(),
        })
    }

    /// What crossed a threshold, in words with the figures.
    fn breach(&self, s: &Sample, base: &Baseline) -> Option<String> {
        let p = &self.config.policy.watch;
        let mut why = Vec::new();
        if s.responses >= p.min_responses
            && s.rate_5xx_percent > base.rate_5xx_percent + p.max_5xx_increase_percent
        {
            why.push(format!(
                "{} of {} responses were 5xx ({:.1} %, the old color {:.1} %, allowed +{:.1} points)",
                s.responses_5xx,
                s.responses,
                s.rate_5xx_percent,
                base.rate_5xx_percent,
                p.max_5xx_increase_percent
            ));
        }
        let floor = p.response_time_floor.as_millis() as u64;
        let allowed = (base.response_time_ms as f64 * p.max_response_time_factor) as u64;
        if s.response_time_ms > floor && s.response_time_ms > allowed {
            why.push(format!(
                "average response time {} ms (the old color {} ms, allowed {}x and at least {floor} ms)",
                s.response_time_ms, base.response_time_ms, p.max_response_time_factor
            ));
        }
        if s.restarts > p.max_restarts {
            why.push(format!(
                "{} container restarts (allowed {})",
                s.restarts, p.max_restarts
            ));
        }
        if s.error_lines > base.error_lines + p.max_error_lines_increase {
            why.push(format!(
                "{} error lines (the old color {} in as long before, allowed +{})",
                s.error_lines, base.error_lines, p.max_error_lines_increase
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}
