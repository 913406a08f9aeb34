//! Shipping a release that differs from the previous one in one small layer: only the missing layer
//! (incremental) against the runbook's `docker save | gzip | docker load` of the whole image.
//!
//! The destination is a second dockerd this benchmark starts (own socket, data root and network namespace).
//! Prints figures, then as its last line one JSON object: incremental_bytes, incremental_s, full_gzip_bytes,
//! full_s, bytes_ratio.

use connect_docker::testing::{SecondDaemon, TestScope, incompressible, local_docker, test_app_context};
use connect_docker::{TransferOptions, TransferReport};

const ROUNDS: usize = 3;

/// Base layers shaped like an app image's runtime and dependencies: text mixed with incompressible bytes.
fn dependencies(len: usize) -> Vec<u8> {
    let words = [
        "function", "return", "const", "require", "module", "exports", "async", "await", "null",
    ];
    let noise = incompressible(len / 3, 11);
    let mut out = Vec::with_capacity(len);
    let mut i = 0usize;
    while out.len() < len {
        if i.is_multiple_of(3) {
            let start = (i * 97) % noise.len().saturating_sub(64).max(1);
            out.extend_from_slice(&noise[start..start + 48]);
        } else {
            out.extend_from_slice(words[i % words.len()].as_bytes());
            out.push(b' ');
        }
        i += 1;
    }
    out.truncate(len);
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn show(what: &str, r: &TransferReport) {
    println!(
        "{what:<12} {:>3}/{} layers  archive {:>11} B  wire {:>11} B  {:>7.3} s  ({:?})",
        r.layers_sent,
        r.layers_total,
        r.archive_bytes,
        r.wire_bytes,
        r.duration.as_secs_f64(),
        r.compression
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(docker) = local_docker("bench transfer").await else {
        eprintln!("no Docker Engine: nothing measured");
        std::process::exit(1);
    };
    let daemon = SecondDaemon::start("bench transfer")
        .await
        .expect("dockerd is needed");
    let dest = daemon.docker().await.expect("second engine");
    let scope = TestScope::new("bench");
    let result = run(&docker, &dest, &scope).await;
    scope.clean(&docker).await;
    drop(daemon);
    let json = result.expect("benchmark");
    println!("{json}");
}

async fn run(
    docker: &connect_docker::Docker,
    dest: &connect_docker::Docker,
    scope: &TestScope,
) -> connect_core::Result<String> {
    let deps = dependencies(48 << 20);
    let base_ctx = test_app_context(None, &[("deps", deps)], &[])?;
    let v1 = scope.build(docker, "v1", base_ctx).await?;
    let v1_info = docker.image_info(&v1.to_string()).await?.expect("built");
    println!(
        "release v1: {} layers, {} B",
        v1_info.layers.len(),
        v1_info.size_bytes
    );
    let first = docker
        .transfer_image(dest, &v1, &TransferOptions::default())
        .await?;
    show("v1 (setup)", &first);

    let (mut inc_s, mut full_s, mut inc_bytes, mut full_bytes) = (vec![], vec![], 0u64, 0u64);
    for round in 0..ROUNDS {
        // Each round a new release: the previous one plus a 300 kB app bundle.
        let bundle = test_app_context(
            Some(&v1.to_string()),
            &[("bundle", dependencies(300_000 + round))],
            &[],
        )?;
        let v2 = scope.build(docker, &format!("v2-{round}"), bundle).await?;

        let inc = docker
            .transfer_image(dest, &v2, &TransferOptions::default())
            .await?;
        show("incremental", &inc);
        dest.remove_image(&v2.to_string(), true).await?;

        let full = docker
            .transfer_whole(dest, &v2, &TransferOptions::default())
            .await?;
        show("full gzip", &full);
        dest.remove_image(&v2.to_string(), true).await?;

        inc_s.push(inc.duration.as_secs_f64());
        full_s.push(full.duration.as_secs_f64());
        inc_bytes = inc.wire_bytes;
        full_bytes = full.wire_bytes;
    }
    let (inc_s, full_s) = (median(inc_s), median(full_s));
    let ratio = inc_bytes as f64 / full_bytes as f64;
    println!(
        "median of {ROUNDS}: incremental {inc_bytes} B in {inc_s:.3} s; full {full_bytes} B in {full_s:.3} s; bytes ratio {ratio:.4}"
    );
    Ok(serde_json::json!({
        "incremental_bytes": inc_bytes,
        "incremental_s": (inc_s * 1000.0).round() / 1000.0,
        "full_gzip_bytes": full_bytes,
        "full_s": (full_s * 1000.0).round() / 1000.0,
        "bytes_ratio": (ratio * 10000.0).round() / 10000.0,
    })
    .to_string())
}
