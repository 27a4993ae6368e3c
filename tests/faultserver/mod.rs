//! A misbehaving staging of our own: a raw TCP server on 127.0.0.1 (tokio, bytes on the wire,
//! no HTTP library) that commits exactly one fault, and counts the connections it accepted and
//! the requests it read, so that tests can tell how often preflight really tried.
//!
//! Every complete answer carries `connection: close` and the others never complete, so each
//! request the server counts came on its own connection and no pooled connection hides a retry.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How the server misbehaves: one fault per server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Resets every connection as soon as it is accepted, before reading a byte (SO_LINGER 0,
    /// then close: an RST instead of a FIN). Counts connections, never requests.
    ResetOnAccept,
    /// Reads the request, then resets the connection the same way: the request was sent.
    ResetAfterRequest,
    /// Reads the request and never answers (the connection stays open).
    Silent,
    /// Reads the request and closes the connection without a byte of answer.
    CloseWithoutAnswer,
    /// Sends the headers with `content-length: 100`, then 10 bytes of body, then stalls.
    StalledBody,
    /// Sends the headers with `content-length: 100`, then 10 bytes of body, then closes.
    TruncatedBody,
    /// Sends the headers with `content-length: 1000`, then one body byte every 50 ms: data
    /// keeps flowing, so only a timeout on the whole request (not an idle one) stops it.
    DripBody,
    /// A 200 with a chunked body that never ends (written until the client hangs up).
    EndlessChunkedBody,
    /// A 200 that declares `content-length` of 50 MiB and streams zeros.
    HugeDeclaredBody,
    /// A 200 with `content-encoding: gzip` whose body inflates to this many zero bytes (16 MiB
    /// take about 100 KiB on the wire).
    GzipBomb(usize),
    /// A garbage status line instead of `HTTP/1.1 200 OK`.
    MalformedStatusLine,
    /// `302 Found` with `location` pointing at the very path that was requested.
    RedirectLoop,
    /// This redirect status (302, 303, 307...) to `http://<addr>/elsewhere`: for instance a
    /// [`closed_port`], as a POST-redirect-GET whose result page is down.
    RedirectTo(u16, SocketAddr),
    /// `200` with `content-type: application/json` and the body `{"a":`.
    InvalidJson,
    /// This status (empty JSON object body) on every request: 500, 503, 404...
    Status(u16),
    /// The first `n` requests get `503`, every later one `200` with `{"ok":true}`.
    FailThenSucceed(usize),
    /// The first `n` requests are never answered (as [`Fault::Silent`]), every later one gets
    /// `200` with `{"ok":true}`.
    SilentThenSucceed(usize),
    /// As [`Fault::RedirectTo`], to `https://<addr>/elsewhere`.
    RedirectToHttps(u16, SocketAddr),
    /// Answers in plain HTTP as soon as a connection is accepted, before reading a byte: a TLS
    /// client gets garbage instead of a ServerHello, so its handshake fails. Counts
    /// connections, never requests.
    NotTls,
}

/// The body of a successful answer.
pub const OK_JSON: &str = r#"{"ok":true}"#;
/// The body of [`Fault::InvalidJson`].
pub const BAD_JSON: &str = r#"{"a":"#;
/// A status line no HTTP client can parse.
pub const GARBAGE_STATUS_LINE: &str = "HTPT/1.1 ok-ish, more or less\r\n";

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// A running fault server; it stops serving (and lets held connections go) when dropped.
pub struct FaultServer {
    addr: SocketAddr,
    fault: Fault,
    counters: Arc<Counters>,
    stop: CancellationToken,
}

impl FaultServer {
    /// Binds 127.0.0.1 on a free port and serves `fault` until dropped.
    pub async fn start(fault: Fault) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            fault,
            Arc::clone(&counters),
            stop.clone(),
        ));
        FaultServer {
            addr,
            fault,
            counters,
            stop,
        }
    }

    /// `http://127.0.0.1:<port>`, for `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn fault(&self) -> Fault {
        self.fault
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// Requests whose head (request line and headers) was read so far.
    pub fn requests(&self) -> usize {
        self.counters.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A loopback address where nothing listens: bound, then released, so connecting to it is
/// refused (nothing else on this machine is expected to grab the port in between).
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    addr
}

async fn accept_loop(
    listener: TcpListener,
    fault: Fault,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            () = stop.cancelled() => return,
        };
        counters.connections.fetch_add(1, Ordering::SeqCst);
        let counters = Arc::clone(&counters);
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = serve(stream, fault, &counters, &stop) => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

/// The head of a request as read off the wire.
struct Head {
    path: String,
}

/// Reads one request (head, then `content-length` bytes of body). `None` when the client
/// closed the connection or sent something this server does not understand.
async fn read_request(stream: &mut TcpStream) -> Option<Head> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let path = head.split_whitespace().nth(1)?.to_string();
    let content_length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body_read = buf.len() - head_end;
    while body_read < content_length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body_read += n;
    }
    Some(Head { path })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// A whole response with `connection: close`.
fn response(status: u16, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n{body}",
        reason(status),
        body.len()
    )
    .into_bytes()
}

/// SO_LINGER 0 then close: the kernel sends an RST instead of a FIN. (`set_zero_linger` is
/// tokio's non-deprecated spelling of `set_linger(Some(Duration::ZERO))`.)
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn send_and_close(mut stream: TcpStream, bytes: &[u8]) {
    let _ = stream.write_all(bytes).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

async fn serve(mut stream: TcpStream, fault: Fault, counters: &Counters, stop: &CancellationToken) {
    if fault == Fault::ResetOnAccept {
        reset(stream);
        return;
    }
    if fault == Fault::NotTls {
        send_and_close(stream, &response(400, "", "")).await;
        return;
    }
    let Some(head) = read_request(&mut stream).await else {
        return;
    };
    let nth = counters.requests.fetch_add(1, Ordering::SeqCst);
    match fault {
        Fault::ResetOnAccept | Fault::NotTls => unreachable!("handled before reading"),
        Fault::ResetAfterRequest => reset(stream),
        Fault::Silent => {
            stop.cancelled().await;
            drop(stream);
        }
        Fault::CloseWithoutAnswer => {
            let _ = stream.shutdown().await;
        }
        Fault::StalledBody => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&[b'x'; 10]).await;
            let _ = stream.flush().await;
            stop.cancelled().await;
            drop(stream);
        }
        Fault::TruncatedBody => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\n";
            let mut bytes = head.as_bytes().to_vec();
            bytes.extend_from_slice(&[b'x'; 10]);
            send_and_close(stream, &bytes).await;
        }
        Fault::DripBody => {
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..1000 {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                if stream.write_all(b"x").await.is_err() || stream.flush().await.is_err() {
                    return;
                }
            }
        }
        Fault::GzipBomb(size) => {
            let body = gzip_bomb(size);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(&body);
            send_and_close(stream, &bytes).await;
        }
        Fault::EndlessChunkedBody => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
            chunk.extend(std::iter::repeat_n(b'z', 64 * 1024));
            chunk.extend_from_slice(b"\r\n");
            // Until the client hangs up (or the test ends).
            while stream.write_all(&chunk).await.is_ok() {}
        }
        Fault::HugeDeclaredBody => {
            let total: usize = 50 * 1024 * 1024;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {total}\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let zeros = vec![0u8; 64 * 1024];
            let mut sent = 0;
            while sent < total && stream.write_all(&zeros).await.is_ok() {
                sent += zeros.len();
            }
        }
        Fault::MalformedStatusLine => {
            let bytes = format!("{GARBAGE_STATUS_LINE}content-length: 2\r\n\r\nok");
            send_and_close(stream, bytes.as_bytes()).await;
        }
        Fault::RedirectLoop => {
            let location = format!("location: {}\r\n", head.path);
            send_and_close(stream, &response(302, &location, "")).await;
        }
        Fault::RedirectTo(status, to) => {
            let location = format!("location: http://{to}/elsewhere\r\n");
            send_and_close(stream, &response(status, &location, "")).await;
        }
        Fault::RedirectToHttps(status, to) => {
            let location = format!("location: https://{to}/elsewhere\r\n");
            send_and_close(stream, &response(status, &location, "")).await;
        }
        Fault::SilentThenSucceed(n) if nth < n => {
            stop.cancelled().await;
            drop(stream);
        }
        Fault::SilentThenSucceed(_) => {
            let bytes = response(200, "content-type: application/json\r\n", OK_JSON);
            send_and_close(stream, &bytes).await;
        }
        Fault::InvalidJson => {
            let bytes = response(200, "content-type: application/json\r\n", BAD_JSON);
            send_and_close(stream, &bytes).await;
        }
        Fault::Status(status) => {
            let bytes = response(status, "content-type: application/json\r\n", "{}");
            send_and_close(stream, &bytes).await;
        }
        Fault::FailThenSucceed(n) => {
            let bytes = if nth < n {
                response(
                    503,
                    "content-type: application/json\r\n",
                    r#"{"error":"not yet"}"#,
                )
            } else {
                response(200, "content-type: application/json\r\n", OK_JSON)
            };
            send_and_close(stream, &bytes).await;
        }
    }
}

/// A gzip member of `size` zero bytes, compressed by hand (no compression crate needed): one
/// fixed-Huffman deflate block holding a literal 0 and then back-references of length 258 at
/// distance 1, about 13 bits per 258 bytes.
pub fn gzip_bomb(size: usize) -> Vec<u8> {
    assert!(size >= 1, "a bomb of at least one byte");
    let mut bits = BitWriter::default();
    bits.bits(1, 1); // BFINAL
    bits.bits(1, 2); // BTYPE 01: fixed Huffman codes
    bits.code(0x30, 8); // literal 0 (literals 0..=143: 8 bits from 0b0011_0000)
    let mut left = size - 1;
    while left >= 258 {
        bits.code(0xC5, 8); // length code 285 = 258 bytes (280..=287: 8 bits from 0b1100_0000)
        bits.code(0, 5); // distance code 0 = distance 1
        left -= 258;
    }
    for _ in 0..left {
        bits.code(0x30, 8); // the remainder as literals 0
    }
    bits.code(0, 7); // end of block (256: 7 bits of 0)
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend_from_slice(&bits.finish());
    out.extend_from_slice(&crc32_of_zeros(size).to_le_bytes());
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out
}

/// Deflate's bit order: values least significant bit first, Huffman codes most significant
/// bit first.
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    used: u32,
}

impl BitWriter {
    fn bits(&mut self, value: u32, count: u32) {
        for i in 0..count {
            self.acc |= ((value >> i) & 1) << self.used;
            self.used += 1;
            if self.used == 8 {
                self.out.push(self.acc as u8);
                self.acc = 0;
                self.used = 0;
            }
        }
    }

    fn code(&mut self, code: u32, count: u32) {
        let reversed = code.reverse_bits() >> (32 - count);
        self.bits(reversed, count);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.used > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// The CRC-32 (IEEE, as gzip uses it) of `len` zero bytes.
fn crc32_of_zeros(len: usize) -> u32 {
    // Feeding a zero byte is the same table step every time: table[(crc ^ 0) & 0xff].
    let table: Vec<u32> = (0..256u32)
        .map(|n| {
            (0..8).fold(n, |c, _| {
                if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                }
            })
        })
        .collect();
    let mut crc = 0xFFFF_FFFFu32;
    for _ in 0..len {
        crc = table[(crc & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}
