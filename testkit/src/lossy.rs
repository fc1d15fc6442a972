//! A lossy, delaying UDP link: a proxy in front of a UDP server (a QUIC endpoint) that holds
//! every datagram for a fixed one-way delay and drops a fraction of them at random, in both
//! directions. Each direction can also be limited to a bitrate per client while it runs,
//! through a drop-tail queue as a slow link's router has. It stands in for `tc netem`, which
//! needs a kernel module these machines lack.
//!
//! Each client address gets its own upstream socket, so the server sees distinct clients as it
//! would through NAT. Plain threads: the link must not share a runtime with what it measures.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

#[derive(Debug, Clone, Copy)]
pub struct LinkConfig {
    /// Added in each direction (the round trip grows by twice this).
    pub one_way_delay: Duration,
    /// Fraction of datagrams dropped, in each direction, independently.
    pub loss: f64,
    pub seed: u64,
}

#[derive(Debug, Default)]
pub struct LinkCounters {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
}

struct Due {
    at: Instant,
    /// Order of arrival: datagrams due at the same instant leave in it.
    seq: u64,
    socket: Arc<UdpSocket>,
    /// `None`: the socket is connected upstream.
    to: Option<SocketAddr>,
    bytes: Vec<u8>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A limited link holds at most this much in its queue; a datagram that would wait longer is
/// dropped. 200 ms is a modest home router's buffer at these rates: QUIC's congestion control
/// sees loss and delay as it would there.
const BOTTLENECK_QUEUE: Duration = Duration::from_millis(200);

/// One client's direction through a rate limit (bits per second, 0: none, changed while it
/// runs): when each datagram leaves it.
struct Bottleneck {
    rate: Arc<AtomicU64>,
    /// When the link has sent everything queued so far.
    free_at: Instant,
}

impl Bottleneck {
    fn new(rate: Arc<AtomicU64>) -> Self {
        Self { rate, free_at: Instant::now() }
    }

    /// When `bytes` arriving `now` leave the bottleneck; `None`: its queue is full, dropped.
    fn pass(&mut self, now: Instant, bytes: usize) -> Option<Instant> {
        let bits_per_sec = self.rate.load(Ordering::Relaxed);
        if bits_per_sec == 0 {
            return Some(now);
        }
        let start = self.free_at.max(now);
        if start - now > BOTTLENECK_QUEUE {
            return None;
        }
        self.free_at = start + Duration::from_secs_f64(bytes as f64 * 8.0 / bits_per_sec as f64);
        Some(self.free_at)
    }
}

/// A running link; stopped (threads joined) when dropped.
pub struct LossyLink {
    addr: SocketAddr,
    /// Server-to-client limit per client, bits per second; 0: none.
    down: Arc<AtomicU64>,
    /// Client-to-server limit per client, the same way.
    up: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    counters: Arc<LinkCounters>,
}

/// xorshift64*: enough randomness for dropping datagrams, reproducible from a seed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

const POLL: Duration = Duration::from_millis(100);

impl LossyLink {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr, config: LinkConfig) -> Result<Self> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").context("binding the link")?);
        front.set_read_timeout(Some(POLL))?;
        let addr = front.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (down, up) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let counters = Arc::new(LinkCounters::default());
        let threads = Arc::new(Mutex::new(Vec::new()));
        let (due_tx, due_rx) = channel::<Due>();

        let delivery = {
            let (stop, counters) = (stop.clone(), counters.clone());
            std::thread::spawn(move || deliver(due_rx, &stop, &counters))
        };
        let listener = {
            let (stop, counters, threads) = (stop.clone(), counters.clone(), threads.clone());
            let (down, up) = (down.clone(), up.clone());
            std::thread::spawn(move || {
                let mut clients: HashMap<SocketAddr, (Arc<UdpSocket>, Bottleneck)> = HashMap::new();
                let mut dice = Dice(config.seed | 1);
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, client)) = front.recv_from(&mut buf) else { continue };
                    let (socket, bottleneck) = match clients.get_mut(&client) {
                        Some((socket, bottleneck)) => (socket.clone(), bottleneck),
                        None => {
                            let Ok(socket) = open_upstream(upstream) else { continue };
                            let back = BackPath {
                                upstream: socket.clone(),
                                front: front.clone(),
                                client,
                                due: due_tx.clone(),
                                config,
                                seed: config.seed ^ u64::from(client.port()) << 17,
                                bottleneck: Bottleneck::new(down.clone()),
                            };
                            let (stop, counters) = (stop.clone(), counters.clone());
                            if let Ok(mut threads) = threads.lock() {
                                threads.push(std::thread::spawn(move || back.run(&stop, &counters)));
                            }
                            let (socket, bottleneck) =
                                clients.entry(client).or_insert((socket, Bottleneck::new(up.clone())));
                            (socket.clone(), bottleneck)
                        }
                    };
                    let passed = (dice.roll() >= config.loss).then(|| bottleneck.pass(Instant::now(), n)).flatten();
                    let Some(sent) = passed else {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let due =
                        Due { at: sent + config.one_way_delay, seq: 0, socket, to: None, bytes: buf[..n].to_vec() };
                    if due_tx.send(due).is_err() {
                        return;
                    }
                }
            })
        };
        if let Ok(mut list) = threads.lock() {
            list.push(delivery);
            list.push(listener);
        }
        Ok(Self { addr, down, up, stop, threads, counters })
    }

    /// Limits what each client receives to `bits_per_sec`, or lifts the limit (`None`).
    pub fn limit_down(&self, bits_per_sec: Option<u64>) {
        self.down.store(bits_per_sec.unwrap_or(0), Ordering::Relaxed);
    }

    /// Limits what each client sends the same way.
    pub fn limit_up(&self, bits_per_sec: Option<u64>) {
        self.up.store(bits_per_sec.unwrap_or(0), Ordering::Relaxed);
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn counters(&self) -> &LinkCounters {
        &self.counters
    }
}

fn open_upstream(upstream: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(upstream)?;
    socket.set_read_timeout(Some(POLL))?;
    Ok(Arc::new(socket))
}

/// Server to one client.
struct BackPath {
    upstream: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    due: Sender<Due>,
    config: LinkConfig,
    seed: u64,
    bottleneck: Bottleneck,
}

impl BackPath {
    fn run(mut self, stop: &AtomicBool, counters: &LinkCounters) {
        let mut dice = Dice(self.seed | 1);
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            let Ok(n) = self.upstream.recv(&mut buf) else { continue };
            let passed = (dice.roll() >= self.config.loss).then(|| self.bottleneck.pass(Instant::now(), n)).flatten();
            let Some(sent) = passed else {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let due = Due {
                at: sent + self.config.one_way_delay,
                seq: 0,
                socket: self.front.clone(),
                to: Some(self.client),
                bytes: buf[..n].to_vec(),
            };
            if self.due.send(due).is_err() {
                return;
            }
        }
    }
}

/// Sends each datagram when it is due, earliest first (a limited direction holds its datagrams
/// longer than the other does).
fn deliver(due: Receiver<Due>, stop: &AtomicBool, counters: &LinkCounters) {
    let mut pending: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        let wait = pending.peek().map_or(POLL, |Reverse(d)| d.at.saturating_duration_since(Instant::now()).min(POLL));
        match due.recv_timeout(wait) {
            Ok(mut item) => {
                seq += 1;
                item.seq = seq;
                pending.push(Reverse(item));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) if pending.is_empty() => return,
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
        }
        while pending.peek().is_some_and(|Reverse(d)| d.at <= Instant::now()) {
            let Some(Reverse(item)) = pending.pop() else { break };
            let sent = match item.to {
                Some(to) => item.socket.send_to(&item.bytes, to),
                None => item.socket.send(&item.bytes),
            };
            if sent.is_ok() {
                counters.forwarded.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for LossyLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The listener may add back paths until it stops, so take the list until it is empty.
        loop {
            let batch: Vec<_> = match self.threads.lock() {
                Ok(mut list) => list.drain(..).collect(),
                Err(_) => return,
            };
            if batch.is_empty() {
                return;
            }
            for thread in batch {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_cross_delayed_and_some_are_lost() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(Duration::from_millis(150))).unwrap();
        let config = LinkConfig { one_way_delay: Duration::from_millis(30), loss: 0.2, seed: 7 };
        let link = LossyLink::start(server.local_addr().unwrap(), config).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(Duration::from_millis(150))).unwrap();

        let mut buf = [0u8; 64];
        let (mut forward, mut back) = (0, 0);
        for i in 0..100u8 {
            let sent = Instant::now();
            client.send_to(&[i], link.addr()).unwrap();
            if let Ok((_, from)) = server.recv_from(&mut buf) {
                forward += 1;
                server.send_to(&buf[..1], from).unwrap();
                if client.recv(&mut buf).is_ok() {
                    back += 1;
                    assert_eq!(buf[0], i);
                    assert!(sent.elapsed() >= Duration::from_millis(60), "round trip {:?}", sent.elapsed());
                }
            }
        }
        assert!((65..=95).contains(&forward), "about 80 of 100 forwarded: {forward}");
        assert!(back < forward, "the way back loses some too: {back} of {forward}");
        assert_eq!(link.counters().dropped.load(Ordering::Relaxed), (100 - forward) + (forward - back));
    }

    /// A server sending 1,000-byte datagrams far faster than the limit: the client gets about
    /// 100 KB a second at 800 kbit/s, the rest is dropped at the bottleneck, and the delay
    /// stays bounded by its queue.
    #[test]
    fn a_limited_downlink_passes_its_rate_and_drops_the_rest() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let config = LinkConfig { one_way_delay: Duration::from_millis(10), loss: 0.0, seed: 7 };
        let link = LossyLink::start(server.local_addr().unwrap(), config).unwrap();
        link.limit_down(Some(800_000));
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        client.send_to(b"hello", link.addr()).unwrap();
        let mut buf = [0u8; 2048];
        let (_, from) = server.recv_from(&mut buf).unwrap();
        let sender = std::thread::spawn(move || {
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(1_500) {
                let _ = server.send_to(&[7u8; 1000], from);
                std::thread::sleep(Duration::from_micros(500));
            }
        });
        // Past the first half second (the queue filling), a second's worth.
        let started = Instant::now();
        let mut got = 0;
        while let Ok(n) = client.recv(&mut buf) {
            if (Duration::from_millis(500)..Duration::from_millis(1_500)).contains(&started.elapsed()) {
                got += n;
            }
        }
        sender.join().unwrap();
        assert!((85_000..=115_000).contains(&got), "{got} bytes in a second at 800 kbit/s");
        assert!(link.counters().dropped.load(Ordering::Relaxed) > 1_000, "the bottleneck dropped the excess");
        assert!(started.elapsed() < Duration::from_millis(1_500 + 250 + 300 + 50), "drained within its queue");
    }
}
