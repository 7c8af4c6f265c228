//! Load generation: pre-signed registrations, thoughts and committee ratings, injected in
//! batches over `POST /v1/events`, streamed live, and votes for members without nodes.

use super::procs::NodeProc;
use super::*;

// ---- load generation ----------------------------------------------------------------------

/// Pre-signed events for the federation: registrations of `LOAD_MEMBERS` members (seeds
/// from `seed_base`), then thoughts and, for each thought, `Validate` ratings from its
/// committee (drawn by a local ledger folding the same events, so every rating is valid).
///
/// Events are generated one millisecond slot at a time (`rate/1000` per slot), and each
/// slot is emitted in canonical order (timestamp, author, seq), the order every node folds
/// in: a federation's members would not coordinate that, but a generator that emitted
/// same-millisecond events out of order would make every node re-fold from a snapshot for
/// most batches and measure that instead (see BENCHMARKS.md). Ratings are dated one slot
/// after their thought, whose committee is known once that slot is folded.
pub(super) struct Workload {
    pub registrations: Vec<Vec<u8>>,
    pub events: Vec<(u64, Vec<u8>)>,
    pub content_bytes: u64,
    pub thoughts: u64,
}

/// The generator behind [`Workload`]: members, a local ledger to draw committees, and the
/// ratings owed for the last slot's thoughts.
struct Generator {
    ledger: Ledger,
    authors: Vec<Author>,
    index: HashMap<web4fed_core::identity::MemberId, usize>,
    registrations: Vec<Vec<u8>>,
    pending_ratings: Vec<(EventId, Vec<web4fed_core::identity::MemberId>)>,
    ratings_per_thought: usize,
    per_slot: usize,
    seed_base: u64,
    i: u64,
    content_bytes: u64,
    thoughts: u64,
    /// The first checkpoint epoch not yet certified (see [`Generator::certify_settled`]).
    next_checkpoint: Option<u64>,
}

impl Generator {
    fn new(g: &Genesis, seed_base: u64, ratings_per_thought: usize, t0_ms: u64, rate: u64) -> Self {
        let mut ledger = Ledger::new(g.clone());
        let mut authors: Vec<Author> = (0..LOAD_MEMBERS)
            .map(|i| Author::from_seed(g, seed_base + i))
            .collect();
        let mut registrations = Vec::new();
        for (i, a) in authors.iter_mut().enumerate() {
            let ev = a.register(g, &format!("load-{seed_base}-{i}"), t0_ms);
            registrations.push(ev.bytes().to_vec());
            let _ = ledger.handle_event(t0_ms, ev);
        }
        let index = authors
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id(), i))
            .collect();
        Self {
            ledger,
            authors,
            index,
            registrations,
            pending_ratings: Vec::new(),
            ratings_per_thought,
            per_slot: (rate / 1_000).max(1) as usize,
            seed_base,
            i: 0,
            content_bytes: 0,
            thoughts: 0,
            next_checkpoint: None,
        }
    }

    /// The events of one millisecond slot at `t`, in canonical order: the ratings owed for
    /// the previous slot's thoughts, then new thoughts (at most `max_thoughts`) to fill it.
    fn slot(&mut self, t: u64, max_thoughts: u64) -> Vec<Event> {
        let mut batch: Vec<Event> = Vec::with_capacity(self.per_slot);
        for (id, committee) in std::mem::take(&mut self.pending_ratings) {
            for m in committee.into_iter().take(self.ratings_per_thought) {
                if let Some(&r) = self.index.get(&m) {
                    let score = 700_000 + (self.i % 300_000) as u32;
                    batch.push(self.authors[r].validate(t, id, score));
                }
            }
        }
        let mut new_thoughts = Vec::new();
        while batch.len() < self.per_slot && self.thoughts < max_thoughts {
            let a = (self.i % self.authors.len() as u64) as usize;
            let content = sentence(self.seed_base * 1_000_000 + self.i);
            self.content_bytes += content.len() as u64;
            let ev = self.authors[a].thought(t, &content);
            new_thoughts.push(ev.id());
            batch.push(ev);
            self.thoughts += 1;
            self.i += 1;
        }
        batch.sort_by_key(Event::order_key);
        for ev in &batch {
            let _ = self.ledger.handle_event(t, ev.clone());
        }
        if self.ratings_per_thought > 0 {
            for id in new_thoughts {
                if let Some(e) = self.ledger.state().thought(&id) {
                    self.pending_ratings.push((id, e.committee.clone()));
                }
            }
        }
        batch
    }

    /// Certifies the generator ledger's checkpoints that settled by `t` (their end a few
    /// seconds past) with its members' and the founders' keys, as the federation certifies
    /// its own, so the ledger prunes its final history as a node does. Without it the ledger
    /// held every event generated and slowed as it grew: a ten-minute run offered 3,998
    /// events/s in its first minute and 1,401 in its last, the nodes keeping up with both.
    fn certify_settled(&mut self, t: u64, founders: &[Keypair]) {
        let epoch_ms = self.ledger.genesis().epoch_ms;
        let mut e = *self.next_checkpoint.get_or_insert(t / epoch_ms);
        while (e + 1) * epoch_ms + CERTIFY_LAG_MS <= t {
            if self.ledger.is_checkpoint(e) && self.ledger.vote_body(e).is_some() {
                // The set agreed in advance, or at height 0 of an open genesis the weights
                // of the checkpoint itself (what a node uses then: its own view).
                let validators = self
                    .ledger
                    .validators(0)
                    .or_else(|| self.ledger.checkpoint(e).map(|c| c.weights))
                    .unwrap_or_default();
                // Every validator signs (a certificate names no one outside the set).
                let keys: Vec<&Keypair> = founders
                    .iter()
                    .chain(self.authors.iter().map(|a| &a.keypair))
                    .filter(|k| validators.contains_key(&k.id()))
                    .collect();
                // A checkpoint the ledger cannot certify (none of its events yet) is left;
                // the next one covers it.
                let _ = web4fed_core::testkit::certify(&mut self.ledger, e, &keys);
            }
            e += 1;
        }
        self.next_checkpoint = Some(e);
        while self.ledger.poll_output().is_some() {}
    }
}

/// How long after a checkpoint's end the generator certifies it: the events dated in it are
/// all generated by then (the generator runs at most `LEAD_MS` ahead of the clock).
const CERTIFY_LAG_MS: u64 = 3_000;

pub(super) fn workload(
    g: &Genesis,
    seed_base: u64,
    thoughts_wanted: usize,
    ratings_per_thought: usize,
    t0_ms: u64,
    rate: u64,
    max_events: usize,
) -> Workload {
    let mut gen = Generator::new(g, seed_base, ratings_per_thought, t0_ms, rate);
    let mut events = Vec::new();
    let mut slot = 0u64;
    while (gen.thoughts < thoughts_wanted as u64 || !gen.pending_ratings.is_empty())
        && events.len() < max_events
    {
        let t = t0_ms + 1 + slot;
        slot += 1;
        for ev in gen.slot(t, thoughts_wanted as u64) {
            if events.len() < max_events {
                events.push((ev.timestamp_ms(), ev.bytes().to_vec()));
            }
        }
    }
    Workload {
        registrations: gen.registrations,
        events,
        content_bytes: gen.content_bytes,
        thoughts: gen.thoughts,
    }
}

/// A live load for `secs` seconds: slots generated against the wall clock (each at most
/// `LEAD_MS` ahead of it) and posted every `POST_EVERY`, as a federation's members would.
/// Returns the events offered.
pub(super) fn stream_load(
    node: &NodeProc,
    g: &Genesis,
    founders: &[Keypair],
    seed_base: u64,
    rate: u64,
    secs: u64,
    posted: &std::sync::atomic::AtomicU64,
) -> Result<u64, String> {
    use std::sync::atomic::Ordering;
    const LEAD_MS: u64 = 200;
    const POST_EVERY: Duration = Duration::from_millis(50);
    let start = now_ms();
    let mut gen = Generator::new(g, seed_base, g.committee_size as usize, start, rate);
    let mut batch = Vec::new();
    for r in &gen.registrations {
        frame(&mut batch, r);
    }
    node.post_events(&batch)?;
    let end = start + secs * 1_000;
    let mut t = start + 1;
    let mut offered = gen.registrations.len() as u64;
    let mut last_post = Instant::now();
    let mut batch = Vec::new();
    while t <= end {
        while t > now_ms() + LEAD_MS {
            std::thread::sleep(Duration::from_millis(1));
        }
        for ev in gen.slot(t, u64::MAX) {
            frame(&mut batch, ev.bytes());
            offered += 1;
        }
        if t.is_multiple_of(1_000) {
            gen.certify_settled(t, founders);
        }
        t += 1;
        if last_post.elapsed() >= POST_EVERY {
            let v = node.post_events(&batch)?;
            if v["rejected"].as_u64().unwrap_or(0) > 0 {
                return Err(format!("events rejected: {v}"));
            }
            posted.store(offered, Ordering::Relaxed);
            batch.clear();
            last_post = Instant::now();
        }
    }
    if !batch.is_empty() {
        node.post_events(&batch)?;
    }
    Ok(offered)
}

/// Signs each new proposal the node shows (a prevote and a precommit at its height,
/// generation and round) with every key and posts the votes, until `stop`. Returns the votes
/// accepted.
pub(super) fn vote_for(
    node: &NodeProc,
    network: &[u8; 32],
    keys: &[Keypair],
    stop: &std::sync::atomic::AtomicBool,
) -> Result<u64, String> {
    let mut last = None;
    let mut accepted = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        let Some(cp) = node.get("/v1/checkpoint") else {
            continue;
        };
        let Some(hex_body) = cp["body"].as_str() else {
            continue;
        };
        let bytes = hex::decode(hex_body).map_err(|e| e.to_string())?;
        let body = VoteBody::decode(&bytes).map_err(|e| e.to_string())?;
        let field = |k: &str| cp[k].as_u64().unwrap_or(0);
        let at = At {
            height: field("height"),
            gen: u32::try_from(field("gen")).unwrap_or(0),
            round: u32::try_from(field("round")).unwrap_or(0),
        };
        if last == Some(at) {
            continue;
        }
        last = Some(at);
        let mut batch = Vec::new();
        for k in keys {
            for kind in [VoteKind::Prevote, VoteKind::Precommit] {
                frame(
                    &mut batch,
                    &Vote::sign(k, network, at, kind, Some(body.id())).encode(),
                );
            }
        }
        let v = node.post_frames("/v1/votes", &batch)?;
        accepted += v["accepted"].as_u64().unwrap_or(0);
    }
    Ok(accepted)
}

pub(super) fn frame(batch: &mut Vec<u8>, ev: &[u8]) {
    batch.extend_from_slice(&(ev.len() as u32).to_be_bytes());
    batch.extend_from_slice(ev);
}

/// Posts events in batches as fast as the node takes them, or paced by their timestamps
/// (never more than `lead_ms` ahead of the wall clock) when `paced`.
pub(super) fn inject(
    node: &NodeProc,
    regs: &[Vec<u8>],
    events: &[(u64, Vec<u8>)],
    paced: bool,
) -> Result<u64, String> {
    let mut batch = Vec::new();
    for r in regs {
        frame(&mut batch, r);
    }
    node.post_events(&batch)?;
    let mut admitted = 0;
    for chunk in events.chunks(INGEST_BATCH) {
        if paced {
            let last = chunk.last().map_or(0, |(t, _)| *t);
            while last > now_ms() + 2_000 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let mut batch = Vec::with_capacity(chunk.len() * 400);
        for (_, e) in chunk {
            frame(&mut batch, e);
        }
        let v = node.post_events(&batch)?;
        admitted += v["admitted"].as_u64().unwrap_or(0);
        if v["rejected"].as_u64().unwrap_or(0) > 0 {
            return Err(format!("events rejected: {v}"));
        }
    }
    Ok(admitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator's ledger certifies its settled checkpoints and so lets its final
    /// history go, as a node's does: over a long run it holds a window, not everything.
    #[test]
    fn the_generator_prunes_its_own_history() {
        let g = bench_genesis();
        let t0 = 1_767_225_600_000;
        let mut gen = Generator::new(&g, 7_000, g.committee_size as usize, t0, 100);
        // No founders: this genesis has none, so the load members are every validator.
        let mut generated = 0;
        for t in t0 + 1..t0 + 40_000 {
            generated += gen.slot(t, u64::MAX).len();
            if t.is_multiple_of(1_000) {
                gen.certify_settled(t, &[]);
            }
        }
        assert!(
            gen.ledger.final_epoch().is_some(),
            "no checkpoint was certified"
        );
        assert!(
            gen.ledger.pruned() * 2 > generated,
            "only {} of {generated} events left memory",
            gen.ledger.pruned()
        );
    }
}
