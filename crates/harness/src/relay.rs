//! A userspace TCP relay that makes a link slow: this kernel has no netem qdisc, so delay,
//! jitter and bandwidth between real processes are made here. Each connection accepted on
//! the relay's port is joined to a new connection to the target; in each direction every
//! chunk read is written no earlier than `delay` plus up to `jitter` after it was read, in
//! the order read, and no faster than `bytes_per_sec`.
//!
//! Loss is not modelled: on TCP a lost segment is a retransmission, i.e. more delay, which
//! jitter stands in for; dropping bytes would only break the stream.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest chunk read at once: small enough that bandwidth pacing is smooth.
const CHUNK: usize = 16 * 1024;

/// How one link behaves, each direction alike.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkSpec {
    /// Delay added to every chunk.
    pub delay: Duration,
    /// Extra delay, uniformly random up to this (order is kept: a chunk never overtakes).
    pub jitter: Duration,
    /// Bytes a second in each direction, if limited.
    pub bytes_per_sec: Option<u64>,
}

/// A running relay; stops (and closes its connections' listener) on drop.
pub struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Relay {
    /// Listens on a free loopback port and relays every connection to `target` over a link
    /// that behaves as `spec` says.
    pub fn start(target: SocketAddr, spec: LinkSpec) -> std::io::Result<Relay> {
        let listener = TcpListener::bind(("127.0.0.1", crate::free_port()))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        let accept = std::thread::spawn(move || {
            let mut seed = u64::from(addr.port()) | 1;
            for inbound in listener.incoming() {
                if halt.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(inbound) = inbound else { continue };
                let Ok(outbound) = TcpStream::connect(target) else {
                    continue;
                };
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                join(inbound, outbound, spec, seed);
            }
        });
        Ok(Relay {
            addr,
            stop,
            accept: Some(accept),
        })
    }

    /// The address to dial instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The relay as a libp2p address.
    pub fn multiaddr(&self) -> String {
        format!("/ip4/{}/tcp/{}", self.addr.ip(), self.addr.port())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Pumps both directions of one relayed connection, each on its own pair of threads.
fn join(a: TcpStream, b: TcpStream, spec: LinkSpec, seed: u64) {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    for (from, to, seed) in [(&a, &b, seed), (&b, &a, seed ^ 0x9e37_79b9_7f4a_7c15)] {
        let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
            return;
        };
        pump(from, to, spec, seed);
    }
}

/// One direction: a reader stamps each chunk with when it may leave; a writer waits for that
/// moment and for the bandwidth to allow it.
fn pump(mut from: TcpStream, mut to: TcpStream, spec: LinkSpec, mut seed: u64) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK];
        let mut last_due = Instant::now();
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let jitter = spec.jitter.mul_f64((seed % 1_000) as f64 / 1_000.0);
            let due = (Instant::now() + spec.delay + jitter).max(last_due);
            last_due = due;
            if tx.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        let mut free_at = Instant::now();
        for (due, bytes) in rx {
            let mut at = due.max(free_at);
            if let Some(bps) = spec.bytes_per_sec.filter(|b| *b > 0) {
                at += Duration::from_secs_f64(bytes.len() as f64 / bps as f64);
            }
            free_at = at;
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on a free port.
    fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let mut w = s;
                    let _ = std::io::copy(&mut r, &mut w);
                });
            }
        });
        addr
    }

    /// Sends `len` bytes out through a relay to an echo server and reads them back:
    /// (time taken, whether they came back whole and in order).
    fn round_trip(spec: LinkSpec, len: u32) -> (Duration, bool) {
        let relay = Relay::start(echo(), spec).unwrap();
        let mut s = TcpStream::connect(relay.addr()).unwrap();
        let sent: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let t = Instant::now();
        let mut w = s.try_clone().unwrap();
        let out = sent.clone();
        let writer = std::thread::spawn(move || w.write_all(&out).unwrap());
        let mut got = vec![0u8; sent.len()];
        s.read_exact(&mut got).unwrap();
        writer.join().unwrap();
        (t.elapsed(), got == sent)
    }

    #[test]
    fn bytes_arrive_whole_in_order_and_no_sooner_than_the_delay() {
        let spec = LinkSpec {
            delay: Duration::from_millis(60),
            jitter: Duration::from_millis(20),
            bytes_per_sec: None,
        };
        let (took, intact) = round_trip(spec, 200_000);
        // Out and back: two delays at least.
        assert!(took >= Duration::from_millis(120), "{took:?}");
        assert!(intact);
    }

    #[test]
    fn bandwidth_is_limited() {
        let spec = LinkSpec {
            bytes_per_sec: Some(200_000),
            ..LinkSpec::default()
        };
        // 100 kB each way at 200 kB/s: half a second out, half a second back (pipelined,
        // so at least the one-way time).
        let (took, intact) = round_trip(spec, 100_000);
        assert!(took >= Duration::from_millis(500), "{took:?}");
        assert!(intact);
    }
}
