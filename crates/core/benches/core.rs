//! Hot paths of the core: PoW verification, per-event admission (decode + verify + fold), and
//! the state root at 10,000 thoughts and 1,000 accounts, each beside the bare primitives
//! (one Ed25519 verification, one SHA-256 of a thought) measured in the same run.
//!
//! Run: `cargo bench -p web4fed-core --bench core`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sha2::{Digest, Sha256};
use std::hint::black_box;
use web4fed_core::event::Event;
use web4fed_core::genesis::Genesis;
use web4fed_core::ledger::Ledger;
use web4fed_core::pow;
use web4fed_core::testkit::{sentence, Author};

const T0: u64 = 1_767_225_600_000;
/// Thoughts per measured batch of the admission benchmark.
const BATCH: u64 = 1_000;

fn primitives(c: &mut Criterion) {
    let g = Genesis::with_pow_bits(16);
    let net = g.network_id();
    let mut a = Author::from_seed(&g, 1);
    let p = pow::mine(&net, &a.id(), 16);
    c.bench_function("pow_verify_16_bits", |b| {
        b.iter(|| pow::verify(black_box(&net), black_box(&a.id()), black_box(p), 16))
    });
    let ev = a.thought(T0, &sentence(1));
    let msg = ev.header.signing_bytes(&net);
    let id = a.id();
    c.bench_function("ed25519_verify_bare", |b| {
        b.iter(|| id.verify(black_box(&msg), black_box(&ev.signature)))
    });
    let content = sentence(1);
    c.bench_function("sha256_thought_content", |b| {
        b.iter(|| Sha256::digest(black_box(content.as_bytes())))
    });
}

/// Registrations for `members` members, then `BATCH` thoughts spread over them and spaced so
/// no rate limit refuses them: the common case of a node receiving honest traffic.
fn traffic(g: &Genesis, members: u64) -> (Vec<Event>, Vec<Vec<u8>>) {
    let mut authors: Vec<Author> = (0..members).map(|i| Author::from_seed(g, i)).collect();
    let regs = authors
        .iter_mut()
        .enumerate()
        .map(|(i, a)| a.register(g, &format!("m{i}"), T0))
        .collect();
    let thoughts = (0..BATCH)
        .map(|i| {
            let a = &mut authors[(i % members) as usize];
            a.thought(T0 + 1 + i * 100, &sentence(i)).bytes().to_vec()
        })
        .collect();
    (regs, thoughts)
}

fn admission(c: &mut Criterion) {
    let g = Genesis::with_pow_bits(8);
    let (regs, thoughts) = traffic(&g, 200);
    let mut group = c.benchmark_group("admit");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("decode_verify_fold_per_thought", |b| {
        b.iter_batched(
            || {
                let mut l = Ledger::new(g.clone());
                l.handle_batch(T0, regs.clone());
                while l.poll_output().is_some() {}
                l
            },
            |mut l| {
                for bytes in &thoughts {
                    let ev = Event::decode(bytes).expect("valid");
                    let _ = l.handle_event(T0 + 200_000, ev);
                    while l.poll_output().is_some() {}
                }
                l
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn state_root(c: &mut Criterion) {
    let g = Genesis {
        corpus_max_thoughts: 20_000,
        ..Genesis::with_pow_bits(4)
    };
    let mut authors: Vec<Author> = (0..1_000).map(|i| Author::from_seed(&g, i)).collect();
    let mut evs: Vec<Event> = authors
        .iter_mut()
        .enumerate()
        .map(|(i, a)| a.register(&g, &format!("m{i}"), T0))
        .collect();
    for i in 0..10_000u64 {
        let a = &mut authors[(i % 1_000) as usize];
        evs.push(a.thought(T0 + 1 + i * 10, &sentence(i)));
    }
    let mut l = Ledger::new(g.clone());
    l.handle_batch(T0 + 1_000_000, evs);
    assert_eq!(l.state().corpus_len(), 10_000);
    assert_eq!(l.state().accounts().count(), 1_000);
    c.bench_function("state_root_10k_thoughts_1k_accounts", |b| {
        b.iter(|| black_box(l.state_root()))
    });
}

/// What one late event costs the receiver: a corpus of 10,000 thoughts by 100 members over
/// 100 s of event time, then a thought dated 60 s back, which re-folds from the snapshot
/// before it and recomputes every epoch root since (up to 64).
fn late_event(c: &mut Criterion) {
    let g = Genesis {
        corpus_max_thoughts: 20_000,
        rate_base_thoughts: 1_000_000,
        rate_base_bytes: 1_000_000_000,
        ..Genesis::with_pow_bits(4)
    };
    let mut authors: Vec<Author> = (0..100).map(|i| Author::from_seed(&g, i)).collect();
    let mut evs: Vec<Event> = authors
        .iter_mut()
        .enumerate()
        .map(|(i, a)| a.register(&g, &format!("m{i}"), T0))
        .collect();
    let late_author = Author::from_seed(&g, 10_000);
    let mut late_author = late_author;
    evs.push(late_author.register(&g, "late", T0));
    for i in 0..10_000u64 {
        let a = &mut authors[(i % 100) as usize];
        evs.push(a.thought(T0 + 1 + i * 10, &sentence(i)));
    }
    let late = late_author.thought(T0 + 40_000, &sentence(99_999));
    let now = T0 + 100_000;
    let mut group = c.benchmark_group("late_event");
    group.sample_size(10);
    group.bench_function("dated_60s_back_10k_corpus", |b| {
        b.iter_batched(
            || {
                let mut l = Ledger::new(g.clone());
                l.handle_batch(now, evs.clone());
                while l.poll_output().is_some() {}
                l
            },
            |mut l| {
                let _ = l.handle_event(now, late.clone());
                while l.poll_output().is_some() {}
                l
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, primitives, admission, state_root, late_event);
criterion_main!(benches);
