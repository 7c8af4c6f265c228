//! JSON views of the node for the API and the dashboard: status, state, thoughts, peers,
//! finality, the checkpoint to vote on, chart history and live-feed messages.

use crate::driver::Node;
use crate::live::{HistoryPoint, LIVE_CONTENT_CHARS};
use crate::swarm;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use web4fed_core::event::{Body, Event, Level};
use web4fed_core::identity::MemberId;
use web4fed_core::verdict::Verdict;
use web4fed_replica::Source;

/// Voting weights and founders at one time, for the account views (see
/// `State::weights_at`).
pub(crate) struct WeightView {
    t: u64,
    weights: BTreeMap<MemberId, u64>,
    founders: std::collections::BTreeSet<MemberId>,
    open: bool,
}

impl Node {
    pub(crate) fn member_name(&self, m: &MemberId) -> String {
        self.replica
            .ledger()
            .state()
            .account(m)
            .map(|a| a.name.clone())
            .unwrap_or_else(|| m.to_hex()[..8].to_string())
    }

    /// One admitted event as the live feed shows it.
    pub(crate) fn event_json(
        &self,
        ev: &Event,
        source: Source,
        verdict: Option<Verdict>,
        latency_ms: Option<u64>,
    ) -> Value {
        let content = match &ev.body {
            Body::Thought(c) => Some(c.chars().take(LIVE_CONTENT_CHARS).collect::<String>()),
            Body::Transfer { to, amount_milli } => Some(format!(
                "{} ATP to {}",
                atp_text(*amount_milli),
                self.member_name(to)
            )),
            _ => None,
        };
        json!({
            "type": "event",
            "id": ev.id().to_hex(),
            "kind": format!("{:?}", ev.header.kind),
            "author": ev.author().to_hex(),
            "name": self.member_name(&ev.author()),
            "seq": ev.seq(),
            "timestamp_ms": ev.timestamp_ms(),
            "source": source.name(),
            "latency_ms": latency_ms,
            "content": content,
            "verdict": verdict,
        })
    }

    /// This second's chart figures.
    pub(crate) fn history_point(&self, now: u64) -> HistoryPoint {
        let l = self.replica.ledger();
        let g = l.genesis();
        let t = now.max(l.state().head_ms());
        let mut lat = self.live.latencies.clone();
        lat.sort_by(f64::total_cmp);
        let pct =
            |q: f64| (!lat.is_empty()).then(|| lat[((lat.len() - 1) as f64 * q).round() as usize]);
        HistoryPoint {
            at_ms: now,
            admitted: self.live.admitted,
            refused: self.live.refused.clone(),
            p50: pct(0.5),
            p99: pct(0.99),
            accounts: l
                .state()
                .accounts()
                .map(|(m, a)| {
                    (
                        *m,
                        a.trust_at(g, t) as f64 / 1e6,
                        a.atp_at(g, t) as f64 / 1e3,
                    )
                })
                .collect(),
        }
    }

    pub(crate) fn history_json(&self) -> Value {
        json!({ "points": self.live.history.iter().map(HistoryPoint::json).collect::<Vec<_>>() })
    }

    /// The once-a-second picture the dashboard draws: members with liveness and agreement,
    /// running totals, and the replication latency since the last snapshot.
    pub(crate) fn snapshot_json(&self, point: &HistoryPoint, now: u64) -> Value {
        let l = self.replica.ledger();
        let t = now.max(l.state().head_ms());
        let view = self.weight_view(t);
        let hb = self.replica.heartbeat_ms();
        let me = self.replica.me();
        let online: HashMap<MemberId, (bool, Option<bool>)> = self
            .replica
            .peers()
            .iter()
            .map(|(m, p)| (*m, (p.connected && !p.is_down(now, hb), p.root_matches)))
            .collect();
        // A member that is not our neighbour is online if the log shows it alive: a running
        // node writes an event (presence at least) every `presence_every_ms`.
        let alive_within = 2 * l.genesis().presence_every_ms;
        let members: Vec<Value> = l
            .state()
            .accounts()
            .map(|(m, acct)| {
                let mut a = self.account_json(m, &view);
                let (up, matches) = if *m == me {
                    (true, Some(true))
                } else {
                    match online.get(m).copied() {
                        Some((true, matches)) => (true, matches),
                        neighbour => (
                            acct.status == web4fed_core::state::Status::Active
                                && now.saturating_sub(acct.last_seen_ms) <= alive_within,
                            neighbour.and_then(|n| n.1),
                        ),
                    }
                };
                a["online"] = json!(up);
                a["root_matches"] = json!(matches);
                a["me"] = json!(*m == me);
                a
            })
            .collect();
        json!({
            "type": "snapshot",
            "at_ms": point.at_ms,
            "status": self.status_json(now),
            "final_epoch": l.final_epoch(),
            "partitions_seen": self.replica.counters().partitions_seen,
            "totals": {
                "admitted": point.admitted,
                "rejected": self.live.rejected,
                "refused": point.refused,
            },
            "latency_ms": {"p50": point.p50, "p99": point.p99, "n": self.live.latencies.len()},
            "members": members,
        })
    }

    pub(crate) fn finality_json(&self, limit: usize) -> Value {
        let l = self.replica.ledger();
        let certs = self.store.certificates(limit).unwrap_or_default();
        let epoch_ms = l.genesis().epoch_ms;
        let items: Vec<Value> = certs
            .iter()
            .map(|c| {
                // The set it was decided by (fixed before its height began), not the weights
                // at its own epoch.
                let weights = l
                    .certificate_validators(c.body.epoch)
                    .cloned()
                    .unwrap_or_default();
                let signed: u64 = c.signatures.iter().filter_map(|(m, _)| weights.get(m)).sum();
                let total: u64 = weights.values().sum();
                let adopted = self
                    .live
                    .finality_seen
                    .iter()
                    .find(|(e, _)| *e == c.body.epoch)
                    .map(|(_, t)| *t);
                json!({
                    "epoch": c.body.epoch,
                    "epoch_end_ms": (c.body.epoch + 1) * epoch_ms,
                    "adopted_ms": adopted,
                    "root": hex::encode(c.body.root),
                    "prev": c.body.prev,
                    "signers": c.signatures.iter().map(|(m, _)| json!({
                        "member": m.to_hex(),
                        "name": l.state().account(m).map(|a| a.name.clone()),
                        "weight_micro": weights.get(m),
                    })).collect::<Vec<_>>(),
                    "signed_weight_micro": (total > 0).then_some(signed),
                    "total_weight_micro": (total > 0).then_some(total),
                    "members": (total > 0).then(|| json!({
                        "network": hex::encode(self.replica.network()),
                        "weights": weights.iter().map(|(m, w)| (m.to_hex(), *w)).collect::<BTreeMap<_, _>>(),
                    })),
                    "certificate_hex": hex::encode(c.encode()),
                })
            })
            .collect();
        json!({ "final_epoch": l.final_epoch(), "certificates": items })
    }

    /// What a member without a node signs to vote: where the agreement stands (height,
    /// generation, round) and the valid proposal this node took for the current round, with
    /// its id. The member checks the body, then signs a prevote and a precommit for that id
    /// at that position (`web4fed_core::finality::Vote::sign`) and posts them.
    pub(crate) fn checkpoint_json(&self, now: u64) -> Value {
        let v = self.replica.agreement_view();
        json!({
            "epoch": self.replica.settled_checkpoint(now),
            "final_epoch": self.replica.ledger().final_epoch(),
            "height": v.at.height,
            "gen": v.at.gen,
            "round": v.at.round,
            "running": v.running,
            "body": v.proposal.as_ref().map(|b| hex::encode(b.encode())),
            "value_id": v.proposal.as_ref().map(|b| hex::encode(b.id())),
            "root": v.proposal.as_ref().map(|b| hex::encode(b.root)),
            "validators": v.weights.iter().map(|(m, w)| (m.to_hex(), *w)).collect::<BTreeMap<_, _>>(),
        })
    }

    /// Every member's voting weight at `t` and the founders: computed once per view, not
    /// per account.
    pub(crate) fn weight_view(&self, t: u64) -> WeightView {
        let l = self.replica.ledger();
        let founders = l.genesis().founder_ids();
        WeightView {
            t,
            weights: l.state().weights_at(l.genesis(), t),
            open: founders.is_empty(),
            founders,
        }
    }

    /// A member's account at the view's time.
    pub(crate) fn account_json(&self, m: &MemberId, view: &WeightView) -> Value {
        let (t, weights) = (view.t, &view.weights);
        let l = self.replica.ledger();
        let Some(a) = l.state().account(m) else {
            return Value::Null;
        };
        let g = l.genesis();
        json!({
            "member": m.to_hex(),
            "lct": m.lct(&a.entity_type),
            "name": a.name,
            "level": format!("{:?}", a.level),
            "level_reason": a.level_reason.to_string(),
            "hardware": a.hardware.as_ref().map(|h| json!({"id": hex::encode(h.id), "vouchers": h.vouchers.iter().map(|v| v.to_hex()).collect::<Vec<_>>()})),
            "start_trust": match a.level { Level::L5 => g.trust_start_l5_micro, Level::L4 => g.trust_start_l4_micro } as f64 / 1e6,
            "ceiling": a.ceiling(g) as f64 / 1e6,
            "trust": a.trust_at(g, t) as f64 / 1e6,
            "trust_micro": a.trust_at(g, t),
            "atp": a.atp_at(g, t) as f64 / 1e3,
            "atp_milli": a.atp_at(g, t),
            "rate_factor": a.rate_factor_micro(g, t) as f64 / 1e6,
            "thought_limit": a.thought_limit(g, t),
            "vote_weight": weights.get(m).copied().unwrap_or(0) as f64 / 1e6,
            "vote_weight_micro": weights.get(m).copied().unwrap_or(0),
            "founder": view.open || view.founders.contains(m),
            "last_seen_ms": a.last_seen_ms,
            "violations": a.violations,
            "status": a.status,
            "eject_cause": a.eject_cause,
            "thoughts_accepted": a.thoughts_accepted,
            "live_thoughts": a.live_thoughts(),
            "feed_len": l.feed_len(m),
            "feed_closed_at": l.state().closed_at(m),
        })
    }

    pub(crate) fn status_json(&self, now: u64) -> Value {
        let l = self.replica.ledger();
        let epoch = self.replica.settled_epoch(now);
        let listen: Vec<String> = self.swarm.listeners().map(|a| a.to_string()).collect();
        let (orphans, future) = l.waiting();
        let me = self.replica.me();
        let hb = self.replica.heartbeat_ms();
        let peers = self.replica.peers();
        let dead = l.dead_events();
        json!({
            "name": self.config.name,
            "member": me.to_hex(),
            "lct": me.lct(&self.config.entity_type),
            "peer_id": self.local_peer.to_string(),
            "network": hex::encode(self.replica.network()),
            "listen": listen,
            "uptime_s": self.started.elapsed().as_secs(),
            "events": l.len() - dead,
            "events_dead": dead,
            "events_ratings": l.ratings_held(),
            "events_in_memory": l.len() - l.pruned(),
            "members": l.state().accounts().count(),
            "corpus": l.state().corpus_len(),
            "state_root": hex::encode(l.state_root()),
            "epoch": epoch,
            "epoch_root": l.epoch_root(epoch).map(hex::encode),
            "peers_connected": peers.connected().len(),
            "peers_agreeing": peers.iter().filter(|(_, p)| p.root_matches == Some(true) && !p.is_down(now, hb)).count(),
            "waiting": {"orphans": orphans, "future": future},
            "network_density": density_json(l.state()),
            "adversary": self.settings.adversary.map(|a| format!("{a:?}").to_lowercase()),
            "me": self.account_json(&me, &self.weight_view(now)),
            "agreement": self.agreement_json(),
        })
    }

    /// Where the agreement stands and what it has done (rounds, decisions, stalls), for
    /// operators reading why finality lags.
    fn agreement_json(&self) -> Value {
        let v = self.replica.agreement_view();
        json!({
            "final_epoch": self.replica.ledger().final_epoch(),
            "height": v.at.height,
            "gen": v.at.gen,
            "round": v.at.round,
            "running": v.running,
            "proposal_epoch": v.proposal.as_ref().map(|b| b.epoch),
            "committee_size": self.replica.committee().map(|c| c.len()),
            "hears_votes": self.replica.hears_agreement(),
            "counts": self.replica.counters().agreement,
        })
    }

    pub(crate) fn state_json(&self, now: u64) -> Value {
        let l = self.replica.ledger();
        let epoch = self.replica.settled_epoch(now);
        let t = now.max(l.state().head_ms());
        let view = self.weight_view(t);
        let fin = l.final_epoch();
        let cp = fin.and_then(|e| l.checkpoint(e));
        let accounts: Vec<Value> = l
            .state()
            .accounts()
            .map(|(m, _)| {
                let mut a = self.account_json(m, &view);
                // The figures above are optimistic (every event held); these are final.
                a["optimistic"] = json!(true);
                a["final"] = match &cp {
                    Some(cp) => json!({
                        "epoch": fin,
                        "trust_micro": cp.trust.get(m),
                        "vote_weight_micro": cp.weights.get(m).copied().unwrap_or(0),
                        "atp_milli": cp.atp.get(m),
                    }),
                    None => Value::Null,
                };
                a
            })
            .collect();
        let dead = l.dead_events();
        json!({
            "epoch": epoch,
            "final_epoch": fin,
            "epoch_root": l.epoch_root(epoch).map(hex::encode),
            "state_root": hex::encode(l.state_root()),
            "head_ms": l.state().head_ms(),
            "events": l.len() - dead,
            "events_dead": dead,
            "corpus": {"thoughts": l.state().corpus_len(), "bytes": l.state().corpus_bytes(), "pruned_total": l.state().pruned_total},
            "accounts": accounts,
        })
    }

    pub(crate) fn thoughts_json(&self, limit: usize) -> Value {
        let l = self.replica.ledger();
        let items: Vec<Value> = self
            .live
            .recent
            .iter()
            .rev()
            .take(limit)
            .filter_map(|(ev, verdict)| {
                let id = &ev.id();
                let Body::Thought(content) = &ev.body else {
                    return None;
                };
                let name = l.state().account(&ev.author()).map(|a| a.name.clone());
                let live = l.state().thought(id);
                Some(json!({
                    "id": id.to_hex(),
                    "author": ev.author().to_hex(),
                    "name": name,
                    "seq": ev.seq(),
                    "timestamp_ms": ev.timestamp_ms(),
                    "content": content,
                    "coherence": live.map(|e| e.coherence_micro as f64 / 1e6),
                    "committee": live.map(|e| committee_json(l, e)),
                    "live": live.is_some(),
                    "verdict": l.verdict(id).or(verdict.as_ref()),
                }))
            })
            .collect();
        json!({ "thoughts": items, "corpus": l.state().corpus_len() })
    }

    pub(crate) fn peers_json(&self, now: u64) -> Value {
        let l = self.replica.ledger();
        let hb = self.replica.heartbeat_ms();
        let blocked = &self.replica.peers().blocked;
        let mut out: BTreeMap<String, Value> = BTreeMap::new();
        for (m, p) in self.replica.peers().iter() {
            let Some(pid) = swarm::peer_id_of(m) else {
                continue;
            };
            let name = l.state().account(m).map(|a| a.name.clone());
            out.insert(
                pid.to_string(),
                json!({
                    "peer_id": pid.to_string(),
                    "member": m.to_hex(),
                    "name": name,
                    "addrs": p.addrs.iter().collect::<Vec<_>>(),
                    "connected": p.connected,
                    "down": p.is_down(now, hb),
                    "blocked": blocked.contains(m),
                    "last_heartbeat_ms_ago": p.last_heartbeat_ms.map(|t| now.saturating_sub(t)),
                    "heartbeat_epoch": p.heartbeat.as_ref().map(|h| h.epoch),
                    "their_events": p.heartbeat.as_ref().map(|h| h.events),
                    "root_matches": p.root_matches,
                    "queue": p.queue.len(),
                    "dropped": p.dropped,
                }),
            );
        }
        json!({ "peers": out.into_values().collect::<Vec<_>>(), "partitions_seen": self.replica.counters().partitions_seen })
    }
}

/// The seed's network density: hardware-verified (L5) members among the active ones.
fn density_json(st: &web4fed_core::state::State) -> Value {
    let active: Vec<_> = st
        .accounts()
        .filter(|(_, a)| a.status == web4fed_core::state::Status::Active)
        .collect();
    let verified = active.iter().filter(|(_, a)| a.level == Level::L5).count();
    json!({
        "verified": verified,
        "active": active.len(),
        "density": if active.is_empty() { 0.0 } else { verified as f64 / active.len() as f64 },
    })
}

/// An amount of thousandths of an ATP as people write it: `12.5`, `3`, `0.25`.
fn atp_text(milli: u64) -> String {
    let (whole, frac) = (milli / 1_000, milli % 1_000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:03}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// A live thought's committee: who was drawn, who has rated and how, the median so far, and
/// whether it has settled (every seat rated: author and raters paid or charged).
fn committee_json(l: &web4fed_core::ledger::Ledger, e: &web4fed_core::state::CorpusEntry) -> Value {
    let seats: Vec<Value> = e
        .committee
        .iter()
        .map(|m| {
            let score = e.ratings.iter().find(|(r, _)| r == m).map(|(_, s)| *s);
            json!({
                "member": m.to_hex(),
                "name": l.state().account(m).map(|a| a.name.clone()),
                "score": score.map(|s| f64::from(s) / 1e6),
            })
        })
        .collect();
    json!({
        "seats": seats,
        "rated": e.ratings.len(),
        "median": e.median_rating().map(|m| m as f64 / 1e6),
        "settled": e.settled,
        "closed": e.closed,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn atp_amounts_read_as_written() {
        assert_eq!(super::atp_text(12_500), "12.5");
        assert_eq!(super::atp_text(3_000), "3");
        assert_eq!(super::atp_text(250), "0.25");
        assert_eq!(super::atp_text(1), "0.001");
    }
}
