//! The latency floor for `web4fed bench`: a bare gossipsub exchange (anonymous, as the nodes
//! use it since their payloads carry their own signatures) between two
//! processes (TCP, Noise, Yamux, gossipsub without message signatures, no web4fed code), timed the same way as the federation's own messages.
//!
//! `web4fed bench-floor --role recv --listen ADDR --count N` prints one JSON line with the
//! one-way delays (ms) of N messages; `--role send --peer ADDR --count N` publishes them. Both
//! processes run on one machine (possibly in different network namespaces), so one clock
//! timestamps both ends.

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, noise, tcp, yamux, Multiaddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Payload size: about a web4fed envelope carrying a one-sentence thought.
pub const PAYLOAD_BYTES: usize = 420;
/// Time given to gossipsub to form its mesh after the subscription is seen.
const MESH_SETTLE: Duration = Duration::from_millis(1_500);
/// How long the sender waits for the receiver's subscription before dialling again.
const REDIAL_EVERY: Duration = Duration::from_millis(500);

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Runs one side of the floor measurement.
pub fn run(
    role: &str,
    listen: Option<Multiaddr>,
    peer: Option<Multiaddr>,
    count: usize,
    interval_ms: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(
                |_key| -> Result<gossipsub::Behaviour, Box<dyn std::error::Error + Send + Sync>> {
                    let config = gossipsub::ConfigBuilder::default()
                        .validation_mode(gossipsub::ValidationMode::Anonymous)
                        .heartbeat_interval(Duration::from_millis(250))
                        .flood_publish(true)
                        .build()
                        .map_err(|e| e.to_string())?;
                    Ok(gossipsub::Behaviour::new(
                        gossipsub::MessageAuthenticity::Anonymous,
                        config,
                    )?)
                },
            )?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        let topic = gossipsub::IdentTopic::new("web4fed-bench-floor");
        swarm.behaviour_mut().subscribe(&topic)?;
        if let Some(a) = listen {
            swarm.listen_on(a)?;
        }
        if let Some(p) = &peer {
            swarm.dial(p.clone())?;
        }
        let deadline =
            Instant::now() + Duration::from_secs(60 + count as u64 * interval_ms / 1_000);
        match role {
            "recv" => {
                let mut delays = Vec::with_capacity(count);
                while delays.len() < count && Instant::now() < deadline {
                    let ev = tokio::time::timeout(Duration::from_secs(5), swarm.select_next_some())
                        .await;
                    if let Ok(SwarmEvent::Behaviour(gossipsub::Event::Message {
                        message, ..
                    })) = ev
                    {
                        if message.data.len() >= 16 {
                            let mut b = [0u8; 16];
                            b.copy_from_slice(&message.data[..16]);
                            let sent = u128::from_be_bytes(b);
                            delays.push(now_ns().saturating_sub(sent) as f64 / 1e6);
                        }
                    }
                }
                println!("{}", serde_json::json!({ "delays_ms": delays }));
            }
            _ => {
                // Wait for the receiver's subscription, then for the mesh. The receiver may
                // not listen yet when the first dial goes out (a loaded machine): dial again.
                let mut subscribed = false;
                while !subscribed && Instant::now() < deadline {
                    match tokio::time::timeout(REDIAL_EVERY, swarm.select_next_some()).await {
                        Ok(SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. })) => {
                            subscribed = true;
                        }
                        Err(_) if swarm.connected_peers().next().is_none() => {
                            if let Some(p) = &peer {
                                swarm.dial(p.clone())?;
                            }
                        }
                        _ => {}
                    }
                }
                let settle = Instant::now() + MESH_SETTLE;
                while Instant::now() < settle {
                    let _ =
                        tokio::time::timeout(Duration::from_millis(50), swarm.select_next_some())
                            .await;
                }
                let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms));
                let mut sent = 0;
                while sent < count && Instant::now() < deadline {
                    tokio::select! {
                        _ = ticker.tick() => {
                            let mut data = now_ns().to_be_bytes().to_vec();
                            data.resize(PAYLOAD_BYTES, 0);
                            data[16..24].copy_from_slice(&(sent as u64).to_be_bytes());
                            // A mesh not formed yet (or a dropped link) refuses the
                            // message: not sent, tried again at the next tick.
                            if swarm.behaviour_mut().publish(topic.clone(), data).is_ok() {
                                sent += 1;
                            }
                        }
                        _ = swarm.select_next_some() => {}
                    }
                }
                // Let the last messages leave.
                let end = Instant::now() + Duration::from_millis(500);
                while Instant::now() < end {
                    let _ =
                        tokio::time::timeout(Duration::from_millis(50), swarm.select_next_some())
                            .await;
                }
            }
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
