//! Message rewriting: topic rewriting by prefix, and the celsius-to-fahrenheit republish.
//!
//! A publish whose topic starts with a configured prefix is replaced by the same message on the
//! mapped prefix (the longest matching prefix wins). A publish on `temp/celsius` whose payload
//! is a decimal number also yields, through `host.publish`, one on `temp/fahrenheit` with the
//! converted value; the original passes on unchanged. Both topics are configurable, and the
//! conversion looks at the topic after prefix rewriting.

use cauldron_sdk::log::{debug, warn};
use cauldron_sdk::prelude::*;
use cauldron_sdk::{publish, topic};

/// The plugin, configured.
#[derive(Debug)]
pub struct Rewrite {
    /// (from, to) prefixes, longest `from` first.
    prefixes: Vec<(String, String)>,
    /// (celsius topic, fahrenheit topic), when the conversion is on.
    temperature: Option<(String, String)>,
}

impl Default for Rewrite {
    fn default() -> Self {
        Rewrite {
            prefixes: Vec::new(),
            temperature: Some(("temp/celsius".to_owned(), "temp/fahrenheit".to_owned())),
        }
    }
}

impl Plugin for Rewrite {
    const HOOKS: Hooks = Hooks::PUBLISH;

    fn init(&mut self, config: &Config) -> Result<(), String> {
        let mut prefixes = Vec::new();
        for (from, to) in config.get_table_of_str("prefixes")?.unwrap_or_default() {
            if from.is_empty() || from.contains(['+', '#']) || to.contains(['+', '#']) {
                return Err(format!(
                    "prefixes: `{from}` = `{to}` must be non-empty and free of wildcards"
                ));
            }
            prefixes.push((from.to_owned(), to.to_owned()));
        }
        prefixes.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        self.prefixes = prefixes;

        if config.get_bool("convert_temperature")? == Some(false) {
            self.temperature = None;
            return Ok(());
        }
        let celsius = config.get_str("celsius_topic")?.unwrap_or("temp/celsius");
        let fahrenheit = config
            .get_str("fahrenheit_topic")?
            .unwrap_or("temp/fahrenheit");
        if !topic::is_valid_name(celsius) || !topic::is_valid_name(fahrenheit) {
            return Err("celsius_topic and fahrenheit_topic must be valid topic names".to_owned());
        }
        if celsius == fahrenheit {
            return Err("celsius_topic and fahrenheit_topic must differ".to_owned());
        }
        self.temperature = Some((celsius.to_owned(), fahrenheit.to_owned()));
        Ok(())
    }

    fn on_publish(&self, _client: &Client, message: &Message) -> Verdict {
        let rewritten = self.rewrite_topic(message.topic());
        let effective = rewritten.as_deref().unwrap_or(message.topic());
        if let Some(derived) = self.fahrenheit_message(effective, message)
            && let Err(e) = publish(derived)
        {
            warn!("fahrenheit republish refused"; error = e);
        }
        match rewritten {
            Some(topic) => Verdict::Replace(message.clone().with_topic(topic)),
            None => Verdict::Continue,
        }
    }
}

impl Rewrite {
    /// The topic after prefix rewriting, `None` when no prefix applies (or the result would
    /// not be a valid topic name). Pure.
    pub fn rewrite_topic(&self, topic_name: &str) -> Option<String> {
        let (from, to) = self
            .prefixes
            .iter()
            .find(|(from, _)| topic_name.starts_with(from.as_str()))?;
        let rewritten = format!("{to}{}", &topic_name[from.len()..]);
        if topic::is_valid_name(&rewritten) {
            Some(rewritten)
        } else {
            debug!("rewrite skipped: result is not a valid topic"; topic = topic_name);
            None
        }
    }

    /// The fahrenheit message for a message on the celsius topic (`effective_topic`) with a
    /// numeric payload: same QoS and retain flag, payload the converted number. Pure.
    pub fn fahrenheit_message(&self, effective_topic: &str, message: &Message) -> Option<Message> {
        let (celsius, fahrenheit) = self.temperature.as_ref()?;
        if effective_topic != celsius {
            return None;
        }
        let value = message.payload_str().and_then(celsius_to_fahrenheit)?;
        Some(
            Message::new(fahrenheit.as_str(), value)
                .with_qos(message.qos())
                .with_retain(message.retain())
                .with_payload_utf8(true)
                .with_content_type("text/plain"),
        )
    }
}

/// Converts a decimal celsius reading to fahrenheit text, rounded to two decimals; `None` for
/// anything that is not a finite number.
///
/// `"21.5"` gives `"70.7"`, `"100"` gives `"212"`.
pub fn celsius_to_fahrenheit(text: &str) -> Option<String> {
    let celsius: f64 = text.trim().parse().ok()?;
    if !celsius.is_finite() {
        return None;
    }
    let fahrenheit = (celsius * 9.0 / 5.0 + 32.0) * 100.0;
    let rounded = fahrenheit.round() / 100.0;
    // -0.0 would print as "-0".
    let rounded = if rounded == 0.0 { 0.0 } else { rounded };
    Some(rounded.to_string())
}

cauldron_sdk::export_plugin!(Rewrite);

#[cfg(test)]
mod tests {
    use super::*;
    use cauldron_sdk::testing;

    fn plugin(config: &str) -> Rewrite {
        testing::instantiate(config).unwrap()
    }

    #[test]
    fn converts_celsius_readings() {
        assert_eq!(celsius_to_fahrenheit("21.5").as_deref(), Some("70.7"));
        assert_eq!(celsius_to_fahrenheit("100").as_deref(), Some("212"));
        assert_eq!(celsius_to_fahrenheit(" -40 ").as_deref(), Some("-40"));
        assert_eq!(celsius_to_fahrenheit("-17.7778").as_deref(), Some("0"));
        assert_eq!(celsius_to_fahrenheit("36.6").as_deref(), Some("97.88"));
    }

    #[test]
    fn ignores_payloads_that_are_not_finite_numbers() {
        for text in ["", "warm", "NaN", "inf", "1,5", "12 C"] {
            assert_eq!(celsius_to_fahrenheit(text), None, "{text:?}");
        }
    }

    #[test]
    fn celsius_publish_also_publishes_fahrenheit() {
        let p = plugin("{}");
        let msg = Message::new("temp/celsius", "21.5")
            .with_qos(QoS::AtLeastOnce)
            .with_retain(true);
        assert_eq!(p.on_publish(&Client::new("s1"), &msg), Verdict::Continue);
        let out = testing::published();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].topic(), "temp/fahrenheit");
        assert_eq!(out[0].payload_str(), Some("70.7"));
        assert_eq!(out[0].qos(), QoS::AtLeastOnce);
        assert!(out[0].retain());
        assert!(out[0].payload_utf8());
    }

    #[test]
    fn non_numeric_celsius_publishes_nothing() {
        let p = plugin("{}");
        let v = p.on_publish(&Client::new("s1"), &Message::new("temp/celsius", "hot"));
        assert_eq!(v, Verdict::Continue);
        assert!(testing::published().is_empty());
    }

    #[test]
    fn refused_republish_is_logged_and_the_original_continues() {
        let p = plugin("{}");
        testing::refuse_publish(Some("loop"));
        let v = p.on_publish(&Client::new("s1"), &Message::new("temp/celsius", "1"));
        assert_eq!(v, Verdict::Continue);
        let logs = testing::logs();
        assert!(
            logs.iter()
                .any(|l| l.message == "fahrenheit republish refused"
                    && l.fields[0].1.contains("loop"))
        );
    }

    #[test]
    fn longest_prefix_wins() {
        let p = plugin(r#"{"prefixes": {"legacy/": "v1/", "legacy/temp/": "temp/"}}"#);
        assert_eq!(p.rewrite_topic("legacy/door").as_deref(), Some("v1/door"));
        assert_eq!(p.rewrite_topic("legacy/temp/x").as_deref(), Some("temp/x"));
        assert_eq!(p.rewrite_topic("other/x"), None);
    }

    #[test]
    fn rewrite_replaces_the_topic_and_keeps_the_rest() {
        let p = plugin(r#"{"prefixes": {"old/": "new/"}}"#);
        let msg = Message::new("old/a", "x")
            .with_qos(QoS::ExactlyOnce)
            .with_user_property("k", "v");
        let v = p.on_publish(&Client::new("c"), &msg);
        assert_eq!(v, Verdict::Replace(msg.with_topic("new/a")));
    }

    #[test]
    fn rewrite_to_an_empty_topic_is_skipped() {
        let p = plugin(r#"{"prefixes": {"drop/me": ""}}"#);
        assert_eq!(p.rewrite_topic("drop/me"), None);
        assert_eq!(p.rewrite_topic("drop/me/x").as_deref(), Some("/x"));
    }

    #[test]
    fn conversion_applies_after_rewriting() {
        let p = plugin(r#"{"prefixes": {"legacy/": "temp/"}}"#);
        let v = p.on_publish(&Client::new("c"), &Message::new("legacy/celsius", "0"));
        assert!(matches!(v, Verdict::Replace(ref m) if m.topic() == "temp/celsius"));
        assert_eq!(testing::published()[0].payload_str(), Some("32"));
    }

    #[test]
    fn conversion_topics_are_configurable_and_can_be_off() {
        let p = plugin(r#"{"celsius_topic": "c", "fahrenheit_topic": "f"}"#);
        p.on_publish(&Client::new("c"), &Message::new("c", "10"));
        assert_eq!(testing::take_published()[0].topic(), "f");
        let off = plugin(r#"{"convert_temperature": false}"#);
        off.on_publish(&Client::new("c"), &Message::new("temp/celsius", "10"));
        assert!(testing::published().is_empty());
    }

    #[test]
    fn rejects_invalid_config() {
        for (config, needle) in [
            (r#"{"prefixes": {"a/": "b/#"}}"#, "free of wildcards"),
            (r#"{"prefixes": {"": "b/"}}"#, "non-empty"),
            (r#"{"prefixes": ["a"]}"#, "must be a table of strings"),
            (
                r#"{"celsius_topic": "t", "fahrenheit_topic": "t"}"#,
                "must differ",
            ),
            (r#"{"fahrenheit_topic": "temp/#"}"#, "valid topic names"),
        ] {
            let e = testing::instantiate::<Rewrite>(config).unwrap_err();
            assert!(e.contains(needle), "{config}: {e}");
        }
    }
}
