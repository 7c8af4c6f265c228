//! The ledger to and from a durable snapshot (see [`crate::snapshot`]): the fold's base at
//! a certified checkpoint and what the ledger keeps of the history before it. A ledger
//! restored from one and then given the events after it (the tail) is the ledger that
//! never stopped: same roots, same verdicts for every event it holds.

use super::{Feed, Item, Ledger, Snapshot};
use crate::attest::{claim_for, Verifier};
use crate::event::{Body, Event, EventId, Evidence, Kind};
use crate::finality::Certificate;
use crate::genesis::Genesis;
use crate::identity::MemberId;
use crate::snapshot::{FeedImage, Image, SnapshotDraft, SnapshotError, SnapshotFile};
use crate::state::check_evidence;
use crate::verdict::{Rule, Verdict};
use std::collections::BTreeMap;
use std::sync::Arc;

impl Ledger {
    /// The certified checkpoint epoch a snapshot would be taken at (see
    /// [`Ledger::snapshot`]): the newest candidate base (one every few checkpoints, at or
    /// after the pruning base) this node holds the certificate of, else the base itself.
    pub fn snapshot_epoch(&self) -> Option<u64> {
        if self.history.irregular {
            return None;
        }
        let base = self.history.base_epoch;
        self.history
            .candidates
            .keys()
            .rev()
            .find(|e| self.certs.contains_key(e) && base.is_none_or(|b| **e >= b))
            .copied()
            .or_else(|| base.filter(|e| self.certs.contains_key(e)))
    }

    /// A durable snapshot at the newest certified candidate base: a restart from it reads
    /// again only the events after it (a few checkpoints' worth), not the minute the pruning
    /// base stays behind. What the snapshot covers is, per feed, the pruned events and the
    /// events still in memory ordered before its point (a prefix of the feed: order keys grow
    /// with seq); a ledger restored from it has let go of all of them, as if it had pruned
    /// up to there (nothing certified is ever re-folded, see `prune`). Encoded in memory;
    /// see [`Ledger::snapshot_draft`] for the way a node writes one.
    pub fn snapshot(&self) -> Option<SnapshotFile> {
        self.snapshot_draft()?.into_file()
    }

    /// The snapshot of [`Ledger::snapshot`], taken but not yet checked or encoded: costs a
    /// persistent copy of the state and a pass over the feeds, so the driver takes it on its
    /// own task when [`super::Output::Snapshot`] says one is due and checks, encodes and
    /// writes it on another thread ([`SnapshotDraft::write_to`]).
    pub fn snapshot_draft(&self) -> Option<SnapshotDraft> {
        let epoch = self.snapshot_epoch()?;
        let point = match self.history.candidates.get(&epoch) {
            Some(c) => c,
            None => self.history.base.as_ref()?,
        };
        // The point is the fold of every item before the epoch's end, which the certificate
        // certified: the draft checks that the state hashes to it before writing a byte.
        let root = self.certs.get(&epoch)?.body.root;
        let (key, Item::Event(id)) = point.at;
        let mut feeds = Vec::new();
        let mut covered_total = 0u64;
        let mut covered_ratings = 0u64;
        let mut registrations: Vec<&Arc<Event>> = Vec::new();
        // Evidence for violation ejections: the refused events kept after pruning, then
        // the covered ones still in memory, the newest `eject_violations` of each author.
        let keep_refused = self.genesis.eject_violations as usize;
        let mut refused: BTreeMap<MemberId, Vec<(&Arc<Event>, &Rule)>> = BTreeMap::new();
        for (m, kept) in &self.history.refused {
            let list = refused.entry(*m).or_default();
            list.extend(kept.iter().filter_map(|(e, v)| match v {
                Verdict::Refused(rule) => Some((e, rule)),
                _ => None,
            }));
        }
        for (m, f) in &self.feeds {
            // The feed's events in memory ordered at or before the point: a prefix.
            let mut k = 0;
            let mut last: Option<&Arc<Event>> = None;
            for held in &f.ids {
                let ev = self.events.get(held)?;
                if (self.order_key_of(ev), Item::Event(*held)) > point.at {
                    break;
                }
                if ev.header.kind == Kind::Validate {
                    covered_ratings += 1;
                }
                if let Some(Verdict::Refused(rule)) = self.verdicts.get(held) {
                    refused.entry(*m).or_default().push((ev, rule));
                }
                k += 1;
                last = Some(ev);
            }
            if f.pruned() == 0 && k == 0 {
                continue;
            }
            let (head, head_ms) = match last {
                Some(ev) => (ev.id(), ev.timestamp_ms()),
                None => f.pruned_head?,
            };
            // The prefixes the feed would keep had it pruned up to the point: the newest
            // `PRUNED_IDS_KEPT` of its pruned ones and its first `k` in memory.
            let from_ids = k.min(super::PRUNED_IDS_KEPT);
            let from_old = (super::PRUNED_IDS_KEPT - from_ids).min(f.old.len());
            let prefix = |i: &crate::event::EventId| {
                let mut p = [0u8; super::OLD_ID_BYTES];
                p.copy_from_slice(&i.0[..super::OLD_ID_BYTES]);
                p
            };
            let old: Vec<[u8; super::OLD_ID_BYTES]> = (f.old.iter().skip(f.old.len() - from_old))
                .copied()
                .chain(f.ids[k - from_ids..k].iter().map(prefix))
                .collect();
            let forgotten = f.pruned() + k as u64 - old.len() as u64;
            covered_total += forgotten + old.len() as u64;
            match self.history.registrations.get(m) {
                Some(r) => registrations.push(r),
                None => registrations.push(self.events.get(f.ids.first()?)?),
            }
            feeds.push(FeedImage {
                author: *m,
                forgotten,
                old,
                head,
                head_ms,
            });
        }
        feeds.sort_by_key(|f| f.author);
        registrations.sort_by_key(|e| e.author());
        let mut known: Vec<MemberId> = self.feeds.keys().copied().collect();
        known.sort();
        let held_ratings = self
            .events
            .values()
            .filter(|e| e.header.kind == Kind::Validate)
            .count() as u64;
        // Ratings in the log up to the point: all of them but those held and not covered.
        let ratings_held = self
            .ratings_held
            .saturating_sub(held_ratings.saturating_sub(covered_ratings));
        let encode = |e: &Evidence| Body::Evidence(Box::new(e.clone())).encode();
        let mut evidence: Vec<(Vec<u8>, bool)> = Vec::new();
        evidence.extend(self.proofs.values().map(|e| (encode(e), false)));
        evidence.extend(
            self.forgeries
                .values()
                .map(|env| (encode(&Evidence::ForgedEnvelope(env.clone())), false)),
        );
        evidence.extend(self.double_votes.values().map(|e| (encode(e), false)));
        evidence.extend(self.pending_proofs.iter().map(|(_, e, a)| (encode(e), *a)));
        let pairs = |m: &BTreeMap<MemberId, u64>| m.iter().map(|(k, v)| (*k, *v)).collect();
        let mut forks: Vec<(MemberId, u64)> = self.forks.iter().map(|(k, v)| (*k, *v)).collect();
        forks.sort();
        let mut steps: Vec<(MemberId, Vec<(u64, u64)>)> =
            self.steps.iter().map(|(k, v)| (*k, v.clone())).collect();
        steps.sort_by_key(|s| s.0);
        let image = Image {
            at: (key, id),
            count: point.count as u64,
            state: point.state.clone(),
            feeds,
            known,
            registrations: registrations.iter().map(|e| e.bytes().to_vec()).collect(),
            ratings_held,
            pruned: covered_total,
            evidence,
            forks,
            carried_forks: pairs(&self.carried_forks),
            chain: self.chain.iter().map(|(k, v)| (*k, *v)).collect(),
            steps,
            certs: self
                .certs
                .iter()
                .map(|(e, c)| {
                    let set = self.cert_sets.get(e).map(|s| pairs(s)).unwrap_or_default();
                    (c.encode(), set)
                })
                .collect(),
            next_weights: self.next_weights.as_ref().map(pairs),
            floor: self.history.floor,
            refused: refused
                .values()
                .flat_map(|list| list.iter().skip(list.len().saturating_sub(keep_refused)))
                .filter_map(|(e, rule)| {
                    Some((e.bytes().to_vec(), serde_json::to_string(rule).ok()?))
                })
                .collect(),
        };
        Some(SnapshotDraft::new(
            &self.genesis,
            epoch,
            self.epoch_end(epoch),
            root,
            image,
        ))
    }

    /// A ledger restored from a snapshot, with the members whose feeds it held when written
    /// (where the caller looks for the tail: each one's events from
    /// [`Ledger::feed_len`] on, then anything stored after the snapshot was written).
    ///
    /// Checks, in order: the state's recomputed root against the header, the header's root
    /// against the snapshot's own certificate of its epoch and against `certified_root`
    /// (the node's own certificate, when it holds one), the certificate's signatures
    /// against the validator set it was adopted with, the certificate's frontier against
    /// the state's, every registration's signature, and that every covered feed has one.
    pub fn from_snapshot(
        genesis: Genesis,
        verifier: Box<dyn Verifier>,
        file: &SnapshotFile,
        certified_root: Option<[u8; 32]>,
    ) -> Result<(Self, Vec<MemberId>), SnapshotError> {
        let mut l = Self::with_verifier(genesis, verifier);
        let h = file.header;
        let inconsistent = |why: String| SnapshotError::Inconsistent(why);
        if h.network != l.network {
            return Err(SnapshotError::WrongNetwork {
                found: hex::encode(h.network),
                expected: hex::encode(l.network),
            });
        }
        let img = file.image()?;
        let mut state = img.state;
        state.rehash();
        let found = state.root_at(&l.genesis, l.epoch_end(h.epoch));
        if found != h.root {
            return Err(SnapshotError::RootMismatch {
                epoch: h.epoch,
                found: hex::encode(found),
                claimed: hex::encode(h.root),
            });
        }
        let mut certs = BTreeMap::new();
        for (bytes, set) in &img.certs {
            let c = Certificate::decode(bytes)
                .map_err(|e| inconsistent(format!("a certificate does not decode: {e}")))?;
            certs.insert(c.body.epoch, (c, set.iter().copied().collect()));
        }
        let (cert, set): &(Certificate, BTreeMap<MemberId, u64>) = certs
            .get(&h.epoch)
            .ok_or(SnapshotError::NoCertificate(h.epoch))?;
        for certified in [Some(cert.body.root), certified_root].into_iter().flatten() {
            if certified != h.root {
                return Err(SnapshotError::NotCertified {
                    epoch: h.epoch,
                    found: hex::encode(h.root),
                    certified: hex::encode(certified),
                });
            }
        }
        cert.verify(&l.network, set).map_err(|e| {
            inconsistent(format!(
                "the certificate of epoch {} does not verify against its validator set: {e}",
                h.epoch
            ))
        })?;
        if crate::finality::frontier_digest(state.frontier()) != cert.body.frontier {
            return Err(inconsistent(format!(
                "the state's frontier is not the one certified at epoch {}",
                h.epoch
            )));
        }
        for bytes in &img.registrations {
            let ev = Event::decode(bytes)
                .map_err(|e| inconsistent(format!("a registration does not decode: {e}")))?;
            let ev = super::VerifiedEvent::check(ev, &l.network)
                .map_err(|e| inconsistent(format!("registration of {} is forged", e.author())))?;
            let ev = Arc::new(ev.event().clone());
            if ev.seq() != 0 {
                return Err(inconsistent(format!("{} is not a registration", ev.id())));
            }
            l.history.registrations.insert(ev.author(), ev);
        }
        for (bytes, rule) in &img.refused {
            let ev = Event::decode(bytes)
                .map_err(|e| inconsistent(format!("a refused event does not decode: {e}")))?;
            let ev = super::VerifiedEvent::check(ev, &l.network)
                .map_err(|e| inconsistent(format!("refused event {} is forged", e.id())))?;
            let rule: Rule = serde_json::from_str(rule).map_err(|e| {
                inconsistent(format!(
                    "the rule of refused event {} does not decode: {e}",
                    ev.event().id()
                ))
            })?;
            l.keep_refused(&Arc::new(ev.event().clone()), Verdict::Refused(rule));
        }
        // Every covered event was folded: the feeds cannot cover more than the fold counted
        // (which also keeps a forged count from overflowing a feed's length).
        let covered = img.feeds.iter().try_fold(0u64, |sum, f| {
            sum.checked_add(f.forgotten)?
                .checked_add(f.old.len() as u64)
        });
        if covered.is_none_or(|c| c > img.count) {
            return Err(inconsistent(format!(
                "the feeds cover more events than the {} folded",
                img.count
            )));
        }
        for f in img.feeds {
            let reg =
                l.history.registrations.get(&f.author).ok_or_else(|| {
                    inconsistent(format!("feed of {} has no registration", f.author))
                })?;
            let Body::Register(r) = &reg.body else {
                return Err(inconsistent(format!("{} is not a registration", reg.id())));
            };
            if f.old.last().is_none_or(|p| p[..] != f.head.0[..p.len()]) {
                return Err(inconsistent(format!(
                    "feed of {} does not end at its head",
                    f.author
                )));
            }
            let claim = claim_for(
                l.verifier.as_ref(),
                &f.author,
                &l.network,
                reg.timestamp_ms(),
                r.claimed_level,
                &r.attestation,
            );
            let mut feed = Feed {
                forgotten: f.forgotten,
                old: f.old.into(),
                ids: Vec::new(),
                head: f.head,
                head_ms: f.head_ms,
                claim,
                pruned_head: Some((f.head, f.head_ms)),
            };
            // A snapshot written by hand (or by a peer) may keep more than this build does.
            feed.forget_beyond_kept();
            l.feeds.insert(f.author, feed);
        }
        let (key, id) = img.at;
        let at = (key, Item::Event(id));
        let count = usize::try_from(img.count).map_err(|_| inconsistent("count".into()))?;
        l.state = state.clone();
        l.folded_upto = Some(at);
        l.folded_count = count;
        l.fold_ms = key.timestamp_ms;
        l.history.base = Some(Snapshot { at, state, count });
        l.history.base_epoch = Some(h.epoch);
        l.history.floor = img.floor;
        l.history.pruned = usize::try_from(img.pruned).unwrap_or(usize::MAX);
        l.ratings_held = img.ratings_held;
        l.chain = img.chain.into_iter().collect();
        l.steps = img.steps.into_iter().collect();
        for (e, (c, set)) in certs {
            l.keep_certificate(c, set);
            debug_assert!(l.certs.contains_key(&e));
        }
        l.next_weights = img.next_weights.map(|w| w.into_iter().collect());
        l.carried_forks = img.carried_forks.into_iter().collect();
        for (bytes, announce) in img.evidence {
            let e = match Body::decode(Kind::Evidence, &bytes) {
                Ok(Body::Evidence(e)) => *e,
                Ok(_) => return Err(inconsistent("evidence of another kind".into())),
                Err(e) => return Err(inconsistent(format!("evidence does not decode: {e}"))),
            };
            check_evidence(&l.network, &e)
                .map_err(|why| inconsistent(format!("evidence does not hold: {why}")))?;
            l.add_proof(e, announce);
        }
        for (m, seq) in img.forks {
            let f = l.forks.entry(m).or_insert(seq);
            *f = (*f).min(seq);
        }
        l.generation += 1;
        // Evidence re-added announces nothing new; restored state is already durable.
        l.outputs.clear();
        Ok((l, img.known))
    }
}

impl Ledger {
    /// Events per feed the fold's base covers (each feed's pruned prefix, registration
    /// included): no more than any snapshot offered since covers, so what log retention may
    /// safely remove once that snapshot is the oldest kept.
    pub fn covered_lens(&self) -> Vec<(MemberId, u64)> {
        let mut v: Vec<(MemberId, u64)> = self
            .feeds
            .iter()
            .filter(|(_, f)| f.pruned() > 0)
            .map(|(m, f)| (*m, f.pruned()))
            .collect();
        v.sort();
        v
    }

    /// Each feed's covered part as a history backfill starts from it: the member, how many
    /// of its events the base covers, and the id of the last of them (the event the fetched
    /// history must end with). What a node restored from a snapshot lacks in its log.
    pub fn covered_heads(&self) -> Vec<(MemberId, u64, EventId)> {
        let mut v: Vec<(MemberId, u64, EventId)> = self
            .feeds
            .iter()
            .filter_map(|(m, f)| f.pruned_head.map(|(id, _)| (*m, f.pruned(), id)))
            .filter(|(_, n, _)| *n > 0)
            .collect();
        v.sort_by_key(|(m, _, _)| *m);
        v
    }
}
