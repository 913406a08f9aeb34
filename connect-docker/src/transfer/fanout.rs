//! One build machine shipping one image to many engines at once (a fleet's ship step, every host in
//! parallel): the image's archive is mapped once and streamed once for all of them.
//!
//! - Pass 1, the layer map (which archive path holds which layer, its digest and size), is read once per
//!   image id and kept for the last few images: the transfers that ask while it is being read wait for that
//!   one read. An image id names its content, so a kept map never goes stale; a failed read is not kept.
//! - Pass 2: transfers of the same image that run at the same time share one `docker save` stream, teed to
//!   each destination's own filter (each skips the layers its own destination has, compresses for its own
//!   engine). A transfer registers when it starts; the stream starts once every registered transfer is ready
//!   to send (or gone: already there, failed), or [`GATHER_WAIT`] after the first is ready, so a host slow to
//!   answer does not hold the others back for long (it then gets a stream of its own). Each destination has
//!   a bounded buffer, so the stream runs at the slowest destination's pace; a destination that fails drops
//!   out of the tee and the others go on. A transfer alone starts at once and gets the stream to itself, as
//!   before.
//!
//! The state lives behind an `Arc` in [`Docker`], so every clone of the build machine's `Docker` (each host's
//! `Docker` holds one) shares it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use connect_core::Result;
use futures::{Stream, StreamExt};
use tokio::sync::{OnceCell, mpsc, watch};

use super::archive::{ManifestEntry, io_err};
use crate::client::Docker;

/// How many images' layer maps are kept: a deploy ships one release, a fleet's hosts ask for the same one.
const LAYER_MAPS_KEPT: usize = 4;
/// Chunks of the archive buffered per destination (hyper's chunks: a few KiB to 16 KiB each).
const TEE_CHUNKS: usize = 64;
/// How long transfers ready to send wait for the others of their image that have not got there yet.
pub(crate) const GATHER_WAIT: Duration = Duration::from_secs(2);

/// Which archive path holds which layer: the manifest, and each layer path's sha256 and size.
#[derive(Debug)]
pub(super) struct LayerMap {
    pub(super) manifest: ManifestEntry,
    pub(super) digests: HashMap<String, String>,
    pub(super) sizes: HashMap<String, u64>,
}

/// How often an engine's image archives were read to send only missing layers ([`Docker::transfer_image`]),
/// counted over every clone of its [`Docker`]: what shows that a fleet's ship read the image once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportCounts {
    /// Archives read whole to map their layers (pass 1): once per image while it is among the last few.
    pub layer_maps: u64,
    /// Archives streamed to destinations (pass 2): one per group of transfers of an image that ran together.
    pub streams: u64,
    /// Destinations those streams fed.
    pub destinations: u64,
}

/// A chunk of the archive as each destination's filter reads it.
type Chunk = std::io::Result<Bytes>;

/// The archive as one destination receives it.
pub(super) type ArchiveStream = futures::stream::BoxStream<'static, Chunk>;

/// An image's layer map, once read (or while it is read).
type KeptMap = Arc<OnceCell<Arc<LayerMap>>>;

/// The shared state of one build machine (see the module docs).
#[derive(Default)]
pub(crate) struct ExportShare {
    layer_maps: Mutex<VecDeque<(String, KeptMap)>>,
    gathering: Mutex<HashMap<String, Arc<Gathering>>>,
    layer_maps_read: AtomicU64,
    streams: AtomicU64,
    destinations: AtomicU64,
}

impl std::fmt::Debug for ExportShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportShare")
            .field("counts", &self.counts())
            .finish()
    }
}

/// Transfers of one image waiting to share a stream.
struct Gathering {
    image_id: String,
    state: watch::Sender<Gather>,
}

#[derive(Default)]
struct Gather {
    /// Transfers registered that are not ready to send yet.
    waiting: usize,
    /// The ready ones' inlets.
    outlets: Vec<mpsc::Sender<Chunk>>,
    /// The stream has started: who comes now gets one of its own.
    started: bool,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ExportShare {
    pub(crate) fn counts(&self) -> ExportCounts {
        ExportCounts {
            layer_maps: self.layer_maps_read.load(Ordering::Relaxed),
            streams: self.streams.load(Ordering::Relaxed),
            destinations: self.destinations.load(Ordering::Relaxed),
        }
    }

    /// The image's layer map, read by `read` only when no transfer has it (or is reading it) already.
    pub(super) async fn layer_map<F, Fut>(&self, image_id: &str, read: F) -> Result<Arc<LayerMap>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<LayerMap>>,
    {
        let cell = {
            let mut maps = locked(&self.layer_maps);
            let cell = match maps.iter().position(|(id, _)| id == image_id) {
                // The most recent last, so the least recently shipped goes first.
                Some(i) => maps.remove(i).map(|(_, c)| c).unwrap_or_default(),
                None => Arc::new(OnceCell::new()),
            };
            maps.push_back((image_id.to_string(), Arc::clone(&cell)));
            while maps.len() > LAYER_MAPS_KEPT {
                maps.pop_front();
            }
            cell
        };
        cell.get_or_try_init(|| async {
            self.layer_maps_read.fetch_add(1, Ordering::Relaxed);
            read().await.map(Arc::new)
        })
        .await
        .cloned()
    }

    /// Registers a transfer of `image_id` that will stream it: the stream waits for it (see the module docs)
    /// until it asks for the archive ([`ExportTicket::archive`]) or is dropped.
    pub(super) fn register(self: &Arc<Self>, image_id: &str) -> ExportTicket {
        let mut gathering = locked(&self.gathering);
        let g = gathering
            .entry(image_id.to_string())
            .or_insert_with(|| {
                Arc::new(Gathering {
                    image_id: image_id.to_string(),
                    state: watch::Sender::new(Gather::default()),
                })
            })
            .clone();
        g.state.send_modify(|s| s.waiting += 1);
        ExportTicket {
            share: Arc::clone(self),
            gathering: Some(g),
        }
    }

    /// Starts the gathering's stream with the outlets it has, unless it started already.
    fn start(&self, g: &Arc<Gathering>, api: &bollard::Docker) {
        let outlets = {
            let mut gathering = locked(&self.gathering);
            // Under the map's lock, so no transfer registers with a gathering that has started.
            if gathering.get(&g.image_id).is_some_and(|x| Arc::ptr_eq(x, g)) {
                gathering.remove(&g.image_id);
            }
            let mut taken = None;
            g.state.send_if_modified(|s| {
                if s.started {
                    return false;
                }
                s.started = true;
                taken = Some(std::mem::take(&mut s.outlets));
                true
            });
            taken
        };
        let Some(outlets) = outlets.filter(|o| !o.is_empty()) else {
            return;
        };
        self.streams.fetch_add(1, Ordering::Relaxed);
        self.destinations
            .fetch_add(outlets.len() as u64, Ordering::Relaxed);
        let source = api.export_image(&g.image_id).map(|c| c.map_err(io_err));
        // Its own task: the stream outlives any one transfer that stops reading (failed, or cancelled).
        tokio::spawn(tee(source, outlets));
    }
}

/// A transfer's place in its image's gathering.
pub(super) struct ExportTicket {
    share: Arc<ExportShare>,
    gathering: Option<Arc<Gathering>>,
}

impl ExportTicket {
    /// The image's archive for this transfer: from the stream it shares with the other transfers of the image
    /// running now, once they are ready (see the module docs).
    pub(super) async fn archive(mut self, api: &bollard::Docker) -> ArchiveStream {
        let (tx, mut rx) = mpsc::channel(TEE_CHUNKS);
        let g = self.gathering.take().expect("a ticket gives one archive");
        let mut inlet = Some(tx);
        let mut all_ready = false;
        g.state.send_modify(|s| {
            s.waiting -= 1;
            if !s.started {
                s.outlets.extend(inlet.take());
            }
            all_ready = s.waiting == 0;
        });
        if let Some(tx) = inlet {
            // Registered, but the others did not wait this long: a stream of its own.
            let own = Gathering {
                image_id: g.image_id.clone(),
                state: watch::Sender::new(Gather {
                    outlets: vec![tx],
                    ..Gather::default()
                }),
            };
            self.share.start(&Arc::new(own), api);
        } else {
            if !all_ready {
                let mut seen = g.state.subscribe();
                // Bounded: after it, those not ready yet get streams of their own.
                let _ =
                    tokio::time::timeout(GATHER_WAIT, seen.wait_for(|s| s.waiting == 0 || s.started)).await;
            }
            self.share.start(&g, api);
        }
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }
}

impl Drop for ExportTicket {
    /// A transfer that will not stream (already there, failed before sending) stops being waited for.
    fn drop(&mut self) {
        let Some(g) = self.gathering.take() else {
            return;
        };
        let mut gathering = locked(&self.share.gathering);
        let mut unused = false;
        g.state.send_modify(|s| {
            s.waiting -= 1;
            unused = s.waiting == 0 && s.outlets.is_empty() && !s.started;
        });
        if unused && gathering.get(&g.image_id).is_some_and(|x| Arc::ptr_eq(x, &g)) {
            gathering.remove(&g.image_id);
        }
    }
}

/// Copies `source` to every outlet, each chunk to all before the next (the slowest sets the pace); an outlet
/// whose reader is gone is dropped, and the stream stops when none is left. A read error reaches every outlet.
async fn tee(source: impl Stream<Item = Chunk>, mut outlets: Vec<mpsc::Sender<Chunk>>) {
    let mut source = std::pin::pin!(source);
    while let Some(chunk) = source.next().await {
        match chunk {
            Ok(bytes) => {
                let sent = futures::future::join_all(outlets.iter().map(|o| o.send(Ok(bytes.clone())))).await;
                let mut sent = sent.into_iter();
                outlets.retain(|_| sent.next().is_some_and(|r| r.is_ok()));
                if outlets.is_empty() {
                    return;
                }
            }
            Err(e) => {
                let each = outlets
                    .iter()
                    .map(|o| o.send(Err(std::io::Error::new(e.kind(), e.to_string()))));
                futures::future::join_all(each).await;
                return;
            }
        }
    }
}

impl Docker {
    /// How often this engine's image archives were read to send images, over all its clones.
    pub fn export_counts(&self) -> ExportCounts {
        self.exports.counts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outlet() -> (mpsc::Sender<Chunk>, mpsc::Receiver<Chunk>) {
        mpsc::channel(2)
    }

    async fn drain(mut rx: mpsc::Receiver<Chunk>) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(c) = rx.recv().await {
            out.extend_from_slice(&c.expect("no error"));
        }
        out
    }

    fn chunks(n: usize) -> Vec<Chunk> {
        (0..n).map(|i| Ok(Bytes::from(vec![i as u8; 100]))).collect()
    }

    #[tokio::test]
    async fn the_tee_gives_every_reader_the_whole_stream() {
        let (a, ra) = outlet();
        let (b, rb) = outlet();
        let tee = tokio::spawn(tee(futures::stream::iter(chunks(20)), vec![a, b]));
        let (da, db) = tokio::join!(drain(ra), drain(rb));
        tee.await.unwrap();
        let expected: Vec<u8> = (0..20u8).flat_map(|i| vec![i; 100]).collect();
        assert_eq!(da, expected);
        assert_eq!(db, expected);
    }

    #[tokio::test]
    async fn a_reader_that_stops_is_dropped_and_the_other_finishes() {
        let (a, mut ra) = outlet();
        let (b, rb) = outlet();
        let tee = tokio::spawn(tee(futures::stream::iter(chunks(20)), vec![a, b]));
        let reader_a = async move {
            let first = ra.recv().await.unwrap().unwrap();
            drop(ra);
            first
        };
        let (first, db) = tokio::join!(reader_a, drain(rb));
        tee.await.unwrap();
        assert_eq!(first, Bytes::from(vec![0u8; 100]));
        assert_eq!(db.len(), 20 * 100, "the other reader got everything");
    }

    #[tokio::test]
    async fn a_read_error_reaches_every_reader() {
        let mut items = chunks(2);
        items.push(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "engine gone",
        )));
        let (a, ra) = outlet();
        let (b, rb) = outlet();
        let tee = tokio::spawn(tee(futures::stream::iter(items), vec![a, b]));
        let last = |mut rx: mpsc::Receiver<Chunk>| async move {
            let mut last = None;
            while let Some(c) = rx.recv().await {
                last = Some(c);
            }
            last
        };
        // Both read at once: the tee sends each chunk to both before the next.
        let (la, lb) = tokio::join!(last(ra), last(rb));
        for l in [la, lb] {
            let e = l.expect("items").expect_err("ends with the error");
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
            assert!(e.to_string().contains("engine gone"), "{e}");
        }
        tee.await.unwrap();
    }

    fn map(tag: &str) -> LayerMap {
        LayerMap {
            manifest: ManifestEntry {
                config: format!("{tag}.json"),
                repo_tags: None,
                layers: vec![],
                rest: Default::default(),
            },
            digests: HashMap::new(),
            sizes: HashMap::new(),
        }
    }

    #[tokio::test]
    async fn a_layer_map_is_read_once_for_transfers_asking_together() {
        let share = ExportShare::default();
        let (gate, opened) = tokio::sync::oneshot::channel::<()>();
        let read = || async move {
            opened.await.unwrap();
            Ok(map("a"))
        };
        let first = share.layer_map("sha256:a", read);
        let second = share.layer_map("sha256:a", || async { Ok(map("b")) });
        let open = async {
            gate.send(()).unwrap();
        };
        let (first, second, ()) = tokio::join!(first, second, open);
        assert_eq!(first.unwrap().manifest.config, "a.json");
        assert_eq!(
            second.unwrap().manifest.config,
            "a.json",
            "waited for the first read"
        );
        assert_eq!(share.counts().layer_maps, 1);
    }

    #[tokio::test]
    async fn a_failed_read_is_not_kept_and_old_images_are_forgotten() {
        let share = ExportShare::default();
        let failed = share
            .layer_map("sha256:a", || async {
                Err(connect_core::Error::new(
                    connect_core::ErrorKind::Unavailable,
                    "docker.transfer",
                    "sha256:a",
                    "engine gone",
                ))
            })
            .await;
        assert!(failed.is_err());
        let again = share.layer_map("sha256:a", || async { Ok(map("a")) }).await;
        assert_eq!(again.unwrap().manifest.config, "a.json", "read again");
        for i in 0..LAYER_MAPS_KEPT {
            let id = format!("sha256:other{i}");
            share.layer_map(&id, || async { Ok(map("other")) }).await.unwrap();
        }
        let reads_before = share.counts().layer_maps;
        let forgotten = share.layer_map("sha256:a", || async { Ok(map("a2")) }).await;
        assert_eq!(forgotten.unwrap().manifest.config, "a2.json");
        assert_eq!(share.counts().layer_maps, reads_before + 1);
        let kept = share.layer_map("sha256:a", || async { Ok(map("a3")) }).await;
        assert_eq!(kept.unwrap().manifest.config, "a2.json");
    }
}
