//! 1 GiB each way through the gateway process, with its memory measured while the bytes flow:
//! the proxy must stream, never buffer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;
use futures_util::StreamExt;

const GIB: u64 = 1 << 30;
/// Allowed growth of the gateway's resident memory while 1 GiB passes through it.
const MAX_GROWTH_KIB: u64 = 48 * 1024;

/// Samples the process's RSS every 20 ms until stopped; returns the peak.
fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_each_way_with_flat_memory() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let yaml = ConfigBuilder::new(&certs, &up.url())
        .set("log.access_log", true)
        .set("upstream.response_timeout", "60s")
        .build_yaml();
    let gw = GwProcess::start(&yaml).await;
    let pid = gw.pid();
    let url = |p: &str| format!("https://viewer.test:{}{p}", gw.https.port());

    for h2 in [false, true] {
        let c = gw.client(&certs, h2);
        // Warm up: pools, TLS session, allocator arenas.
        let _ = c
            .get(url("/bytes/1048576"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await;
        let base = rss_kib(pid);
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = sample_rss(pid, stop.clone());

        // Download.
        let t = Instant::now();
        let res = c.get(url(&format!("/bytes/{GIB}"))).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.content_length(), Some(GIB));
        let mut stream = res.bytes_stream();
        let mut n = 0u64;
        let mut wrong = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            wrong += pattern_mismatches(n, &chunk);
            n += chunk.len() as u64;
        }
        assert_eq!(n, GIB);
        assert_eq!(wrong, 0);
        let down = t.elapsed();

        // Upload, generated on the fly.
        let t = Instant::now();
        let sent = Arc::new(AtomicU64::new(0));
        let sent2 = sent.clone();
        let body = futures_util::stream::unfold(0u64, move |pos| {
            let sent = sent2.clone();
            async move {
                if pos >= GIB {
                    return None;
                }
                let len = (GIB - pos).min(256 * 1024);
                sent.fetch_add(len, Ordering::Relaxed);
                Some((
                    Ok::<_, std::io::Error>(pattern_chunk(pos, len as usize)),
                    pos + len,
                ))
            }
        });
        let res = c
            .post(url("/upload"))
            .header("content-length", GIB.to_string())
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.text().await.unwrap(),
            format!("{GIB} 0"),
            "bytes and pattern"
        );
        let upload = t.elapsed();

        stop.store(true, Ordering::Relaxed);
        let peak = sampler.await.unwrap();
        let growth = peak.saturating_sub(base);
        println!(
            "{}: download {:.0} MiB/s, upload {:.0} MiB/s, gateway RSS base {} MiB, peak {} MiB, growth {} MiB",
            if h2 { "h2" } else { "http/1.1" },
            1024.0 / down.as_secs_f64(),
            1024.0 / upload.as_secs_f64(),
            base / 1024,
            peak / 1024,
            growth / 1024
        );
        assert!(
            growth < MAX_GROWTH_KIB,
            "gateway RSS grew by {growth} KiB while streaming (limit {MAX_GROWTH_KIB} KiB)"
        );
    }
}
