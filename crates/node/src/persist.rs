//! Persistence glue: writes what the replica asks to persist, in one batch per drain, before
//! anything queued after it is sent (the replica's drain rule).

use std::sync::Arc;
use web4fed_core::event::{Event, Evidence};
use web4fed_core::finality::Certificate;
use web4fed_replica::Event as ReplicaEvent;
use web4fed_store::{Store, StoreError};

/// What one drain of the replica's events asked to make durable.
#[derive(Debug, Default)]
pub struct Batch {
    /// Admitted events, in admission order.
    pub events: Vec<Arc<Event>>,
    /// New evidence.
    pub proofs: Vec<Evidence>,
    /// Adopted certificates.
    pub certificates: Vec<Certificate>,
    /// The latest agreement vote signed.
    pub vote: Option<web4fed_core::finality::LastVote>,
    /// Pages of history before the snapshot, fetched and verified (see `backfill`).
    pub(crate) backfill: Vec<crate::backfill::Page>,
}

impl Batch {
    /// What a drained run of replica events asks to make durable.
    pub fn of(events: &[ReplicaEvent]) -> Self {
        let mut b = Self::default();
        for e in events {
            match e {
                ReplicaEvent::Admitted { event, .. } => b.events.push(event.clone()),
                ReplicaEvent::Proof(p) => b.proofs.push((**p).clone()),
                ReplicaEvent::Certificate(c) => b.certificates.push(c.clone()),
                ReplicaEvent::Voted(v) => b.vote = Some(*v),
                ReplicaEvent::Backfilled { events, rest } => {
                    b.backfill.push(crate::backfill::Page {
                        events: events.clone(),
                        rest: rest.clone(),
                    })
                }
                _ => {}
            }
        }
        b
    }

    /// Writes it all; when this returns `Ok`, it is durable. The events go in one
    /// transaction (one fsync).
    pub fn write(&self, store: &mut Store) -> Result<(), StoreError> {
        for p in &self.proofs {
            store.add_proof(p)?;
        }
        if !self.events.is_empty() {
            store.append(self.events.iter().map(|e| e.as_ref()))?;
        }
        for c in &self.certificates {
            store.add_certificate(c)?;
        }
        if let Some(v) = &self.vote {
            store.record_vote(v)?;
        }
        for p in &self.backfill {
            p.write(store)?;
        }
        Ok(())
    }
}
