//! The replica under a hostile peer: any bytes on any gossip topic, any request (evidence
//! pages after any cursor, reconciliation messages among them), any answer to requests it made or never made,
//! connections coming and going, time jumping. Never panics; the peer book, the requests in
//! flight and the queues stay within their limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde_bytes::ByteBuf;
use web4fed_core::genesis::Genesis;
use web4fed_core::identity::MemberId;
use web4fed_core::ledger::Ledger;
use web4fed_core::testkit::Author;
use web4fed_replica::limits::{MAX_KNOWN_PEERS, PEER_QUEUE_MAX};
use web4fed_replica::{Config, Gossip, Message, Replica, Request, RequestId, Response, Topic};

const T0: u64 = 1_767_225_600_000;

fn bufs(b: &[u8]) -> Vec<ByteBuf> {
    b.chunks(40).map(|c| ByteBuf::from(c.to_vec())).collect()
}

fuzz_target!(|data: &[u8]| {
    let g = Genesis::with_pow_bits(1);
    let mut a = Author::from_seed(&g, 1);
    let mut b = Author::from_seed(&g, 2);
    let regs = vec![a.register(&g, "a", T0), b.register(&g, "b", T0)];
    let mut l = Ledger::new(g.clone());
    l.handle_batch(T0, regs);
    while l.poll_output().is_some() {}
    let cfg = Config {
        keypair: a.keypair.clone(),
        heartbeat_ms: 250,
        bootstrap: vec!["/ip4/127.0.0.1/tcp/1".into()],
        last_vote: None,
        has_tpm: true,
        rate_thoughts: true,
    };
    let mut r = Replica::new(cfg, l, T0);
    let peer = b.id();
    let stranger = MemberId([9; 32]);
    let mut now = T0;
    r.handle_connected(now, peer, None);
    for op in data.split(|x| *x == 0xff).take(64) {
        let Some((&kind, rest)) = op.split_first() else {
            continue;
        };
        let from = if kind & 0x80 == 0 { peer } else { stranger };
        let id = RequestId(u64::from(rest.first().copied().unwrap_or(0)));
        // Evidence pages: a request after any cursor, or an answer with any items and any
        // cursor (requests the replica made are numbered from 0, so some ids match).
        if kind & 0x40 != 0 {
            let cursor = rest.get(1..34).map(|c| ByteBuf::from(c.to_vec()));
            let msg = if kind & 0x20 == 0 {
                Message::Request {
                    id,
                    body: Request::Evidence { after: cursor },
                }
            } else {
                Message::Response {
                    id,
                    body: Response::Evidence {
                        items: bufs(rest),
                        next: cursor,
                    },
                }
            };
            r.handle_message(now, from, msg);
            while r.poll_event().is_some() {}
            while r.poll_transmit().is_some() {}
            continue;
        }
        match kind & 0x0f {
            0..=3 => {
                let topic = Topic::ALL[((kind >> 4) as usize + (kind & 3) as usize) % Topic::ALL.len()];
                if let Ok(g) = Gossip::decode(topic, rest) {
                    r.handle_message(now, from, Message::Gossip(g));
                }
            }
            4 => {
                let body = Request::Range {
                    author: ByteBuf::from(rest.get(..32).unwrap_or(rest).to_vec()),
                    from_seq: u64::from(rest.len() as u8),
                    max: u32::MAX,
                };
                r.handle_message(now, from, Message::Request { id, body });
            }
            5 if kind & 0x10 != 0 => {
                // A stalled round's resend: any bytes as votes, proposals and a proof of lock.
                let body = Request::Agreement {
                    votes: bufs(rest),
                    proposals: bufs(rest),
                    polkas: vec![bufs(rest)],
                };
                r.handle_message(now, from, Message::Request { id, body });
            }
            5 => {
                let body = Request::Push { events: bufs(rest) };
                r.handle_message(now, from, Message::Request { id, body });
            }
            6 => {
                let peers = rest
                    .chunks(33)
                    .map(|c| {
                        (
                            ByteBuf::from(c.to_vec()),
                            vec![String::from_utf8_lossy(c).into_owned()],
                        )
                    })
                    .collect();
                r.handle_message(
                    now,
                    from,
                    Message::Response {
                        id,
                        body: Response::Peers { peers },
                    },
                );
            }
            7 => {
                let body = Response::Events { events: bufs(rest) };
                r.handle_message(now, from, Message::Response { id, body });
            }
            8 if kind & 0x10 != 0 => {
                // Reconciliation: any bytes as a peer's first message, and as an answer to
                // one of ours.
                let msg = ByteBuf::from(rest.to_vec());
                let body = Request::Reconcile { msg: msg.clone() };
                r.handle_message(now, from, Message::Request { id, body });
                let body = Response::Reconcile { msg };
                r.handle_message(now, from, Message::Response { id, body });
            }
            8 => {
                let feeds = rest
                    .chunks(32)
                    .map(|c| {
                        (
                            ByteBuf::from(c.to_vec()),
                            u64::from(c[0]),
                            ByteBuf::from(c.to_vec()),
                        )
                    })
                    .collect();
                r.handle_message(
                    now,
                    from,
                    Message::Response {
                        id,
                        body: Response::Summary { feeds },
                    },
                );
            }
            9 => {
                let body = Response::Certificates { items: bufs(rest) };
                r.handle_message(now, from, Message::Response { id, body });
            }
            10 => {
                let body = Request::Activate {
                    id_object: ByteBuf::from(rest.to_vec()),
                    secret: ByteBuf::from(rest.to_vec()),
                };
                r.handle_message(now, from, Message::Request { id, body });
            }
            11 => r.handle_disconnected(now, from),
            12 => r.handle_connected(now, from, Some(String::from_utf8_lossy(rest).into_owned())),
            13 => r.handle_addresses(
                now,
                from,
                vec![String::from_utf8_lossy(rest).into_owned(); 20],
            ),
            14 => {
                let ev = b.thought(now, &String::from_utf8_lossy(rest));
                r.handle_message(
                    now,
                    peer,
                    Message::Request {
                        id,
                        body: Request::Push {
                            events: vec![ByteBuf::from(ev.bytes().to_vec())],
                        },
                    },
                );
            }
            15 => {
                let body = Request::SnapshotInfo;
                r.handle_message(now, from, Message::Request { id, body });
            }
            16 => {
                let mut e = [0u8; 8];
                for (d, s) in e.iter_mut().zip(rest) {
                    *d = *s;
                }
                let body = Request::SnapshotChunk {
                    epoch: u64::from_be_bytes(e),
                    index: u32::from(rest.get(8).copied().unwrap_or(0)),
                };
                r.handle_message(now, from, Message::Request { id, body });
            }
            17 => {
                // Snapshot answers nobody asked for.
                let body = if rest.len() % 2 == 0 {
                    Response::SnapshotInfo {
                        header: ByteBuf::from(rest.to_vec()),
                        chunks: bufs(rest),
                    }
                } else {
                    Response::SnapshotChunk {
                        bytes: ByteBuf::from(rest.to_vec()),
                    }
                };
                r.handle_message(now, from, Message::Response { id, body });
            }
            _ => {
                now += u64::from(rest.first().copied().unwrap_or(1)) * 500;
                r.handle_timeout(now);
            }
        }
        // Snapshot reads are answered as the driver would when it holds no snapshot.
        while let Some(ev) = r.poll_event() {
            if let web4fed_replica::Event::ReadSnapshot { to, request, .. } = ev {
                let _ = r.handle_command(
                    now,
                    web4fed_replica::Command::SnapshotRead {
                        to,
                        request,
                        result: Err("no snapshot to offer".into()),
                    },
                );
            }
        }
        while r.poll_transmit().is_some() {}
        assert!(r.peers().iter().count() <= MAX_KNOWN_PEERS + 2);
        assert!(r
            .peers()
            .iter()
            .all(|(_, p)| p.queue.len() <= PEER_QUEUE_MAX));
    }
});
