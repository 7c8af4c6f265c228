//! Serde for the state's persistent collections (imbl), decoding through the standard ones.
//!
//! imbl's own `Deserialize` reserves as many slots as the input's length prefix claims, so a
//! snapshot body claiming billions of entries made the decoder ask for that much memory
//! before reading one (found by the `snapshot` fuzz target: out of memory). Serde's standard
//! collections cap what a length prefix can reserve, so these adapters decode into them and
//! convert. The encoding is the standard one (a map or a sequence with its length), the same
//! bytes the standard collections produce.

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// Writes `len` entries as a map (postcard needs the length first).
fn write_map<'a, K: Serialize + 'a, V: Serialize + 'a, S: Serializer>(
    len: usize,
    entries: impl Iterator<Item = (&'a K, &'a V)>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut out = s.serialize_map(Some(len))?;
    for (k, v) in entries {
        out.serialize_entry(k, v)?;
    }
    out.end()
}

/// Writes `len` items as a sequence (postcard needs the length first).
fn write_seq<'a, A: Serialize + 'a, S: Serializer>(
    len: usize,
    items: impl Iterator<Item = &'a A>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut out = s.serialize_seq(Some(len))?;
    for a in items {
        out.serialize_element(a)?;
    }
    out.end()
}

/// `imbl::OrdMap` as a map.
pub(crate) mod ord_map {
    use super::*;

    pub(crate) fn serialize<K, V, S>(m: &imbl::OrdMap<K, V>, s: S) -> Result<S::Ok, S::Error>
    where
        K: Serialize + Ord + Clone,
        V: Serialize + Clone,
        S: Serializer,
    {
        write_map(m.len(), m.iter(), s)
    }

    pub(crate) fn deserialize<'de, K, V, D>(d: D) -> Result<imbl::OrdMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord + Clone,
        V: Deserialize<'de> + Clone,
        D: Deserializer<'de>,
    {
        Ok(std::collections::BTreeMap::<K, V>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

/// `imbl::OrdSet` as a sequence.
pub(crate) mod ord_set {
    use super::*;

    pub(crate) fn serialize<A, S>(set: &imbl::OrdSet<A>, s: S) -> Result<S::Ok, S::Error>
    where
        A: Serialize + Ord + Clone,
        S: Serializer,
    {
        write_seq(set.len(), set.iter(), s)
    }

    pub(crate) fn deserialize<'de, A, D>(d: D) -> Result<imbl::OrdSet<A>, D::Error>
    where
        A: Deserialize<'de> + Ord + Clone,
        D: Deserializer<'de>,
    {
        Ok(std::collections::BTreeSet::<A>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

/// `imbl::Vector` as a sequence.
pub(crate) mod vector {
    use super::*;

    pub(crate) fn serialize<A, S>(v: &imbl::Vector<A>, s: S) -> Result<S::Ok, S::Error>
    where
        A: Serialize + Clone,
        S: Serializer,
    {
        write_seq(v.len(), v.iter(), s)
    }

    pub(crate) fn deserialize<'de, A, D>(d: D) -> Result<imbl::Vector<A>, D::Error>
    where
        A: Deserialize<'de> + Clone,
        D: Deserializer<'de>,
    {
        Ok(Vec::<A>::deserialize(d)?.into_iter().collect())
    }
}

/// `imbl::HashMap` as a map.
pub(crate) mod hash_map {
    use super::*;
    use std::hash::Hash;

    pub(crate) fn serialize<K, V, S>(m: &imbl::HashMap<K, V>, s: S) -> Result<S::Ok, S::Error>
    where
        K: Serialize + Hash + Eq + Clone,
        V: Serialize + Clone,
        S: Serializer,
    {
        write_map(m.len(), m.iter(), s)
    }

    pub(crate) fn deserialize<'de, K, V, D>(d: D) -> Result<imbl::HashMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Hash + Eq + Clone,
        V: Deserialize<'de> + Clone,
        D: Deserializer<'de>,
    {
        Ok(std::collections::HashMap::<K, V>::deserialize(d)?
            .into_iter()
            .collect())
    }
}
