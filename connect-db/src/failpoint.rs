//! Failure points: places in a long operation where a test can stop it, as a crash would, to show that the
//! next call repairs what was left. Compiled only with the `testing` feature; without it [`hit`] is nothing.

#[cfg(feature = "testing")]
mod armed {
    use std::sync::Mutex;

    use tokio::sync::oneshot;

    type Armed = Vec<(String, String, oneshot::Sender<()>)>;
    static ARMED: Mutex<Armed> = Mutex::new(Vec::new());

    /// Arms `point` for `key` (a database name): the next operation that reaches it signals the returned
    /// receiver and then never goes on. Dropping that operation's future is then the crash.
    pub fn arm(point: &str, key: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        ARMED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((point.to_string(), key.to_string(), tx));
        rx
    }

    pub(crate) async fn hit(point: &str, key: &str) {
        let tx = {
            let mut armed = ARMED.lock().unwrap_or_else(|p| p.into_inner());
            armed
                .iter()
                .position(|(p, k, _)| p == point && k == key)
                .map(|i| armed.remove(i).2)
        };
        if let Some(tx) = tx {
            let _ = tx.send(());
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(feature = "testing")]
pub use armed::arm;
#[cfg(feature = "testing")]
pub(crate) use armed::hit;

/// Without the `testing` feature a failure point is nothing.
#[cfg(not(feature = "testing"))]
pub(crate) async fn hit(_point: &str, _key: &str) {}
