//! The subscription tree: a trie over topic-filter levels that answers "which subscriptions
//! match this topic name" for every PUBLISH.
//!
//! It is generic over the session key `K` and the stored value `V` and knows nothing about
//! sessions, outboxes, QoS or locking; the router wraps it. It must agree exactly with
//! [`TopicFilter::matches`], including the `$` rule [MQTT-4.7.2-1] and `#` matching its parent.
//!
//! Every walk is iterative, so a filter or topic with tens of thousands of levels (the spec
//! allows 65535 bytes) costs memory but never overflows the stack, not even on drop.

use std::collections::HashMap;
use std::hash::Hash;
use std::str::Split;

use crate::small_map::SmallMap;
use crate::topic::{TopicFilter, TopicName};

/// Subscriptions indexed by filter level, each filter holding one entry per session key.
pub struct SubscriptionTree<K, V> {
    root: Node<K, V>,
    /// Number of (filter, key) entries.
    len: usize,
}

/// All entries of one filter. A slot exists only while it holds at least one entry.
/// The filter itself is the path to it (nobody asks a match for its filter): kept here
/// it was 32 more bytes per subscribed filter.
struct Slot<K, V> {
    entries: SmallMap<K, V>,
}

/// One level of the trie. The path from the root spells the filter, `+` edges included.
struct Node<K, V> {
    children: Children<K, V>,
    plus: Option<Box<Node<K, V>>>,
    /// Entries of the filter that ends at this node.
    here: Option<Box<Slot<K, V>>>,
    /// Entries of the filter that is this node's path followed by `/#` (or `#` at the root).
    hash: Option<Box<Slot<K, V>>>,
}

/// A node's literal edges. Most nodes are leaves (a client's own topic, one level per
/// client): the map is allocated by the first child, so a leaf is 32 bytes rather than 72
/// in its parent's table (the parent's table holds its children inline).
struct Children<K, V>(Option<Box<Edges<K, V>>>);

type Edges<K, V> = HashMap<Box<str>, Node<K, V>>;

impl<K, V> Children<K, V> {
    fn get(&self, level: &str) -> Option<&Node<K, V>> {
        self.0.as_ref()?.get(level)
    }

    fn get_mut(&mut self, level: &str) -> Option<&mut Node<K, V>> {
        self.0.as_mut()?.get_mut(level)
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    fn entry(&mut self, level: &str) -> &mut Node<K, V> {
        self.0
            .get_or_insert_with(Box::default)
            .entry(level.into())
            .or_insert_with(Node::new)
    }

    fn remove(&mut self, level: &str) -> Option<Node<K, V>> {
        let map = self.0.as_mut()?;
        let node = map.remove(level);
        if map.is_empty() {
            self.0 = None;
        } else {
            crate::small_map::shrink_when_sparse(map);
        }
        node
    }

    /// Takes every child out (the node is left without edges).
    fn take_all(&mut self) -> impl Iterator<Item = Node<K, V>> + use<K, V> {
        self.0.take().into_iter().flat_map(|m| m.into_values())
    }

    fn values(&self) -> impl Iterator<Item = &Node<K, V>> {
        self.0.iter().flat_map(|m| m.values())
    }
}

/// Which slot of the final node a filter lives in.
#[derive(Clone, Copy)]
enum End {
    Here,
    Hash,
}

impl<K, V> Node<K, V> {
    fn new() -> Self {
        Node {
            children: Children(None),
            plus: None,
            here: None,
            hash: None,
        }
    }

    fn slot(&self, end: End) -> Option<&Slot<K, V>> {
        match end {
            End::Here => self.here.as_deref(),
            End::Hash => self.hash.as_deref(),
        }
    }

    fn slot_mut(&mut self, end: End) -> &mut Option<Box<Slot<K, V>>> {
        match end {
            End::Here => &mut self.here,
            End::Hash => &mut self.hash,
        }
    }

    fn child(&self, level: &str) -> Option<&Node<K, V>> {
        if level == "+" {
            self.plus.as_deref()
        } else {
            self.children.get(level)
        }
    }

    fn child_mut(&mut self, level: &str) -> Option<&mut Node<K, V>> {
        if level == "+" {
            self.plus.as_deref_mut()
        } else {
            self.children.get_mut(level)
        }
    }

    fn edges(&self) -> usize {
        self.children.len() + usize::from(self.plus.is_some())
    }

    fn is_empty(&self) -> bool {
        self.here.is_none() && self.hash.is_none() && self.edges() == 0
    }
}

impl<K, V> Drop for Node<K, V> {
    /// Tears the subtree down with a heap stack instead of recursion.
    fn drop(&mut self) {
        if self.edges() == 0 {
            return;
        }
        let mut stack: Vec<Node<K, V>> = self.children.take_all().collect();
        stack.extend(self.plus.take().map(|n| *n));
        while let Some(mut node) = stack.pop() {
            stack.extend(node.children.take_all());
            stack.extend(node.plus.take().map(|n| *n));
        }
    }
}

/// The edges from the root to the node holding `filter`, and the slot it uses there.
fn path(filter: &TopicFilter) -> (impl Iterator<Item = &str> + Clone, End) {
    let s = filter.as_str();
    let end = if s == "#" || s.ends_with("/#") {
        End::Hash
    } else {
        End::Here
    };
    // `#` can only be the last level, so this stops exactly before it
    (s.split('/').take_while(|level| *level != "#"), end)
}

impl<K: Eq + Hash + Clone, V> SubscriptionTree<K, V> {
    /// An empty tree.
    pub fn new() -> Self {
        SubscriptionTree {
            root: Node::new(),
            len: 0,
        }
    }

    /// Inserts or replaces the entry of `key` under `filter`; returns the previous value.
    pub fn insert(&mut self, filter: &TopicFilter, key: K, value: V) -> Option<V> {
        let (levels, end) = path(filter);
        let mut node = &mut self.root;
        for level in levels {
            node = if level == "+" {
                node.plus.get_or_insert_with(|| Box::new(Node::new()))
            } else {
                node.children.entry(level)
            };
        }
        let slot = node.slot_mut(end).get_or_insert_with(|| {
            Box::new(Slot {
                entries: SmallMap::new(),
            })
        });
        let previous = slot.entries.insert(key, value);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// Removes the entry of `key` under `filter`, pruning nodes left empty.
    pub fn remove(&mut self, filter: &TopicFilter, key: &K) -> Option<V> {
        let (levels, end) = path(filter);
        let mut node = &mut self.root;
        for level in levels.clone() {
            node = node.child_mut(level)?;
        }
        let slot = node.slot_mut(end);
        let value = slot.as_mut()?.entries.remove(key)?;
        self.len -= 1;
        if slot.as_ref().is_some_and(|s| s.entries.is_empty()) {
            *slot = None;
            self.prune(levels);
        }
        Some(value)
    }

    /// Cuts off the chain of nodes along `levels` that no longer holds anything. Iterative:
    /// a read-only pass finds the deepest node that must stay (the root, or one holding a
    /// slot or a second edge), then the edge below it is removed.
    fn prune<'a>(&mut self, levels: impl Iterator<Item = &'a str> + Clone) {
        let mut node = &self.root;
        let mut keep = 0;
        for (depth, level) in levels.clone().enumerate() {
            if node.here.is_some() || node.hash.is_some() || node.edges() > 1 {
                keep = depth;
            }
            let Some(next) = node.child(level) else {
                return;
            };
            node = next;
        }
        if !node.is_empty() {
            return;
        }
        let mut levels = levels;
        let mut node = &mut self.root;
        for level in levels.by_ref().take(keep) {
            let Some(next) = node.child_mut(level) else {
                return;
            };
            node = next;
        }
        match levels.next() {
            Some("+") => node.plus = None,
            Some(level) => drop(node.children.remove(level)),
            None => {}
        }
    }

    /// The value of `key` under exactly `filter` (no wildcard matching).
    pub fn get(&self, filter: &TopicFilter, key: &K) -> Option<&V> {
        let (levels, end) = path(filter);
        let mut node = &self.root;
        for level in levels {
            node = node.child(level)?;
        }
        node.slot(end)?.entries.get(key)
    }

    /// The value of `key` under exactly `filter`, for in-place updates.
    pub fn get_mut(&mut self, filter: &TopicFilter, key: &K) -> Option<&mut V> {
        let (levels, end) = path(filter);
        let mut node = &mut self.root;
        for level in levels {
            node = node.child_mut(level)?;
        }
        node.slot_mut(end).as_mut()?.entries.get_mut(key)
    }

    /// Calls `f` for every (key, value) in the tree, in no particular order.
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            for slot in [node.here.as_deref(), node.hash.as_deref()]
                .into_iter()
                .flatten()
            {
                for (key, value) in &slot.entries {
                    f(key, value);
                }
            }
            stack.extend(node.children.values());
            stack.extend(node.plus.as_deref());
        }
    }

    /// Calls `f` for every (key, value) whose filter matches `topic`. A key is reported
    /// once per matching filter, so the same key may appear several times.
    pub fn for_each_match<'s>(&'s self, topic: &TopicName, mut f: impl FnMut(&'s K, &'s V)) {
        self.for_each_matching_filter(topic, |entries| {
            for (key, value) in entries {
                f(key, value);
            }
        });
    }

    /// Calls `f` with the entries of every filter that matches `topic`, one filter at a
    /// time: within one call each key appears once, across calls it may appear again.
    pub fn for_each_matching_filter<'s>(
        &'s self,
        topic: &TopicName,
        mut f: impl FnMut(&'s SmallMap<K, V>),
    ) {
        let mut levels = topic.as_str().split('/');
        // [MQTT-4.7.2-1]: `#` and `+` at the first level do not match `$` topics
        let system = topic.is_system();
        if !system {
            report(self.root.hash.as_deref(), &mut f);
        }
        let Some(first) = levels.next() else { return };
        // Only branch points need the explicit stack, so most topics never allocate.
        let mut stack: Vec<(&'s Node<K, V>, Split<'_, char>)> = Vec::new();
        let literal = self.root.children.get(first);
        let plus = if system {
            None
        } else {
            self.root.plus.as_deref()
        };
        let mut next = branch(literal, plus, levels, &mut stack);
        while let Some((node, mut levels)) = next.or_else(|| stack.pop()) {
            report(node.hash.as_deref(), &mut f);
            next = match levels.next() {
                None => {
                    report(node.here.as_deref(), &mut f);
                    None
                }
                Some(level) => branch(
                    node.children.get(level),
                    node.plus.as_deref(),
                    levels,
                    &mut stack,
                ),
            };
        }
    }

    /// Number of (filter, key) entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the tree holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Picks the node to visit next, stacking the `+` branch when both branches exist.
fn branch<'n, 't, K, V>(
    literal: Option<&'n Node<K, V>>,
    plus: Option<&'n Node<K, V>>,
    levels: Split<'t, char>,
    stack: &mut Vec<(&'n Node<K, V>, Split<'t, char>)>,
) -> Option<(&'n Node<K, V>, Split<'t, char>)> {
    match (literal, plus) {
        (Some(literal), Some(plus)) => {
            stack.push((plus, levels.clone()));
            Some((literal, levels))
        }
        (Some(node), None) | (None, Some(node)) => Some((node, levels)),
        (None, None) => None,
    }
}

fn report<'s, K, V>(slot: Option<&'s Slot<K, V>>, f: &mut impl FnMut(&'s SmallMap<K, V>)) {
    if let Some(slot) = slot {
        f(&slot.entries);
    }
}

impl<K: Eq + Hash + Clone, V> Default for SubscriptionTree<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> std::fmt::Debug for SubscriptionTree<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionTree")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (house rules)
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashMap};

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap()
    }

    fn topic(s: &str) -> TopicName {
        TopicName::new(s).unwrap()
    }

    /// A test tree's values are the filters they were filed under, so that a match
    /// tells which filter it came through.
    type Tree = SubscriptionTree<u8, String>;

    fn sub(tree: &mut Tree, f: &str, k: u8) -> Option<String> {
        tree.insert(&filter(f), k, f.to_owned())
    }

    /// (filter, key) pairs matching `name`, sorted for comparison.
    fn matched(tree: &Tree, name: &str) -> Vec<(String, u8)> {
        let mut out = Vec::new();
        tree.for_each_match(&topic(name), |k, f| out.push((f.clone(), *k)));
        out.sort();
        out
    }

    /// Every subscribed client's own topic is a leaf in its parent's table, which holds
    /// its children inline: a leaf's size is paid per client (heaptrack: 183 bytes per
    /// idle client at 72 bytes a node, 2000 clients).
    #[test]
    fn a_leaf_node_is_four_pointers() {
        assert!(
            size_of::<Node<u8, u8>>() <= 32,
            "{}",
            size_of::<Node<u8, u8>>()
        );
    }

    #[test]
    fn a_node_gives_its_child_table_back_with_its_last_child() {
        let mut tree = SubscriptionTree::new();
        sub(&mut tree, "a/b", 1u8);
        sub(&mut tree, "a/c", 2u8);
        tree.remove(&filter("a/b"), &1);
        assert!(
            tree.root
                .children
                .get("a")
                .is_some_and(|a| a.children.0.is_some())
        );
        tree.remove(&filter("a/c"), &2);
        assert!(tree.root.children.0.is_none());
        assert!(tree.is_empty());
    }

    fn pairs(items: &[(&str, u8)]) -> Vec<(String, u8)> {
        let mut out: Vec<_> = items.iter().map(|(f, k)| (f.to_string(), *k)).collect();
        out.sort();
        out
    }

    #[test]
    fn insert_replaces_and_returns_previous_value() {
        let mut tree = SubscriptionTree::new();
        assert_eq!(tree.insert(&filter("a/+"), 1u8, "q0"), None);
        assert_eq!(tree.insert(&filter("a/+"), 1, "q1"), Some("q0"));
        assert_eq!(tree.insert(&filter("a/+"), 2, "q2"), None);
        assert_eq!(tree.len(), 2);
        assert_eq!(tree.get(&filter("a/+"), &1), Some(&"q1"));
        assert_eq!(tree.get(&filter("a/#"), &1), None);
        assert_eq!(tree.get(&filter("a"), &1), None);
    }

    #[test]
    fn reports_every_matching_filter_of_a_key() {
        let mut tree = SubscriptionTree::new();
        for f in [
            "sport/tennis/player1",
            "sport/#",
            "sport/+/player1",
            "#",
            "+/+/+",
            "other",
        ] {
            sub(&mut tree, f, 7u8);
        }
        let expected = [
            ("sport/tennis/player1", 7),
            ("sport/#", 7),
            ("sport/+/player1", 7),
        ];
        let mut expected = expected.to_vec();
        expected.extend([("#", 7), ("+/+/+", 7)]);
        assert_eq!(matched(&tree, "sport/tennis/player1"), pairs(&expected));
    }

    #[test]
    fn hash_matches_parent_level() {
        let mut tree = SubscriptionTree::new();
        sub(&mut tree, "sport/#", 1u8);
        sub(&mut tree, "sport/+", 2);
        assert_eq!(matched(&tree, "sport"), pairs(&[("sport/#", 1)]));
        assert_eq!(
            matched(&tree, "sport/"),
            pairs(&[("sport/#", 1), ("sport/+", 2)])
        );
    }

    #[test]
    fn mqtt_4_7_2_1_first_level_wildcards_skip_dollar_topics() {
        let mut tree = SubscriptionTree::new();
        for (f, k) in [
            ("#", 1u8),
            ("+/monitor/Clients", 2),
            ("$SYS/#", 3),
            ("$SYS/monitor/+", 4),
        ] {
            sub(&mut tree, f, k);
        }
        assert_eq!(
            matched(&tree, "$SYS/monitor/Clients"),
            pairs(&[("$SYS/#", 3), ("$SYS/monitor/+", 4)])
        );
        assert_eq!(
            matched(&tree, "x/monitor/Clients"),
            pairs(&[("#", 1), ("+/monitor/Clients", 2)])
        );
    }

    #[test]
    fn empty_levels_are_significant() {
        let mut tree = SubscriptionTree::new();
        for (f, k) in [
            ("+/+", 1u8),
            ("/+", 2),
            ("+", 3),
            ("/finance", 4),
            ("finance", 5),
        ] {
            sub(&mut tree, f, k);
        }
        assert_eq!(
            matched(&tree, "/finance"),
            pairs(&[("+/+", 1), ("/+", 2), ("/finance", 4)])
        );
    }

    #[test]
    fn remove_prunes_and_keeps_siblings() {
        let mut tree = SubscriptionTree::new();
        sub(&mut tree, "a/b/c", 1);
        sub(&mut tree, "a/b/c", 2);
        sub(&mut tree, "a/#", 1);
        sub(&mut tree, "a/+/c", 1);
        assert_eq!(tree.remove(&filter("a/b/c"), &3), None);
        assert_eq!(tree.remove(&filter("a/b"), &1), None);
        assert_eq!(tree.remove(&filter("a/b/c"), &1).as_deref(), Some("a/b/c"));
        assert_eq!(tree.remove(&filter("a/b/c"), &1), None);
        assert_eq!(
            matched(&tree, "a/b/c"),
            pairs(&[("a/b/c", 2), ("a/#", 1), ("a/+/c", 1)])
        );
        assert_eq!(tree.remove(&filter("a/b/c"), &2).as_deref(), Some("a/b/c"));
        assert_eq!(tree.remove(&filter("a/#"), &1).as_deref(), Some("a/#"));
        assert_eq!(matched(&tree, "a/b/c"), pairs(&[("a/+/c", 1)]));
        assert_eq!(tree.remove(&filter("a/+/c"), &1).as_deref(), Some("a/+/c"));
        assert!(tree.is_empty());
        assert!(tree.root.is_empty());
    }

    #[test]
    fn get_mut_updates_in_place_and_for_each_visits_all() {
        let mut tree = SubscriptionTree::new();
        for (f, k) in [("a", 1u8), ("a/#", 1), ("+/b", 2), ("#", 3)] {
            tree.insert(&filter(f), k, (f, 0u32));
        }
        tree.get_mut(&filter("+/b"), &2).unwrap().1 = 7;
        assert_eq!(tree.get_mut(&filter("+/b"), &1), None);
        assert_eq!(tree.get(&filter("+/b"), &2), Some(&("+/b", 7)));
        let mut all = Vec::new();
        tree.for_each(|k, (f, v)| all.push((f.to_string(), *k, *v)));
        all.sort();
        let expected = [("#", 3, 0), ("+/b", 2, 7), ("a", 1, 0), ("a/#", 1, 0)];
        assert_eq!(all, expected.map(|(f, k, v)| (f.to_owned(), k, v)));
    }

    #[test]
    fn root_hash_filter_is_removable() {
        let mut tree = SubscriptionTree::new();
        sub(&mut tree, "#", 1u8);
        sub(&mut tree, "a", 1);
        assert_eq!(tree.remove(&filter("#"), &1).as_deref(), Some("#"));
        assert_eq!(matched(&tree, "a"), pairs(&[("a", 1)]));
        assert_eq!(tree.remove(&filter("a"), &1).as_deref(), Some("a"));
        assert!(tree.root.is_empty());
    }

    #[test]
    fn deep_filters_neither_overflow_the_stack_nor_leak_nodes() {
        // 32768 levels is the most 65535 bytes allow; a recursive walk or drop would overflow
        let deep = ["a"; 32_768].join("/");
        let deep_plus = ["+"; 32_768].join("/");
        let mut tree = SubscriptionTree::new();
        sub(&mut tree, &deep, 1u8);
        sub(&mut tree, &deep_plus, 2);
        sub(&mut tree, &format!("{}/#", &deep[..deep.len() - 2]), 3);
        assert_eq!(matched(&tree, &deep).len(), 3);
        assert_eq!(tree.remove(&filter(&deep), &1), Some(deep.clone()));
        assert_eq!(matched(&tree, &deep).len(), 2);
        drop(tree);
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

    #[derive(Debug, Clone)]
    enum Op {
        Insert(String, u8, u32),
        Remove(String, u8),
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            (filter_strategy(), 0..3u8, any::<u32>()).prop_map(|(f, k, v)| Op::Insert(f, k, v)),
            (filter_strategy(), 0..3u8).prop_map(|(f, k)| Op::Remove(f, k)),
        ]
    }

    proptest! {
        #[test]
        fn matches_agree_with_reference_matcher(
            subs in prop::collection::vec((filter_strategy(), 0..3u8), 0..24),
            names in prop::collection::vec(name_strategy(), 1..8),
        ) {
            let mut tree = SubscriptionTree::new();
            for (f, k) in &subs {
                sub(&mut tree, f, *k);
            }
            for name in &names {
                let t = topic(name);
                let expected: BTreeSet<(String, u8)> = subs
                    .iter()
                    .filter(|(f, _)| filter(f).matches(&t))
                    .cloned()
                    .collect();
                let got = matched(&tree, name);
                let unique: BTreeSet<_> = got.iter().cloned().collect();
                prop_assert_eq!(got.len(), unique.len(), "an entry was reported twice");
                prop_assert_eq!(unique, expected, "topic {}", name);
            }
        }

        #[test]
        fn insert_and_remove_agree_with_a_map(ops in prop::collection::vec(op_strategy(), 0..48)) {
            // Values carry their filter, so that `for_each` can be checked against the model.
            let mut tree: SubscriptionTree<u8, (String, u32)> = SubscriptionTree::new();
            let mut model: HashMap<(String, u8), u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(f, k, v) => {
                        let got = tree.insert(&filter(&f), k, (f.clone(), v)).map(|(_, v)| v);
                        prop_assert_eq!(got, model.insert((f.clone(), k), v));
                        prop_assert_eq!(tree.get(&filter(&f), &k), Some(&(f.clone(), v)));
                    }
                    Op::Remove(f, k) => {
                        let got = tree.remove(&filter(&f), &k).map(|(_, v)| v);
                        prop_assert_eq!(got, model.remove(&(f.clone(), k)));
                        prop_assert_eq!(tree.get(&filter(&f), &k), None);
                    }
                }
                prop_assert_eq!(tree.len(), model.len());
            }
            let mut all = HashMap::new();
            tree.for_each(|k, (f, v)| {
                all.insert((f.clone(), *k), *v);
            });
            prop_assert_eq!(&all, &model);
            for ((f, k), v) in model.drain() {
                prop_assert_eq!(tree.remove(&filter(&f), &k), Some((f.clone(), v)));
            }
            prop_assert!(tree.is_empty());
            prop_assert!(tree.root.is_empty(), "empty nodes were not pruned");
        }
    }
}
