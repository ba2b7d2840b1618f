//! Per-connection timeouts that hyper does not provide in the shape a public server needs:
//!
//! * a client that has started a request head must finish it within `header_read_timeout`, or it
//!   gets `408 Request Timeout` and the connection is closed (slow-header attacks);
//! * a new connection must start its first request within the same time;
//! * a connection with no request in flight is closed after `keepalive_timeout` (HTTP/1.1 and
//!   HTTP/2 alike).
//!
//! It also reads each HTTP/1 request head as it passes (without buffering or changing it) to
//! notice a head that carries both `Content-Length` and `Transfer-Encoding`: hyper quietly lets
//! the latter win, but such a request is a smuggling attempt and the guard refuses it.
//!
//! The wrapper sits between TLS and hyper and watches reads only while no request is in flight;
//! the request path reports requests starting and ending through [`Activity`]. Upgraded
//! (WebSocket) connections are left alone.
//!
//! While requests are in flight, other deadlines bound them: request bodies have their own
//! (`body.rs`, the sign-in form's), and [`Activity::stalled`] notices a response that the client
//! stopped taking. A response body that has handed a chunk to hyper waits for hyper to ask for
//! the next one; hyper asks only once the client has taken enough (HTTP/1.1: the socket accepts
//! writes again; HTTP/2: the client's flow-control window opens). A response left waiting longer
//! than `limits.send_timeout` means a client that stopped reading: the connection is closed, which
//! releases the upstream connection and the buffers behind it. Bytes the client does read keep a
//! slow download alive.
//!
//! Hand-written, not a crate: the head scan is security semantics (what counts as a smuggling
//! attempt) and runs on every read of every connection, measured in `scripts/bench.sh`; no crate
//! offers "scan without buffering, across read boundaries". The file is over 500 lines because
//! more than half is its tests (the head scanner against every way a head can be cut across
//! reads); the code itself is about 330 lines, one concern: this connection wrapper.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\
Content-Length: 0\r\nStrict-Transport-Security: max-age=63072000; includeSubDomains\r\n\r\n";

/// What the request path tells the connection about its requests.
#[derive(Debug)]
pub struct Activity {
    active: AtomicUsize,
    started: AtomicU64,
    upgraded: AtomicBool,
    framing_conflict: AtomicBool,
    reader: AtomicWaker,
    /// Response bodies being sent, one slot each (HTTP/2 has several at once); see
    /// [`Activity::stalled`]. A per-connection lock, only ever contended by this connection's
    /// own streams.
    sending: Mutex<Vec<SendSlot>>,
    /// Wakes [`Activity::stalled`] when a response starts sending while it is parked.
    send_started: tokio::sync::Notify,
    watch_parked: AtomicBool,
    epoch: Instant,
}

/// The state of one response body being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendSlot {
    Free,
    /// hyper is asking the body for its next chunk: the client is keeping up.
    Asked,
    /// A chunk was handed over at this time (milliseconds after `epoch`) and hyper has not asked
    /// for the next one yet.
    Waiting(u64),
}

impl Default for Activity {
    fn default() -> Activity {
        Activity {
            active: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
            framing_conflict: AtomicBool::new(false),
            reader: AtomicWaker::new(),
            sending: Mutex::new(Vec::new()),
            send_started: tokio::sync::Notify::new(),
            watch_parked: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }
}

impl Activity {
    /// A request head has been received and handed to the service.
    pub fn request_started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::AcqRel);
    }

    /// The response (body included) is finished or abandoned.
    pub fn request_ended(&self) {
        if self.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The reader may be parked without a timer armed: wake it so the idle clock starts.
            self.reader.wake();
        }
    }

    /// Whether the request head just received had both `Content-Length` and
    /// `Transfer-Encoding` (reset by reading it).
    pub fn take_framing_conflict(&self) -> bool {
        self.framing_conflict.swap(false, Ordering::AcqRel)
    }

    /// The connection now carries a tunnel: no more HTTP timeouts apply.
    pub fn upgraded(&self) {
        self.upgraded.store(true, Ordering::Release);
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<SendSlot>> {
        self.sending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A response body starts sending: returns its slot for [`Activity::chunk_sent`],
    /// [`Activity::chunk_asked`] and [`Activity::send_ended`].
    pub fn send_started(&self) -> usize {
        let slot = {
            let mut slots = self.slots();
            match slots.iter().position(|s| *s == SendSlot::Free) {
                Some(i) => {
                    slots[i] = SendSlot::Asked;
                    i
                }
                None => {
                    slots.push(SendSlot::Asked);
                    slots.len() - 1
                }
            }
        };
        // Only a parked watch needs waking: most answers end before its next look.
        if self.watch_parked.swap(false, Ordering::SeqCst) {
            self.send_started.notify_one();
        }
        slot
    }

    /// The body handed a chunk to hyper.
    pub fn chunk_sent(&self, slot: usize) {
        let at = self.epoch.elapsed().as_millis() as u64;
        if let Some(s) = self.slots().get_mut(slot) {
            *s = SendSlot::Waiting(at);
        }
    }

    /// hyper asks the body for its next chunk.
    pub fn chunk_asked(&self, slot: usize) {
        if let Some(s) = self.slots().get_mut(slot) {
            *s = SendSlot::Asked;
        }
    }

    /// The body ended or was dropped.
    pub fn send_ended(&self, slot: usize) {
        if let Some(s) = self.slots().get_mut(slot) {
            *s = SendSlot::Free;
        }
    }

    /// Resolves when a response has waited `limit` for the client to take more of it (checked
    /// every quarter of `limit`); never while nothing is being sent.
    pub async fn stalled(&self, limit: Duration) {
        let tick = (limit / 4).max(Duration::from_millis(50));
        let limit_ms = limit.as_millis() as u64;
        loop {
            let sending = || self.slots().iter().any(|s| *s != SendSlot::Free);
            if !sending() {
                let wake = self.send_started.notified();
                tokio::pin!(wake);
                wake.as_mut().enable();
                self.watch_parked.store(true, Ordering::SeqCst);
                // A response that started before the flag was up is seen here; one that starts
                // after it finds the flag and wakes us.
                if !sending() {
                    wake.await;
                }
                self.watch_parked.store(false, Ordering::SeqCst);
                continue;
            }
            tokio::time::sleep(tick).await;
            let now = self.epoch.elapsed().as_millis() as u64;
            let stalled = self.slots().iter().any(|s| match *s {
                SendSlot::Waiting(at) => now.saturating_sub(at) >= limit_ms,
                _ => false,
            });
            if stalled {
                return;
            }
        }
    }
}

/// The timeouts a [`ConnIo`] enforces.
#[derive(Debug, Clone, Copy)]
pub struct ConnTimeouts {
    pub header: Duration,
    pub keepalive: Duration,
}

/// An I/O stream with the timeouts described in the module documentation.
pub struct ConnIo<T> {
    inner: T,
    activity: Arc<Activity>,
    timeouts: ConnTimeouts,
    /// HTTP/1.x: partial heads get a 408. HTTP/2 connections are only closed when idle.
    h1: bool,
    timer: Pin<Box<Sleep>>,
    /// The timer runs for the idle period that began when `started` had this value.
    armed_at: Option<u64>,
    head_started: bool,
    scan: HeadScan,
    /// Bytes of the 408 answer already written.
    rejecting: Option<usize>,
}

impl<T> ConnIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>, timeouts: ConnTimeouts, h1: bool) -> Self {
        ConnIo {
            inner,
            activity,
            timeouts,
            h1,
            timer: Box::pin(tokio::time::sleep(timeouts.header)),
            armed_at: None,
            head_started: false,
            scan: HeadScan::default(),
            rejecting: None,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> ConnIo<T> {
    /// Writes the 408 answer, then reports end of stream so hyper closes the connection.
    fn poll_reject(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut written = self.rejecting.unwrap_or(0);
        while written < REQUEST_TIMEOUT.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &REQUEST_TIMEOUT[written..]) {
                Poll::Ready(Ok(0)) => break,
                Poll::Ready(Ok(n)) => {
                    written += n;
                    self.rejecting = Some(written);
                }
                Poll::Ready(Err(_)) => break,
                Poll::Pending => return Poll::Pending,
            }
        }
        // A peer that stopped reading cannot hold the connection open: errors end it too.
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for ConnIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.rejecting.is_some() {
            return this.poll_reject(cx);
        }
        if this.activity.upgraded.load(Ordering::Acquire) {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        this.activity.reader.register(cx.waker());
        if this.activity.active.load(Ordering::Acquire) > 0 {
            this.armed_at = None;
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let started = this.activity.started.load(Ordering::Acquire);
        if this.armed_at != Some(started) {
            // A new idle period: the first request must come quickly, later ones may wait
            // for the keep-alive timeout.
            this.armed_at = Some(started);
            this.head_started = false;
            this.scan = HeadScan::default();
            let wait = if started == 0 {
                this.timeouts.header
            } else {
                this.timeouts.keepalive
            };
            this.timer.as_mut().reset(Instant::now() + wait);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.h1 && buf.filled().len() > before {
                    if !this.head_started {
                        this.head_started = true;
                        this.timer
                            .as_mut()
                            .reset(Instant::now() + this.timeouts.header);
                    }
                    if this.scan.feed(&buf.filled()[before..]) {
                        this.activity
                            .framing_conflict
                            .store(true, Ordering::Release);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if this.timer.as_mut().poll(cx).is_ready() {
                    if this.h1 && this.head_started {
                        this.rejecting = Some(0);
                        return this.poll_reject(cx);
                    }
                    // Idle: end of stream makes hyper close the connection quietly.
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ConnIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Reads an HTTP/1 request head as it passes, remembering which of `Content-Length` and
/// `Transfer-Encoding` it names. Only the start of each line (up to the colon) is looked at byte
/// by byte; the rest of a line is skipped with a vectorised search for the newline, so a long
/// cookie costs almost nothing. Stops at the blank line that ends the head.
#[derive(Debug, Default)]
struct HeadScan {
    lines: u32,
    line_len: usize,
    /// Reading a header name (from the start of a header line to its colon).
    in_name: bool,
    name: [u8; 17],
    name_len: usize,
    content_length: bool,
    transfer_encoding: bool,
    done: bool,
}

impl HeadScan {
    /// Feeds bytes; returns true once, when a finished head carried both headers.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        let mut i = 0;
        while i < bytes.len() {
            if self.done {
                return false;
            }
            if self.line_len > 0 && !self.in_name {
                // The request line or a header value: nothing to read until the newline.
                match memchr::memchr(b'\n', &bytes[i..]) {
                    Some(off) => i += off,
                    None => return false,
                }
            }
            let b = bytes[i];
            i += 1;
            match b {
                b'\n' => {
                    if self.line_len == 0 && self.lines > 0 {
                        self.done = true;
                        return self.content_length && self.transfer_encoding;
                    }
                    // Empty lines before the request line are allowed (RFC 9112 §2.2).
                    if self.line_len > 0 {
                        self.lines += 1;
                    }
                    self.line_len = 0;
                    self.name_len = 0;
                    self.in_name = self.lines > 0;
                }
                b'\r' => {}
                _ => {
                    self.line_len += 1;
                    if !self.in_name {
                        continue;
                    }
                    if b == b':' {
                        self.in_name = false;
                        match &self.name[..self.name_len] {
                            b"content-length" => self.content_length = true,
                            b"transfer-encoding" => self.transfer_encoding = true,
                            _ => {}
                        }
                    } else if self.name_len < self.name.len() {
                        self.name[self.name_len] = b.to_ascii_lowercase();
                        self.name_len += 1;
                    } else {
                        // Longer than any name we look for: skip the rest of the line.
                        self.in_name = false;
                    }
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::sample::select;
    use proptest::test_runner::Config as ProptestConfig;

    use super::HeadScan;

    fn scan(chunks: &[&[u8]]) -> bool {
        let mut s = HeadScan::default();
        chunks.iter().any(|c| s.feed(c))
    }

    #[test]
    fn finds_both_framing_headers_across_reads() {
        assert!(scan(&[
            b"\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Len",
            b"gth: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
        ]));
        assert!(!scan(&[
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nTransfer-Encoding: x\r\n\r\n"
        ]));
        assert!(!scan(&[
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ]));
        assert!(!scan(&[
            b"POST / HTTP/1.1\r\nTransfer-Encodingx: a\r\nContent-Length: 1\r\n\r\n"
        ]));
        assert!(!scan(&[b"GET /content-length:transfer-encoding: HTTP/1.1\r\nX-Content-Length-And-Transfer-Encoding: 1\r\n\r\n"]));
    }

    /// The answer of a plain reading of the head: lines up to the first blank line after the
    /// request line (blank lines before it are skipped), header names compared ignoring case.
    /// `\r` is dropped wherever it is, as the scanner does: hyper refuses a head with a stray
    /// `\r`, so only its place before `\n` matters.
    fn model(bytes: &[u8]) -> bool {
        let text: Vec<u8> = bytes.iter().copied().filter(|&b| b != b'\r').collect();
        let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        // The last piece has no newline after it: not a line yet.
        lines.pop();
        let mut lines = lines.into_iter().skip_while(|l| l.is_empty());
        if lines.next().is_none() {
            return false;
        }
        let (mut cl, mut te) = (false, false);
        for line in lines {
            if line.is_empty() {
                return cl && te;
            }
            if let Some(colon) = line.iter().position(|&b| b == b':') {
                let name = &line[..colon];
                cl |= name.eq_ignore_ascii_case(b"content-length");
                te |= name.eq_ignore_ascii_case(b"transfer-encoding");
            }
        }
        false
    }

    /// Feeds `bytes` cut at `cuts` (positions, any order); returns how many feeds said true.
    fn feed_cut(bytes: &[u8], cuts: &[usize]) -> usize {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        at.push(0);
        at.push(bytes.len());
        at.sort_unstable();
        let mut s = HeadScan::default();
        at.windows(2).filter(|w| s.feed(&bytes[w[0]..w[1]])).count()
    }

    /// Header lines and line ends that the scanner must read right, and near misses.
    fn head() -> impl Strategy<Value = Vec<u8>> {
        let name = select(
            &[
                "Content-Length",
                "content-length",
                "CONTENT-LENGTH",
                "Content-Lengt",
                "Content-Lengthx",
                "Transfer-Encoding",
                "transfer-encoding",
                "TRANSFER-ENCODING",
                "Transfer-Encodin",
                "Transfer-Encodingx",
                "X-Transfer-Encoding",
                " Content-Length",
                "Content-Length ",
                "Host",
                "Cookie",
                "",
                ":",
                "a",
            ][..],
        );
        let sep = select(&[": ", ":", " : ", ":\t", "", "::"][..]);
        let value = "[ -~]{0,40}";
        let eol = select(&["\r\n", "\r\n", "\n", "\r\r\n", "\r", ""][..]);
        let line = (name, sep, value, eol.clone())
            .prop_map(|(n, s, v, e)| format!("{n}{s}{v}{e}").into_bytes());
        (
            prop::collection::vec(eol.clone(), 0..3),
            "(GET|POST) /[ -~]{0,30} HTTP/1.1",
            eol.clone(),
            prop::collection::vec(line, 0..8),
            eol,
            prop::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(before, request, eol, lines, end, body)| {
                let mut h = before.concat().into_bytes();
                h.extend_from_slice(request.as_bytes());
                h.extend_from_slice(eol.as_bytes());
                h.extend(lines.concat());
                h.extend_from_slice(end.as_bytes());
                h.extend(body);
                h
            })
    }

    /// Any bytes, leaning on the ones the scanner reads.
    fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            prop::collection::vec(
                select(&[b'\r', b'\n', b':', b' ', b'c', b'C', b't', b'-', b'x'][..]),
                0..200
            ),
        ]
    }

    proptest! {
        #![proptest_config(cases(3000))]

        /// A head scanned in pieces cut anywhere gives the answer of the same head scanned
        /// whole and of the plain reading in `model`, and says so at most once.
        #[test]
        fn scan_agrees_with_model_across_reads(
            bytes in prop_oneof![3 => head(), 1 => any_bytes()],
            cuts in prop::collection::vec(any::<usize>(), 0..12),
        ) {
            let whole = feed_cut(&bytes, &[]);
            let cut = feed_cut(&bytes, &cuts);
            prop_assert!(whole <= 1 && cut <= 1);
            prop_assert_eq!(whole == 1, model(&bytes), "{:?}", String::from_utf8_lossy(&bytes));
            prop_assert_eq!(cut, whole, "{:?}", String::from_utf8_lossy(&bytes));
        }

        /// Byte by byte, the slowest reads a client can force, changes nothing either.
        #[test]
        fn scan_byte_by_byte(bytes in prop_oneof![3 => head(), 1 => any_bytes()]) {
            let every: Vec<usize> = (0..bytes.len()).collect();
            prop_assert_eq!(feed_cut(&bytes, &every) == 1, model(&bytes));
        }
    }

    /// `cases` unless `PROPTEST_CASES` is set (for the occasional long run).
    fn cases(cases: u32) -> ProptestConfig {
        let mut config = ProptestConfig::default();
        if std::env::var_os("PROPTEST_CASES").is_none() {
            config.cases = cases;
        }
        config
    }
}
