//! Everything that arrives by gossip (envelopes, heartbeats, votes, proposals, certificates): decoding
//! never panics and round-trips; signature checks on garbage never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use web4fed_replica::{Gossip, Topic};

fuzz_target!(|data: &[u8]| {
    let Some((t, rest)) = data.split_first() else {
        return;
    };
    let topic = Topic::ALL[*t as usize % Topic::ALL.len()];
    if let Ok(g) = Gossip::decode(topic, rest) {
        assert_eq!(g.encode(), rest, "{topic:?} encoding is not canonical");
        match &g {
            Gossip::Event(e) => {
                let _ = e.verify(&[0; 32]);
                let _ = e.proves_forgery(&[0; 32]);
            }
            Gossip::Heartbeat(h) => {
                let _ = h.verify(&[0; 32]);
            }
            Gossip::Vote(v) => {
                let _ = v.verify(&[0; 32]);
            }
            Gossip::Proposal(p) => {
                let _ = p.verify(&[0; 32]);
            }
            Gossip::Certificate(c) => {
                let _ = c.verify(&[0; 32], &Default::default());
            }
        }
    }
});
