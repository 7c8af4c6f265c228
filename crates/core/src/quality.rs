//! Layer 3 quality checks: the versioned, deterministic integer coherence scorer and the
//! normalisation used to detect duplicate content.
//!
//! The scorer is deliberately simple and entirely integer; richer (ML) judgements enter the
//! network only as signed `Validate` events. It classifies characters by ASCII rules only, so
//! its result cannot change with the Unicode tables of a compiler version: every non-ASCII
//! character counts as a letter and as a word character.

use crate::fixed::MICRO;
use sha2::{Digest, Sha256};

/// Identifies this scorer in `Validate` events and docs. Changing the formula means a new
/// version and a new genesis.
pub const COHERENCE_SCORER: &str = "coherence-v1";

/// Words needed before a text can score fully; fewer scale the score down proportionally.
const FULL_SCORE_MIN_WORDS: u64 = 3;
/// Mean word length (in characters) that scores fully: `[low, high]`.
const GOOD_WORD_LEN: (u64, u64) = (3, 10);
/// Mean word length at which the length component reaches zero, above the band.
const BAD_WORD_LEN_HIGH: u64 = 20;
/// Distinct words are counted against at most this many words, so long prose that reuses
/// common words is not punished while a repeated slogan is.
const DISTINCT_WINDOW_WORDS: u64 = 16;

fn is_word_char(c: char) -> bool {
    !c.is_ascii() || c.is_ascii_alphanumeric() || c == '\''
}

fn is_letter(c: char) -> bool {
    !c.is_ascii() || c.is_ascii_alphabetic()
}

/// Coherence of a text in millionths: the product of four ratios, times `min(1, words/3)`:
/// letters among visible characters; the word-length band (mean length 3 to 10 scores 1,
/// falling linearly to 0 at 1 and at 20); distinct words among the first up to 16 words'
/// worth (so long prose is not punished for reusing "the", but a repeated slogan is); and
/// words that contain a vowel or are plain numbers (keyboard mash has none). Ordinary
/// sentences score above 0.8; mash, symbol floods, repeated words and bare numbers score
/// below the default floor of 0.3.
pub fn coherence_micro(text: &str) -> u64 {
    let mut visible = 0u64;
    let mut letters = 0u64;
    for c in text.chars() {
        if !c.is_whitespace() {
            visible += 1;
            if is_letter(c) {
                letters += 1;
            }
        }
    }
    if visible == 0 {
        return 0;
    }
    let mut words: Vec<String> = text
        .split(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let total = words.len() as u64;
    if total == 0 {
        return 0;
    }
    let word_chars: u64 = words.iter().map(|w| w.chars().count() as u64).sum();
    let pronounceable = words
        .iter()
        .filter(|w| {
            w.chars().any(|c| !c.is_ascii() || "aeiouy".contains(c))
                || w.chars().all(|c| c.is_ascii_digit())
        })
        .count() as u64;
    words.sort_unstable();
    words.dedup();
    let distinct = words.len() as u64;

    let letter_ratio = letters * MICRO / visible;
    let distinct_ratio = (distinct * MICRO / total.min(DISTINCT_WINDOW_WORDS)).min(MICRO);
    let vowel_ratio = pronounceable * MICRO / total;
    // Mean word length in millionths of a character.
    let mean_len = word_chars * MICRO / total;
    let (lo, hi) = (GOOD_WORD_LEN.0 * MICRO, GOOD_WORD_LEN.1 * MICRO);
    let len_score = if mean_len < lo {
        mean_len.saturating_sub(MICRO) * MICRO / (lo - MICRO)
    } else if mean_len <= hi {
        MICRO
    } else {
        let top = BAD_WORD_LEN_HIGH * MICRO;
        top.saturating_sub(mean_len) * MICRO / (top - hi)
    };
    let mut score = letter_ratio;
    for factor in [len_score, distinct_ratio, vowel_ratio] {
        score = score * factor / MICRO;
    }
    let scale = total.min(FULL_SCORE_MIN_WORDS);
    (score * scale / FULL_SCORE_MIN_WORDS).min(MICRO)
}

/// The duplicate key of a text: SHA-256 of its words, ASCII-lower-cased, joined by single
/// spaces. Case, punctuation and spacing changes do not make a copy new content.
pub fn content_key(text: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut first = true;
    for w in text
        .split(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
    {
        if !first {
            h.update(b" ");
        }
        first = false;
        h.update(w.to_ascii_lowercase().as_bytes());
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_score_high_and_garbage_low() {
        let good = [
            "Trust in a federation should follow from verifiable evidence.",
            "The Jetson board finished its calibration run overnight without errors.",
            "Partition healing is set reconciliation over signed append-only feeds.",
        ];
        for g in good {
            let s = coherence_micro(g);
            assert!(s >= 800_000, "{g}: {s}");
        }
        let bad = [
            "aaaaaaaaaaaaaaaaaaaaaa",
            "!!!! #### $$$$ %%%% ^^^^",
            "buy buy buy buy buy buy buy buy",
            "qwrt zxcv bnmk pltr sdfg",
            "1234 5678 9012 3456 7890",
        ];
        for b in bad {
            let s = coherence_micro(b);
            assert!(s < 300_000, "{b}: {s}");
        }
        assert_eq!(coherence_micro(""), 0);
        assert_eq!(coherence_micro("   "), 0);
    }

    #[test]
    fn content_key_ignores_case_and_punctuation() {
        assert_eq!(content_key("Hello,   World!"), content_key("hello world"));
        assert_ne!(content_key("hello world"), content_key("hello there"));
    }
}
