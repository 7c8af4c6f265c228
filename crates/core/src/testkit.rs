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

    /// Equivocates: signs the next event of the feed and a different one at the same seq, and
    /// returns both with the evidence an honest member would publish. The feed continues on
    /// the first.
    pub fn equivocate(
        &mut self,
        t_ms: u64,
        a: &str,
        b: &str,
    ) -> (Event, Event, crate::event::Evidence) {
        let seq = self.next_seq;
        let one = self.thought(t_ms, a);
        let other = self.sign_at(seq, one.header.prev, t_ms + 1, Body::Thought(b.into()));
        let proof = crate::event::Evidence::Equivocation {
            a: one.signed_header(),
            b: other.signed_header(),
        };
        (one, other, proof)
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

/// A deterministic event log exercising every event kind and rule: thoughts (good, garbage,
/// duplicates, bursts beyond the rate limit), transfers (valid and beyond the balance),
/// validations, an equivocation with its evidence, idle gaps of days (trust decay, ATP
/// recharge) and enough thoughts to prune the corpus. Used to check that every platform folds
/// it to the same root. Returns the genesis it was made for and the events in creation order.
pub fn rich_log(seed: u64, thoughts: usize) -> (Genesis, Vec<Event>) {
    let g = Genesis {
        corpus_max_thoughts: 2_000,
        share_base_micro: 200_000,
        ..Genesis::with_pow_bits(4)
    };
    let members = 24u64;
    let mut authors: Vec<Author> = (0..members)
        .map(|i| Author::from_seed(&g, seed ^ (i + 1)))
        .collect();
    let mut clocks = vec![1_767_225_600_000u64; members as usize];
    let mut events = Vec::new();
    for (i, a) in authors.iter_mut().enumerate() {
        events.push(a.register(&g, &format!("m{i}"), clocks[i]));
    }
    let ids: Vec<MemberId> = authors.iter().map(Author::id).collect();
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut last_thought: Option<EventId> = None;
    let mut forked = false;
    let mut made = 0usize;
    while made < thoughts {
        let r = next();
        let m = (r % members) as usize;
        // Mostly paced honestly; sometimes bursts, sometimes days of silence.
        let gap = match (r >> 8) % 200 {
            0 => 3 * crate::fixed::DAY_MS + (r >> 16) % (9 * crate::fixed::DAY_MS),
            1..=4 if m < 4 => (r >> 16) % 200,
            _ => 6_000 + (r >> 16) % 20_000,
        };
        clocks[m] += gap;
        let t = clocks[m];
        let a = &mut authors[m];
        // Members 0-3 misbehave (garbage, self-repeats, bursts) and get ejected; the others
        // post mostly good content with the odd slip.
        let bad = m < 4;
        let roll = (r >> 20) % 100;
        let ev = match roll {
            0..=5 if bad => a.thought(t, "zzzz qqqq xxxx zzzz qqqq"),
            6..=9 if bad => a.thought(t, &sentence(m as u64)), // repeats its own content
            // Small transfers; the misbehaving members also try ones beyond their balance.
            11..=18 => {
                let atp = if bad && roll == 11 {
                    5_000
                } else {
                    1 + (r >> 40) % 5
                };
                a.transfer(t, ids[((r >> 30) % members) as usize], atp)
            }
            19..=24 => match last_thought {
                Some(id) => a.validate(t, id, ((r >> 24) % 1_000_001) as u32),
                None => continue,
            },
            25 if !forked && made > thoughts / 2 => {
                // An equivocation, and an honest member publishing the proof.
                forked = true;
                let seq = a.next_seq();
                let (one, _other, proof) =
                    a.equivocate(t, &sentence(9_000_000 + seq), &sentence(9_500_000 + seq));
                events.push(one);
                let w = (m + 1) % members as usize;
                clocks[w] = clocks[w].max(t + 2);
                authors[w].next(clocks[w], Body::Evidence(Box::new(proof)))
            }
            _ => {
                made += 1;
                a.thought(t, &sentence(seed.wrapping_mul(1_000_003) ^ made as u64))
            }
        };
        if matches!(ev.body, Body::Thought(_)) {
            last_thought = Some(ev.id());
        }
        events.push(ev);
    }
    (g, events)
}

/// Certifies this ledger's own checkpoint `e` with precommits of `signers` at its next height
/// (generation 0, round 0): the certificate the agreement forms when they decide that
/// value. Returns it once the ledger adopted it, or why the ledger refused it.
pub fn certify(
    l: &mut crate::ledger::Ledger,
    e: u64,
    signers: &[&Keypair],
) -> Result<crate::finality::Certificate, crate::finality::CertError> {
    certify_in(l, e, signers, 0)
}

/// [`certify`] in validator-set generation `gen` of the next height.
pub fn certify_in(
    l: &mut crate::ledger::Ledger,
    e: u64,
    signers: &[&Keypair],
    gen: u32,
) -> Result<crate::finality::Certificate, crate::finality::CertError> {
    use crate::finality::{At, CertError, Certificate};
    let body = l.vote_body(e).ok_or(CertError::Unverifiable(e))?;
    let cp = l.checkpoint(e).ok_or(CertError::Unverifiable(e))?;
    let at = At {
        height: l.next_height(),
        gen,
        round: 0,
    };
    let cert = Certificate::sign_by(l.network(), at, body, cp.frontier, signers.iter().copied());
    l.handle_certificate(cert.clone())?;
    Ok(cert)
}

/// A snapshot file around an arbitrary body: the header's magic, format and `network`, the
/// epoch and root taken from `fields` (8 + 32 bytes), and the body's true length and
/// checksum, so that decoding gets past the framing to the body. For fuzzing and for the
/// tests that keep what fuzzing found.
pub fn snapshot_around(network: &[u8; 32], fields: &[u8; 40], body: &[u8]) -> Vec<u8> {
    use crate::snapshot::{HEADER_LEN, MAGIC, SNAPSHOT_FORMAT};
    use sha2::Digest;
    let mut file = Vec::with_capacity(HEADER_LEN + body.len());
    file.extend_from_slice(&MAGIC);
    file.extend_from_slice(&SNAPSHOT_FORMAT.to_be_bytes());
    file.extend_from_slice(network);
    file.extend_from_slice(fields);
    file.extend_from_slice(&(body.len() as u64).to_be_bytes());
    file.extend_from_slice(&sha2::Sha256::digest(body));
    file.extend_from_slice(body);
    file
}
