//! The glue between the component's exports and a [`Plugin`]: the [`export_plugin!`] macro and
//! the generic functions it forwards to, which keep the instance, convert WIT types and install
//! the panic hook.
//!
//! The macro only names things; all logic is in these functions so that it is unit-tested
//! natively. Nothing here knows a particular plugin.
//!
//! [`export_plugin!`]: crate::export_plugin

use std::cell::OnceCell;
use std::thread::LocalKey;

use crate::bindings::cauldron::plugin::types as wit;
use crate::client_cache;
use crate::config::Config;
use crate::convert;
use crate::plugin::Plugin;

/// Where the macro keeps the plugin instance: a thread local (a component instance is single
/// threaded), set once by `init`.
pub type Slot<P> = LocalKey<OnceCell<P>>;

/// Runs `f` on the instance; should the host call a hook before `init`, on `P::default()`.
fn with_plugin<P: Plugin, T>(slot: &'static Slot<P>, f: impl FnOnce(&P) -> T) -> T {
    slot.with(|cell| f(cell.get_or_init(P::default)))
}

/// `declared-hooks`.
pub fn declared_hooks<P: Plugin>() -> wit::HookSet {
    convert::hooks_to_wit(P::HOOKS)
}

/// `init`: installs the panic hook, parses the config, makes and keeps the instance.
///
/// # Errors
/// The config's parse error, the plugin's `init` error, or a second `init` on one instance.
pub fn init<P: Plugin>(slot: &'static Slot<P>, config: String) -> Result<(), String> {
    install_panic_hook();
    let config = Config::from_json(&config)?;
    let mut plugin = P::default();
    plugin.init(&config)?;
    slot.with(|cell| {
        cell.set(plugin)
            .map_err(|_| "init called twice on one instance".to_owned())
    })
}

/// `on-connect`.
pub fn on_connect<P: Plugin>(
    slot: &'static Slot<P>,
    client: wit::Client,
    credentials: wit::Credentials,
) -> wit::ConnectDecision {
    let client = convert::client_from_wit(client);
    let credentials = convert::credentials_from_wit(credentials);
    let decision = with_plugin(slot, |p| p.on_connect(&client, &credentials));
    convert::connect_decision_to_wit(decision)
}

/// `on-subscribe`.
pub fn on_subscribe<P: Plugin>(
    slot: &'static Slot<P>,
    client: wit::ClientHandle,
    filter: String,
    requested: wit::Qos,
) -> wit::SubscribeDecision {
    let client = client_cache::client(client);
    let requested = convert::qos_from_wit(requested);
    let decision = with_plugin(slot, |p| p.on_subscribe(&client, &filter, requested));
    convert::subscribe_decision_to_wit(decision)
}

/// `on-publish`.
pub fn on_publish<P: Plugin>(
    slot: &'static Slot<P>,
    client: wit::ClientHandle,
    message: wit::Message,
) -> wit::PublishDecision {
    let client = client_cache::client(client);
    let message = convert::message_from_wit(message);
    let verdict = with_plugin(slot, |p| p.on_publish(&client, &message));
    convert::verdict_to_wit(verdict)
}

/// `on-publish-batch`: the plugin's `on_publish` for each message in turn.
pub fn on_publish_batch<P: Plugin>(
    slot: &'static Slot<P>,
    client: wit::ClientHandle,
    messages: Vec<wit::Message>,
) -> Vec<wit::PublishDecision> {
    let client = client_cache::client(client);
    with_plugin(slot, |p| {
        messages
            .into_iter()
            .map(|message| {
                let message = convert::message_from_wit(message);
                convert::verdict_to_wit(p.on_publish(&client, &message))
            })
            .collect()
    })
}

/// `on-disconnect`.
pub fn on_disconnect<P: Plugin>(
    slot: &'static Slot<P>,
    client: wit::ClientHandle,
    reason: wit::DisconnectReason,
) {
    let client = client_cache::client(client);
    let reason = convert::disconnect_reason_from_wit(reason);
    with_plugin(slot, |p| p.on_disconnect(&client, reason));
}

/// On wasm32, makes a panic log its message and location through `host.log` (level error)
/// before the trap; the default hook's stderr line would lose the structure. Natively a no-op,
/// so `cargo test` keeps its own panic output.
fn install_panic_hook() {
    #[cfg(target_arch = "wasm32")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                crate::log::log(
                    crate::log::Level::Error,
                    &format!("plugin panicked: {info}"),
                    &[],
                );
            }));
        });
    }
}

/// Exports a [`Plugin`] implementation as the component's `hooks`.
///
/// Use it once per plugin crate, at the top level. The type must implement
/// [`Plugin`] (and so `Default`); the broker makes one instance of it per component instance.
///
/// ```
/// #[derive(Default)]
/// struct Quiet;
///
/// impl cauldron_sdk::Plugin for Quiet {
///     const HOOKS: cauldron_sdk::Hooks = cauldron_sdk::Hooks::NONE;
/// }
///
/// cauldron_sdk::export_plugin!(Quiet);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            use $crate::__private::wit as __wit;

            ::std::thread_local! {
                static __CAULDRON_PLUGIN: ::core::cell::OnceCell<$plugin> =
                    const { ::core::cell::OnceCell::new() };
            }

            struct __CauldronExports;

            impl $crate::__private::Guest for __CauldronExports {
                fn declared_hooks() -> __wit::HookSet {
                    $crate::__private::declared_hooks::<$plugin>()
                }

                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::init(&__CAULDRON_PLUGIN, config)
                }

                fn on_connect(
                    client: __wit::Client,
                    credentials: __wit::Credentials,
                ) -> __wit::ConnectDecision {
                    $crate::__private::on_connect(&__CAULDRON_PLUGIN, client, credentials)
                }

                fn on_subscribe(
                    client: __wit::ClientHandle,
                    filter: ::std::string::String,
                    requested: __wit::Qos,
                ) -> __wit::SubscribeDecision {
                    $crate::__private::on_subscribe(&__CAULDRON_PLUGIN, client, filter, requested)
                }

                fn on_publish(
                    client: __wit::ClientHandle,
                    message: __wit::Message,
                ) -> __wit::PublishDecision {
                    $crate::__private::on_publish(&__CAULDRON_PLUGIN, client, message)
                }

                fn on_publish_batch(
                    client: __wit::ClientHandle,
                    messages: ::std::vec::Vec<__wit::Message>,
                ) -> ::std::vec::Vec<__wit::PublishDecision> {
                    $crate::__private::on_publish_batch(&__CAULDRON_PLUGIN, client, messages)
                }

                fn on_disconnect(client: __wit::ClientHandle, reason: __wit::DisconnectReason) {
                    $crate::__private::on_disconnect(&__CAULDRON_PLUGIN, client, reason)
                }
            }

    $crate::bindings::export!(__CauldronExports with_types_in $crate::bindings);
        };
    };
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::{
        Client, ConnectDecision, Credentials, Hooks, Message, QoS, SubscribeDecision, Verdict,
    };

    #[derive(Default)]
    struct Probe {
        inits: Cell<u32>,
        suffix: String,
    }

    impl Plugin for Probe {
        const HOOKS: Hooks = Hooks::CONNECT.union(Hooks::PUBLISH);

        fn init(&mut self, config: &Config) -> Result<(), String> {
            self.inits.set(self.inits.get() + 1);
            self.suffix = config.require_str("suffix")?.to_owned();
            Ok(())
        }

        fn on_connect(&self, client: &Client, creds: &Credentials) -> ConnectDecision {
            match creds.password_str() {
                Some("ok") => ConnectDecision::allow_with([("id", client.client_id())]),
                _ => ConnectDecision::deny("bad"),
            }
        }

        fn on_publish(&self, _client: &Client, msg: &Message) -> Verdict {
            let topic = format!("{}/{}", msg.topic(), self.suffix);
            Verdict::Replace(msg.clone().with_topic(topic))
        }
    }

    thread_local! {
        static SLOT: OnceCell<Probe> = const { OnceCell::new() };
    }

    fn wit_client() -> wit::Client {
        wit::Client {
            client_id: "c1".into(),
            username: None,
            protocol: wit::ProtocolVersion::V5,
            remote_addr: "127.0.0.1:1".into(),
            listener: "default".into(),
            tls_peer: None,
            keep_alive: 0,
            clean_start: true,
            will: None,
            attributes: vec![],
        }
    }

    /// A handle whose record the fake host serves (client id `c1`).
    fn handle() -> wit::ClientHandle {
        crate::backend::native::with_host(|h| h.client = Some(Client::new("c1")));
        1
    }

    fn wit_message(topic: &str) -> wit::Message {
        convert::message_to_wit(Message::new(topic, "p").with_qos(QoS::AtLeastOnce))
    }

    #[test]
    fn declared_hooks_come_from_the_const() {
        assert_eq!(
            declared_hooks::<Probe>(),
            wit::HookSet::CONNECT | wit::HookSet::PUBLISH
        );
    }

    #[test]
    fn init_keeps_the_configured_instance_for_the_hooks() {
        init(&SLOT, r#"{"suffix": "x"}"#.to_owned()).unwrap();
        match on_publish(&SLOT, handle(), wit_message("a/b")) {
            wit::PublishDecision::Replace(m) => {
                assert_eq!(m.topic, "a/b/x");
                assert_eq!(m.qos, wit::Qos::AtLeastOnce);
            }
            other => panic!("{other:?}"),
        }
        SLOT.with(|c| assert_eq!(c.get().map(|p| p.inits.get()), Some(1)));
    }

    #[test]
    fn a_batch_answers_each_message_as_on_publish_does_in_order() {
        init(&SLOT, r#"{"suffix": "x"}"#.to_owned()).unwrap();
        let batch = vec![wit_message("a"), wit_message("b/c"), wit_message("d")];
        let topics: Vec<String> = on_publish_batch(&SLOT, handle(), batch)
            .into_iter()
            .map(|d| match d {
                wit::PublishDecision::Replace(m) => m.topic,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(topics, ["a/x", "b/c/x", "d/x"]);
    }

    #[test]
    fn second_init_on_one_instance_fails() {
        init(&SLOT, r#"{"suffix": "x"}"#.to_owned()).unwrap();
        assert_eq!(
            init(&SLOT, r#"{"suffix": "y"}"#.to_owned()),
            Err("init called twice on one instance".to_owned())
        );
    }

    #[test]
    fn init_reports_config_errors_as_text() {
        assert_eq!(
            init(&SLOT, "{}".to_owned()),
            Err("config key `suffix` is required".to_owned())
        );
        assert_eq!(
            init(&SLOT, "[]".to_owned()),
            Err("config must be a table, found a list".to_owned())
        );
    }

    #[test]
    fn connect_decision_reaches_the_host_as_wit() {
        let creds = wit::Credentials {
            username: None,
            password: Some(b"ok".to_vec()),
        };
        match on_connect(&SLOT, wit_client(), creds) {
            wit::ConnectDecision::Allow(attrs) => {
                assert_eq!(
                    (attrs[0].key.as_str(), attrs[0].value.as_str()),
                    ("id", "c1")
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hooks_before_init_run_on_a_default_instance() {
        assert!(matches!(
            on_subscribe(&SLOT, handle(), "a/#".into(), wit::Qos::AtMostOnce),
            wit::SubscribeDecision::NoOpinion
        ));
        on_disconnect(&SLOT, handle(), wit::DisconnectReason::Normal);
        SLOT.with(|c| assert_eq!(c.get().map(|p| p.inits.get()), Some(0)));
    }

    /// Denies every subscription naming the client it was told about.
    #[derive(Default)]
    struct Namer;

    impl Plugin for Namer {
        const HOOKS: Hooks = Hooks::SUBSCRIBE;

        fn on_subscribe(&self, client: &Client, _filter: &str, _q: QoS) -> SubscribeDecision {
            SubscribeDecision::deny(client.client_id())
        }
    }

    thread_local! {
        static NAMER: OnceCell<Namer> = const { OnceCell::new() };
    }

    fn denied_as(decision: wit::SubscribeDecision) -> String {
        match decision {
            wit::SubscribeDecision::Deny(r) => r.reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hooks_after_connect_ask_the_broker_for_a_handles_record_once() {
        use crate::backend::native::with_host;
        with_host(|h| h.client = Some(Client::new("first")));
        let sub = |handle| on_subscribe(&NAMER, handle, "a".into(), wit::Qos::AtMostOnce);
        assert_eq!(denied_as(sub(5)), "first");
        with_host(|h| h.client = Some(Client::new("second")));
        assert_eq!(denied_as(sub(5)), "first", "kept under handle 5");
        assert_eq!(denied_as(sub(6)), "second", "a new handle is asked for");
        assert_eq!(with_host(|h| h.client_lookups), 2);
    }
}
