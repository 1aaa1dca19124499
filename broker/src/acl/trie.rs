//! A first-match-wins filter trie: compiled rule filters are inserted in rule order, and a
//! lookup returns the matching rule with the lowest index without allocating. Each node
//! remembers the lowest rule index in its subtree, so a walk stops exploring branches that
//! cannot beat the best hit found so far.
//!
//! This module knows only levels and rule indices; it must not know about identities or
//! how a verdict is applied.

use std::collections::HashMap;
use std::str::Split;
use std::sync::Arc;

use super::Permission;
use super::level::Level;

/// A rule that matched: its position in the session's rule order and its permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Position in rule order; lower wins.
    pub index: usize,
    /// The rule's permission.
    pub permission: Permission,
}

/// The trie. Insert filters in ascending index order.
#[derive(Debug, Default)]
pub struct Trie {
    root: Node,
    len: usize,
}

#[derive(Debug)]
struct Node {
    literal: HashMap<Arc<str>, Node>,
    plus: Option<Box<Node>>,
    /// The first rule ending in `#` right below this node (matches this node's topic too).
    hash: Option<Hit>,
    /// The first rule ending exactly at this node.
    end: Option<Hit>,
    /// The lowest index anywhere in this subtree (`usize::MAX` when empty).
    min: usize,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            literal: HashMap::new(),
            plus: None,
            hash: None,
            end: None,
            min: usize::MAX,
        }
    }
}

impl Trie {
    /// Adds a normalised filter; an earlier insert of the same filter keeps precedence.
    pub fn insert(&mut self, levels: &[Level], hit: Hit) {
        self.len += 1;
        let mut node = &mut self.root;
        node.min = node.min.min(hit.index);
        for level in levels {
            node = match level {
                Level::Hash => {
                    node.hash.get_or_insert(hit);
                    return;
                }
                Level::Plus => node.plus.get_or_insert_with(Box::default),
                // `Arc` clone: compiling a session copies no configured literal
                Level::Literal(lit) => node.literal.entry(Arc::clone(lit)).or_default(),
            };
            node.min = node.min.min(hit.index);
        }
        node.end.get_or_insert(hit);
    }

    /// Number of filters inserted.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The first (lowest-index) filter matching the topic name `topic`.
    pub fn find(&self, topic: &str) -> Option<Hit> {
        let mut best = None;
        walk(
            &self.root,
            topic.split('/'),
            0,
            topic.starts_with('$'),
            &mut best,
        );
        best
    }
}

/// Depth is bounded by the deepest inserted filter, not by the topic.
fn walk(
    node: &Node,
    mut rest: Split<'_, char>,
    depth: usize,
    system: bool,
    best: &mut Option<Hit>,
) {
    if best.is_some_and(|b| node.min >= b.index) {
        return;
    }
    // [MQTT-4.7.2-1]: no wildcard in the first level reaches a `$` topic
    let wildcards = depth > 0 || !system;
    if wildcards {
        consider(best, node.hash);
    }
    match rest.next() {
        None => consider(best, node.end),
        Some(level) => {
            if let Some(child) = node.literal.get(level) {
                walk(child, rest.clone(), depth + 1, system, best);
            }
            if let Some(child) = node.plus.as_deref().filter(|_| wildcards) {
                walk(child, rest, depth + 1, system, best);
            }
        }
    }
}

fn consider(best: &mut Option<Hit>, candidate: Option<Hit>) {
    if let Some(c) = candidate
        && best.is_none_or(|b| c.index < b.index)
    {
        *best = Some(c);
    }
}
