//! The reads the sampler and the deploy's watch share, so what an operator sees is what a deploy judged.

use std::collections::BTreeMap;

use crate::error::{Error, ErrorKind, Result};
use crate::model::{Color, Topology};
use crate::router::{ServerFigures, TrafficRouter};

/// Every color's per-server counters, in one router call. A server of the topology the router does not
/// count is [`ErrorKind::NotFound`].
pub async fn read_traffic(
    router: &dyn TrafficRouter,
    topology: &Topology,
) -> Result<BTreeMap<Color, ServerFigures>> {
    let mut figures = router.figures().await?;
    let mut by_color = BTreeMap::new();
    for color in [Color::Blue, Color::Green] {
        let server = &topology.slot(color).server;
        let at = figures.iter().position(|f| &f.name == server).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "metrics.traffic",
                format!("{}/{server}", router.backend()),
                "the router counts no such server",
            )
            .with_hint("the topology's server names must be the HAProxy backend's")
        })?;
        by_color.insert(color, figures.swap_remove(at));
    }
    Ok(by_color)
}

/// What a server answered between two readings of its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrafficDelta {
    /// Responses of every class.
    pub responses: u64,
    /// Of those, 5xx.
    pub responses_5xx: u64,
}

impl TrafficDelta {
    /// From `earlier` to `later`. HAProxy's counters restart from zero when it reloads: then everything
    /// `later` counted happened since.
    pub fn between(earlier: &ServerFigures, later: &ServerFigures) -> TrafficDelta {
        if later.responses < earlier.responses {
            TrafficDelta {
                responses: later.responses,
                responses_5xx: later.responses_5xx,
            }
        } else {
            TrafficDelta {
                responses: later.responses - earlier.responses,
                responses_5xx: later.responses_5xx.saturating_sub(earlier.responses_5xx),
            }
        }
    }

    /// The 5xx share in percent, 0 without responses.
    pub fn rate_5xx_percent(&self) -> f64 {
        percent(self.responses_5xx, self.responses)
    }
}

/// `part` of `whole` in percent, 0 when `whole` is 0.
pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(responses: u64, responses_5xx: u64) -> ServerFigures {
        ServerFigures {
            name: "app1".into(),
            responses,
            responses_5xx,
            ..ServerFigures::default()
        }
    }

    #[test]
    fn a_delta_counts_what_happened_between_two_readings() {
        let d = TrafficDelta::between(&figures(100, 2), &figures(300, 12));
        assert_eq!((d.responses, d.responses_5xx), (200, 10));
        assert_eq!(d.rate_5xx_percent(), 5.0);
    }

    #[test]
    fn counters_that_restarted_count_from_zero() {
        let d = TrafficDelta::between(&figures(1000, 50), &figures(40, 4));
        assert_eq!((d.responses, d.responses_5xx), (40, 4));
        assert_eq!(TrafficDelta::default().rate_5xx_percent(), 0.0);
    }
}
