//! The bounded peer set: a replica dials towards `TARGET_PEERS` neighbours in its own order
//! of preference, drops the least preferred above `MAX_PEERS`, and queues its events only for
//! neighbours it keeps.

use std::collections::BTreeSet;
use web4fed_core::genesis::Genesis;
use web4fed_core::identity::MemberId;
use web4fed_core::ledger::Ledger;
use web4fed_core::testkit::{sentence, Author};
use web4fed_replica::limits::{
    AGREEMENT_LEAVE_AFTER_MS, COMMITTEE_PEERS, EVICT_GRACE_MS, MAX_PEERS, TARGET_PEERS, TICK_MS,
};
use web4fed_replica::peers::{committee_neighbours, preference};
use web4fed_replica::{Command, Config, DisconnectReason, Event, Replica};

const T0: u64 = 1_767_225_600_000;
const MEMBERS: usize = 40;

/// Replica 0 of a federation of `MEMBERS` registered members (a genesis naming no
/// founders), none connected yet, each known with an address.
fn replica() -> (Replica, Vec<MemberId>) {
    let (r, others, _) = federation(0, 0);
    (r, others)
}

fn events(r: &mut Replica) -> Vec<Event> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

/// Members in `r`'s order of preference, most preferred first.
fn ranked(r: &Replica, members: &[MemberId]) -> Vec<MemberId> {
    let mut v = members.to_vec();
    v.sort_by_key(|m| preference(&r.me(), m));
    v
}

#[test]
fn a_replica_dials_only_its_most_preferred_neighbours() {
    let (mut r, others) = replica();
    r.handle_timeout(T0 + TICK_MS);
    let dialled = dialled(&events(&mut r));
    let want: BTreeSet<MemberId> = ranked(&r, &others).into_iter().take(TARGET_PEERS).collect();
    assert_eq!(
        dialled, want,
        "the {TARGET_PEERS} most preferred, and no one else"
    );
    // Connected to them: nothing more is dialled, however long it waits.
    for m in &want {
        r.handle_connected(T0 + TICK_MS, *m, None);
    }
    let _ = events(&mut r);
    r.handle_timeout(T0 + 60_000);
    assert!(
        !events(&mut r)
            .iter()
            .any(|e| matches!(e, Event::Dial { .. })),
        "at the target a replica dials nobody"
    );
    // Another node's preference differs: the peer sets form a random graph, not a clique.
    let other_view: BTreeSet<MemberId> = {
        let mut v: Vec<MemberId> = others.iter().copied().filter(|m| *m != others[0]).collect();
        v.push(r.me());
        v.sort_by_key(|m| preference(&others[0], m));
        v.into_iter().take(TARGET_PEERS).collect()
    };
    assert_ne!(other_view, want);
}

#[test]
fn surplus_neighbours_are_dropped_least_preferred_first_after_a_grace() {
    let (mut r, others) = replica();
    // Everyone dials in (a bootstrap address every operator was given).
    for m in &others {
        r.handle_connected(T0, *m, None);
    }
    let _ = events(&mut r);
    // Within the grace nobody is dropped: newcomers are still learning whom else to dial.
    r.handle_timeout(T0 + EVICT_GRACE_MS - TICK_MS);
    assert!(!events(&mut r)
        .iter()
        .any(|e| matches!(e, Event::Disconnect { .. })));
    let now = T0 + EVICT_GRACE_MS + TICK_MS;
    r.handle_timeout(now);
    let dropped: BTreeSet<MemberId> = surplus(events(&mut r));
    let order = ranked(&r, &others);
    let least: BTreeSet<MemberId> = order[MAX_PEERS..].iter().copied().collect();
    assert_eq!(dropped, least, "the least preferred beyond {MAX_PEERS}");
    for m in &dropped {
        r.handle_disconnected(now, *m);
    }
    let _ = events(&mut r);
    // Events of ours are queued for kept neighbours that are away, never for dropped ones.
    let away = order[0];
    r.handle_disconnected(now, away);
    r.handle_command(
        now,
        Command::Submit {
            content: sentence(1),
        },
    )
    .expect("a thought of ours");
    let _ = events(&mut r);
    while r.poll_transmit().is_some() {}
    assert_eq!(r.peers().get(&away).unwrap().queue.len(), 1);
    for m in &dropped {
        assert!(r.peers().get(m).unwrap().queue.is_empty());
    }
    assert_eq!(r.peers().queued(), 1);
    // Below the ceiling again, a dropped neighbour is not redialled at once.
    r.handle_timeout(now + TICK_MS);
    assert!(!events(&mut r).iter().any(|e| matches!(
        e,
        Event::Dial { peer: Some(p), .. } if dropped.contains(p)
    )));
}

/// Founders (the genesis's validator committee) in the committee tests.
const FOUNDERS: usize = 6;

/// Replica `me` of a federation of `MEMBERS` registered members whose first `founders` are
/// the genesis's founders (none: an open genesis), none connected yet, every other member
/// known with an address; with the founders' ids.
fn federation(me: usize, founders: usize) -> (Replica, Vec<MemberId>, BTreeSet<MemberId>) {
    let mut g = Genesis::with_pow_bits(4);
    g.rate_base_thoughts = 1_000;
    // Keys do not depend on the genesis, proofs of work do: name the founders first, then
    // make the authors for the genesis that names them.
    g.founders = (0..founders)
        .map(|i| Author::from_seed(&g, i as u64 + 1).id().to_hex())
        .collect();
    let mut authors: Vec<Author> = (0..MEMBERS)
        .map(|i| Author::from_seed(&g, i as u64 + 1))
        .collect();
    let regs: Vec<_> = authors
        .iter_mut()
        .enumerate()
        .map(|(i, a)| a.register(&g, &format!("n{i}"), T0))
        .collect();
    let committee: BTreeSet<MemberId> = authors[..founders].iter().map(Author::id).collect();
    let mut l = Ledger::new(g);
    l.handle_batch(T0, regs);
    while l.poll_output().is_some() {}
    let cfg = Config {
        keypair: authors[me].keypair.clone(),
        heartbeat_ms: 1_000,
        bootstrap: Vec::new(),
        last_vote: None,
        has_tpm: false,
        rate_thoughts: false,
    };
    let mut r = Replica::new(cfg, l, T0);
    let others: Vec<MemberId> = authors
        .iter()
        .map(Author::id)
        .filter(|m| *m != r.me())
        .collect();
    for (k, m) in others.iter().enumerate() {
        r.handle_addresses(T0, *m, vec![format!("/ip4/127.0.0.1/tcp/{}", 40_000 + k)]);
    }
    (r, others, committee)
}

/// The members a replica dropped as surplus in these events.
fn surplus<C: FromIterator<MemberId>>(events: Vec<Event>) -> C {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Disconnect {
                peer,
                why: DisconnectReason::Surplus,
            } => Some(peer),
            _ => None,
        })
        .collect()
}

/// The members a replica dialled in these events.
fn dialled(events: &[Event]) -> BTreeSet<MemberId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Dial { peer, .. } => *peer,
            _ => None,
        })
        .collect()
}

#[test]
fn a_committee_member_keeps_committee_neighbours_and_the_rest_leave_the_agreement_topics() {
    // A founder: in the committee, it stays on the agreement's topics and dials its
    // COMMITTEE_PEERS most preferred committee members besides its TARGET_PEERS neighbours.
    let (mut r, others, committee) = federation(0, FOUNDERS);
    assert_eq!(r.committee(), Some(&committee));
    assert!(r.hears_agreement());
    let evs = events(&mut r);
    assert!(!evs
        .iter()
        .any(|e| matches!(e, Event::AgreementTopics { .. })));
    r.handle_timeout(T0 + TICK_MS);
    let got = dialled(&events(&mut r));
    let near = committee_neighbours(&r.me(), &committee, COMMITTEE_PEERS);
    assert_eq!(near.len(), COMMITTEE_PEERS.min(FOUNDERS - 1));
    assert!(near.iter().all(|m| committee.contains(m) && *m != r.me()));
    let mut want: BTreeSet<MemberId> = near.iter().copied().collect();
    let rest: Vec<MemberId> = others
        .iter()
        .copied()
        .filter(|m| !want.contains(m))
        .collect();
    want.extend(ranked(&r, &rest).into_iter().take(TARGET_PEERS));
    assert_eq!(
        got, want,
        "the committee neighbours and the {TARGET_PEERS} most preferred"
    );
    // Everyone dials in: above MAX_PEERS the committee neighbours are never the ones dropped.
    for m in &others {
        r.handle_connected(T0 + TICK_MS, *m, None);
    }
    let _ = events(&mut r);
    r.handle_timeout(T0 + TICK_MS + EVICT_GRACE_MS + TICK_MS);
    let dropped: Vec<MemberId> = surplus(events(&mut r));
    assert_eq!(dropped.len(), others.len() - MAX_PEERS);
    assert!(dropped.iter().all(|m| !near.contains(m)));

    // A member outside the committee dials only its TARGET_PEERS most preferred, and leaves
    // the agreement's topics once it has been outside for AGREEMENT_LEAVE_AFTER_MS.
    let (mut r, others, committee) = federation(FOUNDERS + 3, FOUNDERS);
    assert!(!committee.contains(&r.me()));
    r.handle_timeout(T0 + TICK_MS);
    let evs = events(&mut r);
    let want: BTreeSet<MemberId> = ranked(&r, &others).into_iter().take(TARGET_PEERS).collect();
    assert_eq!(dialled(&evs), want);
    let left = |evs: &[Event]| {
        evs.iter()
            .any(|e| matches!(e, Event::AgreementTopics { subscribed: false }))
    };
    assert!(!left(&evs) && r.hears_agreement(), "not at once");
    r.handle_timeout(T0 + AGREEMENT_LEAVE_AFTER_MS - TICK_MS);
    assert!(!left(&events(&mut r)) && r.hears_agreement());
    r.handle_timeout(T0 + AGREEMENT_LEAVE_AFTER_MS + TICK_MS);
    assert!(left(&events(&mut r)) && !r.hears_agreement());
    // Told once: later ticks say nothing more while the committee stands.
    r.handle_timeout(T0 + AGREEMENT_LEAVE_AFTER_MS + 10 * TICK_MS);
    assert!(!events(&mut r)
        .iter()
        .any(|e| matches!(e, Event::AgreementTopics { .. })));
}

#[test]
fn neighbour_sets_of_a_thousand_nodes_form_one_graph_with_short_paths() {
    // Links as the replicas make them when each knows every member: node i dials its
    // TARGET_PEERS most preferred, and a link serves both ends.
    let ids: Vec<MemberId> = (0..1_000u32)
        .map(|i| {
            let mut m = [0x33u8; 32];
            m[..4].copy_from_slice(&i.to_be_bytes());
            MemberId(m)
        })
        .collect();
    let n = ids.len();
    let mut links = vec![BTreeSet::new(); n];
    for i in 0..n {
        let mut order: Vec<(u64, usize)> = (0..n)
            .filter(|j| *j != i)
            .map(|j| (preference(&ids[i], &ids[j]), j))
            .collect();
        order.sort_unstable();
        for (_, j) in order.into_iter().take(TARGET_PEERS) {
            links[i].insert(j);
            links[j].insert(i);
        }
    }
    // Breadth-first from every 50th node: everyone is reached, within a few hops.
    let mut diameter = 0;
    for start in (0..n).step_by(50) {
        let mut dist = vec![usize::MAX; n];
        dist[start] = 0;
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(x) = queue.pop_front() {
            for &y in &links[x] {
                if dist[y] == usize::MAX {
                    dist[y] = dist[x] + 1;
                    queue.push_back(y);
                }
            }
        }
        assert!(dist.iter().all(|d| *d != usize::MAX), "not connected");
        diameter = diameter.max(*dist.iter().max().unwrap());
    }
    assert!(diameter <= 6, "eccentricity {diameter} hops");
    // Before the ceiling acts a popular node is dialled by more than MAX_PEERS others (29 of
    // 1,000 here); the ceiling then drops its least preferred (tested above), and those dial
    // their next choices. The simulator's links are this graph, without the ceiling.
    let most = links.iter().map(BTreeSet::len).max().unwrap();
    eprintln!("1,000 nodes: longest shortest path {diameter} hops, most links {most}");
}
