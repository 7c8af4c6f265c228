//! The network genesis: every consensus parameter in one document shared by all members.
//!
//! Different parameters would give different state roots, so none of them is a per-node
//! setting. The genesis hash is the network id: it is committed in every PoW and every event
//! signature, and peers of different networks refuse each other.
//!
//! All values are integers, so every architecture computes the same roots. Trust and coherence are in millionths, ATP in
//! thousandths, durations in milliseconds. Defaults are the
//! parameters docs/PROTOCOL.md lists.

use crate::codec::Writer;
use crate::fixed::{DAY_MS, HOUR_MS, MICRO, MILLI};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version of the genesis encoding that is hashed into the network id.
pub const GENESIS_VERSION: u8 = 4;

/// Longest vote delay a genesis may set: longer would hold finality back by more than a
/// minute after every checkpoint, far beyond any link delay we plan for.
pub const MAX_VOTE_DELAY_MS: u64 = 60_000;

/// Most founders a genesis names: one per member of the largest federation we plan for.
pub const MAX_FOUNDERS: usize = 4_096;

/// Default size of the validator committee. Each validator's two votes per checkpoint reach
/// every node (a checkpoint every 5 s: 2·32/5 ≈ 13 signed votes a second to check and relay,
/// whatever the member count); to stop or fork finality an attacker must hold more than a
/// third of the weight of the 32 most trusted members.
pub const DEFAULT_MAX_VALIDATORS: u32 = 32;

/// Largest committee a genesis may set: the most signatures a certificate carries.
pub const MAX_VALIDATORS: u32 = crate::finality::MAX_CERT_SIGNERS as u32;

/// The network's consensus parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Genesis {
    /// A label for humans; hashed like everything else, so two networks with equal
    /// parameters but different names are different networks.
    pub network_name: String,
    /// Layer 1: required proof-of-work difficulty in leading zero bits.
    pub pow_bits: u8,
    /// Layer 2: length of the sliding rate window.
    pub rate_window_ms: u64,
    /// Layer 2: thoughts allowed per window before the trust and ATP factors.
    pub rate_base_thoughts: u64,
    /// Layer 2: content bytes allowed per window before the factors.
    pub rate_base_bytes: u64,
    /// Layer 2/4: weight of trust in the rate factor, millionths (0.5 → 1 + 0.5·trust).
    pub rate_trust_weight_micro: u64,
    /// Layer 2/9: ATP at which the bonus reaches its maximum of 1 (doubling the rate).
    pub rate_bonus_full_atp_milli: u64,
    /// Layer 3: fewest characters in a thought.
    pub content_min_chars: u64,
    /// Layer 3: most characters in a thought.
    pub content_max_chars: u64,
    /// Layer 3: least coherence accepted, millionths.
    pub coherence_min_micro: u64,
    /// Layer 4: share of the corpus cap any author may hold at trust 0, millionths.
    pub share_base_micro: u64,
    /// Layer 4: extra share per unit of trust, millionths.
    pub share_trust_micro: u64,
    /// Layer 5/6: starting trust of a software-key (L4) member.
    pub trust_start_l4_micro: u64,
    /// Layer 5/6: starting trust of a hardware-bound (L5) member.
    pub trust_start_l5_micro: u64,
    /// Layer 5/6: trust ceiling of an L4 member.
    pub trust_ceiling_l4_micro: u64,
    /// Layer 5/6: trust ceiling of an L5 member.
    pub trust_ceiling_l5_micro: u64,
    /// Layer 5: trust gained per accepted thought at coherence 1 (scaled by coherence).
    pub trust_gain_micro: u64,
    /// Layer 5: trust lost per violation (5:1 against the gain).
    pub trust_penalty_micro: u64,
    /// Layer 7: most thoughts in the live corpus.
    pub corpus_max_thoughts: u64,
    /// Layer 7: most content bytes in the live corpus.
    pub corpus_max_bytes: u64,
    /// Layer 7: pruning starts when either use reaches this share of its cap, millionths.
    pub prune_trigger_micro: u64,
    /// Layer 7: pruning removes thoughts until both uses are at or below this share.
    pub prune_target_micro: u64,
    /// Layer 7: weight of coherence in the keep priority, millionths (recency gets the rest).
    pub keep_coherence_weight_micro: u64,
    /// Layer 7: recency falls linearly from 1 to 0 over this much logical time.
    pub recency_horizon_ms: u64,
    /// Layer 8: inactivity before trust starts to decay.
    pub decay_grace_ms: u64,
    /// Layer 8: decay coefficient, millionths (0.01 → total decay 0.01·ln(1 + days − 7)).
    pub decay_coefficient_micro: u64,
    /// Layer 8: decay never takes trust below this.
    pub decay_floor_micro: u64,
    /// Layer 9: ATP every member starts with.
    pub atp_start_milli: u64,
    /// Layer 9: ATP earned per accepted thought.
    pub atp_reward_milli: u64,
    /// Layer 9: ATP earned per accepted thought of high coherence.
    pub atp_reward_high_milli: u64,
    /// Layer 9: coherence that earns the high reward, millionths.
    pub atp_high_coherence_micro: u64,
    /// Layer 9: ATP lost per violation of layers 2 and 4 (and bad transfers).
    pub atp_violation_milli: u64,
    /// Layer 9: ATP lost per spam (a layer-3 failure: garbage or duplicate).
    pub atp_spam_milli: u64,
    /// Layer 9: ATP recharged per whole day of logical time since registration.
    pub atp_recharge_per_day_milli: u64,
    /// Layer 9: no balance exceeds this.
    pub atp_cap_milli: u64,
    /// Ejection: violations that eject a member.
    pub eject_violations: u32,
    /// Most an event may be dated ahead of the receiver's clock before it waits.
    pub max_future_skew_ms: u64,
    /// Length of an epoch of logical time (state roots are signed per epoch).
    pub epoch_ms: u64,
    /// Members drawn to rate each thought (`Validate` committee size).
    pub committee_size: u32,
    /// Checkpoint every this many epochs: members sign roots and certificates form only there.
    pub finality_every_epochs: u64,
    /// Finality: members sign their vote for a checkpoint this long after its epoch ends.
    /// It must cover the time an event dated just before the end takes to reach every node
    /// (propagation and clock differences): an event that arrives later is left out of the
    /// votes of the nodes that had not seen it, and if that splits the votes the checkpoint
    /// does not certify (the next one does). Shorter is faster finality; 500 ms suits a LAN
    /// or a continent.
    pub vote_delay_ms: u64,
    /// Layer 6: root certificates (PEM) that TPM endorsement certificates must chain to.
    /// Empty: no TPM is verified and every L5 claim counts as L4. In production, the TPM
    /// vendors' EK roots; in tests, the swtpm local CA.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attest_roots: Vec<String>,
    /// Layer 6: the PCRs (SHA-256 bank) a TPM quote must cover. Empty means PCR 0 (the
    /// platform firmware); a boot-state policy usually names 0-7.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attest_pcrs: Vec<u8>,
    /// Layer 6: the SHA-256 digests (hex) of those PCRs' values that a TPM may report: the
    /// known-good boot states of the federation's machines (`web4fed tpm-pcr-digest` prints a
    /// machine's). Empty: any boot state.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attest_pcr_digests: Vec<String>,
    /// Finality: the founding members (hex member ids), whose voting weight is their whole
    /// trust. Every other member votes only with what it earned above the starting trust,
    /// so weight cannot be bought with proof of work (docs/PROTOCOL.md, "Voting weight").
    /// Empty: every member votes with its whole trust — a setting for local experiments
    /// only, since then enough proof of work stops finality.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub founders: Vec<String>,
    /// Finality: when the network was founded (ms since the Unix epoch; `web4fed genesis`
    /// writes the time it ran). A founder whose registration a node has not seen yet weighs
    /// the L4 starting trust, leaking from this time on: so no node certifies alone before
    /// the other founders' registrations reach it, and founders who never join stop
    /// counting after the inactivity leak.
    pub genesis_time_ms: u64,
    /// Finality: a member younger than this (since registration) is *young*; founders never are.
    pub weight_maturity_ms: u64,
    /// Finality: the most of the total voting weight all young members together hold,
    /// millionths (their weights are scaled down together to fit). Below a third, so that
    /// no number of fresh identities can stop or fork finality before they mature.
    pub young_weight_cap_micro: u64,
    /// Finality: the most members that vote on a checkpoint (the validator committee): the
    /// heaviest mature members first, then the heaviest young ones; the rest follow the
    /// certificates. Every validator's prevote and precommit reaches every node, so this
    /// bounds the agreement's traffic per node whatever the federation's size
    /// (docs/PROTOCOL.md, "Voting weight", rule 6).
    pub max_validators: u32,
    /// Finality: a member with no event in the log for this long starts to lose voting
    /// weight (the inactivity leak); running nodes write presence events well before.
    pub inactivity_grace_ms: u64,
    /// Finality: after the grace, voting weight falls linearly to zero over this long.
    pub inactivity_leak_ms: u64,
    /// A running node writes a presence event when its member's feed has been silent this
    /// long; one sooner than half of it after the previous event is a layer-2 violation.
    pub presence_every_ms: u64,
    /// Ratings: how long after a thought its committee may rate it. A thought settles when
    /// every seat has rated, or at the end of this window if more than half have; a seat
    /// that never rates (a silent or Sybil member) cannot hold the author's reward back.
    pub rating_window_ms: u64,
    /// Layer 9: ATP a thought's author earns once its committee has settled it, times the
    /// committee's median rating (on top of the reward at acceptance).
    pub rating_reward_milli: u64,
    /// Layer 5: trust a thought's author gains once its committee has rated it, times the
    /// median rating.
    pub rating_trust_gain_micro: u64,
    /// Layer 5/9: a rating within this distance of its committee's median agrees with it.
    pub rating_tolerance_micro: u64,
    /// Layer 9: ATP a rater earns for a rating that agrees with its committee's median.
    pub rater_reward_milli: u64,
    /// Layer 5: trust a rater loses for a rating that strays from its committee's median
    /// (small: a fiftieth of a violation's by default, so only a habit of straying costs).
    pub rater_stray_penalty_micro: u64,
}

impl Default for Genesis {
    fn default() -> Self {
        Self {
            network_name: "web4fed".into(),
            pow_bits: 22,
            rate_window_ms: 60_000,
            rate_base_thoughts: 10,
            rate_base_bytes: 100_000,
            rate_trust_weight_micro: MICRO / 2,
            rate_bonus_full_atp_milli: 1_000 * MILLI,
            content_min_chars: 10,
            content_max_chars: 10_000,
            coherence_min_micro: 300_000,
            share_base_micro: 50_000,
            share_trust_micro: 450_000,
            trust_start_l4_micro: 100_000,
            trust_start_l5_micro: 300_000,
            trust_ceiling_l4_micro: 850_000,
            trust_ceiling_l5_micro: MICRO,
            trust_gain_micro: 10_000,
            trust_penalty_micro: 50_000,
            corpus_max_thoughts: 10_000,
            corpus_max_bytes: 100_000_000,
            prune_trigger_micro: 900_000,
            prune_target_micro: 700_000,
            keep_coherence_weight_micro: 600_000,
            recency_horizon_ms: 10 * HOUR_MS,
            decay_grace_ms: 7 * DAY_MS,
            decay_coefficient_micro: 10_000,
            decay_floor_micro: 100_000,
            atp_start_milli: 100 * MILLI,
            atp_reward_milli: MILLI,
            atp_reward_high_milli: 2 * MILLI,
            atp_high_coherence_micro: 800_000,
            atp_violation_milli: 5 * MILLI,
            atp_spam_milli: 10 * MILLI,
            atp_recharge_per_day_milli: 10 * MILLI,
            atp_cap_milli: 10_000 * MILLI,
            eject_violations: 3,
            max_future_skew_ms: 5_000,
            epoch_ms: 1_000,
            committee_size: 3,
            finality_every_epochs: 5,
            vote_delay_ms: 500,
            attest_roots: Vec::new(),
            attest_pcrs: Vec::new(),
            attest_pcr_digests: Vec::new(),
            founders: Vec::new(),
            genesis_time_ms: 0,
            weight_maturity_ms: 7 * DAY_MS,
            young_weight_cap_micro: 200_000,
            max_validators: DEFAULT_MAX_VALIDATORS,
            inactivity_grace_ms: 5 * 60_000,
            inactivity_leak_ms: 10 * 60_000,
            presence_every_ms: 60_000,
            rating_window_ms: 5 * 60_000,
            rating_reward_milli: 2 * MILLI,
            rating_trust_gain_micro: 5_000,
            rating_tolerance_micro: 250_000,
            rater_reward_milli: MILLI / 10,
            rater_stray_penalty_micro: 1_000,
        }
    }
}

/// A genesis value that would make the rules meaningless or unsafe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid genesis: {0}")]
pub struct GenesisError(pub String);

impl Genesis {
    /// The default parameters at a given PoW difficulty: what `init --pow-bits N` uses, so
    /// nodes initialised separately with the same flags land on the same network.
    pub fn with_pow_bits(bits: u8) -> Self {
        Self {
            pow_bits: bits,
            ..Self::default()
        }
    }

    /// Checks the relationships between parameters that the rules rely on.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let err = |s: &str| Err(GenesisError(s.to_string()));
        if self.network_name.len() > 64 {
            return err("network_name is longer than 64 bytes");
        }
        if self.pow_bits > crate::pow::POW_BITS_MAX {
            return err("pow_bits above the ceiling of 64");
        }
        if self.rate_window_ms == 0 || self.epoch_ms == 0 || self.recency_horizon_ms == 0 {
            return err("rate_window_ms, epoch_ms and recency_horizon_ms must be positive");
        }
        if self.rating_window_ms == 0 {
            return err("rating_window_ms must be positive");
        }
        if self.rate_bonus_full_atp_milli == 0 {
            return err("rate_bonus_full_atp_milli must be positive");
        }
        if self.content_min_chars > self.content_max_chars
            || self.content_max_chars > crate::event::MAX_CONTENT_CHARS as u64
        {
            return err("content_min_chars ≤ content_max_chars ≤ 10,000 must hold");
        }
        for (name, v) in [
            ("coherence_min_micro", self.coherence_min_micro),
            ("trust_start_l4_micro", self.trust_start_l4_micro),
            ("trust_start_l5_micro", self.trust_start_l5_micro),
            ("trust_ceiling_l4_micro", self.trust_ceiling_l4_micro),
            ("trust_ceiling_l5_micro", self.trust_ceiling_l5_micro),
            ("prune_trigger_micro", self.prune_trigger_micro),
            ("prune_target_micro", self.prune_target_micro),
            (
                "keep_coherence_weight_micro",
                self.keep_coherence_weight_micro,
            ),
            ("decay_floor_micro", self.decay_floor_micro),
            ("atp_high_coherence_micro", self.atp_high_coherence_micro),
            ("rating_trust_gain_micro", self.rating_trust_gain_micro),
            ("rating_tolerance_micro", self.rating_tolerance_micro),
            ("rater_stray_penalty_micro", self.rater_stray_penalty_micro),
        ] {
            if v > MICRO {
                return Err(GenesisError(format!("{name} is above 1.0")));
            }
        }
        if self.prune_target_micro >= self.prune_trigger_micro {
            return err("prune_target_micro must be below prune_trigger_micro");
        }
        if self.trust_start_l4_micro > self.trust_ceiling_l4_micro
            || self.trust_start_l5_micro > self.trust_ceiling_l5_micro
        {
            return err("starting trust above its ceiling");
        }
        if self.atp_start_milli > self.atp_cap_milli {
            return err("atp_start_milli above atp_cap_milli");
        }
        if self.corpus_max_thoughts == 0 || self.corpus_max_bytes == 0 {
            return err("corpus caps must be positive");
        }
        if self.eject_violations == 0 {
            return err("eject_violations must be at least 1");
        }
        if self.finality_every_epochs == 0 {
            return err("finality_every_epochs must be at least 1");
        }
        if self.committee_size > 64 {
            return err("committee_size above 64");
        }
        if self.attest_roots.len() > crate::tpm::MAX_ROOTS {
            return err("more than 64 attest_roots");
        }
        for (i, pem) in self.attest_roots.iter().enumerate() {
            crate::tpm::pem_to_der(pem)
                .map_err(|e| GenesisError(format!("attest_roots[{i}]: {e}")))?;
        }
        let mut pcrs = self.attest_pcrs.clone();
        pcrs.sort_unstable();
        pcrs.dedup();
        if pcrs.len() != self.attest_pcrs.len()
            || pcrs.last().is_some_and(|p| *p > crate::tpm::MAX_PCR)
        {
            return err("attest_pcrs must be distinct PCR numbers 0-23");
        }
        if self.attest_pcr_digests.len() > crate::tpm::MAX_PCR_DIGESTS {
            return err("more than 256 attest_pcr_digests");
        }
        for (i, d) in self.attest_pcr_digests.iter().enumerate() {
            if hex::decode(d).map_or(true, |b| b.len() != 32) {
                return Err(GenesisError(format!(
                    "attest_pcr_digests[{i}]: not 64 hex digits (a SHA-256 digest)"
                )));
            }
        }
        if self.founders.len() > MAX_FOUNDERS {
            return err("more than 4,096 founders");
        }
        let founders = self.founder_ids();
        if founders.len() != self.founders.len() {
            return err("founders must be distinct member ids (64 hex digits each)");
        }
        if self.young_weight_cap_micro >= MICRO / 3 {
            return err("young_weight_cap_micro must be below a third (333,333)");
        }
        if self.max_validators == 0 || self.max_validators > MAX_VALIDATORS {
            return Err(GenesisError(format!(
                "max_validators must be 1 to {MAX_VALIDATORS}"
            )));
        }
        if self.vote_delay_ms > MAX_VOTE_DELAY_MS {
            return err("vote_delay_ms above a minute");
        }
        if self.inactivity_leak_ms == 0 || self.presence_every_ms == 0 {
            return err("inactivity_leak_ms and presence_every_ms must be positive");
        }
        if self.presence_every_ms.saturating_mul(2) > self.inactivity_grace_ms {
            return err("presence_every_ms must be at most half of inactivity_grace_ms");
        }
        Ok(())
    }

    /// The founders as member ids (entries that do not parse are left out; `validate`
    /// refuses them).
    pub fn founder_ids(&self) -> std::collections::BTreeSet<crate::identity::MemberId> {
        self.founders
            .iter()
            .filter_map(|h| {
                let b: [u8; 32] = hex::decode(h).ok()?.try_into().ok()?;
                Some(crate::identity::MemberId(b))
            })
            .collect()
    }

    /// The canonical encoding that is hashed into the network id. Field order is fixed here;
    /// adding a field means a new `GENESIS_VERSION`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(512);
        w.raw(b"web4fed/genesis");
        w.u8(GENESIS_VERSION);
        w.bytes16(self.network_name.as_bytes());
        w.u8(self.pow_bits);
        for v in [
            self.rate_window_ms,
            self.rate_base_thoughts,
            self.rate_base_bytes,
            self.rate_trust_weight_micro,
            self.rate_bonus_full_atp_milli,
            self.content_min_chars,
            self.content_max_chars,
            self.coherence_min_micro,
            self.share_base_micro,
            self.share_trust_micro,
            self.trust_start_l4_micro,
            self.trust_start_l5_micro,
            self.trust_ceiling_l4_micro,
            self.trust_ceiling_l5_micro,
            self.trust_gain_micro,
            self.trust_penalty_micro,
            self.corpus_max_thoughts,
            self.corpus_max_bytes,
            self.prune_trigger_micro,
            self.prune_target_micro,
            self.keep_coherence_weight_micro,
            self.recency_horizon_ms,
            self.decay_grace_ms,
            self.decay_coefficient_micro,
            self.decay_floor_micro,
            self.atp_start_milli,
            self.atp_reward_milli,
            self.atp_reward_high_milli,
            self.atp_high_coherence_micro,
            self.atp_violation_milli,
            self.atp_spam_milli,
            self.atp_recharge_per_day_milli,
            self.atp_cap_milli,
            self.max_future_skew_ms,
            self.epoch_ms,
        ] {
            w.u64(v);
        }
        w.u32(self.eject_violations);
        w.u32(self.committee_size);
        w.u64(self.finality_every_epochs);
        for v in [
            self.vote_delay_ms,
            self.genesis_time_ms,
            self.weight_maturity_ms,
            self.young_weight_cap_micro,
            self.inactivity_grace_ms,
            self.inactivity_leak_ms,
            self.presence_every_ms,
            self.rating_window_ms,
            self.rating_reward_milli,
            self.rating_trust_gain_micro,
            self.rating_tolerance_micro,
            self.rater_reward_milli,
            self.rater_stray_penalty_micro,
        ] {
            w.u64(v);
        }
        w.u32(self.max_validators);
        let founders = self.founder_ids();
        w.u32(founders.len() as u32);
        for f in &founders {
            w.raw(&f.0);
        }
        // Appended only when present, so networks without TPM roots keep their ids.
        let roots = self.attest_roots_der();
        if !roots.is_empty() {
            w.raw(b"tpm-roots");
            w.u8(roots.len() as u8);
            for r in &roots {
                w.bytes16(r);
            }
        }
        // Likewise the boot-state policy.
        let policy = self.pcr_policy();
        if !self.attest_pcrs.is_empty() {
            w.raw(b"tpm-pcrs");
            w.u8(policy.pcrs.len() as u8);
            for p in &policy.pcrs {
                w.u8(*p);
            }
        }
        if !policy.digests.is_empty() {
            w.raw(b"tpm-pcr-digests");
            w.u16(policy.digests.len() as u16);
            for d in &policy.digests {
                w.raw(d);
            }
        }
        w.finish()
    }

    /// The boot-state policy TPM quotes are checked against.
    pub fn pcr_policy(&self) -> crate::tpm::PcrPolicy {
        crate::tpm::PcrPolicy::new(
            &self.attest_pcrs,
            self.attest_pcr_digests
                .iter()
                .filter_map(|d| hex::decode(d).ok()?.try_into().ok())
                .collect(),
        )
    }

    /// The TPM roots as DER (roots that do not parse are left out; `validate` refuses them).
    pub fn attest_roots_der(&self) -> Vec<Vec<u8>> {
        self.attest_roots
            .iter()
            .filter_map(|p| crate::tpm::pem_to_der(p).ok())
            .collect()
    }

    /// The network id: SHA-256 of the canonical encoding.
    pub fn network_id(&self) -> [u8; 32] {
        Sha256::digest(self.canonical_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_ids_are_stable_per_parameters() {
        let g = Genesis::default();
        g.validate().unwrap();
        assert_eq!(g.network_id(), Genesis::default().network_id());
        assert_ne!(g.network_id(), Genesis::with_pow_bits(8).network_id());
        let bad = Genesis {
            prune_target_micro: 950_000,
            ..Genesis::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_boot_state_policy_is_checked_and_changes_the_network_id() {
        let plain = Genesis::default();
        let pcrs = Genesis {
            attest_pcrs: vec![0, 1, 2, 3, 4, 5, 6, 7],
            ..Genesis::default()
        };
        let digests = Genesis {
            attest_pcr_digests: vec!["ab".repeat(32)],
            ..pcrs.clone()
        };
        for g in [&pcrs, &digests] {
            g.validate().unwrap();
        }
        let ids = [plain.network_id(), pcrs.network_id(), digests.network_id()];
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
        assert_eq!(digests.pcr_policy().pcrs, vec![0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(digests.pcr_policy().digests, vec![[0xab; 32]]);
        assert_eq!(plain.pcr_policy().tools_selection(), "sha256:0");
        for bad in [
            Genesis {
                attest_pcrs: vec![1, 1],
                ..Genesis::default()
            },
            Genesis {
                attest_pcrs: vec![24],
                ..Genesis::default()
            },
            Genesis {
                attest_pcr_digests: vec!["abc".into()],
                ..Genesis::default()
            },
            Genesis {
                attest_pcr_digests: vec!["zz".repeat(32)],
                ..Genesis::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
