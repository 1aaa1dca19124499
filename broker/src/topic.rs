//! Topic names and topic filters: validation, the shared-subscription form and the reference
//! matcher (MQTT 3.1.1 and 5.0 section 4.7, MQTT 5.0 section 4.8.2).
//!
//! This module knows only strings and the spec's rules. It must not know about sessions,
//! packets, subscriptions or the router's tree; the tree and the retain store must agree with
//! [`TopicFilter::matches`], which is deliberately the simplest correct implementation.
//!
//! Normative ids are cited as in MQTT 5.0; where MQTT 3.1.1 numbers the same rule differently,
//! both are given (`[MQTT-4.7.1-1]` is v3.1.1's `[MQTT-4.7.1-2]`, `[MQTT-4.7.1-2]` is v3.1.1's
//! `[MQTT-4.7.1-3]`).

use std::borrow::Borrow;
use std::fmt;

use bytestring::ByteString;

/// Largest encoded length of a topic name or filter, in bytes [MQTT-4.7.3-3].
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// The prefix of a shared subscription filter (MQTT 5.0 section 4.8.2).
const SHARE_PREFIX: &str = "$share";

/// Why a topic name or filter was rejected.
///
/// The caller knows whether it validated a name (PUBLISH: reason code 0x90 in v5) or a filter
/// (SUBSCRIBE/UNSUBSCRIBE: 0x8F), so no reason code is attached here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The name or filter is the empty string.
    #[error("[MQTT-4.7.3-1] topic must be at least one character long")]
    Empty,
    /// The name or filter encodes to more than [`MAX_TOPIC_BYTES`].
    #[error("[MQTT-4.7.3-3] topic is {len} bytes, more than 65535")]
    TooLong {
        /// The rejected length in bytes.
        len: usize,
    },
    /// The name or filter contains U+0000.
    #[error("[MQTT-4.7.3-2] topic contains the null character U+0000")]
    NullCharacter,
    /// A topic name contains `+` or `#`.
    #[error("[MQTT-3.3.2-2] topic name contains a wildcard")]
    WildcardInName,
    /// `#` is not alone in the last level of a filter.
    #[error(
        "[MQTT-4.7.1-1] (v3.1.1 [MQTT-4.7.1-2]) multi-level wildcard must be the last level and occupy it alone"
    )]
    MisplacedMultiLevelWildcard,
    /// `+` shares a level with other characters.
    #[error(
        "[MQTT-4.7.1-2] (v3.1.1 [MQTT-4.7.1-3]) single-level wildcard must occupy an entire level"
    )]
    MisplacedSingleLevelWildcard,
    /// `$share/` is followed by an empty ShareName, or the filter is just `$share`.
    #[error(
        "[MQTT-4.8.2-1] shared subscription must be $share/ followed by a share name of at least one character"
    )]
    EmptyShareName,
    /// The ShareName contains `+` or `#`.
    #[error("[MQTT-4.8.2-2] share name must not contain '+' or '#'")]
    InvalidShareName,
    /// The ShareName is not followed by `/` and a non-empty topic filter.
    #[error("[MQTT-4.8.2-2] share name must be followed by '/' and a topic filter")]
    MissingSharedFilter,
}

/// A validated topic name, as carried by PUBLISH: no wildcards.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(ByteString);

impl TopicName {
    /// Validates `s` as a topic name [MQTT-4.7.3-1] [MQTT-4.7.3-2] [MQTT-4.7.3-3] [MQTT-3.3.2-2].
    ///
    /// # Errors
    /// The first rule `s` breaks, as an [`Error`] naming its spec id.
    pub fn new(s: impl Into<ByteString>) -> Result<Self, Error> {
        let s = s.into();
        validate_common(&s)?;
        if s.contains(['+', '#']) {
            return Err(Error::WildcardInName);
        }
        Ok(Self(s))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The underlying string, without copying.
    pub fn into_inner(self) -> ByteString {
        self.0
    }

    /// True for names starting with `$` (such as `$SYS/...`), which filters beginning with a
    /// wildcard do not match [MQTT-4.7.2-1].
    pub fn is_system(&self) -> bool {
        self.0.starts_with('$')
    }
}

/// A validated topic filter, as carried by SUBSCRIBE/UNSUBSCRIBE after any `$share/{ShareName}/`
/// prefix has been removed (see [`parse_filter`]).
///
/// `TopicFilter::new` checks only the section 4.7 syntax, so `$share/g/x` is a valid (if odd)
/// plain filter here; incoming SUBSCRIBE filters must go through [`parse_filter`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(ByteString);

impl TopicFilter {
    /// Validates `s` as a topic filter [MQTT-4.7.3-1] [MQTT-4.7.3-2] [MQTT-4.7.3-3]
    /// [MQTT-4.7.1-1] [MQTT-4.7.1-2].
    ///
    /// # Errors
    /// The first rule `s` breaks, as an [`Error`] naming its spec id.
    pub fn new(s: impl Into<ByteString>) -> Result<Self, Error> {
        let s = s.into();
        validate_filter(&s)?;
        Ok(Self(s))
    }

    /// The filter as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The underlying string, without copying.
    pub fn into_inner(self) -> ByteString {
        self.0
    }

    /// True when the filter contains `+` or `#`.
    pub fn has_wildcards(&self) -> bool {
        self.0.contains(['+', '#'])
    }

    /// The reference matcher (section 4.7.1): `+` matches exactly one level, possibly empty;
    /// `#` matches its parent level and any number of child levels; names starting with `$`
    /// are not matched by a filter whose first level is a wildcard [MQTT-4.7.2-1].
    pub fn matches(&self, name: &TopicName) -> bool {
        if name.is_system() && self.0.starts_with(['+', '#']) {
            return false;
        }
        let mut filter = self.0.split('/');
        let mut topic = name.as_str().split('/');
        loop {
            match (filter.next(), topic.next()) {
                (Some("#"), _) => return true,
                (None, None) => return true,
                (Some("+"), Some(_)) => {}
                (Some(f), Some(t)) if f == t => {}
                _ => return false,
            }
        }
    }
}

/// A parsed SUBSCRIBE/UNSUBSCRIBE filter string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FilterKind {
    /// An ordinary filter.
    Normal(TopicFilter),
    /// `$share/{group}/{filter}` (MQTT 5.0 section 4.8.2).
    Shared {
        /// The ShareName: at least one character, no `/`, `+` or `#`.
        group: ByteString,
        /// The filter after the ShareName.
        filter: TopicFilter,
    },
}

impl FilterKind {
    /// The topic filter used for matching, without any `$share/{group}/` prefix.
    pub fn filter(&self) -> &TopicFilter {
        match self {
            FilterKind::Normal(filter) | FilterKind::Shared { filter, .. } => filter,
        }
    }
}

/// Parses a SUBSCRIBE/UNSUBSCRIBE filter, recognising `$share/{ShareName}/{filter}`
/// [MQTT-4.8.2-1] [MQTT-4.8.2-2]. A filter whose first level is exactly `$share` but is not of
/// that form is an error; `$sharefoo/x` is a normal filter.
///
/// # Errors
/// The first rule `s` breaks, as an [`Error`] naming its spec id.
pub fn parse_filter(s: impl Into<ByteString>) -> Result<FilterKind, Error> {
    let s = s.into();
    validate_common(&s)?;
    let Some(rest) = s.strip_prefix(SHARE_PREFIX) else {
        return TopicFilter::new(s).map(FilterKind::Normal);
    };
    let rest = match rest.strip_prefix('/') {
        Some(rest) => rest,
        None if rest.is_empty() => return Err(Error::EmptyShareName),
        None => return TopicFilter::new(s).map(FilterKind::Normal),
    };
    let (group, filter) = rest.split_once('/').unwrap_or((rest, ""));
    if group.is_empty() {
        return Err(Error::EmptyShareName);
    }
    if group.contains(['+', '#']) {
        return Err(Error::InvalidShareName);
    }
    if filter.is_empty() {
        return Err(Error::MissingSharedFilter);
    }
    validate_filter(filter)?;
    // invariant: `group` and `filter` are sub-slices of `s`, so `slice_ref` cannot panic.
    Ok(FilterKind::Shared {
        group: s.slice_ref(group),
        filter: TopicFilter(s.slice_ref(filter)),
    })
}

/// The rules shared by names and filters (section 4.7.3).
fn validate_common(s: &str) -> Result<(), Error> {
    if s.is_empty() {
        return Err(Error::Empty);
    }
    if s.len() > MAX_TOPIC_BYTES {
        return Err(Error::TooLong { len: s.len() });
    }
    if s.contains('\0') {
        return Err(Error::NullCharacter);
    }
    Ok(())
}

/// Section 4.7.3 plus the wildcard placement rules of section 4.7.1.
fn validate_filter(s: &str) -> Result<(), Error> {
    validate_common(s)?;
    let mut levels = s.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(Error::MisplacedMultiLevelWildcard);
        }
        if level.contains('+') && level != "+" {
            return Err(Error::MisplacedSingleLevelWildcard);
        }
    }
    Ok(())
}

macro_rules! string_traits {
    ($ty:ty) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<&str> for $ty {
            type Error = Error;
            fn try_from(s: &str) -> Result<Self, Error> {
                Self::new(s)
            }
        }
        impl TryFrom<String> for $ty {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> {
                Self::new(s)
            }
        }
    };
}
string_traits!(TopicName);
string_traits!(TopicFilter);

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (house rules)
mod tests {
    use super::*;
    use std::collections::HashSet;
    use test_case::test_case;

    #[test_case("sport/tennis/player1" ; "plain levels")]
    #[test_case("/" ; "single separator is two empty levels")]
    #[test_case("/finance" ; "leading separator")]
    #[test_case("finance/" ; "trailing separator")]
    #[test_case("a//b" ; "empty middle level")]
    #[test_case(" " ; "space is a character")]
    #[test_case("$SYS/broker/uptime" ; "dollar prefix")]
    #[test_case("$share/g/x" ; "share prefix is just a name")]
    #[test_case("ünïcødé/トピック" ; "multibyte utf8")]
    fn accepts_valid_topic_name(s: &str) {
        assert_eq!(TopicName::new(s).unwrap().as_str(), s);
    }

    #[test_case("" => Error::Empty ; "mqtt_4_7_3_1 empty name")]
    #[test_case("a\0b" => Error::NullCharacter ; "mqtt_4_7_3_2 null character in name")]
    #[test_case("sport/+" => Error::WildcardInName ; "mqtt_3_3_2_2 plus in name")]
    #[test_case("sport/#" => Error::WildcardInName ; "mqtt_3_3_2_2 hash in name")]
    #[test_case("#" => Error::WildcardInName ; "mqtt_3_3_2_2 lone hash as name")]
    #[test_case("sport+" => Error::WildcardInName ; "mqtt_3_3_2_2 plus inside a level of a name")]
    fn rejects_invalid_topic_name(s: &str) -> Error {
        TopicName::new(s).unwrap_err()
    }

    #[test_case("sport/tennis/player1" ; "no wildcards")]
    #[test_case("#" ; "lone hash")]
    #[test_case("sport/#" ; "trailing hash")]
    #[test_case("sport/tennis/#" ; "deep trailing hash")]
    #[test_case("+" ; "lone plus")]
    #[test_case("+/tennis/#" ; "plus then hash")]
    #[test_case("sport/+/player1" ; "plus in the middle")]
    #[test_case("+/+" ; "two plus levels")]
    #[test_case("/+" ; "plus after empty level")]
    #[test_case("/#" ; "hash after empty level")]
    #[test_case("//" ; "only empty levels")]
    #[test_case("$SYS/#" ; "dollar filter")]
    #[test_case("$sharefoo/x" ; "share-like first level")]
    fn accepts_valid_topic_filter(s: &str) {
        assert_eq!(TopicFilter::new(s).unwrap().as_str(), s);
    }

    #[test_case("" => Error::Empty ; "mqtt_4_7_3_1 empty filter")]
    #[test_case("a/\0" => Error::NullCharacter ; "mqtt_4_7_3_2 null character in filter")]
    #[test_case("sport#" => Error::MisplacedMultiLevelWildcard ; "mqtt_4_7_1_1 hash sharing a level")]
    #[test_case("sport/#/ranking" => Error::MisplacedMultiLevelWildcard ; "mqtt_4_7_1_1 hash not last")]
    #[test_case("#/" => Error::MisplacedMultiLevelWildcard ; "mqtt_4_7_1_1 hash before empty level")]
    #[test_case("##" => Error::MisplacedMultiLevelWildcard ; "mqtt_4_7_1_1 double hash")]
    #[test_case("sport/tennis#" => Error::MisplacedMultiLevelWildcard ; "mqtt_4_7_1_1 hash after text")]
    #[test_case("sport+" => Error::MisplacedSingleLevelWildcard ; "mqtt_4_7_1_2 plus sharing a level")]
    #[test_case("sport/+tennis" => Error::MisplacedSingleLevelWildcard ; "mqtt_4_7_1_2 plus before text")]
    #[test_case("++" => Error::MisplacedSingleLevelWildcard ; "mqtt_4_7_1_2 double plus")]
    #[test_case("+#" => Error::MisplacedMultiLevelWildcard ; "mqtt_4_7_1_1 plus and hash in one level")]
    fn rejects_invalid_topic_filter(s: &str) -> Error {
        TopicFilter::new(s).unwrap_err()
    }

    #[test]
    fn mqtt_4_7_3_3_accepts_65535_bytes_and_rejects_65536() {
        let max = "a".repeat(MAX_TOPIC_BYTES);
        assert!(TopicName::new(max.clone()).is_ok());
        assert!(TopicFilter::new(max.clone()).is_ok());
        let over = format!("{max}b");
        assert_eq!(
            TopicName::new(over.clone()),
            Err(Error::TooLong { len: 65_536 })
        );
        assert_eq!(
            TopicFilter::new(over.clone()),
            Err(Error::TooLong { len: 65_536 })
        );
        assert_eq!(parse_filter(over), Err(Error::TooLong { len: 65_536 }));
    }

    #[test]
    fn mqtt_4_7_3_3_counts_bytes_not_characters() {
        // 'é' is two bytes in UTF-8: 32768 of them are 65536 bytes
        assert_eq!(
            TopicName::new("é".repeat(32_768)),
            Err(Error::TooLong { len: 65_536 })
        );
    }

    #[test_case("$share/consumer1/sport/tennis/+", "consumer1", "sport/tennis/+" ; "spec example")]
    #[test_case("$share/g/#", "g", "#" ; "hash filter")]
    #[test_case("$share/g//finance", "g", "/finance" ; "filter with leading empty level")]
    #[test_case("$share/g/$SYS/#", "g", "$SYS/#" ; "dollar filter inside share")]
    #[test_case("$share/$g/x", "$g", "x" ; "dollar in share name")]
    fn parses_shared_subscription(s: &str, group: &str, filter: &str) {
        let parsed = parse_filter(s).unwrap();
        assert_eq!(
            parsed,
            FilterKind::Shared {
                group: group.into(),
                filter: TopicFilter::new(filter).unwrap(),
            }
        );
        assert_eq!(parsed.filter().as_str(), filter);
    }

    #[test_case("sport/#" ; "ordinary filter")]
    #[test_case("$sharefoo/x" ; "share-like prefix without separator")]
    #[test_case("$SYS/#" ; "system filter")]
    #[test_case("a/$share/g/x" ; "share not in the first level")]
    fn parses_normal_filter(s: &str) {
        assert_eq!(
            parse_filter(s),
            Ok(FilterKind::Normal(TopicFilter::new(s).unwrap()))
        );
    }

    #[test_case("$share" => Error::EmptyShareName ; "mqtt_4_8_2_1 share prefix alone")]
    #[test_case("$share/" => Error::EmptyShareName ; "mqtt_4_8_2_1 share prefix and separator")]
    #[test_case("$share//x" => Error::EmptyShareName ; "mqtt_4_8_2_1 empty share name")]
    #[test_case("$share/g" => Error::MissingSharedFilter ; "mqtt_4_8_2_2 share name without filter")]
    #[test_case("$share/g/" => Error::MissingSharedFilter ; "mqtt_4_8_2_2 share name with empty filter")]
    #[test_case("$share/g+/x" => Error::InvalidShareName ; "mqtt_4_8_2_2 plus in share name")]
    #[test_case("$share/#/x" => Error::InvalidShareName ; "mqtt_4_8_2_2 hash in share name")]
    #[test_case("$share/g/x#" => Error::MisplacedMultiLevelWildcard ; "mqtt_4_7_1_1 bad filter inside share")]
    #[test_case("$share/g/x+" => Error::MisplacedSingleLevelWildcard ; "mqtt_4_7_1_2 bad filter inside share")]
    #[test_case("" => Error::Empty ; "mqtt_4_7_3_1 empty filter")]
    #[test_case("$share/g/\0" => Error::NullCharacter ; "mqtt_4_7_3_2 null inside share")]
    fn rejects_invalid_shared_subscription(s: &str) -> Error {
        parse_filter(s).unwrap_err()
    }

    // section 4.7.1.2: the multi-level wildcard
    #[test_case("sport/tennis/player1/#", "sport/tennis/player1" => true ; "hash matches its parent")]
    #[test_case("sport/tennis/player1/#", "sport/tennis/player1/ranking" => true ; "hash matches one child")]
    #[test_case("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon" => true ; "hash matches deep children")]
    #[test_case("sport/#", "sport" => true ; "sport hash matches sport")]
    #[test_case("sport/#", "sports" => false ; "hash does not match a longer level")]
    #[test_case("sport/#", "sport/" => true ; "hash matches an empty child level")]
    #[test_case("#", "sport/tennis" => true ; "lone hash matches everything")]
    #[test_case("#", "/" => true ; "lone hash matches empty levels")]
    #[test_case("/#", "/finance" => true ; "hash after empty first level")]
    #[test_case("/#", "finance" => false ; "empty first level is significant")]
    // section 4.7.1.3: the single-level wildcard
    #[test_case("sport/tennis/+", "sport/tennis/player1" => true ; "plus matches one level")]
    #[test_case("sport/tennis/+", "sport/tennis/player2" => true ; "plus matches another level")]
    #[test_case("sport/tennis/+", "sport/tennis/player1/ranking" => false ; "plus matches only one level")]
    #[test_case("sport/+", "sport" => false ; "plus needs a level")]
    #[test_case("sport/+", "sport/" => true ; "plus matches an empty level")]
    #[test_case("+/+", "/finance" => true ; "two plus match leading empty level")]
    #[test_case("/+", "/finance" => true ; "plus after empty level")]
    #[test_case("+", "/finance" => false ; "lone plus does not match two levels")]
    #[test_case("+", "finance" => true ; "lone plus matches one level")]
    #[test_case("+/tennis/#", "sport/tennis/player1/ranking" => true ; "plus and hash together")]
    #[test_case("sport/+/player1", "sport/tennis/player1" => true ; "plus in the middle")]
    #[test_case("+/+/+", "a/b" => false ; "more filter levels than topic levels")]
    // literal levels
    #[test_case("sport/tennis", "sport/tennis" => true ; "identical")]
    #[test_case("sport/tennis", "Sport/Tennis" => false ; "case sensitive")]
    #[test_case("sport/tennis", "sport/tennis/" => false ; "trailing separator is significant")]
    #[test_case("a//b", "a//b" => true ; "empty middle levels match literally")]
    #[test_case("a/+/b", "a//b" => true ; "plus matches empty middle level")]
    // section 4.7.2: topics beginning with $
    #[test_case("#", "$SYS/monitor/Clients" => false ; "mqtt_4_7_2_1 hash does not match dollar topics")]
    #[test_case("+/monitor/Clients", "$SYS/monitor/Clients" => false ; "mqtt_4_7_2_1 plus does not match dollar topics")]
    #[test_case("+", "$SYS" => false ; "mqtt_4_7_2_1 lone plus does not match dollar topic")]
    #[test_case("$SYS/#", "$SYS/monitor/Clients" => true ; "mqtt_4_7_2_1 dollar hash matches")]
    #[test_case("$SYS/monitor/+", "$SYS/monitor/Clients" => true ; "mqtt_4_7_2_1 dollar plus matches")]
    #[test_case("$SYS/#", "$SYS" => true ; "mqtt_4_7_2_1 dollar hash matches parent")]
    #[test_case("a/#", "a/$b" => true ; "dollar below the first level is ordinary")]
    #[test_case("+/$b", "a/$b" => true ; "dollar in a later level is ordinary")]
    #[test_case("$SYS", "$SYS" => true ; "dollar literal matches itself")]
    fn matches_topic(filter: &str, name: &str) -> bool {
        let filter = TopicFilter::new(filter).unwrap();
        let name = TopicName::new(name).unwrap();
        filter.matches(&name)
    }

    #[test_case("sport/#" => true ; "hash")]
    #[test_case("+/x" => true ; "plus")]
    #[test_case("sport/tennis" => false ; "none")]
    fn reports_wildcards(s: &str) -> bool {
        TopicFilter::new(s).unwrap().has_wildcards()
    }

    #[test_case("$SYS/x" => true ; "dollar sys")]
    #[test_case("$" => true ; "lone dollar")]
    #[test_case("a/$SYS" => false ; "dollar later")]
    fn detects_system_topics(s: &str) -> bool {
        TopicName::new(s).unwrap().is_system()
    }

    #[test]
    fn newtypes_display_borrow_and_convert_like_their_string() {
        let name = TopicName::new("a/b").unwrap();
        assert_eq!(name.to_string(), "a/b");
        assert_eq!(TopicFilter::new("a/+").unwrap().to_string(), "a/+");
        let set: HashSet<TopicName> = [name.clone()].into();
        assert!(set.contains("a/b"));
        assert_eq!(name.clone().into_inner(), "a/b");
        assert_eq!(TopicName::try_from("a/#"), Err(Error::WildcardInName));
        assert!(TopicFilter::try_from(String::from("a/#")).is_ok());
    }

    #[test]
    fn error_messages_cite_spec_ids() {
        assert_eq!(
            Error::WildcardInName.to_string(),
            "[MQTT-3.3.2-2] topic name contains a wildcard"
        );
        for e in [
            Error::Empty,
            Error::TooLong { len: 1 },
            Error::NullCharacter,
            Error::MisplacedMultiLevelWildcard,
            Error::MisplacedSingleLevelWildcard,
            Error::EmptyShareName,
            Error::InvalidShareName,
            Error::MissingSharedFilter,
        ] {
            assert!(e.to_string().starts_with("[MQTT-"), "{e}");
        }
    }
}
