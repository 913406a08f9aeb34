//! One image shipped to two engines at once, as a fleet's ship step does: the machine's engine sends, two
//! second dockerds (each its own socket, data root and network namespace) receive. The image's archive is
//! mapped once and streamed once for both, each destination getting only the layers it lacks; one that is
//! cut off mid-stream does not stop the other.

mod common;

use std::sync::Arc;

use common::{base_and_release, with_scope};
use connect_core::ErrorKind;
use connect_docker::testing::{SecondDaemon, SocketHost, incompressible, test_app_context};
use connect_docker::{Docker, ExportCounts, TransferMethod, TransferOptions};

const BASE_DATA: usize = 2 << 20;

/// Two second dockerds; `None` (skipped, loudly) where there is no dockerd.
async fn two_engines(test: &str) -> Option<(SecondDaemon, SecondDaemon)> {
    Some((SecondDaemon::start(test).await?, SecondDaemon::start(test).await?))
}

/// What `after` adds to `before`.
fn counted(before: ExportCounts, after: ExportCounts) -> ExportCounts {
    ExportCounts {
        layer_maps: after.layer_maps - before.layer_maps,
        streams: after.streams - before.streams,
        destinations: after.destinations - before.destinations,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_destinations_lacking_different_layers_share_one_read_of_the_image() {
    with_scope("fanout-layers", |docker, scope| async move {
        let Some((one, two)) = two_engines("fanout-layers").await else {
            return;
        };
        // Through a Host each, as the fleet's servers are reached over SSH.
        let one = Docker::connect_via(Arc::new(SocketHost), &one.socket())
            .await
            .expect("first engine");
        let two = two.docker().await.expect("second engine");
        let (v1, v2) = base_and_release(&docker, &scope, BASE_DATA, 11).await;
        // The first engine has v1: it lacks v2's own layer only; the second lacks everything.
        docker
            .transfer_image(&one, &v1, &TransferOptions::default())
            .await
            .expect("v1 to the first engine");

        // A clone, as each host's Docker holds its own clone of the build machine's.
        let (from_one, from_two) = (docker.clone(), docker.clone());
        let before = docker.export_counts();
        let options = TransferOptions {
            fallback_to_whole: false,
            ..TransferOptions::default()
        };
        let (to_one, to_two) = tokio::join!(
            from_one.transfer_image(&one, &v2, &options),
            from_two.transfer_image(&two, &v2, &options),
        );
        let (to_one, to_two) = (
            to_one.expect("v2 to the first"),
            to_two.expect("v2 to the second"),
        );
        assert_eq!(
            counted(before, docker.export_counts()),
            ExportCounts {
                layer_maps: 1,
                streams: 1,
                destinations: 2
            },
            "one read of v2 to map it, one stream for both"
        );
        assert_eq!(to_one.method, TransferMethod::Incremental);
        assert_eq!(to_one.layers_sent, 1, "only v2's own layer: {to_one:?}");
        assert!(to_one.wire_bytes < 40_000, "{to_one:?}");
        assert_eq!(to_two.layers_sent, to_two.layers_total, "every layer: {to_two:?}");
        assert!(to_two.wire_bytes > BASE_DATA as u64, "{to_two:?}");
        let src = docker.image_info(&v2.to_string()).await.unwrap().unwrap();
        for engine in [&one, &two] {
            let there = engine.image_info(&v2.to_string()).await.unwrap().expect("tagged");
            assert_eq!((&there.id, &there.layers), (&src.id, &src.layers));
        }

        // Alone, later: the map is kept, the archive streamed once more, to the one destination.
        // The first engine keeps v1 (tagged there), so it lacks v2's own layer again.
        one.remove_image(&src.id, true).await.expect("remove v2");
        let before = docker.export_counts();
        let again = docker
            .transfer_image(&one, &v2, &options)
            .await
            .expect("v2 again");
        assert_eq!(again.layers_sent, 1, "v1's layers stayed: {again:?}");
        assert_eq!(
            counted(before, docker.export_counts()),
            ExportCounts {
                layer_maps: 0,
                streams: 1,
                destinations: 1
            }
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_cut_off_mid_stream_leaves_the_other_to_finish() {
    with_scope("fanout-cut", |docker, scope| async move {
        let Some((cut, whole)) = two_engines("fanout-cut").await else {
            return;
        };
        let (cut, whole) = (cut.docker().await.unwrap(), whole.docker().await.unwrap());
        let v1 = scope
            .build(
                &docker,
                "v1",
                test_app_context(None, &[("data", incompressible(BASE_DATA, 13))], &[]).unwrap(),
            )
            .await
            .unwrap();
        let cut_off = TransferOptions {
            cut_off_after: Some(256 * 1024),
            fallback_to_whole: false,
            ..TransferOptions::default()
        };
        let before = docker.export_counts();
        let defaults = TransferOptions::default();
        let (failed, finished) = tokio::join!(
            docker.transfer_image(&cut, &v1, &cut_off),
            docker.transfer_image(&whole, &v1, &defaults),
        );
        let err = failed.expect_err("cut off");
        assert!(
            matches!(err.kind(), ErrorKind::Failed | ErrorKind::Unavailable),
            "{err}"
        );
        assert!(err.to_string().contains("nothing was tagged"), "{err}");
        let finished = finished.expect("the other destination finishes");
        assert_eq!(finished.method, TransferMethod::Incremental, "no fallback");
        assert_eq!(
            counted(before, docker.export_counts()),
            ExportCounts {
                // Empty engines lack every layer: nothing to skip, no map to read.
                layer_maps: 0,
                streams: 1,
                destinations: 2
            },
            "both were fed by one stream"
        );
        let src = docker.image_info(&v1.to_string()).await.unwrap().unwrap();
        let there = whole.image_info(&v1.to_string()).await.unwrap().expect("tagged");
        assert_eq!((there.id, there.layers), (src.id.clone(), src.layers));
        assert!(cut.image_info(&src.id).await.unwrap().is_none(), "no image");
        assert!(cut.images(None).await.unwrap().is_empty(), "nothing at all");
    })
    .await;
}
