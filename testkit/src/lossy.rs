//! A lossy, delaying UDP link: a proxy in front of a UDP server (a QUIC endpoint) that holds
//! every datagram for a fixed one-way delay and drops a fraction of them at random, in both
//! directions. It stands in for `tc netem`, which needs a kernel module these machines lack.
//!
//! Each client address gets its own upstream socket, so the server sees distinct clients as it
//! would through NAT. Plain threads: the link must not share a runtime with what it measures.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
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
    socket: Arc<UdpSocket>,
    /// `None`: the socket is connected upstream.
    to: Option<SocketAddr>,
    bytes: Vec<u8>,
}

/// A running link; stopped (threads joined) when dropped.
pub struct LossyLink {
    addr: SocketAddr,
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
        let counters = Arc::new(LinkCounters::default());
        let threads = Arc::new(Mutex::new(Vec::new()));
        let (due_tx, due_rx) = channel::<Due>();

        let delivery = {
            let (stop, counters) = (stop.clone(), counters.clone());
            std::thread::spawn(move || deliver(due_rx, &stop, &counters))
        };
        let listener = {
            let (stop, counters, threads) = (stop.clone(), counters.clone(), threads.clone());
            std::thread::spawn(move || {
                let mut clients: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
                let mut dice = Dice(config.seed | 1);
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, client)) = front.recv_from(&mut buf) else { continue };
                    let socket = match clients.get(&client) {
                        Some(socket) => socket.clone(),
                        None => {
                            let Ok(socket) = open_upstream(upstream) else { continue };
                            let back = BackPath {
                                upstream: socket.clone(),
                                front: front.clone(),
                                client,
                                due: due_tx.clone(),
                                config,
                                seed: config.seed ^ u64::from(client.port()) << 17,
                            };
                            let (stop, counters) = (stop.clone(), counters.clone());
                            if let Ok(mut threads) = threads.lock() {
                                threads.push(std::thread::spawn(move || back.run(&stop, &counters)));
                            }
                            clients.insert(client, socket.clone());
                            socket
                        }
                    };
                    if dice.roll() < config.loss {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let due =
                        Due { at: Instant::now() + config.one_way_delay, socket, to: None, bytes: buf[..n].to_vec() };
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
        Ok(Self { addr, stop, threads, counters })
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
}

impl BackPath {
    fn run(self, stop: &AtomicBool, counters: &LinkCounters) {
        let mut dice = Dice(self.seed | 1);
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            let Ok(n) = self.upstream.recv(&mut buf) else { continue };
            if dice.roll() < self.config.loss {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let due = Due {
                at: Instant::now() + self.config.one_way_delay,
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

/// Sends each datagram when it is due. The delay is the same for all, so they come due in the
/// order they were queued.
fn deliver(due: Receiver<Due>, stop: &AtomicBool, counters: &LinkCounters) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(item) = due.recv_timeout(POLL) else { continue };
        let wait = item.at.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let sent = match item.to {
            Some(to) => item.socket.send_to(&item.bytes, to),
            None => item.socket.send(&item.bytes),
        };
        if sent.is_ok() {
            counters.forwarded.fetch_add(1, Ordering::Relaxed);
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
}
