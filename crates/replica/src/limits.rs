//! Every limit and period of the replication protocol, in one place, with the reason beside
//! it. Times are milliseconds of the driver's clock (the replica reads none).

/// Events queued for one unreachable peer; beyond this the oldest is dropped and counted
/// (anti-entropy sync repairs whatever a queue drops).
pub const PEER_QUEUE_MAX: usize = 1_024;
/// Events queued for one connected peer by bulk ingest while it acknowledges earlier pushes;
/// beyond this the oldest are dropped (sync repairs them).
pub const BULK_QUEUE_MAX: usize = 65_536;
/// Heartbeats a peer may miss before it is marked down.
pub const HEARTBEATS_MISSED_DOWN: u64 = 3;
/// Range requests in flight to one peer.
pub const MAX_RANGES_IN_FLIGHT: u32 = 64;
/// Least time between two sync rounds with one peer.
pub const SYNC_MIN_INTERVAL_MS: u64 = 300;
/// A sync round with some connected peer at least this often, whatever heartbeats say.
pub const SYNC_PERIOD_MS: u64 = 10_000;
/// How often peers are asked whom they know: addresses arrive late (identify runs after the
/// connection), so one exchange on connect is not enough to complete the mesh.
pub const PEER_EXCHANGE_PERIOD_MS: u64 = 3_000;
/// Connected peers asked per exchange round (bounds the cost in a large federation).
pub const PEER_EXCHANGE_FANOUT: usize = 8;
/// Peer exchange period once the peer set is at its target: the neighbours are chosen, and
/// what is left to learn (members joining or moving) is not urgent. Each exchange opens a
/// stream on a connection; asking eight peers every three seconds was a visible share of an
/// idle node's CPU.
pub const PEER_EXCHANGE_IDLE_PERIOD_MS: u64 = 30_000;
/// Connected peers asked per exchange round once the peer set is at its target.
pub const PEER_EXCHANGE_IDLE_FANOUT: usize = 2;
/// Member peers a replica dials until it is connected to this many: a bounded, diverse
/// neighbour set instead of a full mesh, so what each node spends on heartbeats, gossip
/// copies and connection state does not grow with the federation. Eight neighbours chosen
/// this way keep 1,000 nodes connected within 4 hops (`tests/peer_set.rs`); gossipsub's mesh (6,
/// between 4 and 12) is drawn from them. A federation of nine or fewer stays a full mesh.
pub const TARGET_PEERS: usize = 8;
/// Member peers connected at once beyond which the least preferred are dropped: others dial
/// in (a bootstrap address every operator was given gets dialled by every newcomer), and
/// without a ceiling that node would hold a connection to everyone.
pub const MAX_PEERS: usize = 24;
/// Members of the validator committee a committee member keeps as neighbours besides its
/// other peers: votes and proposals travel only among the committee (the rest leave those
/// topics), so its members must be linked among themselves. Four out-links each (its most
/// preferred, see `peers::committee_neighbours`) keep the committee's graph connected
/// (a random 4-out graph is) and fill gossipsub's lower mesh bound (`mesh_n_low` = 4).
pub const COMMITTEE_PEERS: usize = 4;
/// How long a node stays on the agreement's topics after it left the validator committee.
/// Joining is at once; leaving waits, because a member can drop out of the committee for a
/// checkpoint or two (registered after the checkpoint its set is drawn from, a generation
/// change) and one that left and came back missed the votes in between: three nodes on a
/// 200 ms epoch that left and rejoined within 250 ms stalled a round (about 3 s of
/// finality, `voting_weight` test). Staying costs only the votes it hears meanwhile.
pub const AGREEMENT_LEAVE_AFTER_MS: u64 = 30_000;
/// A connection younger than this is never dropped for the ceiling above: its peer may know
/// only us yet, and peer exchange (every few seconds) needs time to tell it of others.
pub const EVICT_GRACE_MS: u64 = 10_000;
/// First wait before redialling a peer.
pub const REDIAL_BACKOFF_MIN_MS: u64 = 500;
/// Longest wait between redials of a peer.
pub const REDIAL_BACKOFF_MAX_MS: u64 = 30_000;
/// Heartbeats report the root of the epoch this many epochs before the current one, so that
/// events in flight have landed on every node; votes wait as long.
pub const HEARTBEAT_EPOCH_LAG: u64 = 2;
/// Votes are taken only for epochs this many epochs back from the current one: a signed vote
/// for a far-future or ancient epoch would otherwise cost a root computation and push real
/// votes out of the book.
pub const VOTE_EPOCH_WINDOW: u64 = 60;
/// How long a round waits for its proposal before prevoting nil, in the first round; each
/// later round waits [`ROUND_TIMEOUT_STEP_MS`] longer (Tendermint's growing timeouts, so a
/// round eventually outlasts any delay of a synchronous network). CometBFT's defaults: on a
/// LAN a proposal takes milliseconds and this only matters when the proposer is down; across
/// regions (and the simulator's 1 s links) a shorter one wastes rounds.
pub const PROPOSE_TIMEOUT_MS: u64 = 3_000;
/// How long the prevote and precommit steps wait for the rest of the weight in the first
/// round, after two thirds voted for different things.
pub const VOTE_TIMEOUT_MS: u64 = 1_000;
/// What each later round adds to its timeouts.
pub const ROUND_TIMEOUT_STEP_MS: u64 = 500;
/// A round step that has not moved for this long (plus [`ROUND_TIMEOUT_STEP_MS`] per round)
/// has its messages resent point to point, and after as long again is timed out by the
/// replica itself: votes lost to a partition or a restart are never sent again by gossip,
/// and Tendermint waits for two thirds of them before it schedules its own timeouts.
pub const STALLED_STEP_MS: u64 = 2_000;
/// Most votes and proposals in one point-to-point resend of a stalled round: two votes per
/// validator of the largest federation planned for, for two rounds.
pub const MAX_AGREEMENT_RESEND: usize = 4 * 4_096;
/// Rounds ahead of ours whose votes and proposals are taken: Tendermint needs some (a third
/// of the weight in a later round moves us there), and a signer cannot make us hold votes
/// for rounds without end.
pub const ROUND_WINDOW: u32 = 4;
/// Proposals held until this replica can judge them (it lacks events they cover, or their
/// checkpoint has not settled here yet).
pub const HELD_PROPOSALS_MAX: usize = 8;
/// Certificates waiting until this replica can check them (it lacks events or the previous
/// one).
pub const PENDING_CERTS_MAX: usize = 16;
/// Period of the replica's housekeeping (future-dated events, redials, down detection,
/// challenges, request expiry).
pub const TICK_MS: u64 = 250;
/// Synced events held back so that a whole sync round folds as one batch: events of many
/// feeds interleave in time, and folding each feed's range as it arrives re-folds the
/// history once per range (quadratic in a heal). Bounded in bytes and in age.
pub const SYNC_BUFFER_MAX_BYTES: usize = 32 * 1024 * 1024;
/// Longest synced events wait in the buffer before they are folded anyway.
pub const SYNC_BUFFER_MAX_AGE_MS: u64 = 250;
/// A peer that delivered events (push or gossip) this recently is not asked for a sync when
/// its heartbeat digest differs from ours: the difference is most likely events in flight,
/// and a sync would fetch them twice and fold them out of order. Periodic anti-entropy
/// still runs.
pub const SYNC_QUIET_AFTER_DELIVERY_MS: u64 = 1_000;
/// Wait between credential-activation challenges to one member (an answer takes ~0.1 s on
/// swtpm; a TPM that does not answer is asked again after this).
pub const ATTEST_RETRY_MS: u64 = 5_000;
/// Challenges answered by our TPM at once; more are refused with an error (the TPM is
/// sequential anyway, and each answer costs ~6 tpm2-tools processes).
pub const ATTEST_ANSWERS_IN_FLIGHT: usize = 4;
/// A request not answered in this time counts as failed (its in-flight slot is freed).
pub const REQUEST_TIMEOUT_MS: u64 = 20_000;
/// Requests of ours awaiting an answer, over all peers: a bound on the bookkeeping, far above
/// what the policy sends (a sync round is three requests plus its ranges).
pub const MAX_REQUESTS_IN_FLIGHT: usize = 16_384;
/// Most events in one sync response: a heal of 10,000 events takes twenty round trips.
pub const MAX_SYNC_BATCH_EVENTS: u32 = 512;
/// Most bytes of events in one sync response (the transport refuses responses over 10 MiB).
pub const MAX_SYNC_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Most bytes of events in one push request (the transport refuses requests over 1 MiB).
pub const MAX_PUSH_BATCH_BYTES: usize = 768 * 1024;
/// Most certificates in one sync response.
pub const MAX_SYNC_CERTIFICATES: usize = 16;
/// Most bytes of one reconciliation message (negentropy's frame limit, which must be 0 or at
/// least 4,096): a round between nodes that agree is a fingerprint of some 20 bytes; one that
/// differs in many feeds is split into further rounds rather than growing past this.
pub const MAX_RECONCILE_BYTES: usize = 16 * 1024;
/// Reconciliation rounds in one sync round: each narrows the differing ranges by a factor
/// of 16, so a thousand feeds need three; a peer that keeps the rounds going longer is
/// stopped here and the next sync round starts afresh.
pub const MAX_RECONCILE_ROUNDS: u32 = 12;
/// Most members listed in one summary; a larger federation needs paging, not yet built.
pub const MAX_SUMMARY_FEEDS: usize = 100_000;
/// Most items of evidence in one evidence answer (a page; the next is asked for with the
/// answer's cursor): an equivocation proof is ~300 bytes, a double vote ~340.
pub const MAX_EVIDENCE_ITEMS: usize = 1_024;
/// Most bytes of evidence in one answer (forged envelopes carry whole events; the transport
/// refuses responses over 10 MiB). One item is always sent, whatever its size.
pub const MAX_EVIDENCE_BYTES: usize = 4 * 1024 * 1024;
/// Pages of evidence asked of one peer per sync round; the next round resumes where this
/// one stopped, so a peer with much evidence costs a bounded amount per round.
pub const MAX_EVIDENCE_PAGES_PER_ROUND: u32 = 16;
/// Most peers listed in one peer-exchange answer, and addresses per peer: an answer is
/// advice, and no advice needs more.
pub const MAX_EXCHANGED_PEERS: usize = 256;
/// Addresses kept per peer (from identify and peer exchange).
pub const MAX_ADDRS_PER_PEER: usize = 8;
/// Longest vote accepted in a frame of votes (a vote encodes to 168 bytes; the slack is for
/// a future version, the bound keeps one frame from claiming a whole body).
pub const MAX_VOTE_BYTES: usize = 1_024;
/// Peers known but not connected (learnt by peer exchange) kept in the peer book: a stranger
/// answering with thousands of made-up peers fills this, not the node's memory.
pub const MAX_KNOWN_PEERS: usize = 1_024;
/// Requests a second a member may ask of us (a burst of ten seconds' worth): a sync round is
/// three requests and its ranges, peer exchange one every few seconds; honest peers use a few.
pub const MEMBER_REQUESTS_PER_SEC: u64 = 200;
/// Bytes of events a second a member may push or gossip to us (each byte's event costs a
/// signature check): far above what a member's own rate limit lets it write, since members
/// also relay and bulk-ingest for others.
pub const MEMBER_BYTES_PER_SEC: u64 = 16 * 1024 * 1024;
/// Requests a second a peer that is not a member may ask: enough to register and sync.
pub const NEWCOMER_REQUESTS_PER_SEC: u64 = 20;
/// Bytes of events a second a peer that is not a member may hand us: a registration and then
/// some; a stranger cannot make us verify megabytes of signatures.
pub const NEWCOMER_BYTES_PER_SEC: u64 = 64 * 1024;
/// Heartbeats that keep a certificate waiting to be checkable before it is dropped (a sync
/// brings what it lacks well within this).
pub const PENDING_CERT_TRIES: u32 = 20;
/// Epochs past the current one a certificate or vote may name: beyond this it is refused
/// without touching the ledger.
pub const FUTURE_EPOCH_MARGIN: u64 = 2;
/// Settled checkpoints without a certificate after which a replica asks its peers, one per
/// heartbeat, for the certificates it lacks (instead of waiting for the periodic sync).
pub const FINALITY_LAG_CHECKPOINTS: u64 = 1;
/// Strikes (inputs refused for being over budget, envelopes whose signatures do not verify)
/// after which a peer that is not a member is disconnected and shunned: a stranger's budget
/// would otherwise start afresh with every new connection, and each refusal still costs a
/// stream and an answer.
pub const STRIKES_TO_SHUN: u64 = 100;
/// How long a shunned peer's connections are closed as soon as they open.
pub const SHUN_MS: u64 = 60_000;
/// Peers shunned at once, at most (the soonest to expire makes room): a flood of fresh keys
/// fills this, not memory; each fresh key costs its sender a handshake, as it costs us.
pub const MAX_SHUNNED: usize = 4_096;

/// Bytes of a snapshot file per chunk served: a chunk is one response, well under the
/// transport's response limit (10 MiB), and small enough to retry.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Most chunks a snapshot may have: 4 GiB, the largest body a snapshot file may declare.
pub const MAX_SNAPSHOT_CHUNKS: usize = 4096;
/// Snapshot bytes one peer may fetch from us a second (a burst of ten seconds' worth): a
/// newcomer needs the whole state once, and a 100 MB state arrives in about six seconds.
/// Anyone may ask (a newcomer is not a member yet), so this and the total below bound what
/// strangers can make this node read from disk and send.
pub const SNAPSHOT_BYTES_PER_SEC_PER_PEER: u64 = 16 * 1024 * 1024;
/// Snapshot bytes served a second to all peers together (a burst of ten seconds' worth).
pub const SNAPSHOT_BYTES_PER_SEC_TOTAL: u64 = 32 * 1024 * 1024;
/// Snapshot reads in flight at once (each a chunk the driver reads from disk).
pub const SNAPSHOT_READS_IN_FLIGHT: usize = 4;

/// Events in one page of history backfill (see `backfill`): each is checked (Ed25519) on the
/// node's task, about 6 ms a page here, and a page is held until it links to the verified
/// event above it (at most this many events of `MAX_EVENT_BYTES`).
pub const BACKFILL_PAGE_EVENTS: u64 = 128;
/// Pause between backfill pages: at most about 2,500 events a second, a small share of a core,
/// so backfill never competes with live traffic for long.
pub const BACKFILL_PERIOD_MS: u64 = 50;
/// Answers missed on one backfill page (empty, cut, refused or lost) before its feed is set
/// aside for this run: at least this many, or one per connected peer if there are more.
pub const BACKFILL_MISSES_PER_PAGE: u32 = 3;
