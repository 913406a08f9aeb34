//! Issue 16 item 4: the shipped dashboard and alert rules (`monitoring/`): `promtool check rules` and
//! `promtool test rules` pass (the real program), the dashboard has the runbook's six panels and deploy
//! annotations, and every metric they name is one the exporter exports.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use connect_core::engine::{DeployConfig, Deployer};
use connect_core::memory::{AppBehavior, MemoryStack};
use connect_core::model::Release;
use connect_core::testing::require_program;
use connect_examples::ops::exporter::{EVENT_FAMILIES, Exporter, SNAPSHOT_FAMILIES};

fn monitoring() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../monitoring")
}

fn read(file: &str) -> String {
    std::fs::read_to_string(monitoring().join(file)).unwrap()
}

/// Every `connect_…` metric name in `text`.
fn names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("connect_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // `connect_ops` and `connect-ops` are the product's name, not a metric.
        let preceded = rest[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !preceded && !tail[..end].starts_with("connect_ops") {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// The exported families, with a histogram's `_bucket`, `_count` and `_sum` series.
fn exported() -> BTreeSet<String> {
    let mut out: BTreeSet<String> = SNAPSHOT_FAMILIES.iter().map(|(n, _)| n.to_string()).collect();
    for name in EVENT_FAMILIES {
        out.insert(name.to_string());
        if name.ends_with("_seconds") {
            for suffix in ["_bucket", "_count", "_sum"] {
                out.insert(format!("{name}{suffix}"));
            }
        }
    }
    out
}

#[test]
fn promtool_checks_and_tests_the_rules() {
    let Some(promtool) = require_program("monitoring_rules", "promtool", &["/usr/bin/promtool"]) else {
        return;
    };
    for args in [
        ["check", "rules", "rules.yml"],
        ["test", "rules", "rules_test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(monitoring())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_dashboard_has_the_runbooks_six_panels_and_deploy_annotations() {
    let dashboard: serde_json::Value = serde_json::from_str(&read("dashboard.json")).unwrap();
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "Request rate",
            "Error rate",
            "Response time (average)",
            "Container CPU and memory",
            "Database connections",
            "Redis hit rate"
        ]
    );
    for panel in dashboard["panels"].as_array().unwrap() {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{} queries something", panel["title"]);
        assert!(
            targets
                .iter()
                .all(|t| !names(t["expr"].as_str().unwrap()).is_empty())
        );
    }
    let annotations = dashboard["annotations"]["list"].as_array().unwrap();
    assert!(
        annotations
            .iter()
            .any(|a| a["expr"].as_str().unwrap().contains("connect_deploys_total")),
        "deploys are annotated"
    );
}

#[test]
fn every_metric_the_dashboard_and_rules_name_is_exported() {
    let exported = exported();
    for file in ["dashboard.json", "rules.yml", "rules_test.yml"] {
        let named = names(&read(file));
        assert!(!named.is_empty(), "{file} names metrics");
        let unknown: Vec<_> = named.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics the exporter does not export: {unknown:?}"
        );
    }
}

/// The list the check above uses is the exporter's: every family a scrape shows is on it.
#[tokio::test]
async fn the_exporters_families_are_the_listed_ones() {
    let config = DeployConfig {
        holder: "test".into(),
        ..DeployConfig::runbook()
    };
    let stack = MemoryStack::new(&config.topology);
    let v1 = Release::new("connect", "v1").unwrap();
    stack.add_image(&v1.image, AppBehavior::default());
    stack
        .cluster
        .set_continuous_backup(Some(connect_core::database::ContinuousBackupState {
            stanza: "connect".into(),
            last_archived_wal: Some("000000010000000000000007".into()),
            last_archived_age_s: Some(5),
            archive_failing: false,
            last_full_backup: Some("20261206-100000F".into()),
            last_full_age_s: Some(3600),
            last_backup: None,
            last_backup_age_s: None,
            backups: 1,
            recoverable_from_unix: None,
        }));
    let deployer = Deployer::new(stack.backends(), config).unwrap();
    deployer.deploy(v1).await.unwrap();
    stack
        .faults()
        .fail("cache.figures", connect_core::ErrorKind::Unavailable);
    let exporter = Exporter::start(deployer, Duration::from_secs(1)).unwrap();
    let mut view = exporter.subscribe();
    view.changed().await.unwrap();
    let text = exporter.render();
    let exported = exported();
    let mut shown = BTreeSet::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut words = line.split(' ');
        let (name, kind) = (words.next().unwrap(), words.next().unwrap());
        let name = if kind == "counter" {
            format!("{name}_total")
        } else {
            name.to_string()
        };
        assert!(exported.contains(&name), "{name} is exported but not listed");
        shown.insert(name);
    }
    assert!(shown.len() > 20, "{text}");
    assert!(shown.contains("connect_source_unavailable"));
    assert!(shown.contains("connect_backup_archive_failing"), "{text}");
}
