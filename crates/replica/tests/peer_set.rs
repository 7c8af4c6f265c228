//! The bounded peer set: a replica dials towards `TARGET_PEERS` neighbours in its own order
//! of preference, drops the least preferred above `MAX_PEERS`, and queues its events only for
//! neighbours it keeps.

use std::collections::BTreeSet;
use web4fed_core::genesis::Genesis;
use web4fed_core::identity::MemberId;
use web4fed_core::ledger::Ledger;
use web4fed_core::testkit::{sentence, Author};
use web4fed_replica::limits::{EVICT_GRACE_MS, MAX_PEERS, TARGET_PEERS, TICK_MS};
use web4fed_replica::peers::preference;
use web4fed_replica::{Command, Config, DisconnectReason, Event, Replica};

const T0: u64 = 1_767_225_600_000;
const MEMBERS: usize = 40;

/// Replica 0 of a federation of `MEMBERS` registered members, none connected yet, each
/// known with an address.
fn replica() -> (Replica, Vec<MemberId>) {
    let mut g = Genesis::with_pow_bits(4);
    g.rate_base_thoughts = 1_000;
    let mut authors: Vec<Author> = (0..MEMBERS)
        .map(|i| Author::from_seed(&g, i as u64 + 1))
        .collect();
    let regs: Vec<_> = authors
        .iter_mut()
        .enumerate()
        .map(|(i, a)| a.register(&g, &format!("n{i}"), T0))
        .collect();
    let mut l = Ledger::new(g);
    l.handle_batch(T0, regs);
    while l.poll_output().is_some() {}
    let cfg = Config {
        keypair: authors[0].keypair.clone(),
        heartbeat_ms: 1_000,
        bootstrap: Vec::new(),
        last_vote: None,
        has_tpm: false,
        rate_thoughts: false,
    };
    let mut r = Replica::new(cfg, l, T0);
    let others: Vec<MemberId> = authors[1..].iter().map(Author::id).collect();
    for (k, m) in others.iter().enumerate() {
        r.handle_addresses(T0, *m, vec![format!("/ip4/127.0.0.1/tcp/{}", 40_000 + k)]);
    }
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
    let dialled: BTreeSet<MemberId> = events(&mut r)
        .into_iter()
        .filter_map(|e| match e {
            Event::Dial { peer, .. } => peer,
            _ => None,
        })
        .collect();
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
    let dropped: BTreeSet<MemberId> = events(&mut r)
        .into_iter()
        .filter_map(|e| match e {
            Event::Disconnect {
                peer,
                why: DisconnectReason::Surplus,
            } => Some(peer),
            _ => None,
        })
        .collect();
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
