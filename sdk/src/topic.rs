//! Topic helpers: splitting into levels, validating names and filters, and matching a filter
//! against a name by the MQTT rules (MQTT 5.0 section 4.7), `$`-topics included.
//!
//! Pure functions over `&str`; they agree with the broker's own matcher.

/// The levels of a topic name or filter, split at `/` (empty levels included).
///
/// ```
/// use cauldron_sdk::topic;
///
/// assert_eq!(topic::levels("tenants/acme/temp").collect::<Vec<_>>(), ["tenants", "acme", "temp"]);
/// assert_eq!(topic::levels("/a/").collect::<Vec<_>>(), ["", "a", ""]);
/// ```
pub fn levels(topic: &str) -> std::str::Split<'_, char> {
    topic.split('/')
}

/// True when `filter` matches the topic name `topic`.
///
/// `+` matches exactly one level, `#` the parent level and any number of levels below it, and
/// a filter starting with a wildcard does not match a topic starting with `$` [MQTT-4.7.2-1].
/// An invalid filter matches nothing.
///
/// ```
/// use cauldron_sdk::topic::matches;
///
/// assert!(matches("sport/+/player1", "sport/tennis/player1"));
/// assert!(matches("sport/#", "sport"));
/// assert!(!matches("+/monitor", "$SYS/monitor"));
/// assert!(matches("$SYS/#", "$SYS/broker/uptime"));
/// ```
pub fn matches(filter: &str, topic: &str) -> bool {
    if !is_valid_filter(filter) || !is_valid_name(topic) {
        return false;
    }
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut names = levels(topic);
    for f in levels(filter) {
        match (f, names.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(n)) if f == n => {}
            _ => return false,
        }
    }
    names.next().is_none()
}

/// True when `topic` is a valid topic name: non-empty, at most 65,535 bytes, no U+0000 and no
/// wildcard [MQTT-4.7.3-1] [MQTT-4.7.3-2] [MQTT-4.7.3-3] [MQTT-3.3.2-2].
pub fn is_valid_name(topic: &str) -> bool {
    is_valid_common(topic) && !topic.contains(['+', '#'])
}

/// True when `filter` is a valid topic filter: non-empty, at most 65,535 bytes, no U+0000,
/// `#` only alone in the last level and `+` only alone in a level [MQTT-4.7.1-1]
/// [MQTT-4.7.1-2]. Shared-subscription syntax is not interpreted here; see
/// [`strip_share`].
pub fn is_valid_filter(filter: &str) -> bool {
    if !is_valid_common(filter) {
        return false;
    }
    let mut rest = levels(filter).peekable();
    while let Some(level) = rest.next() {
        let last = rest.peek().is_none();
        let ok = match level {
            "#" => last,
            "+" => true,
            l => !l.contains(['+', '#']),
        };
        if !ok {
            return false;
        }
    }
    true
}

/// For a shared subscription `$share/{group}/{filter}`, the group and the inner filter;
/// `None` for any other filter (MQTT 5.0 section 4.8.2).
///
/// ```
/// use cauldron_sdk::topic::strip_share;
///
/// assert_eq!(strip_share("$share/workers/jobs/#"), Some(("workers", "jobs/#")));
/// assert_eq!(strip_share("jobs/#"), None);
/// ```
pub fn strip_share(filter: &str) -> Option<(&str, &str)> {
    let rest = filter.strip_prefix("$share/")?;
    let (group, inner) = rest.split_once('/')?;
    (!group.is_empty() && !inner.is_empty()).then_some((group, inner))
}

fn is_valid_common(s: &str) -> bool {
    !s.is_empty() && s.len() <= 65_535 && !s.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_follows_the_spec_examples() {
        let cases = [
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
                true,
            ),
            ("sport/#", "sport", true),
            ("#", "any/thing", true),
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/b", false),
            ("a/b", "a/b", true),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(matches(filter, topic), expected, "{filter} vs {topic}");
        }
    }

    #[test]
    fn leading_wildcards_do_not_match_dollar_topics() {
        assert!(!matches("#", "$SYS/uptime"));
        assert!(!matches("+/uptime", "$SYS/uptime"));
        assert!(matches("$SYS/+", "$SYS/uptime"));
        assert!(matches("$SYS/#", "$SYS"));
    }

    #[test]
    fn invalid_filters_and_names_match_nothing() {
        assert!(!matches("a/#/b", "a/x/b"));
        assert!(!matches("a+", "a+"));
        assert!(!matches("a/+", "a/#"));
        assert!(!matches("", ""));
    }

    #[test]
    fn rejects_wildcards_in_topic_names() {
        assert!(is_valid_name("a/b"));
        assert!(is_valid_name("/"));
        assert!(!is_valid_name("a/+"));
        assert!(!is_valid_name("a/#"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a\0b"));
        assert!(!is_valid_name(&"x".repeat(65_536)));
    }

    #[test]
    fn rejects_misplaced_wildcards_in_filters() {
        assert!(is_valid_filter("#"));
        assert!(is_valid_filter("+/+/#"));
        assert!(!is_valid_filter("a/#/b"));
        assert!(!is_valid_filter("a#"));
        assert!(!is_valid_filter("a/b+"));
    }

    #[test]
    fn strip_share_needs_group_and_filter() {
        assert_eq!(strip_share("$share/g/a/b"), Some(("g", "a/b")));
        assert_eq!(strip_share("$share//a"), None);
        assert_eq!(strip_share("$share/g"), None);
        assert_eq!(strip_share("$share/g/"), None);
    }
}
