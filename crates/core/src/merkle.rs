//! Binary Merkle roots with domain-separated leaves and nodes (so a leaf can never be
//! passed off as an inner node). An odd node at the end of a level is promoted unchanged.

use sha2::{Digest, Sha256};

/// The root of an empty tree.
pub const EMPTY_ROOT: [u8; 32] = [0u8; 32];

/// Hashes a leaf's canonical bytes.
pub fn leaf(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(bytes);
    h.finalize().into()
}

fn node(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(a);
    h.update(b);
    h.finalize().into()
}

/// The Merkle root over leaf hashes in the given order.
pub fn root(mut level: Vec<[u8; 32]>) -> [u8; 32] {
    if level.is_empty() {
        return EMPTY_ROOT;
    }
    while level.len() > 1 {
        let next: Vec<[u8; 32]> = level
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => node(a, b),
                [a] => *a,
                _ => unreachable!("chunks(2) yields one or two items"),
            })
            .collect();
        level = next;
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_differ_by_content_and_order() {
        let a = leaf(b"a");
        let b = leaf(b"b");
        let c = leaf(b"c");
        assert_eq!(root(vec![]), EMPTY_ROOT);
        assert_eq!(root(vec![a]), a);
        assert_ne!(root(vec![a, b]), root(vec![b, a]));
        assert_ne!(root(vec![a, b, c]), root(vec![a, b]));
        assert_eq!(root(vec![a, b, c]), node(&node(&a, &b), &c));
    }
}
