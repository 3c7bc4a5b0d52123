//! A hash map split into shards that are shared between snapshots and copied
//! on write: an incremental update copies the few shards it touches and
//! shares the rest with the revision before it.
//!
//! Cloning is one reference count per shard; a lookup hashes once to pick
//! the shard and then is a plain [`foldhash`] map lookup.

use std::{
    borrow::Borrow,
    hash::{BuildHasher, Hash},
    sync::Arc,
};

use foldhash::{HashMap, HashMapExt as _};

/// Shards per map: at a million keys, a change copies about 16,000 entries.
const SHARDS: usize = 64;

pub(super) struct Sharded<K, V> {
    shards: Box<[Arc<HashMap<K, V>>]>,
}

impl<K, V> Clone for Sharded<K, V> {
    fn clone(&self) -> Self {
        Self {
            shards: self.shards.clone(),
        }
    }
}

impl<K, V> Default for Sharded<K, V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Arc::new(HashMap::new())).collect(),
        }
    }
}

/// The shard a key lives in: a fixed hash, independent of the maps' own.
fn shard_of<Q: Hash + ?Sized>(k: &Q) -> usize {
    let h = foldhash::quality::FixedState::with_seed(0x5eed).hash_one(k);
    (h >> 58) as usize % SHARDS
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    pub(super) fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[shard_of(k)].get(k)
    }

    pub(super) fn contains_key<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(k).is_some()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Sharded<K, V> {
    /// The shard holding `k`, copied first if another snapshot shares it.
    fn shard_mut<Q>(&mut self, k: &Q) -> &mut HashMap<K, V>
    where
        Q: Hash + ?Sized,
    {
        Arc::make_mut(&mut self.shards[shard_of(k)])
    }

    /// The value at `k`, inserted with `V::default()` when missing.
    pub(super) fn entry(&mut self, k: K) -> &mut V
    where
        V: Default,
    {
        self.shard_mut(&k).entry(k).or_default()
    }

    pub(super) fn get_mut<Q>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.contains_key(k) {
            return None;
        }
        self.shard_mut(k).get_mut(k)
    }

    pub(super) fn insert(&mut self, k: K, v: V) -> Option<V> {
        self.shard_mut(&k).insert(k, v)
    }

    pub(super) fn remove<Q>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.contains_key(k) {
            return None;
        }
        self.shard_mut(k).remove(k)
    }
}

impl<K: Hash + Eq + Clone, V: Clone> FromIterator<(K, V)> for Sharded<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut out = Self::default();
        for (k, v) in iter {
            out.insert(k, v);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_copies_one_shard_and_shares_the_rest() {
        let mut a: Sharded<String, u32> = (0..1000).map(|i| (format!("k{i}"), i)).collect();
        let before = a.clone();
        *a.get_mut("k7").unwrap() = 70;
        a.insert("new".into(), 1);
        a.remove("k8");
        assert_eq!(before.get("k7"), Some(&7));
        assert_eq!(before.get("k8"), Some(&8));
        assert!(!before.contains_key("new"));
        assert_eq!(a.get("k7"), Some(&70));
        assert!(!a.contains_key("k8"));
        let shared = a
            .shards
            .iter()
            .zip(before.shards.iter())
            .filter(|(x, y)| Arc::ptr_eq(x, y))
            .count();
        assert!(shared >= SHARDS - 3, "{shared} of {SHARDS} shards shared");
    }
}
