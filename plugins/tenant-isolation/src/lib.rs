//! Tenant isolation: each client may publish and subscribe only inside
//! `{prefix}/{its tenant}/#` (by default `tenants/{tenant}/#`).
//!
//! The tenant comes from the session attribute `tenant` (granted at connect, for example by the
//! `api-keys` plugin) or from the user name's part before `@`, in a configurable order. A
//! tenant that could escape its namespace (empty, or containing `/`, `+`, `#`) counts as none,
//! and a client without a tenant may do nothing. Shared subscriptions are checked on their
//! inner filter.

use cauldron_sdk::log::debug;
use cauldron_sdk::prelude::*;
use cauldron_sdk::topic;

/// Where a client's tenant comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A session attribute (named by `attribute`).
    Attribute,
    /// The user name's part before `username_separator`.
    Username,
}

/// The plugin, configured.
#[derive(Debug)]
pub struct TenantIsolation {
    prefix: String,
    sources: Vec<Source>,
    attribute: String,
    separator: String,
    exempt_roles: Vec<String>,
    allow_inside: bool,
}

impl Default for TenantIsolation {
    fn default() -> Self {
        TenantIsolation {
            prefix: "tenants".to_owned(),
            sources: vec![Source::Attribute, Source::Username],
            attribute: "tenant".to_owned(),
            separator: "@".to_owned(),
            exempt_roles: Vec::new(),
            allow_inside: false,
        }
    }
}

impl Plugin for TenantIsolation {
    const HOOKS: Hooks = Hooks::SUBSCRIBE.union(Hooks::PUBLISH);

    fn init(&mut self, config: &Config) -> Result<(), String> {
        if let Some(prefix) = config.get_str("prefix")? {
            if prefix.ends_with('/') || prefix.contains(['+', '#', '\0']) {
                return Err(format!(
                    "prefix `{prefix}` must not end with '/' or contain wildcards"
                ));
            }
            self.prefix = prefix.to_owned();
        }
        if let Some(sources) = config.get_list_of_str("sources")? {
            self.sources = sources
                .into_iter()
                .map(|s| match s {
                    "attribute" => Ok(Source::Attribute),
                    "username" => Ok(Source::Username),
                    other => Err(format!(
                        "sources: unknown source `{other}` (expected attribute or username)"
                    )),
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(attribute) = config.get_str("attribute")? {
            self.attribute = attribute.to_owned();
        }
        if let Some(separator) = config.get_str("username_separator")? {
            if separator.is_empty() {
                return Err("username_separator must not be empty".to_owned());
            }
            self.separator = separator.to_owned();
        }
        if let Some(roles) = config.get_list_of_str("exempt_roles")? {
            self.exempt_roles = roles.into_iter().map(str::to_owned).collect();
        }
        self.allow_inside = config.get_bool("allow_inside")?.unwrap_or(false);
        Ok(())
    }

    fn on_subscribe(&self, client: &Client, filter: &str, requested: QoS) -> SubscribeDecision {
        match self.confine(client, filter) {
            Ok(true) => SubscribeDecision::NoOpinion,
            Ok(false) if self.allow_inside => SubscribeDecision::Allow(requested),
            Ok(false) => SubscribeDecision::NoOpinion,
            Err(why) => {
                debug!("subscription refused"; client_id = client.client_id(), filter = filter);
                SubscribeDecision::deny(why)
            }
        }
    }

    fn on_publish(&self, client: &Client, message: &Message) -> Verdict {
        match self.confine(client, message.topic()) {
            Ok(_) => Verdict::Continue,
            Err(why) => {
                debug!("publish dropped"; client_id = client.client_id(), topic = message.topic());
                Verdict::drop(why)
            }
        }
    }
}

impl TenantIsolation {
    /// `Ok(true)` when the client is exempt, `Ok(false)` when `topic_or_filter` lies inside its
    /// tenant's namespace, `Err(reason)` otherwise. Pure: no host calls.
    pub fn confine(&self, client: &Client, topic_or_filter: &str) -> Result<bool, String> {
        if client
            .attribute("role")
            .is_some_and(|r| self.exempt_roles.iter().any(|e| e == r))
        {
            return Ok(true);
        }
        let Some(tenant) = self.tenant_of(client) else {
            return Err("client has no tenant".to_owned());
        };
        let inner = topic::strip_share(topic_or_filter).map_or(topic_or_filter, |(_, f)| f);
        if self.inside(tenant, inner) {
            Ok(false)
        } else {
            Err(format!("outside {}", self.namespace(tenant)))
        }
    }

    /// The client's tenant, by the configured sources in order; only a tenant that is one
    /// plain topic level counts.
    pub fn tenant_of<'a>(&self, client: &'a Client) -> Option<&'a str> {
        self.sources
            .iter()
            .filter_map(|source| match source {
                Source::Attribute => client.attribute(&self.attribute),
                Source::Username => client
                    .username()
                    .and_then(|u| u.split_once(self.separator.as_str()))
                    .map(|(tenant, _)| tenant),
            })
            .find(|t| is_plain_level(t))
    }

    /// The filter a tenant is confined to, `{prefix}/{tenant}/#`.
    pub fn namespace(&self, tenant: &str) -> String {
        format!("{}/#", self.base(tenant))
    }

    fn base(&self, tenant: &str) -> String {
        if self.prefix.is_empty() {
            tenant.to_owned()
        } else {
            format!("{}/{tenant}", self.prefix)
        }
    }

    fn inside(&self, tenant: &str, topic_or_filter: &str) -> bool {
        let base = self.base(tenant);
        match topic_or_filter.strip_prefix(base.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

fn is_plain_level(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', '+', '#', '\0'])
}

cauldron_sdk::export_plugin!(TenantIsolation);

#[cfg(test)]
mod tests {
    use super::*;
    use cauldron_sdk::testing;

    fn plugin(config: &str) -> TenantIsolation {
        testing::instantiate(config).unwrap()
    }

    fn acme() -> Client {
        Client::new("c1").with_attribute("tenant", "acme")
    }

    #[test]
    fn publish_inside_the_tenant_continues() {
        let p = plugin("{}");
        for topic in ["tenants/acme/temp", "tenants/acme", "tenants/acme/a/b/c"] {
            let v = p.on_publish(&acme(), &Message::new(topic, "1"));
            assert_eq!(v, Verdict::Continue, "{topic}");
        }
    }

    #[test]
    fn publish_outside_the_tenant_is_dropped_not_authorized() {
        let p = plugin("{}");
        for topic in [
            "tenants/other/temp",
            "tenants/acmex/temp",
            "temp",
            "$SYS/x",
            "tenants",
        ] {
            let v = p.on_publish(&acme(), &Message::new(topic, "1"));
            assert!(
                matches!(v, Verdict::Drop { code: 0x87, .. }),
                "{topic}: {v:?}"
            );
        }
    }

    #[test]
    fn subscribe_outside_the_tenant_is_denied() {
        let p = plugin("{}");
        for filter in [
            "#",
            "+/acme/#",
            "tenants/+/temp",
            "tenants/#",
            "tenants/acme+",
            "$share/g/#",
        ] {
            let d = p.on_subscribe(&acme(), filter, QoS::AtLeastOnce);
            assert!(
                matches!(d, SubscribeDecision::Deny { code: 0x87, .. }),
                "{filter}: {d:?}"
            );
        }
    }

    #[test]
    fn subscribe_inside_the_tenant_passes_or_allows() {
        let filters = [
            "tenants/acme/#",
            "tenants/acme/+/temp",
            "$share/g/tenants/acme/jobs",
        ];
        let passing = plugin("{}");
        let allowing = plugin(r#"{"allow_inside": true}"#);
        for filter in filters {
            assert_eq!(
                passing.on_subscribe(&acme(), filter, QoS::ExactlyOnce),
                SubscribeDecision::NoOpinion
            );
            assert_eq!(
                allowing.on_subscribe(&acme(), filter, QoS::ExactlyOnce),
                SubscribeDecision::Allow(QoS::ExactlyOnce)
            );
        }
    }

    #[test]
    fn tenant_falls_back_to_the_user_name_prefix() {
        let p = plugin("{}");
        let c = Client::new("c1").with_username("globex@sensor-7");
        assert_eq!(p.tenant_of(&c), Some("globex"));
        assert_eq!(
            p.on_publish(&c, &Message::new("tenants/globex/t", "")),
            Verdict::Continue
        );
        let attribute_wins = c.with_attribute("tenant", "acme");
        assert_eq!(p.tenant_of(&attribute_wins), Some("acme"));
    }

    #[test]
    fn sources_order_and_separator_are_configurable() {
        let p = plugin(r#"{"sources": ["username"], "username_separator": ":"}"#);
        let c = Client::new("c1")
            .with_username("initech:bob")
            .with_attribute("tenant", "acme");
        assert_eq!(p.tenant_of(&c), Some("initech"));
        let attr_only = plugin(r#"{"sources": ["attribute"], "attribute": "org"}"#);
        assert_eq!(attr_only.tenant_of(&c), None);
        assert_eq!(
            attr_only.tenant_of(&Client::new("x").with_attribute("org", "o1")),
            Some("o1")
        );
    }

    #[test]
    fn client_without_tenant_may_do_nothing() {
        let p = plugin("{}");
        let c = Client::new("c1").with_username("no-separator");
        assert!(matches!(
            p.on_publish(&c, &Message::new("tenants/x/y", "")),
            Verdict::Drop { .. }
        ));
        assert!(matches!(
            p.on_subscribe(&c, "tenants/x/#", QoS::AtMostOnce),
            SubscribeDecision::Deny { .. }
        ));
    }

    #[test]
    fn tenants_that_could_escape_their_namespace_count_as_none() {
        let p = plugin("{}");
        for bad in ["acme/x", "+", "#", ""] {
            let c = Client::new("c1").with_attribute("tenant", bad);
            assert_eq!(p.tenant_of(&c), None, "{bad:?}");
        }
        let nested = Client::new("c1").with_username("acme/x@u");
        assert_eq!(p.tenant_of(&nested), None);
    }

    #[test]
    fn exempt_roles_are_not_confined() {
        let p = plugin(r#"{"exempt_roles": ["admin"]}"#);
        let admin = Client::new("root").with_attribute("role", "admin");
        assert_eq!(
            p.on_publish(&admin, &Message::new("anything", "")),
            Verdict::Continue
        );
        assert_eq!(
            p.on_subscribe(&admin, "#", QoS::AtMostOnce),
            SubscribeDecision::NoOpinion
        );
    }

    #[test]
    fn custom_and_empty_prefixes_set_the_namespace() {
        let p = plugin(r#"{"prefix": "org/t"}"#);
        assert_eq!(p.namespace("acme"), "org/t/acme/#");
        assert_eq!(
            p.on_publish(&acme(), &Message::new("org/t/acme/x", "")),
            Verdict::Continue
        );
        let flat = plugin(r#"{"prefix": ""}"#);
        assert_eq!(flat.namespace("acme"), "acme/#");
        assert_eq!(
            flat.on_publish(&acme(), &Message::new("acme/x", "")),
            Verdict::Continue
        );
    }

    #[test]
    fn rejects_invalid_config() {
        for (config, needle) in [
            (r#"{"prefix": "tenants/"}"#, "must not end with '/'"),
            (r#"{"prefix": "t/+"}"#, "wildcards"),
            (r#"{"sources": ["cert"]}"#, "unknown source `cert`"),
            (r#"{"username_separator": ""}"#, "must not be empty"),
            (r#"{"allow_inside": "yes"}"#, "must be a boolean"),
        ] {
            let e = testing::instantiate::<TenantIsolation>(config).unwrap_err();
            assert!(e.contains(needle), "{config}: {e}");
        }
    }
}
