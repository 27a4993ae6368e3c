//! End-to-end performance benchmark of the real `preflight` release binary.
//!
//! Starts its own latency-injecting HTTP/1.1 target on 127.0.0.1 (in this process), generates
//! suites into a temporary directory, runs `target/release/preflight` as a child process and
//! prints, per scenario, the wall time (spawn to exit), the physical ideal
//! (`ceil(N/C) x L`, or `S x L` per flow), their ratio and the child's peak RSS.
//!
//! ```sh
//! cargo build --release && cargo run --release --example bench      # or: scripts/bench.sh
//! cargo run --release --example bench -- --runs 5 --only 1,2 --timer tokio
//! ```
//!
//! Scenarios: 1-2 latency (wall / ideal), 3 throughput at 0 ms, 4 `check` start-up, 5 one
//! probe end to end, 6 100,000 probes (peak RSS, throughput), 7 `merge` of 4 shard reports of
//! 25,000 flows that `run --shard K/4` wrote, 8 `serve` `/run` against `run` (a serve child on
//! 127.0.0.1 with a token).
//!
//! Options: `--runs N` (default 3; the median is reported), `--only LIST` (scenarios, e.g.
//! `1,3,p`; `p` is the progress-reporting comparison), `--timer precise|tokio` (how the server
//! waits; see below), `--bin PATH` (the binary; default: `preflight` next to this example's
//! own `target/<profile>/` folder), `--keep` (keep the generated suites and print their path),
//! `--settle SECS` (how long each run may wait for an idle machine, default 5).
//!
//! Measuring, and why the numbers can be trusted:
//! - Wall time is spawn to `wait4` return; peak RSS and the child's CPU time come from the
//!   `rusage` that `wait4(2)` returns (declared here with `extern "C"`: libc is linked anyway,
//!   the `libc` crate is not a dependency). Linux, 64-bit only; elsewhere RSS shows `n/a`.
//!   The child is spawned by a tiny helper (this executable in `__spawn` mode), because
//!   `ru_maxrss` would otherwise include this process's own high-water mark (see `run_child`).
//! - Before each run it waits (up to `--settle SECS`, default 5) for the machine to be under
//!   10% busy (`/proc/stat`) and flags the scenario NOISY when it was not: other processes on
//!   a 2-core box distort everything.
//! - The target is a raw keep-alive HTTP/1.1 server on this process's multi-threaded tokio
//!   runtime (2 workers on a 2-core box; nothing is pinned: server, timer and preflight share
//!   the cores, as they would in CI). It records, per run, when the first request arrived and
//!   the last response was written, so each wall time splits into start-up (spawn -> first
//!   request), the run on the wire, and tail (last response -> exit), and the delivered
//!   latency of every request (request complete -> response written).
//! - `--timer precise` (default): the latency is injected by one timer thread (a deadline heap
//!   under a `Condvar` with a 1 ns timer slack, then `yield_now` for the last 100 us: ~30 us
//!   late). `tokio::time::sleep` has a 1 ms wheel and rounds every deadline up, which adds
//!   ~1.2 ms to every request: 6% of a 20 ms step, twice the 3% budget being measured.
//!   `--timer tokio` uses it anyway; the calibration line at start shows both.
//! - The server's own capacity is measured with a tight in-process keep-alive client loop, and
//!   its CPU time (`getrusage(RUSAGE_SELF)`) is reported next to preflight's for every run.
//! - The harness floor of scenarios 1 and 2: a minimal in-process client replays the same
//!   request pattern first; its excess over the ideal is the server's and the machine's share
//!   (see `floor`), and only the rest of preflight's excess is preflight's own. The same client
//!   then runs as a child process (`__floor` mode), whose requests cross between processes as
//!   preflight's do: its own time and its spawn-to-exit wall are shown beside it.
//!
//! Helper modes for profiling: `--serve SECS [--latency MS]` runs only the target and prints its
//! URL; `--generate DIR [--port P]` writes only the suites; `--client-latency [--runs N]` times
//! one request at concurrency 1 with the floor's client and with preflight's (see
//! [`client_latency`]).

use serde_json::Value;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const RESPONSE_BODY: &str =
    r#"{"ok":true,"id":"c0ffee42","total":42.5,"items":[{"sku":"SKU-1","qty":1}]}"#;
/// Environment that would change what the child does (proxies would route loopback away).
const CLEARED_ENV: &[&str] = &[
    "PREFLIGHT_BASE_URL",
    "PREFLIGHT_KEEP_COMPILED",
    "NO_COLOR",
    "GITHUB_STEP_SUMMARY",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

// ---------------------------------------------------------------------------------------------
// rusage via wait4(2) / getrusage(2)
// ---------------------------------------------------------------------------------------------

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod sys {
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    pub struct Timeval {
        pub tv_sec: i64,
        pub tv_usec: i64,
    }

    /// `struct rusage` of 64-bit Linux (every field a `long`).
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    pub struct Rusage {
        pub ru_utime: Timeval,
        pub ru_stime: Timeval,
        pub ru_maxrss: i64,
        pub ru_ixrss: i64,
        pub ru_idrss: i64,
        pub ru_isrss: i64,
        pub ru_minflt: i64,
        pub ru_majflt: i64,
        pub ru_nswap: i64,
        pub ru_inblock: i64,
        pub ru_oublock: i64,
        pub ru_msgsnd: i64,
        pub ru_msgrcv: i64,
        pub ru_nsignals: i64,
        pub ru_nvcsw: i64,
        pub ru_nivcsw: i64,
    }

    unsafe extern "C" {
        fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut Rusage) -> i32;
        fn getrusage(who: i32, usage: *mut Rusage) -> i32;
        fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
    }

    /// The calling thread's timer slack to 1 ns (default 50 us): timed waits end on time.
    pub fn tight_timer_slack() {
        const PR_SET_TIMERSLACK: i32 = 29;
        // SAFETY: PR_SET_TIMERSLACK only changes the calling thread's timer slack.
        unsafe { prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0) };
    }

    fn secs(t: Timeval) -> f64 {
        t.tv_sec as f64 + t.tv_usec as f64 / 1e6
    }

    /// Waits for `pid`; returns (exit code or -signal, peak RSS KiB, user+sys CPU seconds).
    pub fn wait(pid: u32) -> std::io::Result<(i32, Option<u64>, Option<f64>)> {
        let mut status = 0i32;
        let mut usage = Rusage::default();
        loop {
            // SAFETY: plain syscall wrapper; both pointers are valid for the call.
            let r = unsafe { wait4(pid as i32, &mut status, 0, &mut usage) };
            if r == pid as i32 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let code = if status & 0x7f == 0 {
            (status >> 8) & 0xff
        } else {
            -(status & 0x7f)
        };
        let cpu = secs(usage.ru_utime) + secs(usage.ru_stime);
        Ok((code, Some(usage.ru_maxrss as u64), Some(cpu)))
    }

    /// CPU seconds (user+sys) used by this process so far: the server, its timer, the driver.
    pub fn self_cpu() -> Option<f64> {
        let mut usage = Rusage::default();
        // SAFETY: RUSAGE_SELF = 0; the pointer is valid for the call.
        (unsafe { getrusage(0, &mut usage) } == 0)
            .then(|| secs(usage.ru_utime) + secs(usage.ru_stime))
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod sys {
    pub fn wait(_pid: u32) -> std::io::Result<(i32, Option<u64>, Option<f64>)> {
        unreachable!("handled by the caller")
    }
    pub fn self_cpu() -> Option<f64> {
        None
    }
    pub fn tight_timer_slack() {}
}

const HAVE_WAIT4: bool = cfg!(all(target_os = "linux", target_pointer_width = "64"));

// ---------------------------------------------------------------------------------------------
// The precise timer: one thread, a deadline heap, Condvar timeouts (futex, hrtimer precision)
// ---------------------------------------------------------------------------------------------

struct Entry {
    at: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap, the earliest deadline must be on top.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Default)]
struct TimerState {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

#[derive(Default)]
struct Timer {
    state: Mutex<TimerState>,
    changed: Condvar,
}

impl Timer {
    fn start() -> Arc<Timer> {
        let timer = Arc::new(Timer::default());
        let t = timer.clone();
        std::thread::Builder::new()
            .name("bench-timer".into())
            .spawn(move || t.run())
            .expect("spawn the timer thread");
        timer
    }

    /// The last stretch before a deadline is waited out with `yield_now` rather than a timed
    /// wait, whose wake-up is ~50-100 us late on this kind of VM.
    const SPIN: Duration = Duration::from_micros(100);

    fn run(&self) {
        sys::tight_timer_slack();
        let mut state = self.state.lock().unwrap();
        loop {
            let now = Instant::now();
            while state.heap.peek().is_some_and(|e| e.at <= now) {
                let entry = state.heap.pop().expect("peeked");
                let _ = entry.wake.send(());
            }
            state = match state.heap.peek().map(|e| e.at - now) {
                Some(wait) if wait > Self::SPIN => {
                    self.changed
                        .wait_timeout(state, wait - Self::SPIN)
                        .unwrap()
                        .0
                }
                Some(_) => {
                    drop(state);
                    std::thread::yield_now();
                    self.state.lock().unwrap()
                }
                None => self.changed.wait(state).unwrap(),
            };
        }
    }

    async fn sleep_until(&self, at: Instant) {
        let (wake, woken) = oneshot::channel();
        {
            let mut state = self.state.lock().unwrap();
            state.seq += 1;
            let seq = state.seq;
            let earliest = state.heap.peek().is_none_or(|e| at < e.at);
            state.heap.push(Entry { at, seq, wake });
            if earliest {
                self.changed.notify_one();
            }
        }
        let _ = woken.await;
    }
}

// ---------------------------------------------------------------------------------------------
// The target server
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    Precise,
    Tokio,
}

/// What the server counts; `first`/`last` are nanoseconds since `base`.
struct Stats {
    base: Instant,
    requests: AtomicU64,
    connections: AtomicU64,
    open: AtomicUsize,
    peak_open: AtomicUsize,
    delivered_ns: AtomicU64,
    delivered_max_ns: AtomicU64,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
}

impl Stats {
    fn reset_window(&self) {
        self.first_ns.store(u64::MAX, Ordering::SeqCst);
        self.last_ns.store(0, Ordering::SeqCst);
        self.delivered_max_ns.store(0, Ordering::SeqCst);
        self.peak_open
            .store(self.open.load(Ordering::SeqCst), Ordering::SeqCst);
    }
    fn since_base(&self, at: Instant) -> u64 {
        at.duration_since(self.base).as_nanos() as u64
    }
}

struct Server {
    port: u16,
    stats: Arc<Stats>,
    latency_ns: Arc<AtomicU64>,
}

impl Server {
    async fn start(timer_kind: TimerKind) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stats = Arc::new(Stats {
            base: Instant::now(),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            peak_open: AtomicUsize::new(0),
            delivered_ns: AtomicU64::new(0),
            delivered_max_ns: AtomicU64::new(0),
            first_ns: AtomicU64::new(u64::MAX),
            last_ns: AtomicU64::new(0),
        });
        let latency_ns = Arc::new(AtomicU64::new(0));
        let timer = (timer_kind == TimerKind::Precise).then(Timer::start);
        let response: Arc<[u8]> = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{RESPONSE_BODY}",
            RESPONSE_BODY.len()
        )
        .into_bytes()
        .into();
        let (s, l) = (stats.clone(), latency_ns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let _ = socket.set_nodelay(true);
                let (s, l, t, r) = (s.clone(), l.clone(), timer.clone(), response.clone());
                tokio::spawn(async move {
                    s.connections.fetch_add(1, Ordering::Relaxed);
                    let open = s.open.fetch_add(1, Ordering::SeqCst) + 1;
                    s.peak_open.fetch_max(open, Ordering::SeqCst);
                    let _ = serve(socket, &s, &l, t.as_deref(), &r).await;
                    s.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Server {
            port,
            stats,
            latency_ns,
        }
    }

    fn set_latency(&self, latency: Duration) {
        self.latency_ns
            .store(latency.as_nanos() as u64, Ordering::SeqCst);
    }
}

/// One keep-alive connection: head, then `content-length` bytes of body, wait, answer.
async fn serve(
    mut socket: TcpStream,
    stats: &Stats,
    latency_ns: &AtomicU64,
    timer: Option<&Timer>,
    response: &[u8],
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        // The request head.
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 64 * 1024 {
                return Ok(());
            }
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&buf[..head_end]).unwrap_or("");
        let mut body_len = 0usize;
        let mut close = false;
        for line in head.split("\r\n").skip(1) {
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    body_len = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("connection")
                    && value.trim().eq_ignore_ascii_case("close")
                {
                    close = true;
                }
            }
        }
        // The body.
        while buf.len() < head_end + body_len {
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..head_end + body_len);
        let arrived = Instant::now();
        stats
            .first_ns
            .fetch_min(stats.since_base(arrived), Ordering::SeqCst);
        let latency = Duration::from_nanos(latency_ns.load(Ordering::Relaxed));
        if !latency.is_zero() {
            match timer {
                Some(timer) => timer.sleep_until(arrived + latency).await,
                None => tokio::time::sleep_until((arrived + latency).into()).await,
            }
        }
        socket.write_all(response).await?;
        let done = Instant::now();
        let delivered = done.duration_since(arrived).as_nanos() as u64;
        stats.requests.fetch_add(1, Ordering::SeqCst);
        stats.delivered_ns.fetch_add(delivered, Ordering::Relaxed);
        stats
            .delivered_max_ns
            .fetch_max(delivered, Ordering::Relaxed);
        stats
            .last_ns
            .fetch_max(stats.since_base(done), Ordering::SeqCst);
        if close {
            return Ok(());
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The server's capacity: `clients` keep-alive connections in a tight request/response loop
/// for `for_how_long` (0 ms latency). Runs in this process, so the clients use CPU too: what
/// comes out is a lower bound of the server's capacity on this machine.
async fn capacity(port: u16, clients: usize, for_how_long: Duration) -> f64 {
    let request = b"GET /capacity HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: */*\r\n\r\n";
    let expected = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{RESPONSE_BODY}",
        RESPONSE_BODY.len()
    )
    .len();
    let started = Instant::now();
    let end = started + for_how_long;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        tasks.spawn(async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            stream.set_nodelay(true).ok()?;
            let mut buf = vec![0u8; expected];
            let mut done = 0u64;
            // Bounded by time and, as a safety net, by count.
            while Instant::now() < end && done < 10_000_000 {
                stream.write_all(request).await.ok()?;
                stream.read_exact(&mut buf).await.ok()?;
                done += 1;
            }
            Some(done)
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done.ok().flatten().unwrap_or(0);
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// The harness floor of a latency scenario: the same request pattern (`flows` flows of
/// `steps` sequential requests, `concurrency` at a time, one keep-alive connection per slot)
/// sent by a minimal in-process client that does nothing but write a request and read the
/// response. Whatever this takes beyond the ideal is the server's (and the machine's) share;
/// only the rest of preflight's excess is preflight's own.
async fn floor(port: u16, flows: usize, concurrency: usize, steps: usize) -> Option<Duration> {
    let request = b"POST /floor HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
    let expected = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{RESPONSE_BODY}",
        RESPONSE_BODY.len()
    )
    .len();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut slots = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let next = next.clone();
        slots.spawn(async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            stream.set_nodelay(true).ok()?;
            let mut buf = vec![0u8; expected];
            while next.fetch_add(1, Ordering::SeqCst) < flows {
                for _ in 0..steps {
                    stream.write_all(request).await.ok()?;
                    stream.read_exact(&mut buf).await.ok()?;
                }
            }
            Some(())
        });
    }
    let mut ok = true;
    while let Some(done) = slots.join_next().await {
        ok &= matches!(done, Ok(Some(())));
    }
    ok.then(|| started.elapsed())
}

/// `--client-latency`: the time of one request at concurrency 1 against the target at 20 ms,
/// from the start of the request to its body read, with the harness floor's client (one
/// keep-alive socket, write then read) and with preflight's own HTTP client (reqwest as
/// preflight builds it, through `preflight::tls::client`), alternating, `runs` rounds of 200
/// requests each; prints each round's median and 10th percentile. What preflight's client
/// takes beyond the floor's on every request is reqwest's and hyper's (their tasks and
/// wake-ups), since nothing of preflight runs between the two.
fn client_latency(runs: usize, timer: TimerKind) {
    const REQUESTS: usize = 200;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let server = Server::start(timer).await;
        server.set_latency(Duration::from_millis(20));
        let port = server.port;
        preflight::tls::install_crypto_provider();
        let client = preflight::tls::client(&Default::default()).expect("client");
        let url = format!("http://127.0.0.1:{port}/floor");
        let request = b"POST /floor HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        let expected = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{RESPONSE_BODY}",
            RESPONSE_BODY.len()
        )
        .len();
        let shown = |times: &mut Vec<Duration>| {
            times.sort();
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            format!(
                "median {:8.1} us, p10 {:8.1} us",
                us(times[times.len() / 2]),
                us(times[times.len() / 10])
            )
        };
        println!("one request at concurrency 1, target at 20 ms ({REQUESTS} requests a round)");
        for round in 1..=runs {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let mut buf = vec![0u8; expected];
            let mut floor = Vec::with_capacity(REQUESTS);
            for _ in 0..REQUESTS {
                let started = Instant::now();
                stream.write_all(request).await.expect("write");
                stream.read_exact(&mut buf).await.expect("read");
                floor.push(started.elapsed());
            }
            let mut reqwest = Vec::with_capacity(REQUESTS);
            for _ in 0..REQUESTS {
                let started = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await
                    .expect("request");
                response.bytes().await.expect("body");
                reqwest.push(started.elapsed());
            }
            println!(
                "round {round}: floor's client {}; preflight's client {}",
                shown(&mut floor),
                shown(&mut reqwest)
            );
        }
    });
}

/// Mean lateness of `n` sleeps of `latency` with the tokio timer and with the precise timer.
async fn calibrate(latency: Duration, n: usize) -> (Duration, Duration) {
    let timer = Timer::start();
    let mut tokio_late = Duration::ZERO;
    let mut precise_late = Duration::ZERO;
    for _ in 0..n {
        let at = Instant::now() + latency;
        tokio::time::sleep_until(at.into()).await;
        tokio_late += Instant::now().saturating_duration_since(at);
        let at = Instant::now() + latency;
        timer.sleep_until(at).await;
        precise_late += Instant::now().saturating_duration_since(at);
    }
    (tokio_late / n as u32, precise_late / n as u32)
}

// ---------------------------------------------------------------------------------------------
// Suites
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// One GET, status + one JSON assertion.
    Probe,
    /// Five steps: create cart (capture), add item, view cart, checkout, pay.
    Checkout,
}

impl Shape {
    fn steps(self) -> usize {
        match self {
            Shape::Probe => 1,
            Shape::Checkout => 5,
        }
    }
}

/// The suites of the scenarios: directory name, flows, concurrency, shape.
/// Scenario 7 merges the reports of scenario 6's suite run in 4 shards; scenario 8 serves a
/// suite shaped like scenario 1's.
const SUITES: [(&str, usize, usize, Shape); 7] = [
    ("scenario-1", 1000, 50, Shape::Probe),
    ("scenario-2", 200, 32, Shape::Checkout),
    ("scenario-3", 20_000, 64, Shape::Probe),
    ("scenario-4", 500, 32, Shape::Checkout),
    ("scenario-5", 1, 1, Shape::Probe),
    ("scenario-6", SCALE_FLOWS, 64, Shape::Probe),
    ("scenario-8", 1000, 50, Shape::Probe),
];

/// Scenario 6's suite, which scenario 7 runs in shards.
const SCALE_FLOWS: usize = 100_000;
/// Scenario 7: the shards of scenario 6's suite whose reports are merged.
const MERGE_SHARDS: usize = 4;

fn write_suite(dir: &Path, port: u16, flows: usize, concurrency: usize, shape: Shape) {
    std::fs::create_dir_all(dir).expect("suite dir");
    std::fs::write(
        dir.join("preflight.toml"),
        format!(
            "name = \"bench\"\nbase_url = \"http://127.0.0.1:{port}\"\nconcurrency = {concurrency}\n\
             timeout = \"10s\"\ndeadline = \"10m\"\n"
        ),
    )
    .expect("write preflight.toml");
    for i in 0..flows {
        let text = match shape {
            Shape::Probe => format!(
                "[[step]]\npath = \"/probe/{i}\"\n\n[step.expect]\nstatus = 200\n\n\
                 [step.expect.json]\n\"$.ok\" = true\n"
            ),
            Shape::Checkout => checkout_flow(i),
        };
        let name = match shape {
            Shape::Probe => format!("probe-{i:05}.toml"),
            Shape::Checkout => format!("checkout-{i:05}.toml"),
        };
        std::fs::write(dir.join(name), text).expect("write flow");
    }
}

fn checkout_flow(i: usize) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "name = \"checkout {i}\"\ntags = [\"checkout\"]\n\n\
         [[step]]\nname = \"create cart\"\nmethod = \"POST\"\npath = \"/api/carts\"\n\
         json = {{ currency = \"EUR\", flow = {i} }}\n\
         [step.expect]\nstatus = 200\n[step.expect.json]\n\"$.ok\" = true\n\
         [step.capture]\ncart = \"$.id\"\n\n"
    );
    let rest = [
        (
            "add item",
            "POST",
            "/api/carts/{{ cart }}/items",
            "json = { sku = \"SKU-1\", qty = 1 }\n",
            "\"$.items\" = { length = 1 }",
        ),
        (
            "view cart",
            "GET",
            "/api/carts/{{ cart }}",
            "",
            "\"$.id\" = \"{{ cart }}\"",
        ),
        (
            "checkout",
            "POST",
            "/api/carts/{{ cart }}/checkout",
            "json = { cart = \"{{ cart }}\" }\n",
            "\"$.total\" = { gt = 0 }",
        ),
        (
            "pay",
            "POST",
            "/api/orders/{{ cart }}/pay",
            "json = { method = \"card\" }\n",
            "\"$.ok\" = true",
        ),
    ];
    for (name, method, path, body, assertion) in rest {
        let _ = write!(
            s,
            "[[step]]\nname = \"{name}\"\nmethod = \"{method}\"\npath = \"{path}\"\n{body}\
             [step.expect]\nstatus = 200\n[step.expect.json]\n{assertion}\n\n"
        );
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Run {
    wall: Duration,
    code: i32,
    rss_kib: Option<u64>,
    child_cpu: Option<f64>,
    server_cpu: Option<f64>,
    /// Spawn -> first request, first request -> last response, last response -> exit.
    startup: Option<Duration>,
    on_wire: Option<Duration>,
    tail: Option<Duration>,
    requests: u64,
    delivered_mean: Option<Duration>,
    delivered_max: Option<Duration>,
    connections: u64,
    peak_open: usize,
    /// `duration_ms` of the JSON report (the engine's own clock).
    engine_ms: Option<u64>,
    /// Busy share of all cores just before the run (other processes).
    busy_before: Option<f64>,
    problem: Option<String>,
}

/// Spawns `cmd` through the spawn helper (this same executable, `__spawn` mode) and reads the
/// server's counters around it.
///
/// Why a helper: `ru_maxrss` survives `execve`. A child spawned straight from this process
/// starts with this process's high-water mark (the benchmark holds a runtime, suites and parsed
/// reports), so `wait4` would report `max(bench, preflight)`. The helper is a fresh, tiny
/// process (no runtime started, ~2 MiB): what leaks from it is far below any real peak of
/// preflight, so its `wait4` gives preflight's own peak RSS, like GNU `time -f %M` would.
fn run_child(cmd: Command, server: Option<&Server>, out_dir: &Path) -> Run {
    let busy_before = settle(SETTLE.get().copied().unwrap_or(Duration::ZERO));
    let result_file = out_dir.join("spawn-result.txt");
    let _ = std::fs::remove_file(&result_file);
    let mut helper = Command::new(std::env::current_exe().expect("own executable"));
    helper
        .arg("__spawn")
        .arg(&result_file)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for var in CLEARED_ENV {
        helper.env_remove(var);
    }
    let stdout = std::fs::File::create(out_dir.join("stdout.txt")).expect("stdout file");
    let stderr = std::fs::File::create(out_dir.join("stderr.txt")).expect("stderr file");
    helper.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let before = server.map(|s| {
        s.stats.reset_window();
        (
            s.stats.requests.load(Ordering::SeqCst),
            s.stats.delivered_ns.load(Ordering::SeqCst),
            s.stats.connections.load(Ordering::SeqCst),
        )
    });
    let cpu_before = sys::self_cpu();
    let helper_status = helper
        .spawn()
        .expect("spawn the helper")
        .wait()
        .expect("wait for the helper");
    let exited = Instant::now();
    let reported = std::fs::read_to_string(&result_file).unwrap_or_default();
    let fields: Vec<&str> = reported.split_whitespace().collect();
    let (wall, code, rss_kib, child_cpu) = match fields.as_slice() {
        [wall_ns, code, rss, cpu, ..] => (
            Duration::from_nanos(wall_ns.parse().unwrap_or(0)),
            code.parse().unwrap_or(-1),
            rss.parse().ok(),
            cpu.parse().ok(),
        ),
        _ => panic!("the spawn helper failed ({helper_status}): {reported:?}"),
    };
    // The child's spawn, on this process's clock (the helper's own exit is ~0.2 ms).
    let spawned = exited - wall;
    let server_cpu = cpu_before.zip(sys::self_cpu()).map(|(a, b)| b - a);
    let mut run = Run {
        wall,
        code,
        rss_kib,
        child_cpu,
        server_cpu,
        busy_before,
        ..Run::default()
    };
    if let (Some(s), Some((req0, ns0, conn0))) = (server, before) {
        let st = &s.stats;
        run.requests = st.requests.load(Ordering::SeqCst) - req0;
        run.connections = st.connections.load(Ordering::SeqCst) - conn0;
        run.peak_open = st.peak_open.load(Ordering::SeqCst);
        let delivered = st.delivered_ns.load(Ordering::SeqCst) - ns0;
        if let Some(mean) = delivered.checked_div(run.requests) {
            run.delivered_mean = Some(Duration::from_nanos(mean));
            run.delivered_max = Some(Duration::from_nanos(
                st.delivered_max_ns.load(Ordering::SeqCst),
            ));
            let first = st.base + Duration::from_nanos(st.first_ns.load(Ordering::SeqCst));
            let last = st.base + Duration::from_nanos(st.last_ns.load(Ordering::SeqCst));
            run.startup = Some(first.saturating_duration_since(spawned));
            run.on_wire = Some(last.saturating_duration_since(first));
            run.tail = Some(exited.saturating_duration_since(last));
        }
    }
    run
}

/// Share of the machine's CPU time that was busy (not idle, not iowait) over `window`, from
/// `/proc/stat`: what other processes take away from the run that follows.
fn machine_busy(window: Duration) -> Option<f64> {
    fn sample() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let idle = cpu.get(3)? + cpu.get(4).unwrap_or(&0);
        Some((cpu.iter().take(8).sum(), idle))
    }
    let (t0, i0) = sample()?;
    std::thread::sleep(window);
    let (t1, i1) = sample()?;
    let total = t1.checked_sub(t0)?;
    (total > 0).then(|| 1.0 - (i1 - i0) as f64 / total as f64)
}

/// Waits (at most `max_wait`) until the machine is nearly idle, so that other processes do
/// not distort the run; returns the last busy share seen.
fn settle(max_wait: Duration) -> Option<f64> {
    let until = Instant::now() + max_wait;
    loop {
        let busy = machine_busy(Duration::from_millis(200));
        if busy.is_none_or(|b| b < 0.10) || Instant::now() >= until {
            return busy;
        }
    }
}

fn preflight_run(bin: &Path, suite: &Path, json: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg(suite)
        .args(extra)
        .arg("--json")
        .arg(json);
    cmd
}

/// Checks a run did what it should: exit 0, a passing report with every flow passed, and
/// every request seen by the server.
fn validate(run: &mut Run, json: &Path, flows: usize, steps: usize, out_dir: &Path) {
    let mut problems = validate_written(run, json, flows, out_dir);
    let expected = (flows * steps) as u64;
    if run.requests != expected {
        problems.push(format!(
            "server saw {} requests, expected {expected}",
            run.requests
        ));
    }
    if !problems.is_empty() {
        run.problem = Some(problems.join("; "));
    }
}

/// The problems of a command that writes a JSON report (`run`, `merge`): not exit 0, or a
/// report that is missing, not `pass`, or without every one of `flows` passed.
fn validate_written(run: &mut Run, json: &Path, flows: usize, out_dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    if run.code != 0 {
        let stdout = std::fs::read_to_string(out_dir.join("stdout.txt")).unwrap_or_default();
        let last = stdout.lines().last().unwrap_or("").to_string();
        problems.push(format!("exit {} ({last})", run.code));
    }
    let report = std::fs::read(json)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    problems.extend(report_problems(run, report.as_ref(), flows));
    problems
}

/// What is wrong with a JSON report that should say `pass` with all of `flows` passed.
fn report_problems(run: &mut Run, report: Option<&Value>, flows: usize) -> Vec<String> {
    let Some(report) = report else {
        return vec!["no JSON report".into()];
    };
    let mut problems = Vec::new();
    run.engine_ms = report["duration_ms"].as_u64();
    if report["verdict"] != "pass" {
        problems.push(format!("verdict {}", report["verdict"]));
    }
    if report["summary"]["passed"].as_u64() != Some(flows as u64) {
        problems.push(format!(
            "{} of {flows} flows passed",
            report["summary"]["passed"]
        ));
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// `preflight serve` under test (scenario 8)
// ---------------------------------------------------------------------------------------------

/// A `preflight serve` child listening on 127.0.0.1 (port chosen by the system), with a token.
/// Dropping it kills the child.
struct Served {
    child: std::process::Child,
    port: u16,
    token: String,
}

impl Served {
    /// Starts serve on `dir` and waits (at most 60 s) until it listens and `/readyz` says ready.
    fn start(
        rt: &tokio::runtime::Runtime,
        bin: &Path,
        dir: &Path,
        out_dir: &Path,
    ) -> Result<Served, String> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let log = out_dir.join("serve-stderr.txt");
        let stderr = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("PREFLIGHT_SERVE_TOKEN", &token)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for var in CLEARED_ENV {
            cmd.env_remove(var);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot spawn serve: {e}"))?;
        let mut served = Served {
            child,
            port: 0,
            token,
        };
        let until = Instant::now() + Duration::from_secs(60);
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        while served.port == 0 {
            if let Ok(Some(status)) = served.child.try_wait() {
                return Err(format!("serve exited ({status}): {}", read_log().trim()));
            }
            if Instant::now() > until {
                return Err(format!("serve did not listen within 60 s: {}", read_log()));
            }
            // "preflight serve: listening on http://127.0.0.1:PORT (suite ...)"
            served.port = read_log()
                .split("listening on http://127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
            std::thread::sleep(Duration::from_millis(10));
        }
        loop {
            let ready = rt.block_on(http_call(served.port, "GET", "/readyz", ""));
            if matches!(ready, Ok((200, _))) {
                return Ok(served);
            }
            if Instant::now() > until {
                return Err(format!("serve not ready within 60 s: {ready:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// One `POST /run`, timed from sending the request to the last byte of the answer, and
    /// checked like a command-line run: 200, a passing report, every request seen.
    fn run(&self, rt: &tokio::runtime::Runtime, server: &Server, flows: usize) -> Run {
        let busy_before = settle(SETTLE.get().copied().unwrap_or(Duration::ZERO));
        let stats = &server.stats;
        stats.reset_window();
        let requests_before = stats.requests.load(Ordering::SeqCst);
        let cpu_before = sys::self_cpu();
        let sent = Instant::now();
        let answer = rt.block_on(http_call(self.port, "POST", "/run", &self.token));
        let answered = Instant::now();
        let mut run = Run {
            wall: answered - sent,
            busy_before,
            server_cpu: cpu_before.zip(sys::self_cpu()).map(|(a, b)| b - a),
            requests: stats.requests.load(Ordering::SeqCst) - requests_before,
            ..Run::default()
        };
        if run.requests > 0 {
            let first = stats.base + Duration::from_nanos(stats.first_ns.load(Ordering::SeqCst));
            let last = stats.base + Duration::from_nanos(stats.last_ns.load(Ordering::SeqCst));
            run.startup = Some(first.saturating_duration_since(sent));
            run.on_wire = Some(last.saturating_duration_since(first));
            run.tail = Some(answered.saturating_duration_since(last));
        }
        let mut problems = Vec::new();
        match answer {
            Ok((status, body)) => {
                run.code = i32::from(status);
                if status != 200 {
                    problems.push(format!("HTTP {status}"));
                }
                let report = serde_json::from_slice::<Value>(&body).ok();
                problems.extend(report_problems(&mut run, report.as_ref(), flows));
            }
            Err(e) => problems.push(format!("POST /run failed: {e}")),
        }
        if run.requests != flows as u64 {
            problems.push(format!(
                "server saw {} requests, expected {flows}",
                run.requests
            ));
        }
        if !problems.is_empty() {
            run.problem = Some(problems.join("; "));
        }
        run
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port` (`connection: close`, no body; the bearer token
/// when not empty), within 10 minutes: the status and the whole body.
async fn http_call(
    port: u16,
    method: &str,
    path: &str,
    token: &str,
) -> std::io::Result<(u16, Vec<u8>)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let auth = if token.is_empty() {
            String::new()
        } else {
            format!("authorization: Bearer {token}\r\n")
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n{auth}content-length: 0\r\n\
             connection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let mut raw = tokio::time::timeout(Duration::from_secs(600), exchange)
        .await
        .map_err(|_| bad("no answer within 10 minutes"))??;
    let head_end = find(&raw, b"\r\n\r\n").ok_or_else(|| bad("no response head"))? + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let body = raw.split_off(head_end);
    if head.contains("\r\ntransfer-encoding: chunked") {
        let body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
        return Ok((status, body));
    }
    Ok((status, body))
}

/// The body of a `transfer-encoding: chunked` message.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let size = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios and reporting
// ---------------------------------------------------------------------------------------------

struct Row {
    scenario: String,
    wall: String,
    ideal: String,
    ratio: String,
    rss: String,
    note: String,
}

fn median<T: Copy + PartialOrd>(values: &[T]) -> T {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), ms)
}

/// One line per run, on stderr, with everything measured.
fn describe(label: &str, i: usize, run: &Run) {
    let cpu = |c: Option<f64>| c.map_or("-".into(), |c| format!("{:.0} ms", c * 1e3));
    eprintln!(
        "  {label} run {}: wall {} | start-up {} + on wire {} + tail {} | engine {} | rss {} | \
         cpu preflight {} server {} | machine busy before {} | {} req, {} conns (peak open {}), delivered mean {} max {}{}",
        i + 1,
        ms(run.wall),
        opt_ms(run.startup),
        opt_ms(run.on_wire),
        opt_ms(run.tail),
        run.engine_ms.map_or("-".into(), |m| format!("{m} ms")),
        mib(run.rss_kib),
        cpu(run.child_cpu),
        cpu(run.server_cpu),
        run.busy_before
            .map_or("-".into(), |b| format!("{:.0}%", b * 100.0)),
        run.requests,
        run.connections,
        run.peak_open,
        opt_ms(run.delivered_mean),
        opt_ms(run.delivered_max),
        run.problem
            .as_ref()
            .map_or(String::new(), |p| format!(" | INVALID: {p}")),
    );
}

/// One target of the goal and whether the medians meet it.
struct Verdict {
    target: String,
    measured: String,
    met: bool,
}

impl Verdict {
    fn new(target: String, measured: String, met: bool) -> Verdict {
        Verdict {
            target,
            measured,
            met,
        }
    }

    fn rss(id: &str, kib: Option<u64>, valid: bool) -> Verdict {
        Verdict::rss_under(id, kib, valid, 40)
    }

    fn rss_under(id: &str, kib: Option<u64>, valid: bool, limit_mib: u64) -> Verdict {
        Verdict::new(
            format!("{id}: peak RSS < {limit_mib} MiB"),
            mib(kib),
            valid && kib.is_some_and(|k| k < limit_mib * 1024),
        )
    }

    fn under(target: &str, measured: Duration, limit: Duration, valid: bool) -> Verdict {
        Verdict::new(target.into(), ms(measured), valid && measured < limit)
    }
}

struct Summary {
    wall: Duration,
    rss: Option<u64>,
    startup: Option<Duration>,
    on_wire: Option<Duration>,
    tail: Option<Duration>,
    child_cpu: Option<f64>,
    server_cpu: Option<f64>,
    delivered_mean: Option<Duration>,
    busy_max: Option<f64>,
    invalid: usize,
}

fn summarize(runs: &[Run]) -> Summary {
    let walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
    let med_opt = |f: &dyn Fn(&Run) -> Option<Duration>| {
        let v: Vec<Duration> = runs.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| median(&v))
    };
    let med_f = |f: &dyn Fn(&Run) -> Option<f64>| {
        let v: Vec<f64> = runs.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| median(&v))
    };
    let rss: Vec<u64> = runs.iter().filter_map(|r| r.rss_kib).collect();
    Summary {
        wall: median(&walls),
        rss: (!rss.is_empty()).then(|| median(&rss)),
        startup: med_opt(&|r| r.startup),
        on_wire: med_opt(&|r| r.on_wire),
        tail: med_opt(&|r| r.tail),
        child_cpu: med_f(&|r| r.child_cpu),
        server_cpu: med_f(&|r| r.server_cpu),
        delivered_mean: med_opt(&|r| r.delivered_mean),
        busy_max: runs.iter().filter_map(|r| r.busy_before).reduce(f64::max),
        invalid: runs.iter().filter(|r| r.problem.is_some()).count(),
    }
}

/// The note of a 0 ms throughput row: the rate end to end and on the wire, where the time
/// went, and how busy the cores were.
fn throughput_note(flows: usize, s: &Summary, cores: usize) -> String {
    let rate = flows as f64 / s.wall.as_secs_f64();
    let wire_rate = s.on_wire.map(|w| flows as f64 / w.as_secs_f64());
    let cpu_share = s
        .child_cpu
        .zip(s.server_cpu)
        .map(|(c, sv)| (c / s.wall.as_secs_f64(), sv / s.wall.as_secs_f64()));
    let cpu_note = cpu_share.map_or(String::new(), |(c, sv)| {
        format!("; cores busy: preflight {c:.2}, server {sv:.2} (of {cores})")
    });
    format!(
        "**{rate:.0} probes/s** end to end ({} on the wire); start-up {} + on wire {} + tail {}; \
         CPU preflight {} / server {}{cpu_note}{}",
        wire_rate.map_or("-".into(), |r| format!("{r:.0}/s")),
        opt_ms(s.startup),
        opt_ms(s.on_wire),
        opt_ms(s.tail),
        s.child_cpu
            .map_or("-".into(), |c| format!("{:.0} ms", c * 1e3)),
        s.server_cpu
            .map_or("-".into(), |c| format!("{:.0} ms", c * 1e3)),
        invalid_note(s)
    )
}

fn invalid_note(s: &Summary) -> String {
    let mut note = String::new();
    if let Some(b) = s.busy_max.filter(|b| *b >= 0.10) {
        note += &format!("; NOISY: machine {:.0}% busy before a run", b * 100.0);
    }
    if s.invalid > 0 {
        note += &format!("; **{} run(s) INVALID (see stderr)**", s.invalid);
    }
    note
}

/// The ids `--only` takes (`p`: the progress-output comparison of scenario 3).
const SCENARIOS: [&str; 9] = ["1", "2", "3", "4", "5", "6", "7", "8", "p"];

/// How long each run may wait for the machine to calm down (`--settle SECS`).
static SETTLE: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

struct Options {
    runs: usize,
    only: Vec<String>,
    timer: TimerKind,
    bin: PathBuf,
    /// `--before PATH`: the binary before a change, measured first in the same run, for the
    /// before/after table.
    before: Option<PathBuf>,
    keep: bool,
    settle: Duration,
    /// `--serve SECS`: only run the target server (for profiling), then exit.
    serve: Option<Duration>,
    latency: Duration,
    /// `--generate DIR`: only write the suites (with `--port P` in base_url), then exit.
    generate: Option<PathBuf>,
    port: u16,
    /// `--client-latency`: only compare one request's time at concurrency 1, the floor's
    /// client against preflight's HTTP client (reqwest as preflight builds it), then exit.
    client_latency: bool,
}

fn parse_args() -> Options {
    let mut opts = Options {
        runs: 3,
        only: SCENARIOS.map(String::from).to_vec(),
        timer: TimerKind::Precise,
        bin: default_bin(),
        before: None,
        keep: false,
        settle: Duration::from_secs(5),
        serve: None,
        latency: Duration::ZERO,
        generate: None,
        port: 8080,
        client_latency: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--runs" => {
                opts.runs = value()
                    .parse()
                    .ok()
                    .filter(|n| (1..=21).contains(n))
                    .unwrap_or_else(|| usage("--runs takes 1..=21"))
            }
            "--only" => {
                opts.only = value().split(',').map(|s| s.trim().to_string()).collect();
                if let Some(unknown) = opts
                    .only
                    .iter()
                    .find(|id| !SCENARIOS.contains(&id.as_str()))
                {
                    usage(&format!("--only: no scenario `{unknown}` (1-8, p)"));
                }
            }
            "--timer" => {
                opts.timer = match value().as_str() {
                    "precise" => TimerKind::Precise,
                    "tokio" => TimerKind::Tokio,
                    _ => usage("--timer is precise or tokio"),
                }
            }
            "--bin" => opts.bin = PathBuf::from(value()),
            "--before" => opts.before = Some(PathBuf::from(value())),
            "--keep" => opts.keep = true,
            "--settle" => {
                opts.settle = value()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| *s <= 120)
                    .map(Duration::from_secs)
                    .unwrap_or_else(|| usage("--settle takes 0..=120 seconds"))
            }
            "--serve" => {
                opts.serve = value()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=3600).contains(s))
                    .map(Duration::from_secs);
                if opts.serve.is_none() {
                    usage("--serve takes 1..=3600 seconds");
                }
            }
            "--latency" => {
                opts.latency = value()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .unwrap_or_else(|_| usage("--latency takes milliseconds"))
            }
            "--generate" => opts.generate = Some(PathBuf::from(value())),
            "--client-latency" => opts.client_latency = true,
            "--port" => {
                opts.port = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--port takes a port number"))
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    opts
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("error: {problem}");
    }
    eprintln!(
        "usage: bench [--runs N] [--only 1,2,3,4,5,6,7,8,p] [--timer precise|tokio] [--bin PATH] [--before PATH] [--keep] [--settle SECS]\n\
         \x20      bench --serve SECS [--latency MS] [--timer precise|tokio]   (the target alone, for profiling)\n\
         \x20      bench --generate DIR [--port P]                             (the suites alone)\n\
         \x20      bench --client-latency [--runs N]   (one request at C=1 and 20 ms: floor's client vs preflight's)"
    );
    std::process::exit(2)
}

/// `target/release/preflight` for an example built at `target/release/examples/bench`.
fn default_bin() -> PathBuf {
    let exe = std::env::current_exe().ok();
    let beside = exe
        .as_deref()
        .and_then(|e| e.parent()?.parent().map(|d| d.join("preflight")));
    match beside {
        Some(p) if p.exists() => p,
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/preflight"),
    }
}

/// Warns when a file under `src/` is newer than the binary (forgot `cargo build --release`).
fn warn_if_stale(bin: &Path) {
    fn newest(dir: &Path) -> Option<std::time::SystemTime> {
        let mut best = None;
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            let t = if path.is_dir() {
                newest(&path)
            } else {
                entry.metadata().ok()?.modified().ok()
            };
            best = best.max(t);
        }
        best
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok();
    if let (Some(built), Some(changed)) = (built, newest(&src))
        && changed > built
    {
        eprintln!(
            "warning: {} is older than src/: run `cargo build --release` first",
            bin.display()
        );
    }
}

/// `bench __spawn RESULT PROGRAM ARGS...`: runs PROGRAM with this process's stdio and
/// environment, waits for it with `wait4`, and writes `wall_ns exit_code maxrss_kib cpu_s`.
fn spawn_helper(args: &[std::ffi::OsString]) -> ! {
    let [result, program, rest @ ..] = args else {
        eprintln!("usage: bench __spawn RESULT PROGRAM [ARGS...]");
        std::process::exit(2);
    };
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(rest)
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("cannot spawn {}: {e}", Path::new(program).display());
            std::process::exit(2)
        });
    let (code, rss, cpu) = if HAVE_WAIT4 {
        sys::wait(child.id()).expect("wait4")
    } else {
        let status = child.wait().expect("wait");
        (status.code().unwrap_or(-1), None, None)
    };
    let wall = started.elapsed();
    let text = format!(
        "{} {code} {} {}\n",
        wall.as_nanos(),
        rss.map_or("-".into(), |r| r.to_string()),
        cpu.map_or("-".into(), |c| format!("{c:.6}"))
    );
    std::fs::write(result, text).expect("write the spawn result");
    std::process::exit(0)
}

/// `bench __floor PORT FLOWS CONCURRENCY STEPS`: the harness floor's client (see [`floor`])
/// in a process of its own, on a runtime like preflight's; prints the time it took (ns).
fn floor_helper(args: &[std::ffi::OsString]) -> ! {
    let numbers: Vec<usize> = args
        .iter()
        .filter_map(|a| a.to_str()?.parse().ok())
        .collect();
    let [port, flows, concurrency, steps] = numbers[..] else {
        eprintln!("usage: bench __floor PORT FLOWS CONCURRENCY STEPS");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let port = u16::try_from(port).expect("a port");
    match rt.block_on(floor(port, flows, concurrency, steps)) {
        Some(took) => {
            println!("{}", took.as_nanos());
            std::process::exit(0)
        }
        None => std::process::exit(1),
    }
}

/// The harness floor out of process: [`floor_helper`] spawned as a child, so that every
/// request and response crosses between two processes as preflight's do (in process, the
/// thread that writes a response often reads it itself, without a wake-up). Returns the
/// child's own time (connect to last response) and its spawn-to-exit wall.
fn floor_out_of_process(
    port: u16,
    flows: usize,
    concurrency: usize,
    steps: usize,
) -> Option<(Duration, Duration)> {
    let me = std::env::current_exe().ok()?;
    let started = Instant::now();
    let out = Command::new(me)
        .arg("__floor")
        .args([port as usize, flows, concurrency, steps].map(|n| n.to_string()))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let wall = started.elapsed();
    let took: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    out.status
        .success()
        .then(|| (Duration::from_nanos(took), wall))
}

/// What the scenarios share: the options, the runtime, the target server, the temporary
/// directory and the number of cores.
struct Bench<'a> {
    opts: &'a Options,
    rt: &'a tokio::runtime::Runtime,
    server: &'a Server,
    root: &'a Path,
    cores: usize,
}

/// Runs the chosen scenarios with `bin`: one table row each, and the targets met or not.
fn measure(bin: &Path, bench: &Bench) -> (Vec<Row>, Vec<Verdict>) {
    let Bench {
        opts,
        rt,
        server,
        root,
        cores,
    } = *bench;
    let wants = |s: &str| opts.only.iter().any(|o| o == s);
    let mut rows = Vec::new();
    let mut verdicts = Vec::new();

    // Scenarios 1 and 2: wall vs ceil(N/C) x S x L.
    let latency_scenarios = [
        (
            "1",
            "1,000 one-step probes, 50 ms, concurrency 50",
            1000usize,
            50usize,
            50u64,
            Shape::Probe,
        ),
        (
            "2",
            "200 five-step checkout flows, 20 ms/step, concurrency 32",
            200,
            32,
            20,
            Shape::Checkout,
        ),
    ];
    for (id, title, flows, concurrency, latency_ms, shape) in latency_scenarios {
        if !wants(id) {
            continue;
        }
        let dir = root.join(format!("scenario-{id}"));
        write_suite(&dir, server.port, flows, concurrency, shape);
        server.set_latency(Duration::from_millis(latency_ms));
        let waves = flows.div_ceil(concurrency) as u64;
        let ideal = Duration::from_millis(waves * shape.steps() as u64 * latency_ms);
        eprintln!("scenario {id}: {title} (ideal {})", secs(ideal));
        let floors: Vec<Duration> = (0..opts.runs)
            .filter_map(|_| {
                settle(opts.settle);
                rt.block_on(floor(server.port, flows, concurrency, shape.steps()))
            })
            .collect();
        let floor_med = (!floors.is_empty()).then(|| median(&floors));
        eprintln!(
            "  harness floor (minimal in-process client, same pattern): {}",
            floor_med.map_or("failed".into(), |f| format!(
                "{} = {:.3}x ideal",
                secs(f),
                f.as_secs_f64() / ideal.as_secs_f64()
            ))
        );
        let apart: Vec<(Duration, Duration)> = (0..opts.runs)
            .filter_map(|_| {
                settle(opts.settle);
                floor_out_of_process(server.port, flows, concurrency, shape.steps())
            })
            .collect();
        let apart_med = (!apart.is_empty()).then(|| {
            let own: Vec<Duration> = apart.iter().map(|a| a.0).collect();
            let walls: Vec<Duration> = apart.iter().map(|a| a.1).collect();
            (median(&own), median(&walls))
        });
        let ratio_of = |d: Duration| d.as_secs_f64() / ideal.as_secs_f64();
        eprintln!(
            "  harness floor out of process (the same client as a child process): {}",
            apart_med.map_or("failed".into(), |(own, wall)| format!(
                "{} = {:.3}x ideal; spawn to exit {} = {:.3}x",
                secs(own),
                ratio_of(own),
                secs(wall),
                ratio_of(wall)
            ))
        );
        let mut runs = Vec::new();
        for i in 0..opts.runs {
            let json = root.join(format!("s{id}-{i}.json"));
            let cmd = preflight_run(bin, &dir, &json, &["--no-progress", "--quiet"]);
            let mut run = run_child(cmd, Some(server), root);
            validate(&mut run, &json, flows, shape.steps(), root);
            describe(&format!("scenario {id}"), i, &run);
            runs.push(run);
        }
        let s = summarize(&runs);
        let ratio = s.wall.as_secs_f64() / ideal.as_secs_f64();
        let wire_ratio = s.on_wire.map(|w| w.as_secs_f64() / ideal.as_secs_f64());
        let valid = s.invalid == 0;
        verdicts.push(Verdict::new(
            format!("{id}: wall / ideal <= 1.03"),
            format!("{ratio:.3}"),
            valid && ratio <= 1.03,
        ));
        verdicts.push(Verdict::rss(id, s.rss, valid));
        rows.push(Row {
            scenario: format!("{id}. {title}"),
            wall: secs(s.wall),
            ideal: secs(ideal),
            ratio: format!("{ratio:.3}"),
            rss: mib(s.rss),
            note: format!(
                "start-up {} + on wire {} ({}x ideal) + tail {}; harness floor {}, out of process \
                 {}; server delivered {} per request (L = {latency_ms} ms); CPU preflight {} / \
                 server {}{}",
                opt_ms(s.startup),
                opt_ms(s.on_wire),
                wire_ratio.map_or("-".into(), |r| format!("{r:.3}")),
                opt_ms(s.tail),
                floor_med.map_or("-".into(), |f| format!(
                    "{} ({:.3}x)",
                    ms(f),
                    f.as_secs_f64() / ideal.as_secs_f64()
                )),
                apart_med.map_or("-".into(), |(own, wall)| format!(
                    "{} ({:.3}x; spawn to exit {:.3}x)",
                    ms(own),
                    ratio_of(own),
                    ratio_of(wall)
                )),
                opt_ms(s.delivered_mean),
                s.child_cpu
                    .map_or("-".into(), |c| format!("{:.0} ms", c * 1e3)),
                s.server_cpu
                    .map_or("-".into(), |c| format!("{:.0} ms", c * 1e3)),
                invalid_note(&s)
            ),
        });
    }

    // Scenario 3: throughput at 0 ms latency (and, with `p`, what progress output costs).
    let throughput_flows = 20_000usize;
    if wants("3") || wants("p") {
        let dir = root.join("scenario-3");
        write_suite(&dir, server.port, throughput_flows, 64, Shape::Probe);
        server.set_latency(Duration::ZERO);
        let mut modes: Vec<(&str, &str)> = Vec::new();
        if wants("3") {
            modes.push(("3", "silent (--no-progress --quiet)"));
        }
        if wants("p") {
            modes.push(("3-lines", "plain lines: stderr not a TTY, no --quiet"));
            if Path::new("/usr/bin/script").exists() {
                modes.push(("3-bars", "progress bars: a pseudo-TTY via `script -qec`"));
            } else {
                eprintln!("(no /usr/bin/script: the progress-bar mode is not measured)");
            }
        }
        for (id, title) in modes {
            eprintln!("scenario {id}: 20,000 one-step probes, 0 ms, concurrency 64, {title}");
            let mut runs = Vec::new();
            for i in 0..opts.runs {
                let json = root.join(format!("s{id}-{i}.json"));
                let cmd = match id {
                    "3" => preflight_run(bin, &dir, &json, &["--no-progress", "--quiet"]),
                    "3-lines" => preflight_run(bin, &dir, &json, &[]),
                    _ => {
                        // util-linux script: the child gets a pty as stdin/stdout/stderr.
                        let inner = format!(
                            "'{}' run '{}' --json '{}'",
                            bin.display(),
                            dir.display(),
                            json.display()
                        );
                        let mut cmd = Command::new("/usr/bin/script");
                        cmd.args(["-qec", &inner, "/dev/null"]);
                        cmd
                    }
                };
                let mut run = run_child(cmd, Some(server), root);
                validate(&mut run, &json, throughput_flows, 1, root);
                describe(&format!("scenario {id}"), i, &run);
                runs.push(run);
            }
            let s = summarize(&runs);
            let rate = throughput_flows as f64 / s.wall.as_secs_f64();
            let valid = s.invalid == 0;
            if id == "3" {
                verdicts.push(Verdict::new(
                    "3: >= 20,000 probes/s on 2 cores, silent".into(),
                    format!("{rate:.0} probes/s"),
                    valid && rate >= 20_000.0,
                ));
                verdicts.push(Verdict::rss("3", s.rss, valid));
            } else if id == "3-bars" {
                verdicts.push(Verdict::new(
                    "3-bars: >= 15,000 probes/s with progress bars on a terminal".into(),
                    format!("{rate:.0} probes/s"),
                    valid && rate >= 15_000.0,
                ));
            }
            rows.push(Row {
                scenario: format!("{id}. 20,000 probes, 0 ms, concurrency 64, {title}"),
                wall: secs(s.wall),
                ideal: "n/a (0 ms)".into(),
                ratio: "-".into(),
                rss: if id == "3-bars" {
                    format!("{} (incl. script)", mib(s.rss))
                } else {
                    mib(s.rss)
                },
                note: throughput_note(throughput_flows, &s, cores),
            });
        }
    }

    // Scenario 4: `preflight check` on a 500-flow suite (five-step checkout flows).
    if wants("4") {
        let dir = root.join("scenario-4");
        write_suite(&dir, server.port, 500, 32, Shape::Checkout);
        eprintln!("scenario 4: preflight check on 500 five-step checkout flows (2,500 steps)");
        let mut runs = Vec::new();
        for i in 0..opts.runs {
            let mut cmd = Command::new(bin);
            cmd.arg("check").arg(&dir);
            let mut run = run_child(cmd, None, root);
            let stdout = std::fs::read_to_string(root.join("stdout.txt")).unwrap_or_default();
            if run.code != 0 || !stdout.contains("500 flows") {
                run.problem = Some(format!("exit {}: {}", run.code, stdout.trim()));
            }
            describe("scenario 4", i, &run);
            runs.push(run);
        }
        let s = summarize(&runs);
        let target = Duration::from_millis(15);
        verdicts.push(Verdict::under(
            "4: `check` of 500 flows < 15 ms",
            s.wall,
            target,
            s.invalid == 0,
        ));
        rows.push(Row {
            scenario: "4. start-up: `preflight check`, 500 five-step flows".into(),
            wall: ms(s.wall),
            ideal: "< 15 ms (target)".into(),
            ratio: format!(
                "{:.2} of target",
                s.wall.as_secs_f64() / target.as_secs_f64()
            ),
            rss: mib(s.rss),
            note: format!(
                "CPU {}{}",
                s.child_cpu
                    .map_or("-".into(), |c| format!("{:.0} ms", c * 1e3)),
                invalid_note(&s)
            ),
        });
    }

    // Scenario 5: one probe end to end (spawn to exit) against a 0 ms server: start-up.
    if wants("5") {
        let dir = root.join("scenario-5");
        write_suite(&dir, server.port, 1, 1, Shape::Probe);
        server.set_latency(Duration::ZERO);
        // A run takes milliseconds: more of them make the median steadier.
        let n = opts.runs * 5;
        eprintln!("scenario 5: one probe end to end, 0 ms, {n} runs");
        let mut runs = Vec::new();
        for i in 0..n {
            let json = root.join(format!("s5-{i}.json"));
            let cmd = preflight_run(bin, &dir, &json, &["--no-progress", "--quiet"]);
            let mut run = run_child(cmd, Some(server), root);
            validate(&mut run, &json, 1, 1, root);
            describe("scenario 5", i, &run);
            runs.push(run);
        }
        let s = summarize(&runs);
        let target = Duration::from_millis(8);
        verdicts.push(Verdict::under(
            "5: one probe, spawn to exit < 8 ms",
            s.wall,
            target,
            s.invalid == 0,
        ));
        rows.push(Row {
            scenario: "5. start-up: one probe end to end, 0 ms".into(),
            wall: ms(s.wall),
            ideal: "< 8 ms (target)".into(),
            ratio: format!(
                "{:.2} of target",
                s.wall.as_secs_f64() / target.as_secs_f64()
            ),
            rss: mib(s.rss),
            note: format!(
                "start-up {} + on wire {} + tail {}; CPU {}; median of {n}{}",
                opt_ms(s.startup),
                opt_ms(s.on_wire),
                opt_ms(s.tail),
                s.child_cpu
                    .map_or("-".into(), |c| format!("{:.1} ms", c * 1e3)),
                invalid_note(&s)
            ),
        });
    }

    // Scenarios 6 and 7 share one suite of 100,000 probes (written once: it takes seconds).
    let scale_dir = root.join("scenario-6");
    if wants("6") || wants("7") {
        write_suite(&scale_dir, server.port, SCALE_FLOWS, 64, Shape::Probe);
        server.set_latency(Duration::ZERO);
    }

    // Scenario 6: 100,000 probes at 0 ms, concurrency 64, silent: peak RSS and throughput.
    if wants("6") {
        eprintln!("scenario 6: 100,000 one-step probes, 0 ms, concurrency 64, silent");
        let mut runs = Vec::new();
        for i in 0..opts.runs {
            let json = root.join(format!("s6-{i}.json"));
            let cmd = preflight_run(bin, &scale_dir, &json, &["--no-progress", "--quiet"]);
            let mut run = run_child(cmd, Some(server), root);
            validate(&mut run, &json, SCALE_FLOWS, 1, root);
            // About 100 MB each: only the run's own files are kept.
            let _ = std::fs::remove_file(&json);
            describe("scenario 6", i, &run);
            runs.push(run);
        }
        let s = summarize(&runs);
        let rate = SCALE_FLOWS as f64 / s.wall.as_secs_f64();
        let valid = s.invalid == 0;
        verdicts.push(Verdict::new(
            "6: >= 20,000 probes/s at 100,000 probes".into(),
            format!("{rate:.0} probes/s"),
            valid && rate >= 20_000.0,
        ));
        verdicts.push(Verdict::rss_under("6", s.rss, valid, 48));
        rows.push(Row {
            scenario: "6. 100,000 probes, 0 ms, concurrency 64, silent".into(),
            wall: secs(s.wall),
            ideal: "n/a (0 ms)".into(),
            ratio: "-".into(),
            rss: mib(s.rss),
            note: throughput_note(SCALE_FLOWS, &s, cores),
        });
    }

    // Scenario 7: `preflight merge` of the reports of scenario 6's suite run in 4 shards.
    if wants("7") {
        let per_shard = SCALE_FLOWS / MERGE_SHARDS;
        eprintln!(
            "scenario 7: merge of {MERGE_SHARDS} shard reports of {per_shard} flows each \
             (written by `run --shard K/{MERGE_SHARDS} --json`)"
        );
        let mut shard_problems = Vec::new();
        let mut reports = Vec::new();
        for k in 1..=MERGE_SHARDS {
            let json = root.join(format!("s7-shard-{k}.json"));
            let shard = format!("{k}/{MERGE_SHARDS}");
            let extra = ["--no-progress", "--quiet", "--shard", &shard];
            let cmd = preflight_run(bin, &scale_dir, &json, &extra);
            let mut run = run_child(cmd, Some(server), root);
            validate(&mut run, &json, per_shard, 1, root);
            describe(&format!("scenario 7, shard {shard}"), 0, &run);
            if let Some(problem) = run.problem {
                shard_problems.push(format!("shard {shard}: {problem}"));
            }
            reports.push(json);
        }
        let mut runs = Vec::new();
        for i in 0..opts.runs {
            let json = root.join(format!("s7-merged-{i}.json"));
            let mut cmd = Command::new(bin);
            cmd.arg("merge")
                .args(&reports)
                .arg("--quiet")
                .arg("--json")
                .arg(&json);
            let mut run = run_child(cmd, None, root);
            let mut problems = validate_written(&mut run, &json, SCALE_FLOWS, root);
            problems.extend(shard_problems.iter().cloned());
            if !problems.is_empty() {
                run.problem = Some(problems.join("; "));
            }
            let _ = std::fs::remove_file(&json);
            describe("scenario 7", i, &run);
            runs.push(run);
        }
        let s = summarize(&runs);
        let valid = s.invalid == 0;
        let target = Duration::from_secs(1);
        verdicts.push(Verdict::under(
            "7: merge of 4 x 25,000 flows < 1 s",
            s.wall,
            target,
            valid,
        ));
        verdicts.push(Verdict::rss_under("7", s.rss, valid, 64));
        rows.push(Row {
            scenario: format!(
                "7. `preflight merge` of {MERGE_SHARDS} shard reports of {per_shard} flows"
            ),
            wall: ms(s.wall),
            ideal: "< 1 s (target)".into(),
            ratio: format!(
                "{:.2} of target",
                s.wall.as_secs_f64() / target.as_secs_f64()
            ),
            rss: mib(s.rss),
            note: format!(
                "reports of {} MB in all; CPU {}{}",
                reports
                    .iter()
                    .filter_map(|r| std::fs::metadata(r).ok())
                    .map(|m| m.len())
                    .sum::<u64>()
                    / 1_000_000,
                s.child_cpu
                    .map_or("-".into(), |c| format!("{:.0} ms", c * 1e3)),
                invalid_note(&s)
            ),
        });
    }

    // Scenario 8: a `preflight serve` `/run` of 1,000 probes against the same run on the
    // command line, alternating, so that both see the same machine.
    if wants("8") {
        let dir = root.join("scenario-8");
        write_suite(&dir, server.port, 1000, 50, Shape::Probe);
        server.set_latency(Duration::ZERO);
        eprintln!(
            "scenario 8: `serve` /run vs `run` of 1,000 one-step probes, 0 ms, concurrency 50"
        );
        let mut cli_runs = Vec::new();
        let mut served_runs = Vec::new();
        match Served::start(rt, bin, &dir, root) {
            Ok(served) => {
                // The first /run of a serve process sets up what later ones reuse.
                let warm = served.run(rt, server, 1000);
                describe("scenario 8, serve warm-up (not counted)", 0, &warm);
                for i in 0..opts.runs {
                    let json = root.join(format!("s8-{i}.json"));
                    let cmd = preflight_run(bin, &dir, &json, &["--no-progress", "--quiet"]);
                    let mut run = run_child(cmd, Some(server), root);
                    validate(&mut run, &json, 1000, 1, root);
                    describe("scenario 8, command line", i, &run);
                    cli_runs.push(run);
                    let run = served.run(rt, server, 1000);
                    describe("scenario 8, serve /run", i, &run);
                    served_runs.push(run);
                }
            }
            Err(e) => eprintln!("  serve did not start: {e}"),
        }
        let problem = Run {
            problem: Some("serve did not start".into()),
            ..Run::default()
        };
        if served_runs.is_empty() {
            served_runs.push(problem.clone());
            cli_runs.push(problem);
        }
        let cli = summarize(&cli_runs);
        let served = summarize(&served_runs);
        let valid = cli.invalid == 0 && served.invalid == 0;
        let added = served.wall.as_secs_f64() - cli.wall.as_secs_f64();
        verdicts.push(Verdict::new(
            "8: serve /run adds < 5 ms over the command line".into(),
            format!("{:+.1} ms", added * 1e3),
            valid && added < 0.005,
        ));
        rows.push(Row {
            scenario: "8. `serve` /run vs `run`, 1,000 probes, 0 ms, concurrency 50".into(),
            wall: format!("{} vs {}", ms(served.wall), ms(cli.wall)),
            ideal: "< +5 ms (target)".into(),
            ratio: format!("{:+.1} ms", added * 1e3),
            rss: format!("{} (run)", mib(cli.rss)),
            note: format!(
                "serve: request sent to report received, after one warm-up /run; run: spawn to \
                 exit; serve start-up {} + on wire {} + tail {}; run start-up {} + on wire {} + \
                 tail {}{}{}",
                opt_ms(served.startup),
                opt_ms(served.on_wire),
                opt_ms(served.tail),
                opt_ms(cli.startup),
                opt_ms(cli.on_wire),
                opt_ms(cli.tail),
                invalid_note(&served),
                invalid_note(&cli)
            ),
        });
    }
    (rows, verdicts)
}

/// The rows and targets of the binary before a change beside the ones after, measured in the
/// same run.
fn print_before_after(
    before_bin: &Path,
    before_rows: &[Row],
    before_verdicts: &[Verdict],
    rows: &[Row],
    verdicts: &[Verdict],
) {
    let shown = |r: &Row| format!("{} / {} / {}", r.wall, r.ratio, r.rss);
    println!(
        "\nBefore (`{}`) and after, same run:\n\n| scenario | before: wall / ratio / peak RSS | \
         after: wall / ratio / peak RSS |\n|---|---|---|",
        before_bin.display()
    );
    for row in rows {
        let before = before_rows.iter().find(|b| b.scenario == row.scenario);
        println!(
            "| {} | {} | {} |",
            row.scenario,
            before.map_or("-".into(), shown),
            shown(row)
        );
    }
    println!("\n| target | before | after | met after |\n|---|---|---|---|");
    for v in verdicts {
        let before = before_verdicts.iter().find(|b| b.target == v.target);
        println!(
            "| {} | {} | {} | {} |",
            v.target,
            before.map_or("-", |b| b.measured.as_str()),
            v.measured,
            if v.met { "yes" } else { "**no**" }
        );
    }
}

fn main() {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if raw.get(1).is_some_and(|a| a == "__spawn") {
        spawn_helper(&raw[2..]);
    }
    if raw.get(1).is_some_and(|a| a == "__floor") {
        floor_helper(&raw[2..]);
    }
    let opts = parse_args();
    if let Some(dir) = &opts.generate {
        for (name, flows, concurrency, shape) in SUITES {
            write_suite(&dir.join(name), opts.port, flows, concurrency, shape);
        }
        eprintln!(
            "suites written to {} (base_url port {})",
            dir.display(),
            opts.port
        );
        return;
    }
    if opts.client_latency {
        client_latency(opts.runs, opts.timer);
        return;
    }
    if let Some(secs) = opts.serve {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let server = Server::start(opts.timer).await;
            server.set_latency(opts.latency);
            println!("http://127.0.0.1:{}", server.port);
            eprintln!(
                "serving for {} s, latency {} ms, timer {:?}",
                secs.as_secs(),
                opts.latency.as_millis(),
                opts.timer
            );
            tokio::time::sleep(secs).await;
            eprintln!(
                "served {} requests",
                server.stats.requests.load(Ordering::SeqCst)
            );
        });
        return;
    }
    if !opts.bin.exists() {
        eprintln!(
            "error: {} not found: run `cargo build --release` first (or pass --bin)",
            opts.bin.display()
        );
        std::process::exit(2);
    }
    if let Some(before) = opts.before.as_ref().filter(|b| !b.exists()) {
        eprintln!("error: --before {} not found", before.display());
        std::process::exit(2);
    }
    warn_if_stale(&opts.bin);
    let _ = SETTLE.set(opts.settle);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt.block_on(Server::start(opts.timer));
    let tmp = tempfile::Builder::new()
        .prefix("preflight-bench-")
        .tempdir()
        .expect("temp dir");
    let root = tmp.path().to_path_buf();
    let started = Instant::now();

    eprintln!(
        "preflight bench: binary {}, {cores} cores, {} runs per scenario, server timer {:?}, \
         suites in {}",
        opts.bin.display(),
        opts.runs,
        opts.timer,
        root.display()
    );
    let (tokio_late, precise_late) = rt.block_on(calibrate(Duration::from_millis(20), 50));
    eprintln!(
        "timer calibration (50 sleeps of 20 ms): tokio::time::sleep late by {} us on average, \
         precise timer thread late by {} us",
        tokio_late.as_micros(),
        precise_late.as_micros()
    );
    let cpu0 = sys::self_cpu();
    let cap = rt.block_on(capacity(server.port, 64, Duration::from_millis(1000)));
    let cap_cpu = cpu0.zip(sys::self_cpu()).map(|(a, b)| b - a);
    eprintln!(
        "server capacity: {cap:.0} req/s with 64 in-process keep-alive clients for 1 s \
         (clients and server share {cores} cores; {}s CPU used)",
        cap_cpu.map_or("?".into(), |c| format!("{c:.2}"))
    );

    // Warm the page cache and the binary once (not measured).
    {
        let dir = root.join("warmup");
        write_suite(&dir, server.port, 10, 10, Shape::Probe);
        let mut cmd = preflight_run(&opts.bin, &dir, &root.join("warmup.json"), &["--quiet"]);
        cmd.arg("--no-progress");
        let _ = run_child(cmd, Some(&server), &root);
    }

    let bench = Bench {
        opts: &opts,
        rt: &rt,
        server: &server,
        root: &root,
        cores,
    };
    let before = opts.before.as_ref().map(|before| {
        eprintln!("\nthe binary before: {}", before.display());
        measure(before, &bench)
    });
    if before.is_some() {
        eprintln!("\nthe binary after: {}", opts.bin.display());
    }
    let (rows, verdicts) = measure(&opts.bin, &bench);

    println!("\n| scenario | wall | ideal | ratio | peak RSS | note |\n|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.scenario, r.wall, r.ideal, r.ratio, r.rss, r.note
        );
    }
    println!(
        "\nMedian of {} runs each; wall = spawn to exit of `target/release/preflight`; peak RSS \
         from wait4 rusage; {cores} cores shared by preflight and the in-process target \
         (server capacity {cap:.0} req/s; timer lateness tokio {} us vs precise {} us; server timer: {:?}).\n",
        opts.runs,
        tokio_late.as_micros(),
        precise_late.as_micros(),
        opts.timer
    );
    println!("| target | measured (median) | met |\n|---|---|---|");
    for v in &verdicts {
        println!(
            "| {} | {} | {} |",
            v.target,
            v.measured,
            if v.met { "yes" } else { "**no**" }
        );
    }
    if let (Some(path), Some((before_rows, before_verdicts))) = (&opts.before, &before) {
        print_before_after(path, before_rows, before_verdicts, &rows, &verdicts);
    }
    eprintln!("bench finished in {}", secs(started.elapsed()));
    if opts.keep {
        let kept = tmp.keep();
        eprintln!("suites kept in {}", kept.display());
    }
    rt.shutdown_background();
}
