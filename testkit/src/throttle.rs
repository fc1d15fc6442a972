//! A throttled TCP link: a proxy in front of a TCP server whose server-to-client direction can
//! be limited to a bitrate while it runs, as a receiver's slow downlink is. The client-to-server
//! direction is never limited.
//!
//! The proxy reads from the server only as fast as it passes data on, through a small receive
//! buffer, so the server's socket fills as it would behind a slow link and the server sees its
//! own queue grow. Plain threads: the link must not share a runtime with what it measures.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

const POLL: Duration = Duration::from_millis(100);

/// The receive buffer towards the server: a few packets, so that what the link cannot pass on
/// stays in the server's send buffer and queue rather than in the proxy.
const UPSTREAM_RECEIVE_BUFFER: usize = 16 * 1024;

/// A throttled chunk is at most this share of a second's bytes: the link passes data in small
/// steps, as a slow link does, rather than in bursts.
const CHUNKS_PER_SECOND: u64 = 50;

/// A running link; stopped (threads joined) when dropped.
pub struct ThrottledTcp {
    addr: SocketAddr,
    /// Server-to-client limit, bits per second; 0: none.
    rate: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    passed_down: Arc<AtomicU64>,
}

impl ThrottledTcp {
    /// Listens on a free loopback port and forwards each connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the throttled link")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (rate, stop, passed_down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)), Arc::default());
        let threads = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (rate, stop, threads, passed_down) =
                (rate.clone(), stop.clone(), threads.clone(), Arc::clone(&passed_down));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let client = match listener.accept() {
                        Ok((client, _)) => client,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                        Err(_) => continue,
                    };
                    let Ok(pipes) = Pipes::open(client, upstream) else { continue };
                    let spawned = pipes.spawn(&rate, &stop, &passed_down);
                    if let Ok(mut threads) = threads.lock() {
                        threads.extend(spawned);
                    }
                }
            })
        };
        if let Ok(mut list) = threads.lock() {
            list.push(acceptor);
        }
        Ok(Self { addr, rate, stop, threads, passed_down })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Limits the server-to-client direction to `bits_per_sec`, or lifts the limit (`None`).
    pub fn limit_down(&self, bits_per_sec: Option<u64>) {
        self.rate.store(bits_per_sec.unwrap_or(0), Ordering::Relaxed);
    }

    /// Bytes passed from the server to clients so far.
    pub fn passed_down(&self) -> u64 {
        self.passed_down.load(Ordering::Relaxed)
    }
}

impl Drop for ThrottledTcp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let threads = self.threads.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// One proxied connection: the client's socket and the server's.
struct Pipes {
    client: TcpStream,
    server: TcpStream,
}

impl Pipes {
    fn open(client: TcpStream, upstream: SocketAddr) -> Result<Self> {
        let socket = socket2::Socket::new(socket2::Domain::for_address(upstream), socket2::Type::STREAM, None)?;
        // Before connecting: the window the server sees is negotiated from it.
        socket.set_recv_buffer_size(UPSTREAM_RECEIVE_BUFFER)?;
        socket.connect(&upstream.into())?;
        let server: TcpStream = socket.into();
        for s in [&client, &server] {
            s.set_nonblocking(false)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(POLL))?;
        }
        Ok(Self { client, server })
    }

    fn spawn(self, rate: &Arc<AtomicU64>, stop: &Arc<AtomicBool>, passed_down: &Arc<AtomicU64>) -> Vec<JoinHandle<()>> {
        let mut threads = Vec::new();
        let (Ok(client), Ok(server)) = (self.client.try_clone(), self.server.try_clone()) else { return threads };
        // Client to server: never limited (rate 0), not counted.
        let (unlimited, not_counted) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let up = (self.client, self.server, unlimited, stop.clone(), not_counted);
        let down = (server, client, rate.clone(), stop.clone(), passed_down.clone());
        for (from, to, rate, stop, counter) in [up, down] {
            threads.push(std::thread::spawn(move || pump(from, to, &rate, &stop, &counter)));
        }
        threads
    }
}

/// Copies `from` to `to` at `rate` bits per second at most (0: as fast as they go) until
/// either side closes or `stop`; then closes both.
fn pump(mut from: TcpStream, mut to: TcpStream, rate: &AtomicU64, stop: &AtomicBool, counter: &AtomicU64) {
    let mut buf = vec![0u8; 64 * 1024];
    // When the next byte may go, on a virtual clock that advances by each chunk's airtime.
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let bits_per_sec = rate.load(Ordering::Relaxed);
        let chunk = if bits_per_sec == 0 {
            buf.len()
        } else {
            (bits_per_sec / 8 / CHUNKS_PER_SECOND).clamp(512, buf.len() as u64) as usize
        };
        let n = match from.read(&mut buf[..chunk]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                continue;
            }
            Err(_) => break,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        counter.fetch_add(n as u64, Ordering::Relaxed);
        if bits_per_sec > 0 {
            let now = Instant::now();
            next = next.max(now) + Duration::from_secs_f64(n as f64 * 8.0 / bits_per_sec as f64);
            std::thread::sleep(next.saturating_duration_since(now));
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that sends as fast as it can: through the link limited to 800 kbit/s a client
    /// gets about 100 KB a second; unlimited, far more.
    #[test]
    fn the_limit_holds_the_server_to_its_rate() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut socket, _) = server.accept().unwrap();
            while socket.write_all(&[7u8; 4096]).is_ok() {}
        });
        let link = ThrottledTcp::start(upstream).unwrap();
        link.limit_down(Some(800_000));
        let mut client = TcpStream::connect(link.addr()).unwrap();
        client.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut read_for = |seconds: f64| {
            let started = Instant::now();
            let mut got = 0usize;
            let mut buf = [0u8; 8192];
            while started.elapsed() < Duration::from_secs_f64(seconds) {
                if let Ok(n) = client.read(&mut buf) {
                    got += n;
                }
            }
            got as f64 / seconds
        };
        let limited = read_for(1.0);
        assert!((80_000.0..=125_000.0).contains(&limited), "{limited} bytes a second at 800 kbit/s");
        link.limit_down(None);
        let free = read_for(0.5);
        assert!(free > 1_000_000.0, "{free} bytes a second unlimited");
        assert!(link.passed_down() as f64 >= limited);
    }
}
