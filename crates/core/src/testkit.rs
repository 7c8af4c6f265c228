//! Helpers that build members and their feeds without a network: used by the core's tests,
//! the benchmarks and the simulator. Deterministic: keys come from seeds.

use crate::event::{Attestation, AttestationKind, Body, Event, EventId, Level, Register, Validate};
use crate::genesis::Genesis;
use crate::identity::{Keypair, MemberId};
use crate::pow;

/// A member that writes its own feed: tracks its seq, prev and last timestamp.
#[derive(Debug, Clone)]
pub struct Author {
    /// The member's key pair.
    pub keypair: Keypair,
    network: [u8; 32],
    next_seq: u64,
    prev: EventId,
    last_ms: u64,
}

impl Author {
    /// A member whose secret key is derived from `seed`.
    pub fn from_seed(genesis: &Genesis, seed: u64) -> Self {
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&seed.to_be_bytes());
        secret[31] = 0x5a;
        Self {
            keypair: Keypair::from_secret(secret),
            network: genesis.network_id(),
            next_seq: 0,
            prev: EventId::default(),
            last_ms: 0,
        }
    }

    /// The member id.
    pub fn id(&self) -> MemberId {
        self.keypair.id()
    }

    /// Signs the next event of the feed at logical time `t_ms`.
    pub fn next(&mut self, t_ms: u64, body: Body) -> Event {
        let t = t_ms.max(self.last_ms);
        let ev = Event::sign(
            &self.keypair,
            &self.network,
            self.next_seq,
            self.prev,
            t,
            body,
        );
        self.next_seq += 1;
        self.prev = ev.id();
        self.last_ms = t;
        ev
    }

    /// Signs an event at an explicit seq and prev without advancing the feed (for forgeries
    /// and equivocation in tests and adversaries).
    pub fn sign_at(&self, seq: u64, prev: EventId, t_ms: u64, body: Body) -> Event {
        Event::sign(&self.keypair, &self.network, seq, prev, t_ms, body)
    }

    /// The seq the next event will take.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The id of the latest event signed through [`Author::next`].
    pub fn prev(&self) -> EventId {
        self.prev
    }

    /// The registration (seq 0), mining the PoW at the genesis difficulty.
    pub fn register(&mut self, genesis: &Genesis, name: &str, t_ms: u64) -> Event {
        self.register_claiming(genesis, name, t_ms, Level::L4, Vec::new())
    }

    /// A registration claiming a hardware level with the given TPM evidence bytes.
    pub fn register_claiming(
        &mut self,
        genesis: &Genesis,
        name: &str,
        t_ms: u64,
        level: Level,
        evidence: Vec<u8>,
    ) -> Event {
        let pow = pow::mine(&self.network, &self.id(), genesis.pow_bits);
        let kind = if evidence.is_empty() {
            AttestationKind::None
        } else {
            AttestationKind::Tpm2
        };
        self.next(
            t_ms,
            Body::Register(Register {
                name: name.into(),
                entity_type: "ai".into(),
                pow,
                claimed_level: level,
                attestation: Attestation { kind, evidence },
            }),
        )
    }

    /// A thought.
    pub fn thought(&mut self, t_ms: u64, content: &str) -> Event {
        self.next(t_ms, Body::Thought(content.into()))
    }

    /// An ATP transfer of whole ATP.
    pub fn transfer(&mut self, t_ms: u64, to: MemberId, atp: u64) -> Event {
        self.next(
            t_ms,
            Body::Transfer {
                to,
                amount_milli: atp * crate::fixed::MILLI,
            },
        )
    }

    /// A rating of a thought.
    pub fn validate(&mut self, t_ms: u64, thought: EventId, score_micro: u32) -> Event {
        self.next(
            t_ms,
            Body::Validate(Validate {
                thought,
                score_micro,
                scorer: crate::quality::COHERENCE_SCORER.into(),
            }),
        )
    }
}

/// Words for [`sentence`]: enough variety that generated thoughts are coherent and distinct.
const WORDS: [&str; 32] = [
    "federation",
    "trust",
    "signal",
    "network",
    "member",
    "thought",
    "evidence",
    "partition",
    "gradient",
    "model",
    "board",
    "sensor",
    "memory",
    "latency",
    "quorum",
    "ledger",
    "energy",
    "reason",
    "pattern",
    "vision",
    "robot",
    "planner",
    "kernel",
    "cluster",
    "window",
    "budget",
    "context",
    "observer",
    "harbor",
    "garden",
    "river",
    "engine",
];

/// A coherent, distinct English-like sentence for index `i` (coherence above 0.8).
pub fn sentence(i: u64) -> String {
    let mut words = Vec::with_capacity(8);
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995;
    for _ in 0..6 {
        words.push(WORDS[(x % 32) as usize]);
        x = x.rotate_left(13).wrapping_mul(0xff51_afd7_ed55_8ccd) ^ 0xc4ce_b9fe;
    }
    format!(
        "The {} {} {} {} {} {} number {i}.",
        words[0], words[1], words[2], words[3], words[4], words[5]
    )
}
