//! A map for the many small maps a broker holds per client: a session's subscriptions and
//! the subscribers of one filter, which most of the time hold a single entry.
//!
//! An empty `std` `HashMap` allocates nothing, but its first insert allocates four
//! buckets (468 bytes for a session's subscriptions, 276 for a filter's subscribers), and
//! an idle client holds one of each. A single entry is held inline (no allocation at
//! all: a vector of one was a 112-byte allocation for a session's subscription and 64
//! for a filter's subscriber); up to [`INLINE_MAX`] entries live in a vector grown one
//! step at a time (exactly the entries, found by comparison); past that the map becomes
//! a boxed `HashMap` and stays one.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map;
use std::hash::Hash;

/// The most entries kept in the vector; one more turns it into a hash map.
pub const INLINE_MAX: usize = 8;

/// A map of few entries, cheap when it holds one or none.
#[derive(Clone)]
pub enum SmallMap<K, V> {
    /// Exactly one entry, inline.
    One(K, V),
    /// None, or two up to [`INLINE_MAX`] entries, unordered.
    Few(Vec<(K, V)>),
    /// More than that, at some point (boxed: the map's header is 48 bytes).
    Many(Box<HashMap<K, V>>),
}

/// Tables at least this large are cut when they empty out (below it, not worth a move).
const SHRINK_FROM: usize = 64;

/// After removals: a table at most a quarter full is cut to twice its entries. A hash
/// table never gives its buckets back on its own, so after a burst of clients the
/// session registry and the subscription tree kept their largest size (about 100 bytes
/// per client that had been connected). The cut is amortised: a table is about half full
/// after it grows or is cut, so at least half of its entries went before the next cut.
pub fn shrink_when_sparse<K: Eq + Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() >= SHRINK_FROM && map.len() * 4 <= map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap::Few(Vec::new())
    }
}

impl<K, V> SmallMap<K, V> {
    /// An empty map (allocates nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            SmallMap::One(..) => 1,
            SmallMap::Few(v) => v.len(),
            SmallMap::Many(m) => m.len(),
        }
    }

    /// True when the map holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries, in no particular order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        match self {
            SmallMap::One(k, v) => Iter::One(Some((k, v))),
            SmallMap::Few(v) => Iter::Few(v.iter()),
            SmallMap::Many(m) => Iter::Many(m.iter()),
        }
    }

    /// The values, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

impl<K: Eq + Hash, V> SmallMap<K, V> {
    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            SmallMap::One(k, v) => (k.borrow() == key).then_some(v),
            SmallMap::Few(v) => v.iter().find(|(k, _)| k.borrow() == key).map(|(_, v)| v),
            SmallMap::Many(m) => m.get(key),
        }
    }

    /// The value of `key`, to change it.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            SmallMap::One(k, v) => ((*k).borrow() == key).then_some(v),
            SmallMap::Few(v) => v
                .iter_mut()
                .find(|(k, _)| k.borrow() == key)
                .map(|(_, v)| v),
            SmallMap::Many(m) => m.get_mut(key),
        }
    }

    /// True when `key` has an entry.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Inserts or replaces the value of `key`; returns the previous one.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self {
            SmallMap::One(k, v) if *k == key => return Some(std::mem::replace(v, value)),
            SmallMap::One(..) => {}
            SmallMap::Few(v) if v.is_empty() => {}
            SmallMap::Few(v) => {
                if let Some((_, old)) = v.iter_mut().find(|(k, _)| *k == key) {
                    return Some(std::mem::replace(old, value));
                }
                if v.len() < INLINE_MAX {
                    if v.len() == v.capacity() {
                        // 2, 4, 8: a vector's own first step is four entries.
                        v.reserve_exact(v.len());
                    }
                    v.push((key, value));
                } else {
                    let mut m: HashMap<K, V> = v.drain(..).collect();
                    m.insert(key, value);
                    *self = SmallMap::Many(Box::new(m));
                }
                return None;
            }
            SmallMap::Many(m) => return m.insert(key, value),
        }
        // Empty, or one entry of another key.
        *self = match std::mem::take(self) {
            SmallMap::One(k, v) => SmallMap::Few(vec![(k, v), (key, value)]),
            _ => SmallMap::One(key, value),
        };
        None
    }

    /// Removes the entry of `key`; returns its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            SmallMap::One(k, _) => {
                if (*k).borrow() != key {
                    return None;
                }
                match std::mem::take(self) {
                    SmallMap::One(_, value) => Some(value),
                    other => {
                        *self = other;
                        None
                    }
                }
            }
            SmallMap::Few(v) => {
                let i = v.iter().position(|(k, _)| k.borrow() == key)?;
                let (_, value) = v.swap_remove(i);
                if v.is_empty() {
                    // A client that unsubscribed everything holds nothing.
                    *v = Vec::new();
                }
                Some(value)
            }
            SmallMap::Many(m) => m.remove(key),
        }
    }
}

impl<K: std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for SmallMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Iterator over a [`SmallMap`]'s entries.
pub enum Iter<'a, K, V> {
    /// Over the single entry.
    One(Option<(&'a K, &'a V)>),
    /// Over the vector.
    Few(std::slice::Iter<'a, (K, V)>),
    /// Over the hash map.
    Many(hash_map::Iter<'a, K, V>),
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::One(entry) => entry.take(),
            Iter::Few(it) => it.next().map(|(k, v)| (k, v)),
            Iter::Many(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::One(entry) => {
                let n = usize::from(entry.is_some());
                (n, Some(n))
            }
            Iter::Few(it) => it.size_hint(),
            Iter::Many(it) => it.size_hint(),
        }
    }
}

impl<'a, K, V> IntoIterator for &'a SmallMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_table_emptied_to_a_quarter_is_cut_and_keeps_every_entry() {
        let mut map: HashMap<u32, u32> = (0..2000).map(|k| (k, k)).collect();
        let grown = map.capacity();
        for k in 0..1990 {
            map.remove(&k);
            shrink_when_sparse(&mut map);
        }
        assert!(map.capacity() < grown / 16, "{} of {grown}", map.capacity());
        assert_eq!(map.len(), 10);
        assert!((1990..2000).all(|k| map.get(&k) == Some(&k)));
        // A small table is left alone (cut, it would hold four entries).
        let mut small: HashMap<u32, u32> = (0..40).map(|k| (k, k)).collect();
        small.retain(|k, _| *k < 2);
        shrink_when_sparse(&mut small);
        assert!(
            small.capacity() >= 28,
            "below SHRINK_FROM: {}",
            small.capacity()
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u32),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Keys from a small range, so that inserts replace and removes hit.
        prop_oneof![
            (0u8..24, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0u8..24).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Any sequence of inserts and removes answers exactly like a `HashMap`, across
        /// the change from vector to hash map.
        #[test]
        fn behaves_like_a_hash_map(ops in proptest::collection::vec(op(), 0..200)) {
            let mut small: SmallMap<u8, u32> = SmallMap::new();
            let mut model: HashMap<u8, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(small.insert(k, v), model.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(small.remove(&k), model.remove(&k)),
                }
                prop_assert_eq!(small.len(), model.len());
                prop_assert_eq!(small.is_empty(), model.is_empty());
                for k in 0u8..24 {
                    prop_assert_eq!(small.get(&k), model.get(&k));
                    prop_assert_eq!(small.contains_key(&k), model.contains_key(&k));
                }
                let mut entries: Vec<(u8, u32)> = small.iter().map(|(k, v)| (*k, *v)).collect();
                entries.sort_unstable();
                let mut expected: Vec<(u8, u32)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                expected.sort_unstable();
                prop_assert_eq!(entries, expected);
            }
        }
    }

    #[test]
    fn one_entry_is_inline_and_the_map_starts_past_the_inline_limit() {
        let mut m: SmallMap<String, u64> = SmallMap::new();
        assert!(
            matches!(&m, SmallMap::Few(v) if v.capacity() == 0),
            "empty: no allocation"
        );
        m.insert("a/b".into(), 1);
        assert!(matches!(&m, SmallMap::One(..)), "one entry: inline, {m:?}");
        assert_eq!(m.insert("a/b".into(), 5), Some(1), "replaced in place");
        assert!(matches!(&m, SmallMap::One(..)));
        m.insert("t/1".into(), 1);
        assert!(matches!(&m, SmallMap::Few(v) if v.capacity() == 2), "{m:?}");
        for i in 2..INLINE_MAX {
            assert_eq!(m.insert(format!("t/{i}"), i as u64), None);
        }
        assert!(matches!(&m, SmallMap::Few(v) if v.capacity() == INLINE_MAX));
        m.insert("one/more".into(), 9);
        assert!(matches!(m, SmallMap::Many(_)));
        assert_eq!(m.len(), INLINE_MAX + 1);
        assert_eq!(m.get("a/b"), Some(&5), "lookups by a borrowed key");
        *m.get_mut("a/b").unwrap() = 2;
        assert_eq!(m.remove("a/b"), Some(2));
        assert_eq!(m.len(), INLINE_MAX);
    }

    #[test]
    fn removing_the_last_entry_releases_the_vector() {
        let mut m: SmallMap<u8, u8> = SmallMap::new();
        m.insert(1, 1);
        m.insert(2, 2);
        assert_eq!(m.remove(&1), Some(1));
        assert_eq!(m.remove(&2), Some(2));
        assert!(matches!(&m, SmallMap::Few(v) if v.capacity() == 0));
        assert_eq!(m.remove(&2), None);
    }

    #[test]
    fn the_inline_entry_is_looked_up_changed_and_removed_by_its_key_only() {
        let mut m: SmallMap<String, u8> = SmallMap::new();
        m.insert("a".into(), 1);
        assert_eq!(m.get("b"), None);
        assert_eq!(m.get_mut("b"), None);
        assert_eq!(m.remove("b"), None);
        assert_eq!(m.len(), 1);
        *m.get_mut("a").unwrap() = 3;
        assert_eq!(m.iter().collect::<Vec<_>>(), [(&"a".to_owned(), &3)]);
        assert_eq!(m.iter().size_hint(), (1, Some(1)));
        assert_eq!(m.remove("a"), Some(3));
        assert!(m.is_empty());
        assert!(matches!(&m, SmallMap::Few(v) if v.capacity() == 0));
    }

    #[test]
    fn a_filter_with_one_subscriber_costs_no_allocation_beyond_its_slot() {
        // The router's (client id, subscriber) entry, inline: 72 bytes in the slot
        // instead of a 48-byte map header and an 80-byte allocation.
        let size =
            std::mem::size_of::<SmallMap<crate::types::ClientId, crate::router::Subscriber>>();
        assert!(size <= 72, "SmallMap is {size} bytes");
    }
}
