//! The SQLite event log.
//!
//! Tables: `events` (every admitted event's wire bytes, keyed by id, unique per author and
//! seq), `proofs` (equivocation proofs found locally, before they travel in an `Evidence`
//! event), `certificates`, `snapshot_marks` and `snapshot_covered` (where each snapshot
//! leaves the log, for restarts and retention), `backfill` (history a node that joined from
//! a snapshot still lacks) and `meta` (schema version, network id, the last state root seen,
//! for the verification on start). Operators can open the file with `sqlite3`.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use web4fed_core::event::{Body, Event, EventId, Evidence, Kind};
use web4fed_core::finality::{Certificate, LastVote};
use web4fed_core::genesis::Genesis;
use web4fed_core::identity::MemberId;
use web4fed_core::ledger::{Ledger, Output, VerifiedEvent};

fn sha2_digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Schema version written in `meta`; a store of another version is refused, not guessed at.
pub const SCHEMA_VERSION: i64 = 1;
/// Epochs of snapshot marks kept behind the newest (a day at 1 s epochs): far more than the
/// few snapshots a node keeps, so an imported or older file still finds its mark, while the
/// tables stay small.
const SNAPSHOT_MARKS_KEPT_EPOCHS: u64 = 100_000;
/// Events read per query page when rebuilding, to bound memory held by SQLite.
const LOAD_PAGE_EVENTS: i64 = 4_096;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The store belongs to another network.
    #[error("store belongs to network {found}, this node is on {expected}")]
    WrongNetwork {
        /// The network id in the store.
        found: String,
        /// The network id of the genesis in use.
        expected: String,
    },
    /// Retention removed history that only a snapshot can stand in for, and none loaded.
    #[error("the log was trimmed by retention up to the snapshot of epoch {0}, and no snapshot at or after it loads: import one (`web4fed snapshot import` or `fetch`)")]
    Trimmed(u64),
    /// The store has a schema this code does not know.
    #[error("store schema version {0}, this build reads version {SCHEMA_VERSION}")]
    Schema(i64),
    /// A stored row does not decode or verify: the file was damaged or edited.
    #[error("stored event {id} is corrupt: {reason}")]
    Corrupt {
        /// Hex id of the row.
        id: String,
        /// What failed.
        reason: String,
    },
}

/// What the node must pass on after persisting the ledger's outputs.
#[derive(Debug, Default)]
pub struct Persisted {
    /// New evidence to publish in an `Evidence` event.
    pub proofs: Vec<Evidence>,
    /// Certificates adopted, to gossip.
    pub certificates: Vec<Certificate>,
    /// The base moved to this certified epoch: a snapshot of it may be written.
    pub snapshot: Option<u64>,
}

/// What rebuilding the ledger from the log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuild {
    /// Events read from the log.
    pub events: u64,
    /// Proofs read.
    pub proofs: u64,
    /// The root recorded at the last clean write, if any.
    pub recorded_root: Option<[u8; 32]>,
    /// The root recomputed from the log.
    pub root: [u8; 32],
}

/// The node's event log.
pub struct Store {
    conn: Connection,
    /// Told how far a rebuild has come (see [`Store::on_progress`]).
    progress: Option<ProgressHook>,
    /// The network's epoch length: what turns a retention age into a snapshot mark.
    epoch_ms: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("conn", &self.conn)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Called during a rebuild with (done, total): rows of the log read so far and in all (by
/// rowid for a whole-log rebuild, by events for the tail after a snapshot).
pub type ProgressHook = Box<dyn Fn(u64, u64) + Send>;

/// The meta key of the latest agreement vote (a new key: the leaderless votes of earlier
/// versions recorded an epoch under `last_vote`, which means nothing to the agreement).
const LAST_VOTE_KEY: &str = "agreement_last_vote";

impl Store {
    /// Opens (creating if needed) the store at `path` for the network of `genesis`.
    pub fn open(path: &Path, genesis: &Genesis) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: every commit fsyncs the WAL, so a returned append survives power loss.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS events (
                 id BLOB PRIMARY KEY,
                 author BLOB NOT NULL,
                 seq INTEGER NOT NULL,
                 ts INTEGER NOT NULL,
                 kind INTEGER NOT NULL,
                 bytes BLOB NOT NULL,
                 UNIQUE (author, seq)
             );
             CREATE TABLE IF NOT EXISTS certificates (
                 epoch INTEGER PRIMARY KEY,
                 root BLOB NOT NULL,
                 bytes BLOB NOT NULL
             );
             CREATE TABLE IF NOT EXISTS proofs (
                 hash BLOB PRIMARY KEY,
                 accused BLOB NOT NULL,
                 bytes BLOB NOT NULL
             );
             CREATE TABLE IF NOT EXISTS snapshot_marks (
                 epoch INTEGER PRIMARY KEY,
                 last_rowid INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS snapshot_covered (
                 epoch INTEGER NOT NULL,
                 author BLOB NOT NULL,
                 covered INTEGER NOT NULL,
                 PRIMARY KEY (epoch, author)
             );
             CREATE TABLE IF NOT EXISTS backfill (
                 author BLOB PRIMARY KEY,
                 low INTEGER NOT NULL,
                 anchor BLOB NOT NULL
             );",
        )?;
        let store = Self {
            conn,
            progress: None,
            epoch_ms: genesis.epoch_ms,
        };
        let network = genesis.network_id();
        match store.meta("network")? {
            None => {
                store.set_meta("network", &network)?;
                store.set_meta("schema", &SCHEMA_VERSION.to_be_bytes())?;
            }
            Some(found) if found != network => {
                return Err(StoreError::WrongNetwork {
                    found: hex::encode(found),
                    expected: hex::encode(network),
                })
            }
            Some(_) => {
                let v = store
                    .meta("schema")?
                    .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                    .map_or(0, i64::from_be_bytes);
                if v != SCHEMA_VERSION {
                    return Err(StoreError::Schema(v));
                }
            }
        }
        Ok(store)
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Appends events in one transaction (one fsync). Events already stored are skipped.
    /// When this returns, the events are durable.
    pub fn append<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let n = insert_events(&tx, events)?;
        tx.commit()?;
        Ok(n)
    }

    /// Records what a node that joined from a snapshot lacks of each feed's history: events
    /// `0..low`, the one at `low - 1` having id `anchor` (from the snapshot's feed heads).
    /// A feed whose anchor event the log already holds is left out (a node restored from
    /// its own backup has that history, or retention removed it on purpose). A history
    /// backfill fetches the rest later, or never; see [`Store::store_backfill`]. Returns the
    /// feeds recorded.
    pub fn plan_backfill(
        &mut self,
        gaps: &[(MemberId, u64, EventId)],
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO backfill (author, low, anchor)
                 SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM events WHERE id = ?3)",
            )?;
            for (m, low, anchor) in gaps.iter().filter(|g| g.1 > 0) {
                n += stmt.execute(params![m.0, *low as i64, anchor.0])?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// History still missing before the snapshot this node joined from, per feed.
    pub fn backfill_plan(&self) -> Result<Vec<(MemberId, u64, EventId)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT author, low, anchor FROM backfill ORDER BY author")?;
        let rows: Vec<(Vec<u8>, i64, Vec<u8>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(a, low, anchor)| {
                let corrupt = || StoreError::Corrupt {
                    id: "backfill plan".into(),
                    reason: format!("row for {}", hex::encode(&a)),
                };
                let author = <[u8; 32]>::try_from(a.as_slice()).map_err(|_| corrupt())?;
                let anchor = <[u8; 32]>::try_from(anchor.as_slice()).map_err(|_| corrupt())?;
                Ok((MemberId(author), low.max(0) as u64, EventId(anchor)))
            })
            .collect()
    }

    /// Stores a page of backfilled history (verified by the caller back from the feed's
    /// anchor) and records what is still missing below it, in one transaction: a crash
    /// leaves either both or neither. The events are history the snapshot already folded;
    /// a restart from that snapshot skips them as covered.
    pub fn store_backfill<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a Event>,
        rest: (MemberId, u64, EventId),
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let n = insert_events(&tx, events)?;
        let (m, low, anchor) = rest;
        if low == 0 {
            tx.execute("DELETE FROM backfill WHERE author = ?1", [m.0])?;
        } else {
            tx.execute(
                "UPDATE backfill SET low = ?2, anchor = ?3 WHERE author = ?1",
                params![m.0, low as i64, anchor.0],
            )?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Records evidence found locally (an equivocation or a forged envelope).
    pub fn add_proof(&mut self, e: &Evidence) -> Result<(), StoreError> {
        let bytes = Body::Evidence(Box::new(e.clone())).encode();
        let hash: [u8; 32] = sha2_digest(&bytes);
        self.conn.execute(
            "INSERT OR IGNORE INTO proofs (hash, accused, bytes) VALUES (?1, ?2, ?3)",
            params![hash, e.accused().0, bytes],
        )?;
        Ok(())
    }

    /// Persists everything the ledger asked to persist: drains its outputs and writes the
    /// admitted events, proofs and certificates. Returns what the node must pass on.
    pub fn persist_outputs(&mut self, ledger: &mut Ledger) -> Result<Persisted, StoreError> {
        let mut events = Vec::new();
        let mut out = Persisted::default();
        while let Some(o) = ledger.poll_output() {
            match o {
                Output::Admitted(e) => events.push(e),
                Output::Proof(p) => out.proofs.push(*p),
                Output::Certificate(c) => out.certificates.push(*c),
                Output::Snapshot { epoch } => out.snapshot = Some(epoch),
            }
        }
        for p in &out.proofs {
            self.add_proof(p)?;
        }
        self.append(events.iter().map(|e| e.as_ref()))?;
        for c in &out.certificates {
            self.add_certificate(c)?;
        }
        Ok(out)
    }

    /// Records a certificate adopted here.
    pub fn add_certificate(&mut self, c: &Certificate) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO certificates (epoch, root, bytes) VALUES (?1, ?2, ?3)",
            params![c.body.epoch as i64, c.body.root, c.encode()],
        )?;
        Ok(())
    }

    /// Certificates stored, newest first, at most `limit`.
    pub fn certificates(&self, limit: usize) -> Result<Vec<Certificate>, StoreError> {
        self.certificates_newest_first(None, limit)
    }

    /// Certificates of epochs after `after` (all when `None`), newest first, at most
    /// `limit`. The table keeps every certificate ever adopted (one per checkpoint, a few
    /// hundred bytes each): a restart from a snapshot reads only those after it, or its
    /// time would grow with history.
    fn certificates_newest_first(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Certificate>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT epoch, bytes FROM certificates WHERE epoch >= ?1
             ORDER BY epoch DESC LIMIT ?2",
        )?;
        let from = after.map_or(0, |a| a.saturating_add(1).min(i64::MAX as u64) as i64);
        let rows: Vec<(i64, Vec<u8>)> = stmt
            .query_map(params![from, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(e, b)| {
                Certificate::decode(&b).map_err(|err| StoreError::Corrupt {
                    id: format!("certificate {e}"),
                    reason: err.to_string(),
                })
            })
            .collect()
    }

    /// The latest agreement vote this node signed: it never signs two different votes in one
    /// round, even across restarts (they would be evidence against it), and keeps what it
    /// precommitted as a lock. A record that does not decode is reported, not ignored.
    pub fn last_vote(&self) -> Result<Option<LastVote>, StoreError> {
        self.meta(LAST_VOTE_KEY)?
            .map(|b| {
                LastVote::decode(&b).map_err(|e| StoreError::Corrupt {
                    id: LAST_VOTE_KEY.into(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    /// Records a vote before it is sent.
    pub fn record_vote(&mut self, v: &LastVote) -> Result<(), StoreError> {
        self.set_meta(LAST_VOTE_KEY, &v.encode())
    }

    /// Up to `max` events of one feed from `from_seq` on, in seq order, as wire bytes: how a
    /// node serves the history its ledger has pruned from memory.
    pub fn feed_range(
        &self,
        author: &MemberId,
        from_seq: u64,
        max: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT bytes FROM events WHERE author = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(
                params![author.0, from_seq as i64, max.min(i64::MAX as u64) as i64],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Events stored.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// The root of the certificate of `epoch` stored here, if any: what a snapshot of that
    /// epoch must hash to.
    pub fn certified_root(&self, epoch: u64) -> Result<Option<[u8; 32]>, StoreError> {
        let root: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT root FROM certificates WHERE epoch = ?1",
                [epoch as i64],
                |r| r.get(0),
            )
            .optional()?;
        Ok(root.and_then(|r| <[u8; 32]>::try_from(r.as_slice()).ok()))
    }

    /// Marks the snapshot of `epoch` as taken now: every event stored so far is either
    /// covered by it or in a feed it lists, so a restart from it reads by rowid only what was
    /// stored after this mark. Records how many events of each feed it covers (what
    /// retention may remove once it is the oldest snapshot kept).
    pub fn mark_snapshot(
        &mut self,
        epoch: u64,
        covered: &[(MemberId, u64)],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO snapshot_marks (epoch, last_rowid)
             VALUES (?1, (SELECT COALESCE(MAX(rowid), 0) FROM events))
             ON CONFLICT(epoch) DO UPDATE SET last_rowid = excluded.last_rowid",
            [epoch as i64],
        )?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO snapshot_covered (epoch, author, covered)
                 VALUES (?1, ?2, ?3)",
            )?;
            for (m, n) in covered {
                stmt.execute(params![epoch as i64, m.0, *n as i64])?;
            }
        }
        // Marks of snapshots long gone.
        let gone = epoch.saturating_sub(SNAPSHOT_MARKS_KEPT_EPOCHS) as i64;
        tx.execute("DELETE FROM snapshot_marks WHERE epoch < ?1", [gone])?;
        tx.execute("DELETE FROM snapshot_covered WHERE epoch < ?1", [gone])?;
        tx.commit()?;
        Ok(())
    }

    /// Bytes the log's pages hold (free pages left by retention are reused by new events, so
    /// this, not the file's size, is what a quota bounds; the file stays near its largest).
    pub fn log_bytes(&self) -> Result<u64, StoreError> {
        let q = |p: &str| -> Result<i64, StoreError> {
            Ok(self
                .conn
                .query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))?)
        };
        let used = q("page_count")?.saturating_sub(q("freelist_count")?);
        Ok((used.max(0) as u64).saturating_mul(q("page_size")?.max(0) as u64))
    }

    /// Retention: removes from the log up to `max_rows` events the snapshot of `epoch`
    /// covers (never a registration; proofs and certificates stay), dated before
    /// `before_ms` when given, in the order they were stored, appending each to `archive`
    /// first when given (length-prefixed frames, the format `POST /v1/events` takes).
    /// Returns how many went; fewer than `max_rows` means nothing more is eligible. The log
    /// then cannot rebuild a node without a snapshot at or after `epoch`, which is recorded.
    ///
    /// Cost: the rows are read in rowid order from the oldest left, and only up to the
    /// snapshot's mark (and, with `before_ms`, the mark of the last snapshot taken before
    /// it), so a pass reads about `max_rows` rows plus the few below the mark that are not
    /// eligible (registrations, a feed's uncovered tail), whatever the log's size. Ordering
    /// by timestamp instead sorted every covered row on each pass (0.9 s a second on a
    /// 445,000-event log at its quota, on the node's task).
    pub fn trim_covered(
        &mut self,
        epoch: u64,
        before_ms: Option<u64>,
        max_rows: usize,
        archive: Option<&Path>,
    ) -> Result<u64, StoreError> {
        let mut bound = match self.snapshot_mark(epoch)? {
            // Never marked (imported): every row, each checked against what it covers.
            0 => i64::MAX,
            m => m,
        };
        if let Some(b) = before_ms {
            let before_epoch = (b / self.epoch_ms.max(1)) as i64;
            let mark: Option<i64> = self.conn.query_row(
                "SELECT MAX(last_rowid) FROM snapshot_marks WHERE epoch <= ?1",
                [before_epoch],
                |r| r.get(0),
            )?;
            bound = bound.min(mark.unwrap_or(0));
        }
        let tx = self.conn.transaction()?;
        let rows: Vec<(i64, Vec<u8>)> = {
            // CROSS JOIN keeps the events as the outer loop, in rowid order, so the LIMIT
            // ends the scan.
            let mut stmt = tx.prepare_cached(
                "SELECT e.rowid, e.bytes FROM events e CROSS JOIN snapshot_covered c
                   ON c.epoch = ?1 AND c.author = e.author
                 WHERE e.rowid <= ?2 AND e.seq > 0 AND e.seq < c.covered AND e.ts < ?3
                 ORDER BY e.rowid LIMIT ?4",
            )?;
            let before = before_ms.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
            let rows = stmt
                .query_map(params![epoch as i64, bound, before, max_rows as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        if rows.is_empty() {
            return Ok(0);
        }
        if let Some(path) = archive {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| StoreError::Corrupt {
                    id: path.display().to_string(),
                    reason: e.to_string(),
                })?;
            let mut buf = Vec::new();
            for (_, b) in &rows {
                buf.extend_from_slice(&(b.len() as u32).to_be_bytes());
                buf.extend_from_slice(b);
            }
            f.write_all(&buf)
                .and_then(|()| f.sync_data())
                .map_err(|e| StoreError::Corrupt {
                    id: path.display().to_string(),
                    reason: e.to_string(),
                })?;
        }
        {
            let mut del = tx.prepare_cached("DELETE FROM events WHERE rowid = ?1")?;
            for (rowid, _) in &rows {
                del.execute([rowid])?;
            }
        }
        let prev = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'trimmed_through'",
                [],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .optional()?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('trimmed_through', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [prev.max(epoch).to_be_bytes()],
        )?;
        tx.commit()?;
        Ok(rows.len() as u64)
    }

    /// The newest snapshot epoch whose covered events retention removed: the log alone no
    /// longer rebuilds the node; a snapshot at or after it must.
    pub fn trimmed_through(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .meta("trimmed_through")?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes))
    }

    /// The mark of the snapshot of `epoch`; 0 (read every row, skipping covered ones) for a
    /// snapshot this store never marked (imported, or written by a node killed before the
    /// mark).
    fn snapshot_mark(&self, epoch: u64) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_rowid FROM snapshot_marks WHERE epoch = ?1",
                [epoch as i64],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// Brings a ledger restored from the snapshot of `epoch` up to date with the log: the
    /// events of the feeds it lists (`known`) from each one's covered length on, and every
    /// event stored after the snapshot's mark that it does not cover; each checked
    /// (signature, chain) through the admission path, in their canonical order, with the
    /// certificates after the snapshot's chain restored as soon as the events they cover
    /// are in (as the full rebuild does: each sets the next height's validators from the
    /// fold at its epoch). Then the proofs. History before the snapshot is neither read nor
    /// verified again.
    pub fn rebuild_after_snapshot(
        &self,
        ledger: &mut Ledger,
        epoch: u64,
        known: &[MemberId],
        now_ms: u64,
    ) -> Result<Rebuild, StoreError> {
        let network = *ledger.network();
        let mut rows: Vec<Row> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT rowid, id, bytes FROM events WHERE author = ?1 AND seq >= ?2
                 ORDER BY seq",
            )?;
            for m in known {
                let from = ledger.feed_len(m);
                for row in stmt.query_map(params![m.0, from as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })? {
                    let row: Row = row?;
                    seen.insert(row.1.clone());
                    rows.push(row);
                }
            }
        }
        {
            let mark = self.snapshot_mark(epoch)?;
            let mut stmt = self.conn.prepare(
                "SELECT rowid, id, bytes, author, seq FROM events WHERE rowid > ?1 ORDER BY rowid",
            )?;
            let found = stmt.query_map([mark], |r| {
                Ok((
                    (r.get(0)?, r.get(1)?, r.get(2)?),
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?;
            for row in found {
                let (row, author, seq): (Row, Vec<u8>, i64) = row?;
                let covered = <[u8; 32]>::try_from(author.as_slice())
                    .map(|a| ledger.feed_len(&MemberId(a)) > seq as u64)
                    .unwrap_or(false);
                if !covered && !seen.contains(&row.1) {
                    rows.push(row);
                }
            }
        }
        let mut events = Vec::with_capacity(rows.len());
        for page in rows.chunks(LOAD_PAGE_EVENTS as usize) {
            events.extend(
                check_rows(page, &network)?
                    .into_iter()
                    .zip(page.iter().map(|r| r.1.clone())),
            );
        }
        let read = events.len() as u64;
        // The canonical order keeps each feed in seq order and lets certificates be restored
        // as the fold reaches them.
        events.sort_by_key(|(e, _)| e.event().order_key());
        let mut certs: std::collections::VecDeque<Certificate> = {
            let mut c = self.certificates_newest_first(ledger.final_epoch(), usize::MAX >> 1)?;
            c.reverse();
            c.into()
        };
        let mut events = events.into_iter().peekable();
        let mut done = 0u64;
        while events.peek().is_some() {
            let (batch, ids): (Vec<VerifiedEvent>, Vec<Vec<u8>>) =
                events.by_ref().take(LOAD_PAGE_EVENTS as usize).unzip();
            done += batch.len() as u64;
            admit_page(ledger, now_ms, batch, ids.iter().map(Vec::as_slice))?;
            restore_covered(ledger, &mut certs);
            while ledger.poll_output().is_some() {}
            self.report(done, read);
        }
        for c in certs {
            ledger.restore_certificate(c);
        }
        let proofs = self.restore_proofs(ledger)?;
        while ledger.poll_output().is_some() {}
        let recorded_root = self
            .meta("root")?
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok());
        Ok(Rebuild {
            events: read,
            proofs,
            recorded_root,
            root: ledger.state_root(),
        })
    }

    /// Re-applies every stored proof.
    fn restore_proofs(&self, ledger: &mut Ledger) -> Result<u64, StoreError> {
        let mut proofs = 0u64;
        let mut stmt = self.conn.prepare("SELECT bytes FROM proofs")?;
        let rows: Vec<Vec<u8>> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for bytes in rows {
            let corrupt = |reason: String| StoreError::Corrupt {
                id: "proof".into(),
                reason,
            };
            match Body::decode(Kind::Evidence, &bytes).map_err(|e| corrupt(e.to_string()))? {
                Body::Evidence(e) => ledger.handle_proof(*e).map_err(corrupt)?,
                _ => return Err(corrupt("not evidence".into())),
            }
            proofs += 1;
        }
        Ok(proofs)
    }

    /// Asks to be told how far each rebuild has come, after every page of events: a restart
    /// that reads a long log says where it is instead of going quiet for minutes.
    pub fn on_progress(&mut self, hook: ProgressHook) {
        self.progress = Some(hook);
    }

    fn report(&self, done: u64, total: u64) {
        if let Some(p) = &self.progress {
            p(done, total);
        }
    }

    /// Records the state root after a clean write, for the check on the next start.
    pub fn record_root(&mut self, root: &[u8; 32]) -> Result<(), StoreError> {
        self.set_meta("root", root)
    }

    /// Rebuilds the ledger from the log: decodes and verifies every stored event (signature,
    /// chain, PoW) through the same admission path as network input, then reapplies the
    /// proofs. A row that fails is reported, never silently skipped.
    pub fn rebuild(&self, ledger: &mut Ledger, now_ms: u64) -> Result<Rebuild, StoreError> {
        // Certificates are restored as soon as the ledger holds every event they cover, as
        // they were adopted while the node ran: so final history leaves memory page by page
        // and a long log never has to fit in memory whole.
        let mut certs: std::collections::VecDeque<Certificate> = {
            let mut c = self.certificates(usize::MAX >> 1)?;
            c.reverse();
            c.into()
        };
        let mut events = 0u64;
        let mut last_rowid = 0i64;
        let mut stmt = self.conn.prepare(
            "SELECT rowid, id, bytes FROM events WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        )?;
        let network = *ledger.network();
        let last_row: i64 =
            self.conn
                .query_row("SELECT COALESCE(MAX(rowid), 0) FROM events", [], |r| {
                    r.get(0)
                })?;
        // A pipeline: while one page is folded here, the next is read and its signatures are
        // checked on other threads. Rows are in insertion order, which is admission order:
        // predecessors first.
        std::thread::scope(|scope| -> Result<(), StoreError> {
            let mut in_flight: Option<std::thread::ScopedJoinHandle<'_, Checked>> = None;
            loop {
                let rows: Vec<Row> = stmt
                    .query_map(params![last_rowid, LOAD_PAGE_EVENTS], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<Result<_, _>>()?;
                let folded_through = last_rowid;
                let next = rows.last().map(|last| last.0).map(|last| {
                    last_rowid = last;
                    scope.spawn(move || {
                        let checked = check_rows(&rows, &network);
                        (rows, checked)
                    })
                });
                if let Some(page) = in_flight.take() {
                    let (rows, checked) = page.join().map_err(|_| StoreError::Corrupt {
                        id: String::new(),
                        reason: "a verification thread panicked".into(),
                    })?;
                    let batch = checked?;
                    events += batch.len() as u64;
                    admit_page(ledger, now_ms, batch, rows.iter().map(|r| r.1.as_slice()))?;
                    restore_covered(ledger, &mut certs);
                    while ledger.poll_output().is_some() {}
                    self.report(folded_through as u64, last_row as u64);
                }
                match next {
                    Some(h) => in_flight = Some(h),
                    None => return Ok(()),
                }
            }
        })?;
        let proofs = self.restore_proofs(ledger)?;
        // Any left cover events the log lacks (it was cut short): restored as before.
        for c in certs {
            ledger.restore_certificate(c);
        }
        // Re-admitting stored events produces outputs for them again; they are on disk.
        while ledger.poll_output().is_some() {}
        let recorded_root = self
            .meta("root")?
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok());
        Ok(Rebuild {
            events,
            proofs,
            recorded_root,
            root: ledger.state_root(),
        })
    }

    /// Runs SQLite's own consistency check; "ok" when the file is sound.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}

/// Inserts events into the log within `tx`, skipping those already stored; returns how many
/// were new.
fn insert_events<'a>(
    tx: &rusqlite::Transaction<'_>,
    events: impl IntoIterator<Item = &'a Event>,
) -> Result<usize, StoreError> {
    let mut n = 0;
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO events (id, author, seq, ts, kind, bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for e in events {
        n += stmt.execute(params![
            e.id().0,
            e.author().0,
            // SQLite integers are signed 64-bit; seq and ms timestamps fit.
            e.seq() as i64,
            e.timestamp_ms() as i64,
            e.header.kind as u8,
            e.bytes()
        ])?;
    }
    Ok(n)
}

/// Admits a page of checked rows, as both rebuilds do; a row the ledger refuses means the
/// log was damaged or edited, and is reported with its id, never skipped.
fn admit_page<'a>(
    ledger: &mut Ledger,
    now_ms: u64,
    batch: Vec<VerifiedEvent>,
    ids: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(), StoreError> {
    for (r, id) in ledger
        .handle_batch_verified(now_ms, batch)
        .into_iter()
        .zip(ids)
    {
        if let Err(e) = r {
            return Err(StoreError::Corrupt {
                id: hex::encode(id),
                reason: e.to_string(),
            });
        }
    }
    Ok(())
}

/// Restores the certificates at the front of `certs` whose events the ledger holds.
fn restore_covered(ledger: &mut Ledger, certs: &mut std::collections::VecDeque<Certificate>) {
    while certs
        .front()
        .is_some_and(|c| c.frontier.iter().all(|(m, n)| ledger.feed_len(m) >= *n))
    {
        if let Some(c) = certs.pop_front() {
            ledger.restore_certificate(c);
        }
    }
}

/// A stored event row: rowid, id, wire bytes.
type Row = (i64, Vec<u8>, Vec<u8>);
/// A page of rows and the outcome of checking them.
type Checked = (Vec<Row>, Result<Vec<VerifiedEvent>, StoreError>);

/// Decodes a page of stored rows and checks each event's id and signature, on every core:
/// reloading a long log is mostly signature checks, and they are independent. A row that
/// fails is reported with its id, never skipped.
fn check_rows(rows: &[Row], network: &[u8; 32]) -> Result<Vec<VerifiedEvent>, StoreError> {
    let check = |(_, id, bytes): &Row| {
        let corrupt = |reason: String| StoreError::Corrupt {
            id: hex::encode(id),
            reason,
        };
        let ev = Event::decode(bytes).map_err(|e| corrupt(e.to_string()))?;
        if ev.id().0.as_slice() != id.as_slice() {
            return Err(corrupt("id does not match the event".into()));
        }
        VerifiedEvent::check(ev, network).map_err(|_| corrupt("signature does not verify".into()))
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = rows.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = rows
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(check).collect::<Vec<_>>()))
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for w in workers {
            let part = w.join().map_err(|_| StoreError::Corrupt {
                id: String::new(),
                reason: "a verification thread panicked".into(),
            })?;
            for r in part {
                out.push(r?);
            }
        }
        Ok(out)
    })
}
