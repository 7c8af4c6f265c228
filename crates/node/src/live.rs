//! What the dashboard's live feed (`GET /v1/live`) and charts (`GET /v1/history`) need
//! beyond the ledger: the broadcast channel, running totals, recent thoughts with their last
//! verdicts, and one chart point a second.

use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;
use web4fed_core::event::{Event, Kind};
use web4fed_core::identity::MemberId;
use web4fed_core::ledger::Ledger;
use web4fed_core::verdict::Verdict;

/// Messages buffered for each live dashboard; a dashboard further behind skips ahead (it is
/// told how many it missed) rather than holding the node's memory.
pub const LIVE_BUFFER: usize = 1_024;
/// How often the live feed carries a full snapshot (members, totals, latency).
pub const LIVE_SNAPSHOT_PERIOD_MS: u64 = 1_000;
/// Longest thought content sent on the live feed; the API serves the whole text.
pub const LIVE_CONTENT_CHARS: usize = 280;
/// Recent thoughts remembered for the API's thought list.
pub const RECENT_THOUGHTS: usize = 2_000;
/// Seconds of chart history a node keeps (the dashboard's charts span the same).
pub const HISTORY_POINTS: usize = 180;
/// Certified epochs remembered with when this node adopted them (for latency figures).
pub const FINALITY_SEEN: usize = 2_000;

/// One second of the dashboard's charts.
#[derive(Debug, Clone)]
pub struct HistoryPoint {
    /// When it was taken.
    pub at_ms: u64,
    /// Events admitted so far.
    pub admitted: u64,
    /// Refusals so far, by "L<layer> <rule>".
    pub refused: BTreeMap<String, u64>,
    /// Median replication latency in the last second, ms.
    pub p50: Option<f64>,
    /// 99th percentile, ms.
    pub p99: Option<f64>,
    /// (member, trust, ATP) of every account.
    pub accounts: Vec<(MemberId, f64, f64)>,
}

impl HistoryPoint {
    /// As JSON.
    pub fn json(&self) -> Value {
        json!({
            "at_ms": self.at_ms,
            "totals": {"admitted": self.admitted, "refused": self.refused},
            "latency_ms": {"p50": self.p50, "p99": self.p99},
            "members": self.accounts.iter().map(|(m, trust, atp)| {
                json!({"member": m.to_hex(), "trust": trust, "atp": atp})
            }).collect::<Vec<_>>(),
        })
    }
}

/// The live feed's state.
pub struct Live {
    tx: broadcast::Sender<Arc<str>>,
    /// When the last snapshot went out.
    pub last_snapshot_ms: u64,
    /// Events admitted since start.
    pub admitted: u64,
    /// Events rejected since start.
    pub rejected: u64,
    /// Refusals by "L<layer> <rule>".
    pub refused: BTreeMap<String, u64>,
    /// Replication latencies (ms) observed since the last snapshot.
    pub latencies: Vec<f64>,
    /// The charts' figures, one point a second.
    pub history: VecDeque<HistoryPoint>,
    /// The latest thoughts with their verdicts as last seen: the ledger lets go of final
    /// history, so the events are held here and each verdict is refreshed every second
    /// while the ledger still has it (a pruned event is certified; its verdict no longer
    /// changes).
    pub recent: VecDeque<(Arc<Event>, Option<Verdict>)>,
    /// Certified epochs and when this node adopted them.
    pub finality_seen: VecDeque<(u64, u64)>,
}

impl Live {
    /// A live feed sending on `tx`.
    pub fn new(tx: broadcast::Sender<Arc<str>>) -> Self {
        Self {
            tx,
            last_snapshot_ms: 0,
            admitted: 0,
            rejected: 0,
            refused: BTreeMap::new(),
            latencies: Vec::new(),
            history: VecDeque::new(),
            recent: VecDeque::new(),
            finality_seen: VecDeque::new(),
        }
    }

    /// Whether any dashboard is listening.
    pub fn listening(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Sends one message to every open dashboard (nothing is built when none is open).
    pub fn emit(&self, msg: impl FnOnce() -> Value) {
        if self.listening() {
            let _ = self.tx.send(Arc::from(msg().to_string()));
        }
    }

    /// Remembers a thought for the thought list.
    pub fn remember(&mut self, ev: Arc<Event>, verdict: Option<Verdict>) {
        if self.recent.len() >= RECENT_THOUGHTS {
            self.recent.pop_front();
        }
        self.recent.push_back((ev, verdict));
    }

    /// Fills the thought list from the ledger (at start).
    pub fn recent_from_ledger(&mut self, ledger: &Ledger) {
        let mut thoughts: Vec<Arc<Event>> = ledger
            .version_vector()
            .iter()
            .flat_map(|(m, n)| {
                let start = n.saturating_sub(RECENT_THOUGHTS as u64);
                (start..*n).filter_map(|s| ledger.feed_event(m, s).cloned())
            })
            .filter(|e| e.header.kind == Kind::Thought)
            .collect();
        thoughts.sort_by_key(|e| (e.timestamp_ms(), e.id()));
        let skip = thoughts.len().saturating_sub(RECENT_THOUGHTS);
        self.recent = thoughts
            .into_iter()
            .skip(skip)
            .map(|e| {
                let v = ledger.verdict(&e.id()).cloned();
                (e, v)
            })
            .collect();
    }

    /// Copies the ledger's current verdicts onto the recent thoughts it still holds.
    pub fn refresh_verdicts(&mut self, ledger: &Ledger) {
        for (ev, v) in &mut self.recent {
            if let Some(now) = ledger.verdict(&ev.id()) {
                if v.as_ref() != Some(now) {
                    *v = Some(now.clone());
                }
            }
        }
    }

    /// Remembers when a certificate was adopted.
    pub fn finalized(&mut self, epoch: u64, at_ms: u64) {
        if self.finality_seen.len() >= FINALITY_SEEN {
            self.finality_seen.pop_front();
        }
        self.finality_seen.push_back((epoch, at_ms));
    }

    /// Keeps a chart point, dropping the oldest beyond [`HISTORY_POINTS`].
    pub fn keep_point(&mut self, point: HistoryPoint) {
        if self.history.len() >= HISTORY_POINTS {
            self.history.pop_front();
        }
        self.history.push_back(point);
        self.latencies.clear();
    }
}
