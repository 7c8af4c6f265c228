//! State sync: a node that joins a federation with a long history starts from a snapshot
//! fetched from its peers instead of replaying every event since genesis.
//!
//! Before the node starts, this asks each peer for its newest snapshot's header and chunk
//! hashes, picks the newest epoch, asks the other peers for their certificate of that epoch
//! and requires `quorum` peers in all (the source included) to name the same root, then
//! fetches the file chunk by chunk, checking each chunk's SHA-256 as it arrives, and finally
//! runs every check a restart runs (the state hashes to the certified root, the certificate
//! verifies against its validator set, registrations verify). The file is written to
//! `DIR/snapshots`, where the node's start finds it; the events after it come by sync. The
//! log records each feed's covered length and head, what a history backfill (`--history
//! lazy`) later fetches back to genesis.
//!
//! What it trusts: that `quorum` of the peers the operator named are honest about the root
//! of one certified epoch (the weak-subjectivity assumption of every state-sync scheme; a
//! newcomer cannot check a certificate chain back to genesis without the states in between).

use crate::swarm::{self, Behaviour, BehaviourEvent, Names};
use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use web4fed_core::attest::GenesisVerifier;
use web4fed_core::finality::Certificate;
use web4fed_core::ledger::Ledger;
use web4fed_core::snapshot::{Header, SnapshotFile, HEADER_LEN};
use web4fed_replica::limits::{MAX_SNAPSHOT_CHUNKS, SNAPSHOT_CHUNK_BYTES};
use web4fed_replica::wire::{Request, Response};
use web4fed_store::keyfile;
use web4fed_store::node_dir::{load_genesis, NodeDir};
use web4fed_store::snapshots::SnapshotDir;
use web4fed_store::Store;

/// How long to wait for the peers' connections.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries of one chunk (from the same peer) before giving that peer up.
const CHUNK_TRIES: u32 = 3;
/// Pause before asking again when the peer says it is busy (its snapshot bandwidth or reads
/// in flight are spent for the moment).
const BUSY_BACKOFF: Duration = Duration::from_millis(200);

/// Why state sync failed.
pub type SyncError = Box<dyn std::error::Error + Send + Sync>;

/// A snapshot fetched and checked.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its certified epoch.
    pub epoch: u64,
    /// Where it was written.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// The peer it came from.
    pub from: PeerId,
    /// Peers (the source included) that named the same root for its epoch.
    pub agreeing: usize,
}

/// One peer's newest snapshot, as it described it.
struct Offer {
    peer: PeerId,
    header: Header,
    chunks: Vec<[u8; 32]>,
}

/// Fetches, checks and stores a snapshot from `peers` (see the module docs). `progress`
/// prints a line per tenth of the download to stderr.
pub async fn fetch_snapshot(
    dir: &Path,
    peers: &[Multiaddr],
    quorum: usize,
    progress: bool,
) -> Result<Fetched, SyncError> {
    let nd = NodeDir::new(dir);
    let genesis = load_genesis(&nd.genesis())?;
    let keypair = keyfile::read(&nd.key())?;
    let network = genesis.network_id();
    let names = Names::new(&network);
    let mut swarm = swarm::build_swarm(&keypair, &names, Duration::from_secs(1))?;
    for p in peers {
        swarm.dial(p.clone())?;
    }
    let connected = connect(&mut swarm, peers.len()).await;
    if connected.len() < quorum.max(1) {
        return Err(format!(
            "state sync: {} of {} peers reachable, {} needed",
            connected.len(),
            peers.len(),
            quorum.max(1)
        )
        .into());
    }
    let mut offers = Vec::new();
    for p in &connected {
        match request(&mut swarm, *p, Request::SnapshotInfo).await {
            Ok(Response::SnapshotInfo { header, chunks }) => match offer(*p, &header, &chunks) {
                Ok(o) if o.header.network == network => offers.push(o),
                Ok(_) => tracing::warn!(peer = %p, "snapshot of another network offered"),
                Err(why) => tracing::warn!(peer = %p, %why, "malformed snapshot offer"),
            },
            Ok(Response::Error { message }) => {
                tracing::info!(peer = %p, %message, "peer has no snapshot to offer")
            }
            Ok(_) => tracing::warn!(peer = %p, "unexpected answer to a snapshot request"),
            Err(e) => tracing::warn!(peer = %p, error = %e, "snapshot request failed"),
        }
    }
    // Newest first; each candidate needs the quorum before a byte of it is fetched.
    offers.sort_by_key(|o| std::cmp::Reverse(o.header.epoch));
    let mut last_err = String::from("no peer offered a snapshot");
    for o in &offers {
        let agreeing = confirmations(&mut swarm, &connected, o).await;
        if agreeing < quorum {
            last_err = format!(
                "only {agreeing} peers name root {} for epoch {}, {quorum} needed",
                hex::encode(o.header.root),
                o.header.epoch
            );
            continue;
        }
        match download(&mut swarm, o, progress).await {
            Ok(bytes) => {
                let file = SnapshotFile::decode(&bytes, &network)?;
                let verifier = Box::new(GenesisVerifier::new(&genesis));
                let ledger = match Ledger::from_snapshot(genesis.clone(), verifier, &file, None) {
                    Ok((l, _)) => l,
                    Err(e) => {
                        last_err = format!("snapshot from {} refused: {e}", o.peer);
                        continue;
                    }
                };
                let snaps = SnapshotDir::new(nd.snapshots());
                snaps.write(&file, usize::MAX)?;
                // What the log lacks from here on: fetched later by `--history lazy`, or
                // never. Recorded whichever the operator chose now, so a later restart with
                // `lazy` still knows where each feed's history must end.
                let heads = ledger.covered_heads();
                Store::open(&nd.db(), &genesis)?.plan_backfill(&heads)?;
                return Ok(Fetched {
                    epoch: o.header.epoch,
                    path: snaps.path_of(o.header.epoch),
                    bytes: bytes.len() as u64,
                    from: o.peer,
                    agreeing,
                });
            }
            Err(e) => last_err = format!("download from {} failed: {e}", o.peer),
        }
    }
    Err(format!("state sync: {last_err}").into())
}

/// Checks an offer's shape: a header, and one hash per chunk of the file it describes.
fn offer(peer: PeerId, header: &[u8], chunks: &[serde_bytes::ByteBuf]) -> Result<Offer, String> {
    let h = Header::read(header).map_err(|e| e.to_string())?;
    let total = (HEADER_LEN as u64).saturating_add(h.body_len);
    let expected = total.div_ceil(SNAPSHOT_CHUNK_BYTES as u64);
    if chunks.len() as u64 != expected || chunks.len() > MAX_SNAPSHOT_CHUNKS {
        return Err(format!(
            "{} chunk hashes for a {total}-byte file ({expected} expected)",
            chunks.len()
        ));
    }
    let chunks = chunks
        .iter()
        .map(|c| <[u8; 32]>::try_from(c.as_slice()).map_err(|_| "a chunk hash is not 32 bytes"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Offer {
        peer,
        header: h,
        chunks,
    })
}

/// Peers, the source included, that name the offer's root for its epoch: the source by its
/// offer (its certificate is inside the file and checked later), each other peer by its own
/// certificate of that epoch.
async fn confirmations(swarm: &mut Swarm<Behaviour>, peers: &[PeerId], o: &Offer) -> usize {
    let mut agreeing = 1;
    for p in peers.iter().filter(|p| **p != o.peer) {
        let after = o.header.epoch.checked_sub(1);
        let Ok(Response::Certificates { items }) =
            request(swarm, *p, Request::Certificates { after }).await
        else {
            continue;
        };
        let named = items
            .iter()
            .filter_map(|b| Certificate::decode(b).ok())
            .find(|c| c.body.epoch == o.header.epoch)
            .map(|c| c.body.root);
        if named == Some(o.header.root) {
            agreeing += 1;
        }
    }
    agreeing
}

/// Fetches every chunk of an offer, each checked against its hash.
async fn download(
    swarm: &mut Swarm<Behaviour>,
    o: &Offer,
    progress: bool,
) -> Result<Vec<u8>, String> {
    let total = HEADER_LEN as u64 + o.header.body_len;
    let mut bytes = Vec::with_capacity(total.min(64 << 20) as usize);
    let started = Instant::now();
    let mut shown = 0;
    for (i, want) in o.chunks.iter().enumerate() {
        let mut tries = 0;
        loop {
            let req = Request::SnapshotChunk {
                epoch: o.header.epoch,
                index: i as u32,
            };
            match request(swarm, o.peer, req).await {
                Ok(Response::SnapshotChunk { bytes: b })
                    if b.len() <= SNAPSHOT_CHUNK_BYTES
                        && <[u8; 32]>::from(Sha256::digest(&b)) == *want =>
                {
                    bytes.extend_from_slice(&b);
                    break;
                }
                Ok(Response::SnapshotChunk { .. }) => {
                    return Err(format!("chunk {i} does not match its hash"));
                }
                Ok(Response::Error { message }) if message.starts_with("busy") => {
                    tokio::time::sleep(BUSY_BACKOFF).await;
                }
                Ok(Response::Error { message }) => return Err(message),
                Ok(_) => return Err(format!("unexpected answer for chunk {i}")),
                Err(e) => {
                    tries += 1;
                    if tries >= CHUNK_TRIES {
                        return Err(format!("chunk {i}: {e}"));
                    }
                }
            }
        }
        let tenth = (bytes.len() as u64 * 10 / total.max(1)) as usize;
        if progress && tenth > shown {
            shown = tenth;
            eprintln!(
                "state sync: {:>5.1} of {:.1} MiB from {} ({:.1} s)",
                bytes.len() as f64 / 1048576.0,
                total as f64 / 1048576.0,
                o.peer,
                started.elapsed().as_secs_f64()
            );
        }
    }
    if bytes.len() as u64 != total {
        return Err(format!("{} bytes fetched, {total} described", bytes.len()));
    }
    Ok(bytes)
}

/// Drives the swarm until `expected` dials have connected or failed, or the timeout.
async fn connect(swarm: &mut Swarm<Behaviour>, expected: usize) -> Vec<PeerId> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut connected = BTreeSet::new();
    let mut failed = 0;
    while connected.len() + failed < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, swarm.select_next_some()).await {
            Err(_) => break,
            Ok(SwarmEvent::ConnectionEstablished { peer_id, .. }) => {
                connected.insert(peer_id);
            }
            Ok(SwarmEvent::OutgoingConnectionError { .. }) => failed += 1,
            Ok(other) => refuse_inbound(swarm, other),
        }
    }
    connected.into_iter().collect()
}

/// Sends one request and drives the swarm until its answer (or failure, or the timeout).
async fn request(
    swarm: &mut Swarm<Behaviour>,
    peer: PeerId,
    req: Request,
) -> Result<Response, String> {
    let id: OutboundRequestId = swarm.behaviour_mut().sync.send_request(&peer, req);
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, swarm.select_next_some())
            .await
            .map_err(|_| "timed out".to_string())?;
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            })) if request_id == id => return Ok(response),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(
                request_response::Event::OutboundFailure {
                    request_id, error, ..
                },
            )) if request_id == id => return Err(error.to_string()),
            other => refuse_inbound(swarm, other),
        }
    }
}

/// This client serves nothing: a peer's request gets an error at once rather than a timeout.
fn refuse_inbound(swarm: &mut Swarm<Behaviour>, ev: SwarmEvent<BehaviourEvent>) {
    if let SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
        message: request_response::Message::Request { channel, .. },
        ..
    })) = ev
    {
        let message = "state sync in progress: not serving yet".to_string();
        let _ = swarm
            .behaviour_mut()
            .sync
            .send_response(channel, Response::Error { message });
    }
}
