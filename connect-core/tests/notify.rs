//! Webhooks: every operation's record POSTed as JSON to a real HTTP server on 127.0.0.1 once the journal
//! has it, and a webhook that fails, answers an error or never answers changes nothing but a warning.
//! Real sockets, so real time: the apps are ready in 10 ms and the hanging webhook's timeout is 300 ms.

mod common;

use std::convert::Infallible;
use std::time::Duration;

use common::Fixture;
use connect_core::engine::{DeployConfig, Deployer, Event, OperationRecord, Outcome, Webhook};
use connect_core::memory::AppBehavior;
use connect_core::model::{Color, Release};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How the test server answers.
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    Never,
}

/// A webhook receiver on a free loopback port: each POST's path and body arrive on the channel.
async fn receiver(answer: Answer) -> (String, mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/deploys/s3cr3t", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let path = format!("{} {}", req.method(), req.uri().path());
                        let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
                        let _ = tx.send((path, body));
                        let status = match answer {
                            Answer::Status(code) => code,
                            Answer::Never => std::future::pending().await,
                        };
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (url, rx)
}

fn config(webhooks: Vec<Webhook>) -> DeployConfig {
    DeployConfig {
        holder: "test".into(),
        webhooks,
        ..DeployConfig::runbook()
    }
}

/// A fixture whose v1 is ready in 10 ms.
fn fixture(webhooks: Vec<Webhook>) -> (Fixture, Release) {
    let f = Fixture::with_config(config(webhooks));
    let v1 = f.image(
        "v1",
        AppBehavior {
            ready_after: Duration::from_millis(10),
            ..AppBehavior::default()
        },
    );
    (f, v1)
}

fn warnings(events: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<String> {
    let mut found = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::Warning { message, .. } = event {
            found.push(message);
        }
    }
    found
}

#[tokio::test]
async fn every_operation_posts_its_record_once_the_journal_has_it() {
    let (url, mut posts) = receiver(Answer::Status(204)).await;
    let (f, v1) = fixture(vec![Webhook::new(url.clone())]);
    let record = f.deployer.deploy(v1).await.unwrap();

    let (path, body) = posts.recv().await.unwrap();
    assert_eq!(path, "POST /hooks/deploys/s3cr3t");
    let posted: OperationRecord = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        posted, record,
        "the webhook gets the record the caller and the journal get"
    );
    let journal = f.deployer.journal().await.unwrap();
    assert_eq!(journal.history.last(), Some(&record));

    // A failed operation is reported too, with its failure.
    let v2 = f.image(
        "v2",
        AppBehavior {
            ready_after: Duration::from_millis(10),
            becomes_healthy: false,
            ..AppBehavior::default()
        },
    );
    let mut quick_gate = config(vec![Webhook::new(url)]);
    quick_gate.policy.health_deadline = Duration::from_millis(300);
    let deployer = Deployer::new(f.stack.backends(), quick_gate).unwrap();
    deployer.deploy(v2).await.unwrap_err();
    let (_, body) = posts.recv().await.unwrap();
    let posted: OperationRecord = serde_json::from_slice(&body).unwrap();
    assert!(
        matches!(posted.outcome, Outcome::Failed { .. }),
        "{:?}",
        posted.outcome
    );
    assert_eq!(posted.live_after, Some(Color::Blue));
}

#[tokio::test]
async fn a_webhook_that_fails_or_hangs_changes_nothing_but_a_warning() {
    let (bad, _posts_bad) = receiver(Answer::Status(500)).await;
    let (hanging, mut posts_hanging) = receiver(Answer::Never).await;
    // A port nothing listens on: bound, then closed.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let (f, v1) = fixture(vec![
        Webhook::new(bad),
        Webhook::new(hanging).timeout(Duration::from_millis(300)),
        Webhook::new(closed),
    ]);
    let mut events = f.deployer.subscribe();
    let record = f.deployer.deploy(v1).await.unwrap();
    assert_eq!(record.outcome, Outcome::Succeeded);
    assert_eq!(f.live_servers().await, ["app1"]);
    assert!(
        posts_hanging.recv().await.is_some(),
        "the hanging webhook was asked"
    );

    let warnings = warnings(&mut events);
    let expected = ["answered 500", "no answer within 300ms", "could not connect"];
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    for (warning, why) in warnings.iter().zip(expected) {
        assert!(warning.contains(why), "{warning:?} should say {why:?}");
        assert!(warning.contains("the operation's outcome stands"), "{warning}");
        assert!(warning.contains("http://127.0.0.1:"), "{warning}");
        assert!(
            !warning.contains("s3cr3t"),
            "the URL's path is never shown: {warning}"
        );
    }
}

#[test]
fn a_webhook_that_can_never_be_delivered_is_refused_up_front() {
    let f = Fixture::with_config(DeployConfig::runbook());
    let config = DeployConfig {
        webhooks: vec![Webhook::new("chat.example/hook")],
        ..DeployConfig::runbook()
    };
    let err = Deployer::new(f.stack.backends(), config).unwrap_err();
    assert!(err.to_string().contains("http:// or https://"), "{err}");
}
