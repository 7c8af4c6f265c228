//! Signed wire wrappers: the envelope that carries an event from the member that sends it,
//! and the heartbeat each node sends every second.
//!
//! The envelope makes forwarding accountable (evidence, not accusation): an honest node only
//! wraps events whose signatures it verified, so an envelope signed by its sender that carries
//! an event with a forged signature is self-certifying evidence against the sender.

use crate::codec::{DecodeError, Reader, Writer};
use crate::event::{Event, MAX_EVENT_BYTES};
use crate::identity::{Keypair, MemberId, SIGNATURE_LEN};
use sha2::{Digest, Sha256};

/// Version byte of envelopes and heartbeats.
pub const WIRE_VERSION: u8 = 1;
const ENVELOPE_DOMAIN: &[u8] = b"web4fed/envelope/v1";
const HEARTBEAT_DOMAIN: &[u8] = b"web4fed/heartbeat/v1";
/// Most bytes in an encoded envelope.
pub const MAX_ENVELOPE_BYTES: usize = 1 + 32 + 8 + 4 + MAX_EVENT_BYTES + SIGNATURE_LEN;

/// An event as sent by one member to others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The member that sent it (not necessarily the event's author).
    pub sender: MemberId,
    /// The sender's clock when it sent it (places a forgery in the canonical order).
    pub sent_ms: u64,
    /// The carried event's wire bytes, exactly as received or authored.
    pub event: Vec<u8>,
    /// The sender's signature.
    pub signature: [u8; SIGNATURE_LEN],
}

impl Envelope {
    fn signing_bytes(network: &[u8; 32], sender: &MemberId, sent_ms: u64, event: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(ENVELOPE_DOMAIN.len() + 32 + 32 + 8 + 32);
        m.extend_from_slice(ENVELOPE_DOMAIN);
        m.extend_from_slice(network);
        m.extend_from_slice(&sender.0);
        m.extend_from_slice(&sent_ms.to_be_bytes());
        m.extend_from_slice(&Sha256::digest(event));
        m
    }

    /// Wraps an event's bytes.
    pub fn seal(keypair: &Keypair, network: &[u8; 32], sent_ms: u64, event: &[u8]) -> Self {
        let sender = keypair.id();
        let signature = keypair.sign(&Self::signing_bytes(network, &sender, sent_ms, event));
        Self {
            sender,
            sent_ms,
            event: event.to_vec(),
            signature,
        }
    }

    /// Checks the sender's signature.
    pub fn verify(&self, network: &[u8; 32]) -> bool {
        self.sender.verify(
            &Self::signing_bytes(network, &self.sender, self.sent_ms, &self.event),
            &self.signature,
        )
    }

    /// A stable id for deduplicating forgery evidence.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.encode()).into()
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.event.len() + 120);
        self.write(&mut w);
        w.finish()
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u8(WIRE_VERSION);
        w.raw(&self.sender.0);
        w.u64(self.sent_ms);
        w.bytes32(&self.event);
        w.raw(&self.signature);
    }

    pub(crate) fn read(r: &mut Reader<'_>, max_event: usize) -> Result<Self, DecodeError> {
        let version = r.u8("envelope version")?;
        if version != WIRE_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "envelope",
                version,
            });
        }
        Ok(Self {
            sender: MemberId(r.array("sender")?),
            sent_ms: r.u64("sent_ms")?,
            event: r.bytes32("event", max_event)?.to_vec(),
            signature: r.array("envelope signature")?,
        })
    }

    /// Decodes an envelope, bounded and canonical.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(DecodeError::TooLong {
                field: "envelope",
                len: bytes.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let e = Self::read(&mut r, MAX_EVENT_BYTES)?;
        r.finish("envelope")?;
        Ok(e)
    }

    /// Whether this envelope proves its sender forwarded a forgery: the sender's signature is
    /// valid and the event inside does not decode or its author's signature does not verify.
    pub fn proves_forgery(&self, network: &[u8; 32]) -> Result<(), String> {
        if !self.verify(network) {
            return Err("the envelope's own signature does not verify".into());
        }
        match Event::decode(&self.event) {
            Err(_) => Ok(()),
            Ok(ev) if !ev.verify(network) => Ok(()),
            Ok(_) => Err("the carried event is valid".into()),
        }
    }
}

/// A node's liveness and agreement signal, sent every second. Not an event: it changes no
/// state, it tells peers whether to sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The member sending it.
    pub sender: MemberId,
    /// Its clock.
    pub sent_ms: u64,
    /// The epoch whose root it reports.
    pub epoch: u64,
    /// Its state root at the end of that epoch.
    pub root: [u8; 32],
    /// SHA-256 of its version vector: equal digests mean equal logs.
    pub vv_digest: [u8; 32],
    /// Events in its log.
    pub events: u64,
    /// The latest epoch it holds a certificate for: a peer that differs from us asks for
    /// certificates only when this is ahead of its own.
    pub final_epoch: Option<u64>,
    /// Items of evidence it holds: a peer that differs from us asks for evidence only when
    /// this is more than its own (a periodic sync round asks whatever the counts).
    pub evidence: u64,
    /// The sender's signature.
    pub signature: [u8; SIGNATURE_LEN],
}

/// Encoded size of a heartbeat.
pub const HEARTBEAT_LEN: usize = 1 + 32 + 8 + 8 + 32 + 32 + 8 + 8 + 8 + SIGNATURE_LEN;

/// A final epoch on the wire: 0 for none, else the epoch plus one.
fn final_on_wire(e: Option<u64>) -> u64 {
    e.map_or(0, |e| e.saturating_add(1))
}

impl Heartbeat {
    fn body(&self, network: &[u8; 32]) -> Vec<u8> {
        let mut w = Writer::with_capacity(HEARTBEAT_LEN + 64);
        w.raw(HEARTBEAT_DOMAIN);
        w.raw(network);
        w.raw(&self.sender.0);
        w.u64(self.sent_ms);
        w.u64(self.epoch);
        w.raw(&self.root);
        w.raw(&self.vv_digest);
        w.u64(self.events);
        w.u64(final_on_wire(self.final_epoch));
        w.u64(self.evidence);
        w.finish()
    }

    /// Builds and signs a heartbeat.
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        keypair: &Keypair,
        network: &[u8; 32],
        sent_ms: u64,
        epoch: u64,
        root: [u8; 32],
        vv_digest: [u8; 32],
        events: u64,
        final_epoch: Option<u64>,
        evidence: u64,
    ) -> Self {
        let mut h = Self {
            sender: keypair.id(),
            sent_ms,
            epoch,
            root,
            vv_digest,
            events,
            final_epoch,
            evidence,
            signature: [0; SIGNATURE_LEN],
        };
        h.signature = keypair.sign(&h.body(network));
        h
    }

    /// Checks the sender's signature.
    pub fn verify(&self, network: &[u8; 32]) -> bool {
        self.sender.verify(&self.body(network), &self.signature)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(HEARTBEAT_LEN);
        w.u8(WIRE_VERSION);
        w.raw(&self.sender.0);
        w.u64(self.sent_ms);
        w.u64(self.epoch);
        w.raw(&self.root);
        w.raw(&self.vv_digest);
        w.u64(self.events);
        w.u64(final_on_wire(self.final_epoch));
        w.u64(self.evidence);
        w.raw(&self.signature);
        w.finish()
    }

    /// Decodes a heartbeat.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("heartbeat version")?;
        if version != WIRE_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "heartbeat",
                version,
            });
        }
        let h = Self {
            sender: MemberId(r.array("sender")?),
            sent_ms: r.u64("sent_ms")?,
            epoch: r.u64("epoch")?,
            root: r.array("root")?,
            vv_digest: r.array("vv_digest")?,
            events: r.u64("events")?,
            final_epoch: r.u64("final_epoch")?.checked_sub(1),
            evidence: r.u64("evidence")?,
            signature: r.array("signature")?,
        };
        r.finish("heartbeat")?;
        Ok(h)
    }
}

/// SHA-256 over every feed's (member, length, head id), in member order: equal digests mean
/// equal logs, and two branches of a fork give different digests.
pub fn vv_digest<'a>(
    heads: impl IntoIterator<Item = (&'a MemberId, &'a (u64, crate::event::EventId))>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    for (m, (n, head)) in heads {
        h.update(m.0);
        h.update(n.to_be_bytes());
        h.update(head.0);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Body, EventId};

    #[test]
    fn envelope_round_trip_and_forgery_proof() {
        let net = [2u8; 32];
        let author = Keypair::from_secret([1; 32]);
        let relay = Keypair::from_secret([3; 32]);
        let ev = Event::sign(
            &author,
            &net,
            1,
            EventId([4; 32]),
            10,
            Body::Thought("a real thought here".into()),
        );
        let good = Envelope::seal(&relay, &net, 11, ev.bytes());
        assert_eq!(Envelope::decode(&good.encode()).unwrap(), good);
        assert!(good.verify(&net));
        assert!(good.proves_forgery(&net).is_err());
        let mut forged = ev.bytes().to_vec();
        forged[crate::event::HEADER_LEN] ^= 1;
        let bad = Envelope::seal(&relay, &net, 12, &forged);
        assert!(bad.proves_forgery(&net).is_ok());
        let mut tampered = bad.clone();
        tampered.sent_ms += 1;
        assert!(
            tampered.proves_forgery(&net).is_err(),
            "needs the sender's valid signature"
        );
    }

    #[test]
    fn heartbeat_round_trip() {
        let net = [2u8; 32];
        let kp = Keypair::from_secret([1; 32]);
        for (fin, evidence) in [(None, 0), (Some(0), 3), (Some(1_796_684_715), 1)] {
            let h = Heartbeat::sign(&kp, &net, 5, 4, [7; 32], [8; 32], 99, fin, evidence);
            assert_eq!(h.encode().len(), HEARTBEAT_LEN);
            let d = Heartbeat::decode(&h.encode()).unwrap();
            assert_eq!(d, h);
            assert!(d.verify(&net));
            assert!(!d.verify(&[0; 32]));
            // What it says about finality and evidence is signed too.
            let mut other = d.clone();
            other.evidence += 1;
            assert!(!other.verify(&net));
        }
    }
}
