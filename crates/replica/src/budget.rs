//! Token buckets: how much a peer may cost this replica per second, refilled by the driver's
//! clock (time is an argument, as everywhere in the replica).

/// A bucket of `capacity` tokens refilled at `per_sec` tokens a second.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    capacity: f64,
    per_sec: f64,
    at_ms: u64,
}

impl Bucket {
    /// A full bucket.
    pub fn new(capacity: u64, per_sec: u64, now_ms: u64) -> Self {
        Self {
            tokens: capacity as f64,
            capacity: capacity as f64,
            per_sec: per_sec as f64,
            at_ms: now_ms,
        }
    }

    /// Takes `n` tokens if there are that many (after refilling for the time passed).
    pub fn take(&mut self, n: u64, now_ms: u64) -> bool {
        let dt = now_ms.saturating_sub(self.at_ms) as f64 / 1e3;
        self.at_ms = self.at_ms.max(now_ms);
        self.tokens = (self.tokens + dt * self.per_sec).min(self.capacity);
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }
}

/// What one peer may cost: requests served, and bytes of events it hands us (each of which
/// costs a signature verification). A member gets the member budget; a peer that is not (yet)
/// a member gets the newcomer budget: enough to register and sync, not to flood.
#[derive(Debug, Clone)]
pub struct PeerBudget {
    /// Requests of its that we serve.
    pub requests: Bucket,
    /// Bytes of events it pushes or gossips to us.
    pub bytes: Bucket,
    /// Bytes of snapshot it fetches from us (state sync).
    pub snapshot: Bucket,
    /// Whether this is the member budget.
    pub member: bool,
}

impl PeerBudget {
    /// The budget for a member or a newcomer.
    pub fn new(member: bool, now_ms: u64) -> Self {
        use crate::limits::{
            MEMBER_BYTES_PER_SEC, MEMBER_REQUESTS_PER_SEC, NEWCOMER_BYTES_PER_SEC,
            NEWCOMER_REQUESTS_PER_SEC,
        };
        let (req, bytes) = if member {
            (MEMBER_REQUESTS_PER_SEC, MEMBER_BYTES_PER_SEC)
        } else {
            (NEWCOMER_REQUESTS_PER_SEC, NEWCOMER_BYTES_PER_SEC)
        };
        // A burst of ten seconds' worth.
        Self {
            requests: Bucket::new(req * 10, req, now_ms),
            bytes: Bucket::new(bytes * 10, bytes, now_ms),
            snapshot: Bucket::new(
                crate::limits::SNAPSHOT_BYTES_PER_SEC_PER_PEER * 10,
                crate::limits::SNAPSHOT_BYTES_PER_SEC_PER_PEER,
                now_ms,
            ),
            member,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refills_with_time_and_never_beyond_capacity() {
        let mut b = Bucket::new(10, 5, 0);
        assert!(b.take(10, 0));
        assert!(!b.take(1, 0));
        assert!(b.take(5, 1_000));
        assert!(!b.take(1, 1_000));
        assert!(b.take(10, 100_000));
        assert!(!b.take(1, 100_000));
        // A clock that steps back refills nothing.
        assert!(!b.take(1, 50_000));
    }
}
