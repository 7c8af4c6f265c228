//! The daemon's side of history backfill (the replica fetches and verifies; see
//! `web4fed_replica::backfill`): starts it from the plan the log recorded when the node joined
//! from a snapshot, stores each verified page with the plan's new state in one transaction
//! (in the drain's persistence batch), reports progress, and stops it where retention would
//! remove what it fetches.

use crate::driver::{now_ms, Node, QUOTA_TRIM_AT_PERCENT};
use std::sync::Arc;
use web4fed_core::event::Event;
use web4fed_replica::{Command as ReplicaCommand, Gap};
use web4fed_store::{Store, StoreError};

/// What a node that joined from a snapshot does about the history before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum History {
    /// Never fetch it: the log holds what came after the snapshot (the state is whole
    /// either way; the history is for audits and for serving other nodes).
    #[default]
    Never,
    /// Fetch it from peers in the background, newest first, each page verified back from
    /// the snapshot's feed heads, while the log has room under its retention.
    Lazy,
}

/// A page to store, from a drain's `Backfilled` events.
#[derive(Debug)]
pub(crate) struct Page {
    pub events: Vec<Arc<Event>>,
    pub rest: Gap,
}

impl Page {
    /// Stores the page and what is left of its feed's gap, in one transaction.
    pub(crate) fn write(&self, store: &mut Store) -> Result<(), StoreError> {
        let r = &self.rest;
        store.store_backfill(
            self.events.iter().map(|e| e.as_ref()),
            (r.author, r.low, r.anchor),
        )?;
        Ok(())
    }
}

/// Progress shown to the operator.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Events missing when the backfill started (0: none running).
    total: u64,
    /// Tenths of `total` already logged.
    tenths: u64,
    /// Stopped early, and said why.
    stopped: bool,
}

impl Node {
    /// Starts the backfill the log's plan calls for, if the operator asked for one.
    pub(crate) fn start_backfill(&mut self) {
        let plan = match self.store.backfill_plan() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the history backfill plan");
                return;
            }
        };
        if plan.is_empty() {
            return;
        }
        let missing: u64 = plan.iter().map(|g| g.1).sum();
        if self.settings.history == History::Never {
            tracing::info!(
                events = missing,
                feeds = plan.len(),
                "history before the snapshot not held (run with --history lazy to fetch it)"
            );
            return;
        }
        let gaps = plan
            .into_iter()
            .map(|(author, low, anchor)| Gap {
                author,
                low,
                anchor,
            })
            .collect::<Vec<_>>();
        tracing::info!(
            events = missing,
            feeds = gaps.len(),
            "history backfill: fetching the history before the snapshot from peers"
        );
        let report = Report {
            total: missing,
            ..Report::default()
        };
        self.set_plan(report, gaps);
    }

    /// Hands the replica a new plan (empty: stop) and resets the progress shown. Called on
    /// the node task's own path (start, drain): the loop drains after it.
    fn set_plan(&mut self, report: Report, gaps: Vec<Gap>) {
        self.backfill_report = report;
        let _ = self
            .replica
            .handle_command(now_ms(), ReplicaCommand::Backfill { gaps });
    }

    /// Once a second: metrics and a log line per tenth done; stops the backfill where
    /// retention would remove what it fetches (the log at its quota's trim point).
    pub(crate) fn backfill_tick(&mut self) {
        let s = self.replica.backfill_status();
        self.metrics
            .history_backfill_left
            .set(s.events_left.min(i64::MAX as u64) as i64);
        let r = &mut self.backfill_report;
        if r.total == 0 {
            return;
        }
        let done = r.total.saturating_sub(s.events_left);
        let tenths = done * 10 / r.total;
        if tenths > r.tenths && s.feeds_left > 0 {
            r.tenths = tenths;
            tracing::info!(
                stored = s.stored,
                left = s.events_left,
                refused = s.refused,
                "history backfill: {}0 %",
                tenths
            );
        }
        if s.feeds_left == 0 {
            tracing::info!(
                stored = s.stored,
                refused = s.refused,
                feeds_set_aside = s.set_aside,
                "history backfill done"
            );
            r.total = 0;
            return;
        }
        let full = self.settings.retention.quota_bytes.is_some_and(|q| {
            self.store
                .log_bytes()
                .is_ok_and(|b| b >= q / 100 * QUOTA_TRIM_AT_PERCENT)
        });
        if full {
            self.stop_backfill("the log reached its quota's trim point");
        }
    }

    /// After a page is stored: a page older than the retention age would be removed at the
    /// next pass, and so would every page below it.
    pub(crate) fn on_backfilled(&mut self, events: &[Arc<Event>]) {
        self.metrics.history_backfilled.inc_by(events.len() as u64);
        let oldest = events.iter().map(|e| e.timestamp_ms()).min();
        let cutoff = self
            .settings
            .retention
            .max_age_ms
            .map(|a| now_ms().saturating_sub(a));
        if oldest.zip(cutoff).is_some_and(|(o, c)| o < c) {
            self.stop_backfill("it reached history older than --retain-hours");
        }
    }

    fn stop_backfill(&mut self, why: &'static str) {
        if !self.backfill_report.stopped {
            let s = self.replica.backfill_status();
            tracing::info!(
                stored = s.stored,
                left = s.events_left,
                "history backfill stopped: {why}"
            );
        }
        let report = Report {
            stopped: true,
            ..Report::default()
        };
        self.set_plan(report, Vec::new());
    }
}
