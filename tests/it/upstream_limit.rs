//! `upstream.max_connections` and `upstream.queue_timeout` against a real upstream that counts
//! the connections it holds open at once: the bound holds across both HTTPS workers (and both
//! protocols), requests beyond it wait inside the gateway and complete, and a request that finds
//! no connection within the queue timeout gets a 503.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::*;

/// The value of a metric line (`name` with its labels), 0 when absent.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn the_bound_holds_across_workers_and_queued_requests_complete() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let config = ConfigBuilder::new(&certs, &up.url())
        .set("upstream.max_connections", 3)
        .set("upstream.queue_timeout", "10s")
        .set("limits.worker_threads", 2);
    let gw = Gw::start(&config.build_yaml()).await;

    // Eight HTTP/1.1 clients, each on a connection of its own (handed to the two workers in
    // turn), and one HTTP/2 client with ten streams on one connection: 18 requests at once that
    // each hold an upstream connection for 100 ms.
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let c = gw.client(&certs, false);
        let url = gw.url("/slow/100");
        tasks.spawn(async move { c.get(url).send().await.map(|r| r.status().as_u16()) });
    }
    let h2 = gw.client(&certs, true);
    for _ in 0..10 {
        let (c, url) = (h2.clone(), gw.url("/slow/100"));
        tasks.spawn(async move { c.get(url).send().await.map(|r| r.status().as_u16()) });
    }
    let statuses: Vec<u16> = tasks
        .join_all()
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let elapsed = started.elapsed();

    assert_eq!(statuses, vec![200; 18], "every queued request is answered");
    let max_open = up.stats.max_open.load(Ordering::SeqCst);
    assert!(
        max_open <= 3,
        "the upstream held {max_open} connections at once"
    );
    assert_eq!(max_open, 3, "the load did reach the bound");
    // 18 requests of 100 ms through 3 connections: at least 6 rounds.
    assert!(elapsed >= Duration::from_millis(550), "{elapsed:?}");

    let m = gw.metrics().await;
    assert!(metric(&m, "vigie_upstream_queued_total") >= 1.0, "{m}");
    assert!(metric(&m, "vigie_upstream_connections") <= 3.0, "{m}");
    assert_eq!(
        metric(&m, "vigie_upstream_errors_total{kind=\"busy\"}"),
        0.0
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_request_waits_at_most_queue_timeout_then_gets_503() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let config = ConfigBuilder::new(&certs, &up.url())
        .set("upstream.max_connections", 1)
        .set("upstream.queue_timeout", "500ms");
    let gw = Gw::start(&config.build_yaml()).await;
    let c = gw.client(&certs, true);

    // The only connection is busy for 1.5 s (response_timeout is 2 s).
    let hog = tokio::spawn({
        let (c, url) = (c.clone(), gw.url("/slow/1500"));
        async move { c.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;

    let started = Instant::now();
    let res = c.get(gw.url("/echo")).send().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(res.status(), 503);
    let page = res.text().await.unwrap();
    assert!(!page.contains("queue_timeout"), "internals in the page");
    // One wait of 500 ms, not retried (a retry would wait another 500 ms).
    assert!(waited >= Duration::from_millis(450), "{waited:?}");
    assert!(waited < Duration::from_millis(950), "{waited:?}");

    assert_eq!(
        hog.await.unwrap().unwrap(),
        200,
        "the request in flight is not disturbed"
    );
    let m = gw.metrics().await;
    assert_eq!(
        metric(&m, "vigie_upstream_errors_total{kind=\"busy\"}"),
        1.0,
        "{m}"
    );
    assert!(metric(&m, "vigie_upstream_queued_total") >= 1.0, "{m}");

    // The slot is free again: the next request goes through at once.
    let res = c.get(gw.url("/echo")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(up.stats.max_open.load(Ordering::SeqCst), 1);
    gw.shutdown().await;
}
