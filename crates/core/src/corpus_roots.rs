//! The corpus root, kept by bucket and computed lazily.
//!
//! Thoughts are grouped into [`CORPUS_BUCKETS`] buckets by the first byte of their id. A
//! change to a thought only forgets its bucket's root; a root is computed when one is asked
//! for (an epoch boundary), from the bucket's leaves. Under load a bucket changes many times
//! between two roots (a thought arrives, is rated by its committee, settles, is pruned), and
//! rehashing it at every change cost most of a loaded node's CPU; now it is hashed once per
//! root that needs it. A state root therefore costs O(changed buckets · bucket size + 256),
//! not O(changes · bucket size).

use crate::event::EventId;
use crate::merkle;
use std::sync::OnceLock;

/// Buckets the corpus root is built from (see the module doc): a state root hashes 256
/// bucket roots rather than the whole corpus.
pub const CORPUS_BUCKETS: usize = 256;

/// The roots of the corpus buckets and of the corpus, each remembered until a thought in it
/// changes. Holds no thought of its own: the corpus is passed in when a root is needed, and
/// a forgotten root is recomputed from it, so it can never disagree with the corpus as long
/// as every change calls [`CorpusRoots::forget`].
#[derive(Debug, Clone)]
pub(crate) struct CorpusRoots {
    buckets: Vec<OnceLock<[u8; 32]>>,
    top: OnceLock<[u8; 32]>,
}

impl Default for CorpusRoots {
    fn default() -> Self {
        CorpusRoots {
            buckets: (0..CORPUS_BUCKETS).map(|_| OnceLock::new()).collect(),
            top: OnceLock::new(),
        }
    }
}

impl CorpusRoots {
    /// Forgets the roots a change to thought `id` makes stale: its bucket's and the top.
    pub(crate) fn forget(&mut self, id: &EventId) {
        self.buckets[usize::from(id.0[0])] = OnceLock::new();
        self.top = OnceLock::new();
    }

    /// The corpus root: the Merkle root over the bucket roots, each the Merkle root of its
    /// thoughts' leaves in id order.
    pub(crate) fn root<E>(
        &self,
        corpus: &imbl::OrdMap<EventId, E>,
        leaf: impl Fn(&E) -> [u8; 32],
    ) -> [u8; 32] {
        *self.top.get_or_init(|| {
            let roots = (0..CORPUS_BUCKETS)
                .map(|b| *self.buckets[b].get_or_init(|| bucket_root(corpus, b as u8, &leaf)))
                .collect();
            merkle::root(roots)
        })
    }

    /// Every bucket's root as of now (tests compare them with a fresh computation).
    #[cfg(test)]
    pub(crate) fn bucket_roots<E>(
        &self,
        corpus: &imbl::OrdMap<EventId, E>,
        leaf: impl Fn(&E) -> [u8; 32],
    ) -> Vec<[u8; 32]> {
        (0..CORPUS_BUCKETS)
            .map(|b| *self.buckets[b].get_or_init(|| bucket_root(corpus, b as u8, &leaf)))
            .collect()
    }
}

/// The Merkle root of the leaves of the thoughts whose id starts with byte `b`.
fn bucket_root<E>(
    corpus: &imbl::OrdMap<EventId, E>,
    b: u8,
    leaf: &impl Fn(&E) -> [u8; 32],
) -> [u8; 32] {
    let mut lo = [0u8; 32];
    lo[0] = b;
    let mut hi = [0xffu8; 32];
    hi[0] = b;
    merkle::root(
        corpus
            .range(EventId(lo)..=EventId(hi))
            .map(|(_, e)| leaf(e))
            .collect(),
    )
}
