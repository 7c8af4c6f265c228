//! Serving this node's snapshot to peers that start from one (state sync). Anyone may ask
//! (a newcomer is not a member yet), so every read is paid for first: the peer's snapshot
//! budget, the budget of all peers together, and a bound on reads in flight. The driver
//! reads the file; the replica only decides whether to.

use crate::io::{Counters, Event, SnapshotPart};
use crate::limits::{SNAPSHOT_CHUNK_BYTES, SNAPSHOT_READS_IN_FLIGHT};
use crate::replica::Replica;
use crate::wire::{RequestId, Response};
use web4fed_core::identity::MemberId;

/// What an info answer costs against the budgets: its chunk hashes (32 bytes each, at most
/// a few thousand) and the header.
const INFO_COST_BYTES: u64 = 160 * 1024;

impl Replica {
    /// Hands a snapshot request to the driver if it is within every budget; otherwise the
    /// answer saying why.
    pub(crate) fn serve_snapshot(
        &mut self,
        now_ms: u64,
        from: MemberId,
        id: RequestId,
        part: SnapshotPart,
    ) -> Option<Response> {
        let cost = match part {
            SnapshotPart::Info => INFO_COST_BYTES,
            SnapshotPart::Chunk { .. } => SNAPSHOT_CHUNK_BYTES as u64,
        };
        let refuse = |why: &str| {
            Some(Response::Error {
                message: why.to_string(),
            })
        };
        if self.snapshot_reads >= SNAPSHOT_READS_IN_FLIGHT {
            Counters::bump(&mut self.counters.rejected, "snapshot_busy");
            return refuse("busy: too many snapshot reads in flight");
        }
        let peer_ok = self
            .peers
            .entry(from, now_ms)
            .budget
            .as_mut()
            .is_none_or(|b| b.snapshot.take(cost, now_ms));
        if !peer_ok {
            Counters::bump(&mut self.counters.rejected, "snapshot_over_budget");
            self.strike(now_ms, from);
            return refuse("over budget: slow down");
        }
        if !self.snapshot_budget.take(cost, now_ms) {
            Counters::bump(&mut self.counters.rejected, "snapshot_busy");
            return refuse("busy: snapshot bandwidth spent");
        }
        self.snapshot_reads += 1;
        self.events.push_back(Event::ReadSnapshot {
            to: from,
            request: id,
            part,
        });
        None
    }

    /// The driver's answer to a [`Event::ReadSnapshot`].
    pub(crate) fn snapshot_read(
        &mut self,
        to: MemberId,
        request: RequestId,
        result: Result<Response, String>,
    ) {
        self.snapshot_reads = self.snapshot_reads.saturating_sub(1);
        let body = result.unwrap_or_else(|message| Response::Error { message });
        self.respond(to, request, body);
    }
}
