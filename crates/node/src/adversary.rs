//! Attack behaviours for experiments on real processes. They replace what an honest node
//! would publish; they never change the replica.

use crate::command::Submitted;
use crate::driver::{now_ms, Adversary, Node};
use web4fed_core::envelope::Envelope;
use web4fed_core::event::Body;
use web4fed_replica::{Command, Gossip};

/// What a submitted thought becomes under an attack behaviour.
pub(crate) fn submit(node: &mut Node, adversary: Adversary, content: String) -> Submitted {
    let now = now_ms();
    let ev = node
        .replica
        .ledger()
        .author_event(&node.keypair, now, Body::Thought(content));
    match adversary {
        Adversary::Forge => {
            // A corrupted author signature inside an envelope this node signs. Not stored:
            // our own ledger refuses it.
            let mut bytes = ev.bytes().to_vec();
            bytes[web4fed_core::event::HEADER_LEN] ^= 0x01;
            let env = Envelope::seal(&node.keypair, node.replica.network(), now, &bytes);
            let topic = node.names.topic(Gossip::Event(env.clone()).topic());
            let _ = node
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(topic, env.encode());
            Submitted {
                id: ev.id(),
                seq: ev.seq(),
                timestamp_ms: ev.timestamp_ms(),
                verdict: None,
                adversary: Some("forge"),
            }
        }
        Adversary::Spam => {
            // Signed without the check an honest node makes, admitted and pushed like any
            // ingested event: beyond the rate limit it is a violation in our own feed.
            let (id, seq, ts) = (ev.id(), ev.seq(), ev.timestamp_ms());
            let net = *node.replica.network();
            if let Ok(ev) = web4fed_core::ledger::VerifiedEvent::check(ev, &net) {
                let _ = node.command(Command::Ingest { events: vec![ev] });
            }
            let verdict = node.replica.ledger().verdict(&id).cloned();
            Submitted {
                id,
                seq,
                timestamp_ms: ts,
                verdict,
                adversary: Some("spam"),
            }
        }
    }
}
