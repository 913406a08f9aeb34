//! [`Guarded`] for [`Host`]: file transfers are bounded by their progress, not by their length, so a big
//! upload over a slow link is never cut while bytes move, and a stalled one is.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};
use tracing::Instrument;

use super::{Guarded, Repeat};
use crate::error::{Error, ErrorKind, Result};
use crate::host::{BoxReader, BoxStream, Command, DiskUsage, Endpoint, Host, Output, PutOptions};

#[async_trait]
impl<T: Host + ?Sized> Host for Guarded<T> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn run(&self, command: &Command) -> Result<Output> {
        // An unknown program may not be idempotent: it runs once, whatever happens to its answer.
        let target = command.argv.first().map_or("", String::as_str);
        self.call("host.run", target, Repeat::Never, || self.inner.run(command))
            .await
    }

    async fn put_file(&self, path: &str, data: BoxReader, options: PutOptions) -> Result<u64> {
        // The data stream is consumed by the first attempt, so there is no second one.
        let idle = self.policy.timeout;
        let last = Arc::new(Mutex::new(Instant::now()));
        let data: BoxReader = Box::pin(Progress {
            inner: data,
            last: Arc::clone(&last),
        });
        let put = self.inner.put_file(path, data, options);
        until_stalled(put, &last, idle, path)
            .instrument(tracing::debug_span!(
                "backend",
                operation = "host.put_file",
                target = path
            ))
            .await
    }

    async fn get_file(&self, path: &str) -> Result<BoxReader> {
        let reader = self
            .call("host.get_file", path, Repeat::Safe, || self.inner.get_file(path))
            .await?;
        Ok(Box::pin(Idle::new(reader, self.policy.timeout, path)))
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        // Once renamed, `from` is gone: a second rename would report NotFound for a success.
        self.call("host.rename", from, Repeat::Never, || self.inner.rename(from, to))
            .await
    }

    async fn remove_file(&self, path: &str) -> Result<()> {
        // Once removed, a second remove is NotFound.
        self.call("host.remove_file", path, Repeat::Never, || {
            self.inner.remove_file(path)
        })
        .await
    }

    async fn disk_usage(&self, path: &str) -> Result<DiskUsage> {
        self.call("host.disk_usage", path, Repeat::Safe, || {
            self.inner.disk_usage(path)
        })
        .await
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<BoxStream> {
        // Opening is bounded; the stream's exchanges are the protocol client's to bound.
        let target = endpoint.to_string();
        self.call("host.connect", &target, Repeat::Safe, || {
            self.inner.connect(endpoint)
        })
        .await
    }
}

/// Runs an upload until it ends, or until its data stream has not been read for `idle`.
async fn until_stalled<F>(put: F, last: &Mutex<Instant>, idle: Duration, path: &str) -> Result<u64>
where
    F: Future<Output = Result<u64>>,
{
    tokio::pin!(put);
    loop {
        let stalled_at = *lock(last) + idle;
        tokio::select! {
            done = &mut put => return done,
            () = tokio::time::sleep_until(stalled_at) => {
                // Bytes may have moved while this slept: only a full `idle` without any is a stall.
                if *lock(last) + idle <= Instant::now() {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        "host.put_file",
                        path,
                        format!("no progress for {idle:?}"),
                    ));
                }
            }
        }
    }
}

fn lock(last: &Mutex<Instant>) -> std::sync::MutexGuard<'_, Instant> {
    last.lock().unwrap_or_else(|p| p.into_inner())
}

/// A reader that records when it last gave bytes (or its end).
struct Progress {
    inner: BoxReader,
    last: Arc<Mutex<Instant>>,
}

impl AsyncRead for Progress {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = self.inner.as_mut().poll_read(cx, buf);
        if polled.is_ready() {
            *lock(&self.last) = Instant::now();
        }
        polled
    }
}

/// A reader that fails with [`io::ErrorKind::TimedOut`] when a read waits `idle` for its bytes. The wait
/// starts when the consumer asks, so a slow consumer is not mistaken for a silent peer.
struct Idle {
    inner: BoxReader,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    waiting: bool,
    path: String,
}

impl Idle {
    fn new(inner: BoxReader, idle: Duration, path: &str) -> Idle {
        Idle {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
            path: path.to_string(),
        }
    }
}

impl AsyncRead for Idle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.waiting {
            this.timer.as_mut().reset(Instant::now() + this.idle);
            this.waiting = true;
        }
        if let Poll::Ready(r) = this.inner.as_mut().poll_read(cx, buf) {
            this.waiting = false;
            return Poll::Ready(r);
        }
        match this.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no byte of {} for {:?}", this.path, this.idle),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::host::HostExt;
    use crate::layers::CallPolicy;
    use crate::memory::MemoryHost;

    fn policy() -> CallPolicy {
        CallPolicy {
            timeout: Duration::from_secs(5),
            ..CallPolicy::default()
        }
    }

    /// A source that gives `chunks` chunks of 1 KiB, one every `every`, then ends, or stalls when `stall`.
    fn trickle(chunks: usize, every: Duration, stall: bool) -> BoxReader {
        let (mut tx, rx) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            for _ in 0..chunks {
                // The pace of a slow link, simulated on the paused clock.
                tokio::time::sleep(every).await;
                if tx.write_all(&[7u8; 1024]).await.is_err() {
                    return;
                }
            }
            if stall {
                std::future::pending::<()>().await;
            }
        });
        Box::pin(rx)
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_upload_that_moves_is_not_cut() {
        let host = MemoryHost::new("deploy@prod");
        let guarded = Guarded::new(host.clone(), policy());
        let t = Instant::now();
        let n = guarded
            .put_file(
                "/srv/big",
                trickle(60, Duration::from_secs(1), false),
                PutOptions::default(),
            )
            .await
            .expect("a minute of upload, a byte every second: never 5 s without progress");
        assert_eq!(n, 60 * 1024);
        assert!(t.elapsed() >= Duration::from_secs(60));
        assert_eq!(
            host.read_file("/srv/big").await.unwrap().unwrap().len(),
            60 * 1024
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_upload_times_out() {
        let host = MemoryHost::new("deploy@prod");
        let guarded = Guarded::new(host.clone(), policy());
        let t = Instant::now();
        let e = guarded
            .put_file(
                "/srv/big",
                trickle(3, Duration::from_secs(1), true),
                PutOptions::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.to_string().contains("no progress for 5s"), "{e}");
        assert_eq!(t.elapsed(), Duration::from_secs(3 + 5), "5 s after the last byte");
        assert!(host.files().is_empty(), "nothing was written");
    }

    #[tokio::test(start_paused = true)]
    async fn a_download_fails_when_its_bytes_stop() {
        /// A host whose files give a few bytes, then nothing.
        #[derive(Debug)]
        struct Stalling(MemoryHost);

        #[async_trait]
        impl Host for Stalling {
            fn name(&self) -> &str {
                self.0.name()
            }
            async fn run(&self, command: &Command) -> Result<Output> {
                self.0.run(command).await
            }
            async fn put_file(&self, path: &str, data: BoxReader, options: PutOptions) -> Result<u64> {
                self.0.put_file(path, data, options).await
            }
            async fn get_file(&self, _: &str) -> Result<BoxReader> {
                Ok(trickle(2, Duration::from_secs(1), true))
            }
            async fn rename(&self, from: &str, to: &str) -> Result<()> {
                self.0.rename(from, to).await
            }
            async fn remove_file(&self, path: &str) -> Result<()> {
                self.0.remove_file(path).await
            }
            async fn disk_usage(&self, path: &str) -> Result<DiskUsage> {
                self.0.disk_usage(path).await
            }
            async fn connect(&self, endpoint: &Endpoint) -> Result<BoxStream> {
                self.0.connect(endpoint).await
            }
        }

        let guarded = Guarded::new(Stalling(MemoryHost::new("deploy@prod")), policy());
        let mut reader = guarded.get_file("/srv/big").await.unwrap();
        let mut buf = Vec::new();
        let e = reader.read_to_end(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert_eq!(buf.len(), 2 * 1024, "what came before the stall was delivered");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_of_a_download_is_not_a_stall() {
        let host = MemoryHost::new("deploy@prod");
        host.write_file("/srv/f", vec![1; 4096], PutOptions::default())
            .await
            .unwrap();
        let guarded = Guarded::new(host, policy());
        let mut reader = guarded.get_file("/srv/f").await.unwrap();
        let mut byte = [0u8; 1];
        reader.read_exact(&mut byte).await.unwrap();
        // The consumer is busy elsewhere for longer than the idle bound.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let mut rest = Vec::new();
        reader
            .read_to_end(&mut rest)
            .await
            .expect("the source never kept the reader waiting");
        assert_eq!(rest.len(), 4095);
    }

    #[tokio::test(start_paused = true)]
    async fn programs_and_removals_are_not_retried_and_reads_are() {
        let host = MemoryHost::new("deploy@prod");
        let guarded = Guarded::new(host.clone(), policy());
        host.faults().fail_times("host.run", ErrorKind::Unavailable, 1);
        let e = guarded.run(&Command::new(["true"])).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "the program is not run again");
        guarded
            .run(&Command::new(["true"]))
            .await
            .expect("the fault was used up by one call");

        host.write_file("/srv/f", b"x".to_vec(), PutOptions::default())
            .await
            .unwrap();
        host.faults()
            .fail_times("host.remove_file", ErrorKind::Unavailable, 1);
        assert_eq!(
            guarded.remove_file("/srv/f").await.unwrap_err().kind(),
            ErrorKind::Unavailable
        );
        assert_eq!(host.files(), ["/srv/f"], "remove was not sent again");

        host.faults()
            .fail_times("host.disk_usage", ErrorKind::Unavailable, 2);
        guarded.disk_usage("/srv").await.expect("a read is asked again");
    }

    /// A host that never answers.
    #[derive(Debug)]
    struct Silent;

    #[async_trait]
    impl Host for Silent {
        fn name(&self) -> &str {
            "silent"
        }
        async fn run(&self, _: &Command) -> Result<Output> {
            std::future::pending().await
        }
        async fn put_file(&self, _: &str, _: BoxReader, _: PutOptions) -> Result<u64> {
            std::future::pending().await
        }
        async fn get_file(&self, _: &str) -> Result<BoxReader> {
            std::future::pending().await
        }
        async fn rename(&self, _: &str, _: &str) -> Result<()> {
            std::future::pending().await
        }
        async fn remove_file(&self, _: &str) -> Result<()> {
            std::future::pending().await
        }
        async fn disk_usage(&self, _: &str) -> Result<DiskUsage> {
            std::future::pending().await
        }
        async fn connect(&self, _: &Endpoint) -> Result<BoxStream> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_host_times_out() {
        let guarded = Guarded::new(Silent, policy());
        let t = Instant::now();
        let e = guarded.run(&Command::new(["true"])).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(
            t.elapsed(),
            Duration::from_secs(5),
            "one attempt: a program is not run twice"
        );

        let t = Instant::now();
        let e = guarded.disk_usage("/").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(
            t.elapsed() >= Duration::from_secs(15),
            "three attempts of 5 s: {:?}",
            t.elapsed()
        );

        let e = guarded
            .put_file(
                "/srv/f",
                Box::pin(std::io::Cursor::new(vec![0; 10])),
                PutOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no progress"), "{e}");
    }
}
