//! Image transfer between two real engines: the machine's and a second dockerd this test starts with its own
//! socket, data root and network namespace.

mod common;

use std::sync::{Arc, Mutex};

use common::{base_and_release, with_scope};
use connect_core::ErrorKind;
use connect_docker::testing::{SecondDaemon, SocketHost, incompressible, test_app_context};
use connect_docker::{Compression, Docker, TransferMethod, TransferOptions, TransferProgress};

const BASE_DATA: usize = 4 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_sharing_all_but_one_layer_sends_only_that_layer() {
    with_scope("transfer-incremental", |docker, scope| async move {
        let Some(daemon) = SecondDaemon::start("transfer-incremental").await else {
            return;
        };
        // The destination through a Host, as the remote server is reached over SSH.
        let dest = Docker::connect_via(Arc::new(SocketHost), &daemon.socket())
            .await
            .expect("second engine");
        let (v1, v2) = base_and_release(&docker, &scope, BASE_DATA, 1).await;

        let first = docker
            .transfer_image(&dest, &v1, &TransferOptions::default())
            .await
            .expect("first release");
        assert_eq!(first.method, TransferMethod::Incremental);
        assert_eq!(
            first.layers_sent, first.layers_total,
            "the empty engine gets every layer"
        );
        assert!(first.wire_bytes > BASE_DATA as u64, "{first:?}");
        assert_eq!(
            first.compression,
            Compression::Gzip,
            "Engine 20.10 cannot unpack zstd"
        );

        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&events);
        let options = TransferOptions {
            progress: Some(Arc::new(move |p: &TransferProgress| {
                seen.lock().unwrap().push(p.clone())
            })),
            ..TransferOptions::default()
        };
        let second = docker
            .transfer_image(&dest, &v2, &options)
            .await
            .expect("second release");
        assert_eq!(second.method, TransferMethod::Incremental);
        assert_eq!(second.layers_sent, 1, "{second:?}");
        assert_eq!(second.layers_total, first.layers_total + 1);
        assert!(
            second.wire_bytes < 40_000,
            "only the 10 kB layer and metadata: {second:?}"
        );
        assert!(
            second.wire_bytes * 50 < first.wire_bytes,
            "{second:?} vs {first:?}"
        );
        let src = docker.image_info(&v2.to_string()).await.unwrap().unwrap();
        let there = dest
            .image_info(&v2.to_string())
            .await
            .unwrap()
            .expect("tagged on the destination");
        assert_eq!((there.id, there.layers), (src.id.clone(), src.layers.clone()));
        let events = events.lock().unwrap().clone();
        assert!(
            events.iter().any(|e| matches!(e, TransferProgress::Planned {
                layers_total,
                layers_to_send: 1,
                bytes_to_send,
            } if *layers_total == src.layers.len() && *bytes_to_send >= 10_000 && *bytes_to_send < 40_000)),
            "{events:?}"
        );
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, TransferProgress::LayerSent { .. }))
                .count(),
            1
        );
        assert_eq!(
            events.last(),
            Some(&TransferProgress::Loaded {
                image_id: src.id.clone()
            })
        );

        let again = docker
            .transfer_image(&dest, &v2, &TransferOptions::default())
            .await
            .unwrap();
        assert_eq!(
            (again.method, again.wire_bytes),
            (TransferMethod::AlreadyThere, 0)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_cut_off_halfway_leaves_nothing_tagged() {
    with_scope("transfer-cut", |docker, scope| async move {
        let Some(daemon) = SecondDaemon::start("transfer-cut").await else {
            return;
        };
        let dest = daemon.docker().await.unwrap();
        let v1 = scope
            .build(
                &docker,
                "v1",
                test_app_context(None, &[("data", incompressible(1 << 20, 3))], &[]).unwrap(),
            )
            .await
            .unwrap();
        let cut = TransferOptions {
            cut_off_after: Some(256 * 1024),
            fallback_to_whole: false,
            ..TransferOptions::default()
        };
        let err = docker
            .transfer_image(&dest, &v1, &cut)
            .await
            .expect_err("cut off");
        assert!(
            matches!(err.kind(), ErrorKind::Failed | ErrorKind::Unavailable),
            "{err}"
        );
        assert!(
            err.to_string().contains(&v1.to_string()),
            "names the image: {err}"
        );
        assert!(err.to_string().contains("nothing was tagged"), "{err}");
        let src = docker.image_info(&v1.to_string()).await.unwrap().unwrap();
        assert!(
            dest.image_info(&v1.to_string()).await.unwrap().is_none(),
            "no tag"
        );
        assert!(dest.image_info(&src.id).await.unwrap().is_none(), "no image");
        assert!(dest.images(None).await.unwrap().is_empty(), "nothing at all");

        // Nothing half-made is in the way of the next try.
        let ok = docker
            .transfer_image(&dest, &v1, &TransferOptions::default())
            .await
            .expect("retry");
        assert_eq!(ok.image_id, src.id);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_image_fallback_loads_the_same_image() {
    with_scope("transfer-whole", |docker, scope| async move {
        let Some(daemon) = SecondDaemon::start("transfer-whole").await else {
            return;
        };
        let dest = daemon.docker().await.unwrap();
        let v1 = scope
            .build(
                &docker,
                "v1",
                test_app_context(None, &[("data", incompressible(1 << 20, 4))], &[]).unwrap(),
            )
            .await
            .unwrap();
        let whole = docker
            .transfer_whole(&dest, &v1, &TransferOptions::default())
            .await
            .expect("save | gzip | load");
        assert_eq!(whole.method, TransferMethod::Whole);
        assert!(
            whole.wire_bytes > 1 << 20 && whole.archive_bytes > whole.wire_bytes / 2,
            "{whole:?}"
        );
        let src = docker.image_info(&v1.to_string()).await.unwrap().unwrap();
        assert_eq!(
            dest.image_info(&v1.to_string()).await.unwrap().unwrap().id,
            src.id
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transferring_a_missing_image_names_it() {
    with_scope("transfer-missing", |docker, scope| async move {
        let missing = scope.release("nope").image;
        let err = docker
            .transfer_image(&docker, &missing, &TransferOptions::default())
            .await
            .expect_err("missing");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains(&missing.to_string()), "{err}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_cannot_unpack_zstd_falls_back_to_the_whole_image() {
    with_scope("transfer-zstd", |docker, scope| async move {
        let Some(daemon) = SecondDaemon::start("transfer-zstd").await else {
            return;
        };
        let dest = daemon.docker().await.unwrap();
        let v1 = scope.build_app(&docker, "v1").await.unwrap();
        let zstd = TransferOptions {
            compression: Some(Compression::Zstd),
            fallback_to_whole: false,
            ..TransferOptions::default()
        };
        if dest.best_compression().await.unwrap() == Compression::Zstd {
            let r = docker
                .transfer_image(&dest, &v1, &zstd)
                .await
                .expect("zstd on an engine that unpacks it");
            assert_eq!(r.compression, Compression::Zstd);
            return;
        }
        // Engine 20.10's `docker load` does not unpack zstd: the load fails cleanly, nothing is tagged.
        let err = docker
            .transfer_image(&dest, &v1, &zstd)
            .await
            .expect_err("20.10 cannot unpack zstd");
        assert_eq!(err.kind(), ErrorKind::Failed, "{err}");
        assert!(dest.images(None).await.unwrap().is_empty());
        // With the fallback, the whole image goes the runbook's way.
        let r = docker
            .transfer_image(
                &dest,
                &v1,
                &TransferOptions {
                    fallback_to_whole: true,
                    ..zstd
                },
            )
            .await
            .expect("falls back");
        assert_eq!(
            (r.method, r.compression),
            (TransferMethod::Whole, Compression::Gzip)
        );
        assert!(dest.image_info(&v1.to_string()).await.unwrap().is_some());
    })
    .await;
}
