//! [`Guarded`] for [`TrafficRouter`]: the provided operations are delegated, so a backend's own switch
//! (HAProxy's three round trips) is what runs, bounded by its deadline.

use std::time::Duration;

use async_trait::async_trait;

use super::{Guarded, Repeat};
use crate::error::Result;
use crate::router::{AdminState, ServerFigures, ServerStatus, SwitchReport, TrafficRouter};

#[async_trait]
impl<T: TrafficRouter + ?Sized> TrafficRouter for Guarded<T> {
    fn backend(&self) -> &str {
        self.inner.backend()
    }

    async fn servers(&self) -> Result<Vec<ServerStatus>> {
        self.call("router.servers", self.inner.backend(), Repeat::Safe, || {
            self.inner.servers()
        })
        .await
    }

    async fn set_state(&self, server: &str, state: AdminState) -> Result<()> {
        self.call("router.set_state", server, Repeat::Safe, || {
            self.inner.set_state(server, state)
        })
        .await
    }

    async fn set_states(&self, servers: &[String], state: AdminState) -> Result<()> {
        let target = servers.join(",");
        self.call("router.set_states", &target, Repeat::Safe, || {
            self.inner.set_states(servers, state)
        })
        .await
    }

    async fn set_weight(&self, server: &str, weight: u32) -> Result<()> {
        self.call("router.set_weight", server, Repeat::Safe, || {
            self.inner.set_weight(server, weight)
        })
        .await
    }

    async fn set_address(&self, server: &str, address: &str, port: u16) -> Result<()> {
        self.call("router.set_address", server, Repeat::Safe, || {
            self.inner.set_address(server, address, port)
        })
        .await
    }

    async fn figures(&self) -> Result<Vec<ServerFigures>> {
        self.call("router.figures", self.inner.backend(), Repeat::Safe, || {
            self.inner.figures()
        })
        .await
    }

    // Setting the page on or off is set-to-a-value: repeating it is safe.
    async fn set_maintenance(&self, on: bool) -> Result<()> {
        self.call(
            "router.set_maintenance",
            self.inner.backend(),
            Repeat::Safe,
            || self.inner.set_maintenance(on),
        )
        .await
    }

    async fn maintenance(&self) -> Result<bool> {
        self.call("router.maintenance", self.inner.backend(), Repeat::Safe, || {
            self.inner.maintenance()
        })
        .await
    }

    async fn server(&self, server: &str) -> Result<ServerStatus> {
        self.call("router.server", server, Repeat::Safe, || {
            self.inner.server(server)
        })
        .await
    }

    // The waits poll until their deadline and already treat a lost read as "not yet": a second attempt would
    // only overrun the deadline.
    async fn wait_live(&self, server: &str, deadline: Duration) -> Result<ServerStatus> {
        let limit = self.policy.beyond(deadline);
        self.call_within("router.wait_live", server, limit, Repeat::Never, || {
            self.inner.wait_live(server, deadline)
        })
        .await
    }

    async fn wait_drained(&self, server: &str, deadline: Duration) -> Result<ServerStatus> {
        let limit = self.policy.beyond(deadline);
        self.call_within("router.wait_drained", server, limit, Repeat::Never, || {
            self.inner.wait_drained(server, deadline)
        })
        .await
    }

    async fn switch(&self, from: Option<&str>, to: &str, deadline: Duration) -> Result<SwitchReport> {
        let limit = self.policy.beyond(deadline);
        self.call_within("router.switch", to, limit, Repeat::Never, || {
            self.inner.switch(from, to, deadline)
        })
        .await
    }

    async fn set_states_together(
        &self,
        ready: &[String],
        drain: &[String],
        deadline: Duration,
    ) -> Result<Vec<ServerStatus>> {
        let limit = self.policy.beyond(deadline);
        let target = ready.join(",");
        self.call_within(
            "router.set_states_together",
            &target,
            limit,
            Repeat::Never,
            || self.inner.set_states_together(ready, drain, deadline),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::error::ErrorKind;
    use crate::layers::CallPolicy;
    use crate::memory::MemoryRouter;

    #[tokio::test(start_paused = true)]
    async fn retryable_errors_of_repeatable_calls_are_retried() {
        let router = MemoryRouter::new("be_app");
        router.add_server("app1", "127.0.0.1:3000");
        router
            .faults()
            .fail_times("router.servers", ErrorKind::Unavailable, 2);
        let guarded = Guarded::new(router.clone(), CallPolicy::default());
        assert_eq!(
            guarded.servers().await.unwrap().len(),
            1,
            "third attempt succeeds"
        );

        router
            .faults()
            .fail_times("router.servers", ErrorKind::Unavailable, 3);
        assert_eq!(
            guarded.servers().await.unwrap_err().kind(),
            ErrorKind::Unavailable,
            "retries are bounded"
        );

        router.faults().clear("router.servers");
        router
            .faults()
            .fail_times("router.set_state", ErrorKind::NotFound, 1);
        let e = guarded.set_state("app1", AdminState::Ready).await.unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::NotFound,
            "a non-retryable error is returned at once"
        );
    }

    /// A router with its own switch, as HAProxy has, that takes `takes` and counts its calls.
    #[derive(Debug)]
    struct OwnSwitch {
        memory: MemoryRouter,
        takes: Duration,
        switches: AtomicU32,
    }

    #[async_trait]
    impl TrafficRouter for OwnSwitch {
        fn backend(&self) -> &str {
            self.memory.backend()
        }
        async fn servers(&self) -> Result<Vec<ServerStatus>> {
            self.memory.servers().await
        }
        async fn set_state(&self, server: &str, state: AdminState) -> Result<()> {
            self.memory.set_state(server, state).await
        }
        async fn set_weight(&self, server: &str, weight: u32) -> Result<()> {
            self.memory.set_weight(server, weight).await
        }
        async fn set_address(&self, server: &str, address: &str, port: u16) -> Result<()> {
            self.memory.set_address(server, address, port).await
        }
        async fn switch(&self, from: Option<&str>, to: &str, deadline: Duration) -> Result<SwitchReport> {
            self.switches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.takes).await;
            self.memory.switch(from, to, deadline).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_backends_own_switch_runs_bounded_by_its_deadline() {
        let memory = MemoryRouter::new("be_app");
        memory.add_server("app1", "127.0.0.1:3000");
        memory.add_server("app2", "127.0.0.1:3001");
        memory.set_state("app1", AdminState::Ready).await.unwrap();
        let own = Arc::new(OwnSwitch {
            memory: memory.clone(),
            // Far beyond the call timeout, within the switch's deadline.
            takes: Duration::from_secs(25),
            switches: AtomicU32::new(0),
        });
        let dyn_router: Arc<dyn TrafficRouter> = own.clone();
        let guarded = Guarded::shared(dyn_router, CallPolicy::default());
        let report = guarded
            .switch(Some("app1"), "app2", Duration::from_secs(30))
            .await
            .expect("a switch within its deadline is not cut by the 10 s call timeout");
        assert_eq!(
            (report.live.as_str(), report.drained.as_slice()),
            ("app2", &["app1".to_string()][..])
        );
        assert_eq!(
            own.switches.load(Ordering::SeqCst),
            1,
            "the override ran, through the Arc<dyn>"
        );

        let e = guarded
            .switch(Some("app2"), "app1", Duration::from_secs(5))
            .await
            .expect_err("25 s is past a 5 s deadline plus the 10 s margin");
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.to_string().contains("no answer within 15s"), "{e}");
        assert_eq!(
            own.switches.load(Ordering::SeqCst),
            2,
            "a switch is never repeated"
        );
    }
}
