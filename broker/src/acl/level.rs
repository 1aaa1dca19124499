//! Pre-split topic filters and the set relations between two filters: `covers` (every
//! topic matching F also matches R) and `overlaps` (some topic matches both), both
//! honouring the rule that names starting with `$` are not matched by a leading wildcard
//! [MQTT-4.7.2-1].
//!
//! Filters are normalised so that a leading `#` is stored as `+/#`: the two match exactly
//! the same topics (a topic has at least one level, and neither reaches `$` topics), and
//! the relations then need no special case for `#` in the first level.
//!
//! This module knows only levels; it must not know about rules, identities or sessions.

use std::sync::Arc;

/// One level of a compiled filter (literals shared with the configured rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    /// A literal level.
    Literal(Arc<str>),
    /// `+`
    Plus,
    /// `#` (last level only, never the first after normalisation)
    Hash,
}

/// A borrowed view of one level, used for both compiled and incoming filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lvl<'a> {
    /// A literal level.
    Lit(&'a str),
    /// `+`
    Plus,
    /// `#`
    Hash,
}

impl Level {
    /// The borrowed view.
    pub fn view(&self) -> Lvl<'_> {
        match self {
            Level::Literal(s) => Lvl::Lit(s),
            Level::Plus => Lvl::Plus,
            Level::Hash => Lvl::Hash,
        }
    }
}

/// Splits a valid topic filter into normalised compiled levels.
pub fn compile_filter(filter: &str) -> Vec<Level> {
    split_filter(filter)
        .into_iter()
        .map(|level| match level {
            Lvl::Lit(s) => Level::Literal(s.into()),
            Lvl::Plus => Level::Plus,
            Lvl::Hash => Level::Hash,
        })
        .collect()
}

/// Splits a valid topic filter into normalised borrowed levels.
pub fn split_filter(filter: &str) -> Vec<Lvl<'_>> {
    let mut levels = Vec::with_capacity(4);
    if filter == "#" {
        levels.push(Lvl::Plus);
    }
    levels.extend(filter.split('/').map(|level| match level {
        "+" => Lvl::Plus,
        "#" => Lvl::Hash,
        literal => Lvl::Lit(literal),
    }));
    levels
}

/// Normalises compiled levels in place: a leading `#` becomes `+/#`.
pub fn normalise(levels: &mut Vec<Level>) {
    if levels.first() == Some(&Level::Hash) {
        levels.insert(0, Level::Plus);
    }
}

/// True when a wildcard at level `index` may stand for the literal `lit` [MQTT-4.7.2-1].
fn wildcard_reaches(index: usize, lit: &str) -> bool {
    index > 0 || !lit.starts_with('$')
}

/// True when every topic matching `f` also matches `r` (F ⊆ R). Both normalised.
///
/// Errs on the side of `false`: the one-empty-level "topic" (the empty string, which is
/// not a valid name) is counted as a topic, which can only make F look larger.
pub fn covers(f: &[Lvl<'_>], r: &[Level]) -> bool {
    let mut i = 0;
    loop {
        match (f.get(i).copied(), r.get(i).map(Level::view)) {
            // normalised: `#` in R is at index ≥ 1, so no `$` restriction applies
            (_, Some(Lvl::Hash)) | (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            // F's `#` includes its parent, which R (one more level needed) does not match
            (Some(Lvl::Hash), Some(_)) => return false,
            (Some(Lvl::Plus), Some(Lvl::Plus)) => {}
            (Some(Lvl::Plus), Some(Lvl::Lit(_))) => return false,
            (Some(Lvl::Lit(a)), Some(Lvl::Plus)) if wildcard_reaches(i, a) => {}
            (Some(Lvl::Lit(a)), Some(Lvl::Lit(b))) if a == b => {}
            (Some(Lvl::Lit(_)), Some(_)) => return false,
        }
        i += 1;
    }
}

/// True when some topic matches both `f` and `r` (F ∩ R ≠ ∅). Both normalised.
///
/// Errs on the side of `true` (the empty string counts as a topic), which for deny rules
/// only ever marks a subscription partial that did not need to be.
pub fn overlaps(f: &[Lvl<'_>], r: &[Level]) -> bool {
    let mut i = 0;
    loop {
        match (f.get(i).copied(), r.get(i).map(Level::view)) {
            (Some(Lvl::Hash), _) | (_, Some(Lvl::Hash)) | (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(Lvl::Plus), Some(Lvl::Plus)) => {}
            (Some(Lvl::Plus), Some(Lvl::Lit(b))) | (Some(Lvl::Lit(b)), Some(Lvl::Plus)) => {
                if !wildcard_reaches(i, b) {
                    return false;
                }
            }
            (Some(Lvl::Lit(a)), Some(Lvl::Lit(b))) if a == b => {}
            (Some(Lvl::Lit(_)), Some(Lvl::Lit(_))) => return false,
        }
        i += 1;
    }
}

/// True when topic name `topic` matches the normalised filter `r` (the linear reference
/// for the trie, used by tests and for short lists).
pub fn matches(topic: &str, r: &[Level]) -> bool {
    let mut names = topic.split('/');
    for (i, level) in r.iter().enumerate() {
        match (level, names.next()) {
            (Level::Hash, _) => return true,
            (Level::Plus, Some(name)) if wildcard_reaches(i, name) => {}
            (Level::Literal(lit), Some(name)) if **lit == *name => {}
            _ => return false,
        }
    }
    names.next().is_none()
}
