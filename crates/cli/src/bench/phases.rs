//! The bench's phases, in the order they run: each measures one figure (or a few that share
//! a setup) on the running nodes and adds its rows and notes.

use super::figures::{
    bare_crypto_us, commit, finality_samples, gossip_floor, machine, submit_latency, utc_now,
    FinalitySamples,
};
use super::load::{inject, stream_load, vote_for, workload};
use super::*;

impl Bench<'_> {
    /// Submit latency to one receiver, then to two, against the bare gossipsub floor.
    pub(super) fn latency(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let Bench {
            args,
            nodes,
            rows,
            where_,
            first,
            submit_median_ms,
            ..
        } = self;
        let first = first.clone();
        // -- 1. Latency: one receiver, light load; then three nodes. ---------------------------
        nodes[0].start(&[])?;
        nodes[1].start(std::slice::from_ref(&first))?;
        wait_until("two nodes connected", || {
            nodes[1]
                .status()
                .is_some_and(|s| s["peers_connected"] == 1 && s["members"] == 2)
        })?;
        std::thread::sleep(Duration::from_millis(1_500));
        let mut acks = Vec::new();
        let mut one = submit_latency(&nodes[0], &[&nodes[1]], args.samples, 1, &mut acks)?;
        let (m1, p1) = median_p99(&mut one);
        let (ack1, _) = median_p99(&mut acks);
        let mut floor = gossip_floor(&nodes[0].host, &nodes[1].host, args.samples)?;
        let (fm, fp) = median_p99(&mut floor);
        eprintln!(
            "latency, one receiver: median {m1:.3} ms, p99 {p1:.3} ms (floor {fm:.3} / {fp:.3})"
        );
        rows.push(row(
        &format!("submit → accepted and visible, one receiver, light load ({where_})"),
        "none",
        "median ≤ 0.8 ms, p99 ≤ 2 ms",
        format!("median {m1:.2} ms, p99 {p1:.2} ms ({} samples)", one.len()),
        format!(
            "bare gossipsub, same hosts, same run: median {fm:.2} ms, p99 {fp:.2} ms → ratio {:.1}× / {:.1}×; of the median, {ack1:.2} ms is the submit's own HTTP round trip (sign, judge, fsync)",
            m1 / fm,
            p1 / fp
        ),
    ));
        nodes[2].start(std::slice::from_ref(&first))?;
        wait_until("full mesh of three", || {
            nodes.iter().all(|n| {
                n.status()
                    .is_some_and(|s| s["peers_connected"] == 2 && s["members"] == 3)
            })
        })?;
        std::thread::sleep(Duration::from_millis(1_500));
        let mut three = submit_latency(
            &nodes[0],
            &[&nodes[1], &nodes[2]],
            args.samples,
            2,
            &mut Vec::new(),
        )?;
        let (m3, p3) = median_p99(&mut three);
        eprintln!("latency, three nodes: median {m3:.3} ms, p99 {p3:.3} ms");
        rows.push(row(
            &format!(
                "submit on one node → accepted and visible on both others, 3 nodes ({where_})"
            ),
            "< 100 ms",
            "p99 < 10 ms",
            format!(
                "median {m3:.2} ms, p99 {p3:.2} ms ({} samples)",
                three.len()
            ),
            format!(
                "gossipsub floor above: median {fm:.2} ms → ratio {:.1}×",
                m3 / fm
            ),
        ));

        *submit_median_ms = m3;
        Ok(())
    }

    /// An accepted thought until every node shows the same root.
    pub(super) fn agreement(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let Bench {
            args,
            nodes,
            rows,
            submit_median_ms,
            ..
        } = self;
        // -- 2. Trust / ATP change visible with equal roots on all nodes. ------------------------
        let mut agree_ms = Vec::new();
        for i in 0..args.samples.min(50) {
            let t0 = Instant::now();
            nodes[i % 3].post_json(
                "/v1/thoughts",
                &json!({ "content": sentence(3_000_000 + i as u64) }),
            )?;
            let n = nodes[i % 3].events();
            let refs: Vec<&NodeProc> = nodes.iter().collect();
            wait_until("equal roots", || agree(&refs, n))?;
            agree_ms.push(ms(t0.elapsed()));
        }
        let (am, ap) = median_p99(&mut agree_ms);
        eprintln!("trust/ATP change → equal roots on all: median {am:.2} ms, p99 {ap:.2} ms");
        rows.push(row(
            "trust / ATP change (an accepted thought) → equal state roots on all 3 nodes",
            "< 1 s / < 2 s",
            "p99 < 50 ms",
            format!(
                "median {am:.2} ms, p99 {ap:.2} ms ({} samples, polling every 0.5 ms)",
                agree_ms.len()
            ),
            format!(
                "the submit latency above: median {:.2} ms",
                submit_median_ms
            ),
        ));

        Ok(())
    }

    /// Finality latency: from a checkpoint epoch's end until each node holds its
    /// certificate, over a stretch of light load (a thought every 500 ms, round robin).
    pub(super) fn finality_latency(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let Bench {
            args,
            nodes,
            rows,
            g,
            ..
        } = self;
        if args.finality_secs == 0 {
            return Ok(());
        }
        let from_ms = now_ms();
        let until = Instant::now() + Duration::from_secs(args.finality_secs);
        let mut i = 0u64;
        while Instant::now() < until {
            nodes[(i % 3) as usize].post_json(
                "/v1/thoughts",
                &json!({ "content": sentence(4_000_000 + i) }),
            )?;
            i += 1;
            std::thread::sleep(Duration::from_millis(500));
        }
        let until_ms = now_ms();
        // Let the last checkpoint of the stretch be voted and certified.
        std::thread::sleep(Duration::from_millis(
            g.vote_delay_ms + 2 * g.epoch_ms * g.finality_every_epochs,
        ));
        let first_end = from_ms + g.epoch_ms;
        let FinalitySamples {
            latency_ms: mut lat,
            held,
            expected,
        } = finality_samples(nodes, g, first_end, until_ms)?;
        // A node that holds fewer certificates than expected says where its agreement stands.
        for (n, h) in nodes.iter().zip(&held) {
            if *h < expected {
                let a = n.get("/v1/status").map(|s| s["agreement"].clone());
                eprintln!(
                    "finality: node {} holds {h} of {expected}: agreement {a:?}",
                    n.host.ip
                );
            }
        }
        if lat.is_empty() {
            return Err("no certificate formed during the finality stretch".into());
        }
        let (m, p) = median_p99(&mut lat);
        let max = lat.iter().cloned().fold(0.0, f64::max);
        eprintln!("finality: epoch end → certificate, median {m:.0} ms, p99 {p:.0} ms");
        rows.push(row(
            "finality: checkpoint epoch end → certificate held, each of 3 nodes, light load",
            "ATP consensus < 2 s",
            "p99 < 1 s",
            format!(
                "median {m:.0} ms, p99 {p:.0} ms, max {max:.0} ms ({} samples over {} s; certified per node {:?} of {expected} checkpoints)",
                lat.len(),
                args.finality_secs,
                held
            ),
            format!(
                "floor: the genesis's vote delay, {} ms after the epoch end (votes wait that long for events in flight)",
                g.vote_delay_ms
            ),
        ));
        Ok(())
    }

    /// The durable-commit floor: one event appended with fsync, as a submit does.
    pub(super) fn durable_floor(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let Bench {
            args,
            g,
            root,
            notes,
            ..
        } = self;
        // -- The durable-commit floor: one event appended with fsync, as a submit does. ------------
        let fsync_ms = {
            let d = root.join("fsync-floor.db");
            let mut store = web4fed_store::Store::open(&d, g)?;
            let mut a = Author::from_seed(g, 77_777);
            let reg = a.register(g, "floor", now_ms());
            store.append([&reg])?;
            let mut v = Vec::new();
            for i in 0..args.samples.min(200) {
                let ev = a.thought(now_ms(), &sentence(9_000_000 + i as u64));
                let t = Instant::now();
                store.append([&ev])?;
                v.push(ms(t.elapsed()));
            }
            median_p99(&mut v).0
        };
        eprintln!("durable commit floor (SQLite WAL, synchronous=FULL): median {fsync_ms:.3} ms");
        notes.push(format!(
        "Durable-commit floor on this disk, measured in the same run: appending one event to the \
         SQLite log (WAL, `synchronous=FULL`) takes a median {fsync_ms:.2} ms. A submit is \
         acknowledged only after that commit, and the receiver commits before it shows the event, \
         so two such commits sit on the latency path."
    ));

        Ok(())
    }

    /// Proof-of-work verification, in this process.
    pub(super) fn pow(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let Bench { g, rows, .. } = self;
        // -- 3. PoW verification (in this process). -------------------------------------------------
        let network = g.network_id();
        let member = Author::from_seed(g, 4242).id();
        let pow = web4fed_core::pow::mine(&network, &member, g.pow_bits);
        let t = Instant::now();
        let reps = 200_000u32;
        for _ in 0..reps {
            std::hint::black_box(
                web4fed_core::pow::verify(&network, &member, pow, g.pow_bits).is_ok(),
            );
        }
        let pow_ns = t.elapsed().as_nanos() as f64 / f64::from(reps);
        rows.push(row(
        "PoW verification",
        "< 10 ms",
        "< 5 µs",
        format!("{pow_ns:.0} ns (mean of {reps}; `cargo bench -p web4fed-core --bench core` gives the criterion median)"),
        "one SHA-256 of 73 bytes".into(),
    ));

        Ok(())
    }

    /// A node a corpus behind catches up; memory per node with that corpus.
    pub(super) fn corpus_sync(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let Bench {
            args,
            g,
            nodes,
            rows,
            first,
            ..
        } = self;
        let first = first.clone();
        // -- 4. Corpus sync: Sprout stopped, the others take N thoughts, Sprout catches up. -------
        nodes[2].stop();
        let t0_ms = now_ms();
        let w = workload(g, SEED_CORPUS, args.corpus, 0, t0_ms, 200_000, args.corpus);
        let expected = nodes[0].events() + w.registrations.len() as u64 + w.events.len() as u64;
        inject(&nodes[0], &w.registrations, &w.events, false)?;
        {
            let refs: Vec<&NodeProc> = nodes[..2].iter().collect();
            wait_every("Legion and Thor to hold the corpus", LONG_POLL, || {
                agree(&refs, expected)
            })?;
        }
        let synced_before = nodes[0].metric("web4fed_sync_bytes_total");
        let t = Instant::now();
        nodes[2].start(std::slice::from_ref(&first))?;
        let api_up = t.elapsed();
        let refs: Vec<&NodeProc> = nodes.iter().collect();
        let caught = wait_every("Sprout to catch up", LONG_POLL, || agree(&refs, expected))?;
        let total = api_up + caught;
        let bytes = nodes[2].metric("web4fed_sync_bytes_total");
        let _ = synced_before;
        eprintln!(
        "corpus sync {} thoughts: {:.0} ms from process start ({:.0} ms after its API was up), {:.1} MB",
        w.thoughts,
        ms(total),
        ms(caught),
        bytes / 1e6
    );
        rows.push(row(
            &format!(
                "corpus sync: a node {} thoughts behind catches up (equal roots)",
                w.thoughts
            ),
            "< 5 s",
            "< 1 s",
            format!(
                "{:.0} ms from process start ({:.0} ms after its API answered)",
                ms(total),
                ms(caught)
            ),
            format!(
                "{:.1} MB of events synced → {:.1} MB/s",
                bytes / 1e6,
                bytes / 1e6 / total.as_secs_f64()
            ),
        ));
        // Memory with the full corpus.
        let corpus_live = nodes[0]
            .status()
            .map_or(0, |s| s["corpus"].as_u64().unwrap_or(0));
        let rss: Vec<String> = nodes
            .iter()
            .map(|n| format!("{} {:.1} MB", n.name, n.rss_mb().unwrap_or(f64::NAN)))
            .collect();
        let max_rss = nodes
            .iter()
            .filter_map(|n| n.rss_mb())
            .fold(0.0f64, f64::max);
        rows.push(row(
            &format!("memory per node with a {corpus_live}-thought corpus (RSS)"),
            "none",
            "< 64 MB",
            format!("max {max_rss:.1} MB ({})", rss.join(", ")),
            format!("corpus content {:.1} MB", w.content_bytes as f64 / 1e6),
        ));

        Ok(())
    }

    /// Both sides of a partition take a corpus; the heal to one root.
    pub(super) fn partition_heal(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let Bench {
            args,
            g,
            nodes,
            rows,
            ..
        } = self;
        // -- 5. Partition heal: Legion alone takes N thoughts, Thor+Sprout another N. -------------
        let base = nodes[0].events();
        nodes[0].stop();
        let side_a = workload(
            g,
            SEED_HEAL_A,
            args.corpus,
            0,
            now_ms(),
            200_000,
            args.corpus,
        );
        let side_b = workload(
            g,
            SEED_HEAL_B,
            args.corpus,
            0,
            now_ms(),
            200_000,
            args.corpus,
        );
        let ev_a = base + (side_a.registrations.len() + side_a.events.len()) as u64;
        let ev_b = base + (side_b.registrations.len() + side_b.events.len()) as u64;
        // The partition: Legion comes back on a new port with no peers, so Thor and Sprout
        // (redialling its old address) cannot reach it and it knows none of them, until it is
        // told to dial Thor. (`tests/hosts.rs` partitions with nftables instead.)
        if nodes[0].host.ns.is_none() {
            nodes[0].p2p = free_port();
        } else {
            nodes[0].p2p = 8001;
        }
        nodes[0].start(&[])?;
        inject(&nodes[0], &side_a.registrations, &side_a.events, false)?;
        inject(&nodes[1], &side_b.registrations, &side_b.events, false)?;
        wait_every("side A", LONG_POLL, || nodes[0].events() == ev_a)?;
        {
            let refs: Vec<&NodeProc> = nodes[1..].iter().collect();
            wait_every("side B", LONG_POLL, || agree(&refs, ev_b))?;
        }
        let bytes_before: f64 = nodes
            .iter()
            .map(|n| n.metric("web4fed_sync_bytes_total"))
            .sum();
        let total_events = base
            + (side_a.registrations.len()
                + side_a.events.len()
                + side_b.registrations.len()
                + side_b.events.len()) as u64;
        let refs: Vec<&NodeProc> = nodes.iter().collect();
        let t = Instant::now();
        nodes[0].post_json("/v1/peers", &json!({ "addr": nodes[1].addr() }))?;
        wait_every("one root after the heal", LONG_POLL, || {
            agree(&refs, total_events)
        })?;
        let healed = t.elapsed();
        let moved: f64 = nodes
            .iter()
            .map(|n| n.metric("web4fed_sync_bytes_total"))
            .sum::<f64>()
            - bytes_before;
        eprintln!(
            "heal {}+{} divergent thoughts: {:.0} ms, {:.1} MB synced",
            side_a.thoughts,
            side_b.thoughts,
            ms(healed),
            moved / 1e6
        );
        rows.push(row(
        &format!(
            "partition heal: {} divergent thoughts per side → one root on all 3",
            args.corpus
        ),
        "< 30 s",
        "< 2 s",
        format!("{:.0} ms from the reconnect", ms(healed)),
        format!(
            "{:.1} MB had to move (sync) → {:.1} MB/s, and every node re-folds the merged log of {} events",
            moved / 1e6,
            moved / 1e6 / healed.as_secs_f64(),
            total_events
        ),
    ));

        Ok(())
    }

    /// Sustained throughput with full validation and durable store on all three.
    pub(super) fn throughput(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let Bench {
            args,
            g,
            root,
            nodes,
            rows,
            ..
        } = self;
        // -- 6. Sustained throughput, full validation and durable store on all three. -------------
        // Generated before the clock starts (so the figure is what the nodes sustain, not what a
        // generator produces), dated to start just after generation ends, and posted no more
        // than 2 s ahead of the clock: the nodes see events dated "now", as from live members.
        let calib = Instant::now();
        let probe = workload(
            g,
            SEED_PROBE,
            usize::MAX,
            3,
            now_ms(),
            args.throughput_rate,
            2_000,
        );
        let per_event = calib.elapsed().as_secs_f64() / probe.events.len().max(1) as f64;
        let gen_ms = (per_event * args.throughput_events as f64 * 1.3 * 1e3) as u64;
        let thr = workload(
            g,
            SEED_THROUGHPUT,
            usize::MAX,
            g.committee_size as usize,
            now_ms() + gen_ms + 2_000,
            args.throughput_rate,
            args.throughput_events,
        );
        let start_events: Vec<u64> = nodes.iter().map(|n| n.events()).collect();
        let cpu_before: Vec<f64> = nodes.iter().map(|n| n.cpu_s().unwrap_or(0.0)).collect();
        let n_events = (thr.registrations.len() + thr.events.len()) as u64;
        let content_avg = thr.content_bytes / thr.thoughts.max(1);
        let perf = match &args.perf {
            Some(_) => {
                let data = root.join("thor.perf.data");
                let pid = nodes[1].pid().ok_or("thor not running")?.to_string();
                Some((
                    Command::new("perf")
                        .args(["record", "-F", "999", "-g", "-p", &pid, "-o"])
                        .arg(&data)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()?,
                    data,
                ))
            }
            None => None,
        };
        // The clock starts when the first events may be posted (their dates within 2 s).
        let first_date = thr.events.first().map_or(0, |(t, _)| *t);
        while first_date > now_ms() + 2_000 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let t = Instant::now();
        let injector = {
            let (regs, evs) = (thr.registrations.clone(), thr.events.clone());
            let target = nodes[0].handle();
            std::thread::spawn(move || inject(&target, &regs, &evs, true))
        };
        // Every second: events held by each node.
        let mut series: Vec<Vec<(f64, u64)>> = vec![Vec::new(); 3];
        let done_at = loop {
            std::thread::sleep(Duration::from_millis(1_000));
            let el = t.elapsed().as_secs_f64();
            let mut all = true;
            for (k, n) in nodes.iter().enumerate() {
                let e = n.events().saturating_sub(start_events[k]);
                series[k].push((el, e));
                all &= e >= n_events;
            }
            if all {
                break t.elapsed();
            }
            if t.elapsed() > DEADLINE {
                return Err("throughput run did not finish".into());
            }
        };
        injector.join().map_err(|_| "injector panicked")??;
        if let (Some((mut rec, data)), Some(out)) = (perf, &args.perf) {
            let _ = Command::new("kill")
                .args(["-INT", &rec.id().to_string()])
                .status();
            let _ = rec.wait();
            let report = Command::new("perf")
                .args([
                    "report",
                    "--stdio",
                    "--no-children",
                    "--percent-limit",
                    "1.5",
                    "-i",
                ])
                .arg(&data)
                .output()?;
            std::fs::write(out, &report.stdout)?;
            eprintln!(
                "perf report of Thor during the throughput run: {}",
                out.display()
            );
        }
        let rate_all = n_events as f64 / done_at.as_secs_f64();
        let cpu_after: Vec<f64> = nodes.iter().map(|n| n.cpu_s().unwrap_or(0.0)).collect();
        let per_event_us: Vec<f64> = (0..3)
            .map(|k| (cpu_after[k] - cpu_before[k]) * 1e6 / n_events as f64)
            .collect();
        let bare = bare_crypto_us(content_avg as usize);
        let recv_us = per_event_us[1].max(per_event_us[2]);
        let peak: Vec<f64> = series
            .iter()
            .map(|s| {
                s.windows(2)
                    .map(|w| (w[1].1 - w[0].1) as f64 / (w[1].0 - w[0].0))
                    .fold(0.0, f64::max)
            })
            .collect();
        eprintln!(
        "throughput: {n_events} events in {:.1} s = {rate_all:.0}/s on every node (offered {}/s); CPU/event {:?} µs; bare {bare:.1} µs",
        done_at.as_secs_f64(),
        args.throughput_rate,
        per_event_us
    );
        rows.push(row(
        &format!(
            "sustained event throughput, 3 nodes on this machine, full validation + durable store ({} thoughts and {} ratings from {LOAD_MEMBERS} members, dated {}/s and posted to one node as fast as it takes them, never more than 2 s ahead of their dates)",
            thr.thoughts,
            n_events - thr.thoughts - LOAD_MEMBERS,
            args.throughput_rate,
        ),
        "none",
        "≥ 5,000 events/s accepted on every node",
        format!(
            "{rate_all:.0} events/s until the last node held all {n_events} ({:.1} s); best second per node {:.0} / {:.0} / {:.0}",
            done_at.as_secs_f64(),
            peak[0],
            peak[1],
            peak[2]
        ),
        "2 cores shared by the 3 nodes and the injector".into(),
    ));
        rows.push(row(
        "per-event CPU cost on a receiving node (user+system CPU / events, same run)",
        "none",
        "≤ 3× one Ed25519 verify + one SHA-256 of the content",
        format!(
            "{recv_us:.1} µs (Thor {:.1}, Sprout {:.1}; Legion, which also serves the injector, {:.1})",
            per_event_us[1], per_event_us[2], per_event_us[0]
        ),
        format!(
            "bare verify + SHA-256 of {content_avg} B measured now: {bare:.1} µs → ratio {:.2}×",
            recv_us / bare
        ),
    ));

        Ok(())
    }

    /// The long run: events/s in the first minute against the last, memory each minute.
    pub(super) fn sustained(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let Bench {
            args,
            g,
            nodes,
            rows,
            notes,
            ..
        } = self;
        // -- 7. Sustained run: rate in the first minute against the last. -------------------------
        if args.sustain_secs > 0 {
            let start: Vec<u64> = nodes.iter().map(|n| n.events()).collect();
            let t = Instant::now();
            let target = nodes[0].handle();
            let (g2, rate, secs) = (g.clone(), args.sustain_rate, args.sustain_secs);
            // The founders' keys (the three nodes'), for the generator to certify its own
            // ledger's checkpoints with (see `load::Generator::certify_settled`).
            let founders = nodes
                .iter()
                .map(|n| {
                    web4fed_store::keyfile::read(
                        &web4fed_store::node_dir::NodeDir::new(&n.dir).key(),
                    )
                    .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<Keypair>, String>>()?;
            let posted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let posted2 = posted.clone();
            let injector_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let injector = std::thread::spawn(move || {
                stream_load(&target, &g2, &founders, SEED_SUSTAIN, rate, secs, &posted2)
            });
            // The load members have no nodes; without their votes no checkpoint reaches two
            // thirds of the trust, nothing becomes final and no history can leave memory. They
            // vote as any member without a node does: sign the body a node shows.
            let voter = {
                let target = nodes[0].handle();
                let g = &g;
                let keys: Vec<Keypair> = [
                    SEED_CORPUS,
                    SEED_HEAL_A,
                    SEED_HEAL_B,
                    SEED_THROUGHPUT,
                    SEED_SUSTAIN,
                ]
                .iter()
                .flat_map(|b| (0..LOAD_MEMBERS).map(move |i| Author::from_seed(g, b + i).keypair))
                .collect();
                let network = g.network_id();
                let stop = injector_done.clone();
                std::thread::spawn(move || vote_for(&target, &network, &keys, &stop))
            };
            // (elapsed s, events held by the slowest node, events posted)
            let mut samples: Vec<(f64, u64, u64)> = Vec::new();
            // (elapsed s, largest RSS of the three in MB, most events held in memory by one
            // node, largest log on disk in MB)
            let mut memory: Vec<(f64, f64, u64, f64)> = Vec::new();
            while !injector.is_finished() {
                std::thread::sleep(Duration::from_secs(5));
                let rss = nodes.iter().filter_map(|n| n.rss_mb()).fold(0.0, f64::max);
                let in_memory = nodes
                    .iter()
                    .filter_map(|n| n.status()?["events_in_memory"].as_u64())
                    .max()
                    .unwrap_or(0);
                let disk = nodes.iter().map(|n| n.log_file_bytes()).max().unwrap_or(0);
                memory.push((t.elapsed().as_secs_f64(), rss, in_memory, disk as f64 / 1e6));
                let held = nodes
                    .iter()
                    .enumerate()
                    .map(|(k, n)| n.events().saturating_sub(start[k]))
                    .min()
                    .unwrap_or(0);
                let p = posted.load(std::sync::atomic::Ordering::Relaxed);
                samples.push((t.elapsed().as_secs_f64(), held, p));
            }
            let offered = injector.join().map_err(|_| "injector panicked")??;
            std::thread::sleep(Duration::from_secs(args.sustain_quiet_secs));
            injector_done.store(true, std::sync::atomic::Ordering::Relaxed);
            let votes = voter.join().map_err(|_| "voter panicked")??;
            // RSS and events in memory each minute: flat once history is pruned.
            let per_minute: Vec<String> = memory
                .iter()
                .filter(|m| m.0 >= 55.0)
                .step_by(12)
                .map(|(s, rss, mem, disk)| {
                    format!(
                        "{:.0} min: {rss:.0} MB, {mem} events in memory, log {disk:.0} MB",
                        s / 60.0
                    )
                })
                .collect();
            eprintln!("sustained memory: {}", per_minute.join("; "));
            notes.push(format!(
                "Sustained run, largest node RSS, most events held in memory and largest log on \
             disk (events.db and its WAL) each minute \
             ({votes} votes signed for the load members through `POST /v1/votes`): {}.",
                per_minute.join("; ")
            ));
            let rate_between = |from: f64, to: f64, col: usize| {
                let a = samples.iter().find(|s| s.0 >= from);
                let b = samples.iter().rev().find(|s| s.0 <= to);
                let v = |s: &(f64, u64, u64)| if col == 1 { s.1 } else { s.2 };
                match (a, b) {
                    (Some(a), Some(b)) if b.0 > a.0 => {
                        v(b).saturating_sub(v(a)) as f64 / (b.0 - a.0)
                    }
                    _ => f64::NAN,
                }
            };
            let end = samples.last().map_or(0.0, |s| s.0);
            let first = rate_between(0.0, 60.0, 1);
            let last = rate_between(end - 60.0, end, 1);
            let posted_first = rate_between(0.0, 60.0, 2);
            let posted_last = rate_between(end - 60.0, end, 2);
            let rss: Vec<String> = nodes
                .iter()
                .map(|n| format!("{:.0}", n.rss_mb().unwrap_or(f64::NAN)))
                .collect();
            let cpu: Vec<String> = nodes
                .iter()
                .map(|n| format!("{:.0}", n.cpu_s().unwrap_or(f64::NAN)))
                .collect();
            eprintln!("sustained: first minute {first:.0}/s, last {last:.0}/s; RSS {rss:?} MB");
            rows.push(row(
            &format!(
                "sustained for {} s, {:.0} events/s offered live (thoughts at {}/s and their committees' ratings, paced by the clock): events/s on the slowest node, first minute vs last",
                args.sustain_secs,
                offered as f64 / args.sustain_secs as f64,
                args.sustain_rate
            ),
            "none",
            "last minute within 10 % of the first",
            format!(
                "first {first:.0}/s, last {last:.0}/s ({:+.1} %); {offered} events offered; RSS after: {} MB; CPU s used: {}",
                (last - first) / first * 100.0,
                rss.join(" / "),
                cpu.join(" / ")
            ),
            format!("posted by the generator: first minute {posted_first:.0}/s, last {posted_last:.0}/s"),
        ));
        } else {
            notes.push(
                "The 10-minute sustained run was skipped (`--sustain-secs 600` runs it).".into(),
            );
        }

        Ok(())
    }

    /// The Markdown table, printed and written where asked.
    pub(super) fn report(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let Bench {
            args, rows, notes, ..
        } = self;
        // -- report ---------------------------------------------------------------------------------
        let cmdline: Vec<String> = std::env::args().collect();
        let mut md = String::new();
        md.push_str(&format!(
            "## {}\n\nMachine: {}. Commit `{}`. Command: `{}`. Date (UTC): {}.\n\n",
            if args.netns {
                "Three hosts: network namespaces on a bridge (veth)"
            } else {
                "Loopback"
            },
            machine(),
            commit(),
            cmdline.join(" "),
            utc_now()
        ));
        md.push_str(
        "| figure | seed target | our goal | measured | floor / ratio |\n|---|---|---|---|---|\n",
    );
        for r in rows.iter() {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                r.figure, r.seed, r.goal, r.measured, r.floor
            ));
        }
        for n in notes.iter() {
            md.push_str(&format!("\n{n}\n"));
        }
        println!("{md}");
        if let Some(out) = &args.out {
            std::fs::write(out, &md)?;
            eprintln!("written to {}", out.display());
        }
        Ok(())
    }
}
