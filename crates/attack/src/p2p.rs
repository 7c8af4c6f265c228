//! The libp2p attack classes: what the Byzantine [`Peer`] sends, and for how long.

use crate::class::Class;
use crate::forge;
use crate::peer::Peer;
use crate::Report;
use serde_bytes::ByteBuf;
use std::time::{Duration, Instant};
use web4fed_core::genesis::Genesis;
use web4fed_core::testkit::Author;
use web4fed_node::now_ms;
use web4fed_replica::limits::MAX_PUSH_BATCH_BYTES;
use web4fed_replica::{Request, Response, Topic};

/// Pause between rounds of a flood: each round sends a few messages, then lets the
/// transport move them (the rates below are per round).
const ROUND: Duration = Duration::from_millis(10);
/// Made-up peers in one peer-exchange answer (what the attack in the issue used).
pub const FAKE_PEERS: usize = 60_000;
/// How far ahead the `future` class dates its thoughts.
const TEN_YEARS_MS: u64 = 10 * 365 * 24 * 3_600 * 1_000;
/// How far back the `backdate` class dates its thoughts.
const BACKDATE_MS: u64 = 60_000;
/// Longest the attacker waits for its registration to be admitted or its ejection to land.
const SETTLE: Duration = Duration::from_secs(15);
/// Requests the `requests` class keeps in flight.
const REQUESTS_IN_FLIGHT: u64 = 64;

/// Runs a libp2p class against the victim at `target` for `secs`.
pub async fn run(
    class: Class,
    target: &libp2p::Multiaddr,
    genesis: &Genesis,
    secs: f64,
    report: &mut Report,
) -> Result<(), String> {
    let net = genesis.network_id();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    match class {
        _ if class.standing() == crate::Standing::CheapMember => {
            member(class, target, genesis, end, report).await
        }
        Class::Handshakes => handshakes(target, genesis, end, report).await,
        _ => {
            let kp = forge::fresh_key();
            let mut p = Peer::new(&kp, &net, target.clone())?;
            p.connect().await?;
            let mut i = 0u64;
            // The snapshot flood asks for chunks of the snapshot the victim describes (a
            // miss would cost it less), when it has one.
            let mut snapshot = None;
            if class == Class::SnapshotFlood {
                if let Some(Response::SnapshotInfo { header, .. }) =
                    p.ask(Request::SnapshotInfo, Duration::from_secs(5)).await
                {
                    snapshot = web4fed_core::snapshot::Header::read(&header)
                        .ok()
                        .map(|h| h.epoch);
                }
            }
            while Instant::now() < end {
                stranger_round(class, &mut p, &kp, genesis, &mut i, snapshot);
                p.pump(ROUND).await;
            }
            report.wire = p.counts.clone();
            Ok(())
        }
    }
}

/// The checkpoint epoch a few epochs back: where honest votes are being cast now.
fn live_checkpoint(g: &Genesis) -> u64 {
    let epoch = now_ms() / g.epoch_ms;
    let every = g.finality_every_epochs.max(1);
    (epoch.saturating_sub(3) / every) * every
}

/// One round of a stranger's flood.
fn stranger_round(
    class: Class,
    p: &mut Peer,
    kp: &web4fed_core::identity::Keypair,
    g: &Genesis,
    i: &mut u64,
    snapshot: Option<u64>,
) {
    let net = g.network_id();
    let now = now_ms();
    match class {
        Class::Orphans => {
            for _ in 0..10 {
                let ev = forge::orphan(&net, now, *i);
                *i += 1;
                p.publish(
                    Topic::Events,
                    forge::envelope(kp, &net, now, ev.bytes()).encode(),
                );
            }
            if p.in_flight() < 4 {
                let events = push_batch(|k| forge::orphan(&net, now, *i + k).bytes().to_vec());
                *i += events.len() as u64;
                p.request(Request::Push { events });
            }
        }
        Class::BadSignatures => {
            for _ in 0..2 {
                let bytes = forge::bad_signature(&net, now, *i);
                *i += 1;
                p.publish(
                    Topic::Events,
                    forge::envelope(kp, &net, now, &bytes).encode(),
                );
            }
            if p.in_flight() < 8 {
                let events = push_batch(|k| forge::bad_signature(&net, now, *i + k));
                *i += events.len() as u64;
                p.request(Request::Push { events });
            }
        }
        Class::Votes => {
            let epoch = live_checkpoint(g);
            for _ in 0..10 {
                let (a, b) = forge::double_vote(&net, epoch);
                p.publish(Topic::Votes, a.encode());
                p.publish(Topic::Votes, b.encode());
                p.publish(Topic::Proposals, forge::proposal(&net, epoch).encode());
            }
        }
        Class::Certificates => {
            for k in 0..6u64 {
                let epoch = if k % 2 == 0 {
                    live_checkpoint(g) + (k / 2) * g.finality_every_epochs
                } else {
                    u64::MAX / 4 + *i
                };
                *i += 1;
                p.publish(
                    Topic::Certificates,
                    forge::empty_certificate(epoch).encode(),
                );
            }
        }
        Class::Heartbeats => {
            let epoch = now / g.epoch_ms;
            for _ in 0..20 {
                p.publish(
                    Topic::Heartbeats,
                    forge::stranger_heartbeat(&net, now, epoch).encode(),
                );
            }
        }
        Class::SnapshotFlood => {
            // Chunk 0 of the snapshot the victim described (or of a guessed epoch: a miss
            // costs it a budget check and an open), and its description, over and over.
            let epoch = snapshot.unwrap_or_else(|| live_checkpoint(g));
            while p.in_flight() < REQUESTS_IN_FLIGHT {
                let body = match *i % 4 {
                    0 => Request::SnapshotInfo,
                    _ => Request::SnapshotChunk { epoch, index: 0 },
                };
                *i += 1;
                if p.request(body).is_none() {
                    break;
                }
            }
        }
        Class::Requests => {
            while p.in_flight() < REQUESTS_IN_FLIGHT {
                let body = match *i % 8 {
                    0 => Request::Summary,
                    // A stalled round's resend: random bytes as votes, proposals and a proof
                    // of lock.
                    7 => Request::Agreement {
                        votes: vec![ByteBuf::from(forge::random32().repeat(5)); 64],
                        proposals: vec![ByteBuf::from(forge::random32().repeat(8)); 8],
                        polkas: vec![vec![ByteBuf::from(forge::random32().repeat(5)); 64]],
                    },
                    // Reconciliation: a well-formed first message (the victim builds its set
                    // of heads to answer it), then one of random bytes.
                    5 => Request::Reconcile {
                        msg: ByteBuf::from(vec![0x61, 0x00, 0x02, 0x00]),
                    },
                    6 => Request::Reconcile {
                        msg: ByteBuf::from(forge::random32().repeat(64)),
                    },
                    1 => Request::Range {
                        author: ByteBuf::from(forge::random32().to_vec()),
                        from_seq: 0,
                        max: u32::MAX,
                    },
                    2 => Request::Evidence { after: None },
                    3 => Request::Certificates { after: None },
                    _ => Request::Peers,
                };
                *i += 1;
                if p.request(body).is_none() {
                    break;
                }
            }
        }
        _ => {}
    }
}

/// Event bytes made by `make(k)` for k = 0, 1, ... up to one push's worth of bytes.
fn push_batch(mut make: impl FnMut(u64) -> Vec<u8>) -> Vec<ByteBuf> {
    let mut out = Vec::new();
    let mut bytes = 0;
    let mut k = 0;
    loop {
        let ev = make(k);
        k += 1;
        bytes += ev.len() + 8;
        if bytes > MAX_PUSH_BATCH_BYTES {
            return out;
        }
        out.push(ByteBuf::from(ev));
    }
}

/// The victim's feed length for `member` (from a summary request), if it answers.
async fn feed_len(p: &mut Peer, member: &[u8; 32]) -> Option<u64> {
    match p.ask(Request::Summary, Duration::from_secs(5)).await? {
        Response::Summary { feeds } => Some(
            feeds
                .iter()
                .find(|(m, _, _)| m.as_slice() == member)
                .map_or(0, |(_, len, _)| *len),
        ),
        _ => None,
    }
}

/// Registers `me` (mining the PoW) and waits until the victim holds the registration.
async fn register(p: &mut Peer, me: &mut Author, g: &Genesis, at_ms: u64) -> Result<(), String> {
    let reg = me.register(g, "attacker", at_ms);
    let push = Request::Push {
        events: vec![ByteBuf::from(reg.bytes().to_vec())],
    };
    let _ = p.ask(push, Duration::from_secs(5)).await;
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        if feed_len(p, &me.id().0).await.unwrap_or(0) >= 1 {
            return Ok(());
        }
        p.pump(Duration::from_millis(200)).await;
    }
    Err("the victim never admitted the attacker's registration".into())
}

/// The classes run by a member that paid the PoW.
async fn member(
    class: Class,
    target: &libp2p::Multiaddr,
    g: &Genesis,
    end: Instant,
    report: &mut Report,
) -> Result<(), String> {
    let net = g.network_id();
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&forge::random32()[..8]);
    let mut me = Author::from_seed(g, u64::from_le_bytes(seed));
    report.member = Some(me.id().to_hex());
    let mut p = Peer::new(&me.keypair, &net, target.clone())?;
    p.connect().await?;
    let reg_at = match class {
        Class::Backdate => now_ms() - BACKDATE_MS,
        _ => now_ms(),
    };
    register(&mut p, &mut me, g, reg_at).await?;
    let mut i = 0u64;
    match class {
        Class::PeerFlood => {
            p.respond_with(Box::new(|r| match r {
                Request::Peers => Response::Peers {
                    peers: forge::fake_peers(FAKE_PEERS),
                },
                Request::Summary => Response::Summary { feeds: Vec::new() },
                _ => Response::Error {
                    message: "no".into(),
                },
            }));
            while Instant::now() < end {
                p.pump(Duration::from_millis(100)).await;
            }
        }
        Class::Future => {
            while Instant::now() < end {
                for _ in 0..5 {
                    let ev = me.thought(now_ms() + TEN_YEARS_MS, &forge::filler(i, 400));
                    i += 1;
                    let env = forge::envelope(&me.keypair, &net, now_ms(), ev.bytes());
                    p.publish(Topic::Events, env.encode());
                }
                p.pump(ROUND).await;
            }
        }
        Class::Backdate => {
            while Instant::now() < end {
                let ev = me.thought(now_ms() - BACKDATE_MS, &forge::filler(i, 400));
                i += 1;
                let env = forge::envelope(&me.keypair, &net, now_ms(), ev.bytes());
                p.publish(Topic::Events, env.encode());
                p.pump(Duration::from_millis(500)).await;
            }
        }
        Class::EjectedWriter | Class::Spammer => {
            return ejected_writer(class, p, me, g, end, report).await;
        }
        _ => {}
    }
    report.wire = p.counts.clone();
    Ok(())
}

/// Gets itself ejected (by equivocating, or as the `spammer` by posting past its rate limit
/// until three violations), then keeps writing its feed through a fresh transport key.
async fn ejected_writer(
    class: Class,
    mut p: Peer,
    mut me: Author,
    g: &Genesis,
    end: Instant,
    report: &mut Report,
) -> Result<(), String> {
    let net = g.network_id();
    let deadline = Instant::now() + SETTLE;
    let last_seq = if class == Class::Spammer {
        // Ten thoughts a minute is the starting limit: a thought every 100 ms earns three
        // violations in under two seconds.
        let mut i = 0u64;
        let mut last = 0;
        while p.counts.disconnects == 0 && Instant::now() < deadline {
            let ev = me.thought(now_ms(), &forge::filler(i, 200));
            i += 1;
            last = ev.seq();
            let env = forge::envelope(&me.keypair, &net, now_ms(), ev.bytes());
            p.publish(Topic::Events, env.encode());
            p.pump(Duration::from_millis(100)).await;
        }
        last
    } else {
        let (one, other, _) = me.equivocate(now_ms(), "first of two", "second of two");
        let env = forge::envelope(&me.keypair, &net, now_ms(), one.bytes());
        p.publish(Topic::Events, env.encode());
        p.request(Request::Push {
            events: vec![ByteBuf::from(other.bytes().to_vec())],
        });
        while p.counts.disconnects == 0 && Instant::now() < deadline {
            p.pump(Duration::from_millis(50)).await;
        }
        other.seq()
    };
    if p.counts.disconnects == 0 {
        return Err(format!(
            "the victim did not eject the attacker ({})",
            class.name()
        ));
    }
    report.notes.push(format!(
        "ejected by seq {last_seq}; now writing through a fresh transport key"
    ));
    let mut wire = p.counts.clone();
    drop(p);
    let courier = forge::fresh_key();
    let mut q = Peer::new(&courier, &net, p_target(&report.target)?)?;
    q.connect().await?;
    let mut i = 0u64;
    let mut written = 0u64;
    while Instant::now() < end {
        let ev = me.thought(now_ms(), &forge::filler(i, 200));
        i += 1;
        written += 1;
        let env = forge::envelope(&courier, &net, now_ms(), ev.bytes());
        q.publish(Topic::Events, env.encode());
        if i.is_multiple_of(5) {
            q.request(Request::Push {
                events: vec![ByteBuf::from(ev.bytes().to_vec())],
            });
        }
        q.pump(Duration::from_millis(200)).await;
    }
    q.pump(Duration::from_millis(500)).await;
    let held = feed_len(&mut q, &me.id().0).await;
    report.ejected_writer = Some(crate::EjectedWriter {
        seq_at_ejection: last_seq,
        written_after: written,
        held_by_victim: held,
    });
    wire.published += q.counts.published;
    wire.requests += q.counts.requests;
    wire.answers += q.counts.answers;
    report.wire = wire;
    Ok(())
}

/// Handshakes run at once by the `handshakes` class.
const HANDSHAKES_AT_ONCE: usize = 16;
/// Connections the `handshakes` class opens in one run at most, spread evenly over it: each
/// leaves a local port in TIME_WAIT for a minute, and an attacker sharing a machine with
/// other processes (a test run) must not take the ephemeral ports they need. The victim's
/// per-address limits show long before: they admit 128 and then 8 a second.
const MAX_HANDSHAKES: u64 = 2_000;

/// Opens connections with fresh keys, [`HANDSHAKES_AT_ONCE`] at a time, until `end` (and at
/// most [`MAX_HANDSHAKES`], paced over the run); each is dropped once its handshake is over
/// (accepted or refused).
async fn handshakes(
    target: &libp2p::Multiaddr,
    g: &Genesis,
    end: Instant,
    report: &mut Report,
) -> Result<(), String> {
    let net = g.network_id();
    let start = Instant::now();
    let per_sec = MAX_HANDSHAKES as f64 / end.saturating_duration_since(start).as_secs_f64();
    let (mut accepted, mut refused) = (0u64, 0u64);
    while Instant::now() < end && accepted + refused < MAX_HANDSHAKES {
        let due = start + Duration::from_secs_f64((accepted + refused) as f64 / per_sec);
        tokio::time::sleep_until(due.into()).await;
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..HANDSHAKES_AT_ONCE {
            let t = target.clone();
            set.spawn(async move {
                let kp = forge::fresh_key();
                match Peer::new(&kp, &net, t) {
                    Ok(mut p) => p.handshake(Duration::from_secs(5)).await,
                    Err(_) => false,
                }
            });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(true) => accepted += 1,
                _ => refused += 1,
            }
        }
    }
    report.wire.dial_failures = refused;
    report.handshakes = Some(crate::Handshakes { accepted, refused });
    Ok(())
}

fn p_target(s: &str) -> Result<libp2p::Multiaddr, String> {
    s.parse().map_err(|e| format!("{s}: {e}"))
}
