//! The retained-message store: at most one value per topic name, found by topic filter when a
//! client subscribes (MQTT 3.1.1 section 3.3.1.3, MQTT 5.0 section 3.3.1.3).
//!
//! It is a trie over topic levels, so a literal level costs one hash lookup, `+` walks one
//! level's children and `#` walks one subtree; no lookup scans every retained topic. It is
//! generic over the stored value and knows nothing about messages, payloads, expiry or
//! locking: "an empty payload deletes" and expiry sweeps are the caller's decisions. It must
//! agree with [`TopicFilter::matches`], including the `$` rule [MQTT-4.7.2-1].
//!
//! Every walk is iterative, so a topic with tens of thousands of levels never overflows the
//! stack, not even on drop.

use std::collections::HashMap;
use std::str::Split;

use crate::topic::{TopicFilter, TopicName};

/// Retained values keyed by topic name.
pub struct RetainStore<V> {
    root: Node<V>,
    /// Number of stored values.
    len: usize,
}

/// One topic level. The root stands for no level at all, so it never holds a value.
struct Node<V> {
    children: HashMap<Box<str>, Node<V>>,
    value: Option<(TopicName, V)>,
}

impl<V> Node<V> {
    fn new() -> Self {
        Node {
            children: HashMap::new(),
            value: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.value.is_none() && self.children.is_empty()
    }
}

impl<V> Drop for Node<V> {
    /// Tears the subtree down with a heap stack instead of recursion.
    fn drop(&mut self) {
        if self.children.is_empty() {
            return;
        }
        let mut stack: Vec<Node<V>> = self.children.drain().map(|(_, n)| n).collect();
        while let Some(mut node) = stack.pop() {
            stack.extend(node.children.drain().map(|(_, n)| n));
        }
    }
}

impl<V> RetainStore<V> {
    /// An empty store.
    pub fn new() -> Self {
        RetainStore {
            root: Node::new(),
            len: 0,
        }
    }

    /// Stores `value` under `topic`, returning the value it replaces.
    pub fn insert(&mut self, topic: TopicName, value: V) -> Option<V> {
        let mut node = &mut self.root;
        for level in topic.as_str().split('/') {
            node = node.children.entry(level.into()).or_insert_with(Node::new);
        }
        let previous = node.value.replace((topic, value)).map(|(_, v)| v);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// Removes the value under `topic`, pruning nodes left empty.
    pub fn remove(&mut self, topic: &TopicName) -> Option<V> {
        let (_, value) = self.node_mut(topic.as_str())?.value.take()?;
        self.len -= 1;
        self.prune(topic.as_str());
        Some(value)
    }

    /// The value under `topic`.
    pub fn get(&self, topic: &TopicName) -> Option<&V> {
        let mut node = &self.root;
        for level in topic.as_str().split('/') {
            node = node.children.get(level)?;
        }
        node.value.as_ref().map(|(_, v)| v)
    }

    /// Calls `f` for every stored (topic, value) whose topic matches `filter`. Topics starting
    /// with `$` are skipped when the filter's first level is `+` or `#` [MQTT-4.7.2-1].
    pub fn for_each_match(&self, filter: &TopicFilter, mut f: impl FnMut(&TopicName, &V)) {
        let mut levels = filter.as_str().split('/');
        let Some(first) = levels.next() else { return };
        let mut stack: Vec<(&Node<V>, Split<'_, char>)> = Vec::new();
        let mut subtrees: Vec<&Node<V>> = Vec::new();
        match first {
            "#" => subtrees.extend(non_system(&self.root)),
            "+" => stack.extend(non_system(&self.root).map(|n| (n, levels.clone()))),
            level => stack.extend(self.root.children.get(level).map(|n| (n, levels))),
        }
        while let Some((node, mut levels)) = stack.pop() {
            match levels.next() {
                None => report(node, &mut f),
                // `#` also matches its parent level, so the subtree includes `node`
                Some("#") => subtrees.push(node),
                Some("+") => stack.extend(node.children.values().map(|n| (n, levels.clone()))),
                Some(level) => stack.extend(node.children.get(level).map(|n| (n, levels))),
            }
        }
        while let Some(node) = subtrees.pop() {
            report(node, &mut f);
            subtrees.extend(node.children.values());
        }
    }

    /// Keeps only the values for which `f` returns true (for expiry sweeps); `f` may also
    /// update the values it keeps.
    pub fn retain(&mut self, mut f: impl FnMut(&TopicName, &mut V) -> bool) {
        let mut removed = Vec::new();
        let mut stack = vec![&mut self.root];
        while let Some(node) = stack.pop() {
            if let Some((topic, value)) = &mut node.value
                && !f(topic, value)
            {
                removed.extend(node.value.take().map(|(topic, _)| topic));
            }
            stack.extend(node.children.values_mut());
        }
        self.len -= removed.len();
        for topic in &removed {
            self.prune(topic.as_str());
        }
    }

    /// Number of stored values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every stored (topic, value), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&TopicName, &V)> {
        let mut stack = vec![&self.root];
        std::iter::from_fn(move || {
            while let Some(node) = stack.pop() {
                stack.extend(node.children.values());
                if let Some((topic, value)) = &node.value {
                    return Some((topic, value));
                }
            }
            None
        })
    }

    fn node_mut(&mut self, topic: &str) -> Option<&mut Node<V>> {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.get_mut(level)?;
        }
        Some(node)
    }

    /// Cuts off the chain of nodes along `topic` that no longer holds anything. Iterative: a
    /// read-only pass finds the deepest node that must stay (the root, or one holding a value
    /// or a second child), then the edge below it is removed.
    fn prune(&mut self, topic: &str) {
        let mut node = &self.root;
        let mut keep = 0;
        for (depth, level) in topic.split('/').enumerate() {
            if node.value.is_some() || node.children.len() > 1 {
                keep = depth;
            }
            let Some(next) = node.children.get(level) else {
                return;
            };
            node = next;
        }
        if !node.is_empty() {
            return;
        }
        let mut levels = topic.split('/');
        let mut node = &mut self.root;
        for level in levels.by_ref().take(keep) {
            let Some(next) = node.children.get_mut(level) else {
                return;
            };
            node = next;
        }
        if let Some(level) = levels.next() {
            node.children.remove(level);
        }
    }
}

/// The root's children whose level does not start with `$` [MQTT-4.7.2-1].
fn non_system<V>(root: &Node<V>) -> impl Iterator<Item = &Node<V>> {
    root.children
        .iter()
        .filter(|(level, _)| !level.starts_with('$'))
        .map(|(_, n)| n)
}

fn report<V>(node: &Node<V>, f: &mut impl FnMut(&TopicName, &V)) {
    if let Some((topic, value)) = &node.value {
        f(topic, value);
    }
}

impl<V> Default for RetainStore<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> std::fmt::Debug for RetainStore<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetainStore")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (house rules)
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn topic(s: &str) -> TopicName {
        TopicName::new(s).unwrap()
    }

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap()
    }

    fn matched<V: Clone>(store: &RetainStore<V>, f: &str) -> Vec<(String, V)> {
        let mut out = Vec::new();
        store.for_each_match(&filter(f), |t, v| out.push((t.to_string(), v.clone())));
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn store_of(topics: &[&str]) -> RetainStore<u32> {
        let mut store = RetainStore::new();
        for (i, t) in topics.iter().enumerate() {
            store.insert(topic(t), i as u32);
        }
        store
    }

    fn names(found: Vec<(String, u32)>) -> Vec<String> {
        found.into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn insert_replaces_and_get_is_exact() {
        let mut store = RetainStore::new();
        assert_eq!(store.insert(topic("a/b"), 1), None);
        assert_eq!(store.insert(topic("a/b"), 2), Some(1));
        assert_eq!(store.len(), 1);
        assert_eq!(store.get(&topic("a/b")), Some(&2));
        assert_eq!(store.get(&topic("a")), None);
        assert_eq!(store.get(&topic("a/b/c")), None);
    }

    #[test]
    fn hash_matches_parent_and_subtree() {
        let store = store_of(&[
            "sport",
            "sport/tennis",
            "sport/tennis/player1",
            "sports",
            "x",
        ]);
        assert_eq!(
            names(matched(&store, "sport/#")),
            ["sport", "sport/tennis", "sport/tennis/player1"]
        );
    }

    #[test]
    fn plus_matches_exactly_one_level_including_empty() {
        let store = store_of(&["sport/", "sport/tennis", "sport/tennis/player1", "sport"]);
        assert_eq!(
            names(matched(&store, "sport/+")),
            ["sport/", "sport/tennis"]
        );
        assert_eq!(names(matched(&store, "+/+")), ["sport/", "sport/tennis"]);
    }

    #[test]
    fn mqtt_4_7_2_1_first_level_wildcards_skip_dollar_topics() {
        let store = store_of(&["$SYS/monitor/Clients", "app/monitor/Clients", "$SYS"]);
        assert_eq!(names(matched(&store, "#")), ["app/monitor/Clients"]);
        assert_eq!(
            names(matched(&store, "+/monitor/Clients")),
            ["app/monitor/Clients"]
        );
        assert_eq!(names(matched(&store, "+")), Vec::<String>::new());
        assert_eq!(
            names(matched(&store, "$SYS/#")),
            ["$SYS", "$SYS/monitor/Clients"]
        );
        assert_eq!(
            names(matched(&store, "$SYS/+/Clients")),
            ["$SYS/monitor/Clients"]
        );
    }

    #[test]
    fn remove_prunes_but_keeps_ancestors_with_values() {
        let mut store = store_of(&["a", "a/b/c", "a/b/d"]);
        assert_eq!(store.remove(&topic("a/b")), None);
        assert_eq!(store.remove(&topic("a/b/c")), Some(1));
        assert_eq!(store.remove(&topic("a/b/c")), None);
        assert_eq!(names(matched(&store, "#")), ["a", "a/b/d"]);
        assert_eq!(store.remove(&topic("a/b/d")), Some(2));
        assert_eq!(store.remove(&topic("a")), Some(0));
        assert!(store.is_empty());
        assert!(store.root.is_empty());
    }

    #[test]
    fn retain_drops_rejected_values_and_updates_kept_ones() {
        let mut store = store_of(&["a/x", "a/y", "b", "b/z"]);
        store.retain(|t, v| {
            *v += 10;
            !t.as_str().starts_with('a')
        });
        assert_eq!(store.len(), 2);
        assert_eq!(
            matched(&store, "#"),
            [("b".to_owned(), 12), ("b/z".to_owned(), 13)]
        );
        assert!(
            !store.root.children.contains_key("a"),
            "emptied subtree was not pruned"
        );
    }

    #[test]
    fn iter_yields_every_value_once() {
        let store = store_of(&["a", "a/b", "/", "$SYS/x"]);
        let mut all: Vec<_> = store.iter().map(|(t, v)| (t.to_string(), *v)).collect();
        all.sort();
        assert_eq!(
            all,
            [
                ("$SYS/x".into(), 3),
                ("/".into(), 2),
                ("a".into(), 0),
                ("a/b".into(), 1)
            ]
        );
    }

    #[test]
    fn deep_topics_neither_overflow_the_stack_nor_leak_nodes() {
        // 32768 levels is the most 65535 bytes allow; a recursive walk or drop would overflow
        let deep = ["a"; 32_768].join("/");
        let mut store = store_of(&[&deep, &deep[..deep.len() - 2]]);
        assert_eq!(matched(&store, "#").len(), 2);
        assert_eq!(matched(&store, &["+"; 32_768].join("/")).len(), 1);
        assert_eq!(store.remove(&topic(&deep)), Some(0));
        store.retain(|_, _| false);
        assert!(store.root.is_empty());
        let store = store_of(&[&deep]);
        drop(store);
    }

    const LEVELS: &[&str] = &["a", "b", "", "$x"];

    fn name_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(LEVELS), 1..5).prop_map(|l| match l.join("/") {
            empty if empty.is_empty() => "/".to_owned(),
            name => name,
        })
    }

    fn filter_strategy() -> impl Strategy<Value = String> {
        let level = prop::sample::select(&["a", "b", "", "$x", "+"][..]);
        (prop::collection::vec(level, 0..4), any::<bool>()).prop_map(|(mut levels, hash)| {
            if hash || levels.is_empty() || levels == [""] {
                levels.push("#");
            }
            levels.join("/")
        })
    }

    proptest! {
        #[test]
        fn matches_agree_with_a_naive_scan(
            ops in prop::collection::vec((name_strategy(), prop::option::of(any::<u32>())), 0..32),
            filters in prop::collection::vec(filter_strategy(), 1..8),
        ) {
            let mut store = RetainStore::new();
            let mut model = BTreeMap::new();
            for (name, value) in ops {
                let t = topic(&name);
                match value {
                    Some(v) => prop_assert_eq!(store.insert(t, v), model.insert(name, v)),
                    None => prop_assert_eq!(store.remove(&t), model.remove(&name)),
                }
                prop_assert_eq!(store.len(), model.len());
            }
            for f in &filters {
                let tf = filter(f);
                let expected: BTreeSet<(String, u32)> = model
                    .iter()
                    .filter(|(t, _)| tf.matches(&topic(t)))
                    .map(|(t, v)| (t.clone(), *v))
                    .collect();
                let got = matched(&store, f);
                let unique: BTreeSet<_> = got.iter().cloned().collect();
                prop_assert_eq!(got.len(), unique.len(), "a value was reported twice");
                prop_assert_eq!(unique, expected, "filter {}", f);
            }
            let all: BTreeMap<String, u32> = store.iter().map(|(t, v)| (t.to_string(), *v)).collect();
            prop_assert_eq!(&all, &model);
            let keep_odd = |v: &u32| v % 2 == 1;
            store.retain(|_, v| keep_odd(v));
            model.retain(|_, v| keep_odd(v));
            prop_assert_eq!(store.len(), model.len());
            for (name, v) in &model {
                prop_assert_eq!(store.get(&topic(name)), Some(v));
            }
            for name in model.keys() {
                prop_assert!(store.remove(&topic(name)).is_some());
            }
            prop_assert!(store.is_empty());
            prop_assert!(store.root.is_empty(), "empty nodes were not pruned");
        }
    }
}
