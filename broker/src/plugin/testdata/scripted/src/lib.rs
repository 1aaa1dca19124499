//! Scripted test plugin for the broker's plugin host tests.
//!
//! Its config (JSON, from the broker's `[plugins.config]`) sets one action per hook:
//! `{"hooks": ["connect", "publish"], "connect": "allow", "publish": "prefix:out/",
//!   "attributes": {"role": "admin"}, "init": "ok"}`.
//! A client id, filter or topic starting with `do/` overrides the action for that call:
//! a publish on `do/trap` traps. Actions that any hook understands: `spin` (loop forever),
//! `trap` (panic), `hog` (allocate until the memory cap stops it), `stdout` (print to
//! stdout and stderr, then behave as `none`/`continue`), `log` (host log, same).
//! The publish action `whoami` rewrites the topic to `who/{client id}`, the id that
//! `host.current-client` answers.
//! `on-publish-batch` answers each message as `on-publish` would, counts its calls and
//! sizes in the key-value store (`batches`, `batched`), and answers one decision too few
//! when a message's topic is `do/short-batch`.

use std::hint::black_box;
use std::sync::OnceLock;

use serde_json::Value;

wit_bindgen::generate!({
    world: "plugin",
    path: "../../../../../wit",
});

use cauldron::plugin::host;
use cauldron::plugin::types::{
    Client, ClientHandle, ConnectDecision, Credentials, DisconnectReason, HookSet, LogLevel, Message, Pair,
    Properties, PublishDecision, Qos, Refusal, SubscribeDecision,
};
use exports::cauldron::plugin::hooks::Guest;

static CONFIG: OnceLock<Value> = OnceLock::new();

fn config() -> &'static Value {
    CONFIG.get_or_init(|| Value::Null)
}

fn setting(key: &str, default: &str) -> String {
    config()
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_owned()
}

/// The action for this call: `do/<action>` in `subject`, else the configured one.
fn action(hook: &str, subject: &str, default: &str) -> String {
    match subject.strip_prefix("do/") {
        Some(rest) => rest.to_owned(),
        None => setting(hook, default),
    }
}

/// Actions every hook understands; returns true when the call should go on as normal.
fn common(action: &str) -> bool {
    match action {
        "spin" => {
            let mut i: u64 = 0;
            loop {
                i = black_box(i.wrapping_add(1));
            }
        }
        "trap" => panic!("scripted trap"),
        "hog" => {
            let mut blocks = Vec::new();
            loop {
                blocks.push(black_box(vec![7u8; 1 << 20]));
            }
        }
        "stdout" => {
            println!("hello from stdout");
            eprintln!("hello from stderr");
            true
        }
        "log" => {
            host::log(
                LogLevel::Info,
                "scripted log",
                &[Pair {
                    key: "k".into(),
                    value: "v".into(),
                }],
            );
            true
        }
        _ => false,
    }
}

fn refusal(reason_code: u8) -> Refusal {
    Refusal {
        reason_code,
        reason: "scripted".into(),
    }
}

fn no_properties() -> Properties {
    Properties {
        user_properties: Vec::new(),
        content_type: None,
        response_topic: None,
        correlation_data: None,
        payload_utf8: false,
        message_expiry_secs: None,
    }
}

fn attributes() -> Vec<Pair> {
    let Some(map) = config().get("attributes").and_then(Value::as_object) else {
        return Vec::new();
    };
    map.iter()
        .map(|(k, v)| Pair {
            key: k.clone(),
            value: v.as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

struct Scripted;

impl Guest for Scripted {
    fn declared_hooks() -> HookSet {
        let Some(list) = config().get("hooks").and_then(Value::as_array) else {
            return HookSet::all();
        };
        let mut set = HookSet::empty();
        for hook in list.iter().filter_map(Value::as_str) {
            set |= match hook {
                "connect" => HookSet::CONNECT,
                "subscribe" => HookSet::SUBSCRIBE,
                "publish" => HookSet::PUBLISH,
                "disconnect" => HookSet::DISCONNECT,
                _ => HookSet::empty(),
            };
        }
        set
    }

    fn init(config: String) -> Result<(), String> {
        let value: Value = serde_json::from_str(&config).map_err(|e| e.to_string())?;
        let _ = CONFIG.set(value);
        match setting("init", "ok").as_str() {
            "fail" => Err("init refused by config".into()),
            "spin" => {
                common("spin");
                Ok(())
            }
            "publish" => host::publish(&Message {
                topic: "from/init".into(),
                payload: Vec::new(),
                qos: Qos::AtMostOnce,
                retain: false,
                properties: None,
            }),
            _ => Ok(()),
        }
    }

    fn on_connect(client: Client, credentials: Credentials) -> ConnectDecision {
        let act = action("connect", &client.client_id, "none");
        if common(&act) {
            return ConnectDecision::NoOpinion;
        }
        match act.as_str() {
            "allow" => ConnectDecision::Allow(attributes()),
            "deny" => ConnectDecision::Deny(refusal(0x87)),
            "invalid" => ConnectDecision::Deny(refusal(0x00)),
            "password" => {
                let expected = setting("password", "");
                if credentials.password.as_deref() == Some(expected.as_bytes()) {
                    ConnectDecision::Allow(attributes())
                } else {
                    ConnectDecision::Deny(refusal(0x86))
                }
            }
            _ => ConnectDecision::NoOpinion,
        }
    }

    fn on_subscribe(_client: ClientHandle, filter: String, requested: Qos) -> SubscribeDecision {
        let act = action("subscribe", &filter, "none");
        if common(&act) {
            return SubscribeDecision::NoOpinion;
        }
        match act.as_str() {
            "allow" => SubscribeDecision::Allow(requested),
            "allow-qos0" => SubscribeDecision::Allow(Qos::AtMostOnce),
            "invalid" => SubscribeDecision::Allow(Qos::ExactlyOnce),
            "deny" => SubscribeDecision::Deny(refusal(0x87)),
            "tenant" => {
                let tenant = current_client()
                    .attributes
                    .iter()
                    .find(|p| p.key == "tenant")
                    .map(|p| p.value.clone())
                    .unwrap_or_default();
                if filter.starts_with(&format!("tenants/{tenant}/")) {
                    SubscribeDecision::Allow(requested)
                } else {
                    SubscribeDecision::Deny(refusal(0x87))
                }
            }
            _ => SubscribeDecision::NoOpinion,
        }
    }

    fn on_publish(_client: ClientHandle, message: Message) -> PublishDecision {
        let act = action("publish", &message.topic, "continue");
        if common(&act) {
            return PublishDecision::Continue;
        }
        publish_action(&act, message)
    }

    fn on_publish_batch(client: ClientHandle, messages: Vec<Message>) -> Vec<PublishDecision> {
        host::kv_incr("batches", 1, None);
        host::kv_incr("batched", messages.len() as i64, None);
        let short = messages.iter().any(|m| m.topic == "do/short-batch");
        let mut decisions: Vec<PublishDecision> = messages
            .into_iter()
            .map(|m| Self::on_publish(client, m))
            .collect();
        if short {
            decisions.pop();
        }
        decisions
    }

    fn on_disconnect(_client: ClientHandle, _reason: DisconnectReason) {
        let act = setting("disconnect", "count");
        if !common(&act) {
            host::kv_incr("disconnects", 1, None);
        }
    }
}

/// The record of the client whose hook runs (asked every time: this plugin keeps nothing).
fn current_client() -> Client {
    match host::current_client() {
        Some(client) => client,
        None => panic!("no client record during a hook"),
    }
}

fn publish_action(act: &str, mut message: Message) -> PublishDecision {
    if act == "whoami" {
        message.topic = format!("who/{}", current_client().client_id);
        return PublishDecision::Replace(message);
    }
    if let Some(prefix) = act.strip_prefix("prefix:") {
        message.topic = format!("{prefix}{}", message.topic);
        return PublishDecision::Replace(message);
    }
    if let Some(prefix) = act.strip_prefix("republish:") {
        let mut copy = message.clone();
        copy.topic = format!("{prefix}{}", message.topic);
        if let Err(e) = host::publish(&copy) {
            host::log(LogLevel::Warn, &format!("republish refused: {e}"), &[]);
        }
        return PublishDecision::Continue;
    }
    match act {
        "drop" => PublishDecision::Drop(refusal(0x97)),
        "invalid" => {
            message.topic = "bad/#".into();
            PublishDecision::Replace(message)
        }
        "invalid-drop" => PublishDecision::Drop(refusal(0x10)),
        "count" => {
            let n = host::kv_incr("count", 1, None);
            message
                .properties
                .get_or_insert_with(no_properties)
                .user_properties
                .push(Pair {
                    key: "count".into(),
                    value: n.to_string(),
                });
            PublishDecision::Replace(message)
        }
        "kv-set" => {
            host::kv_set("last", &message.payload, None);
            PublishDecision::Continue
        }
        "kv-get" => {
            message.payload = host::kv_get("last").unwrap_or_default();
            PublishDecision::Replace(message)
        }
        "publish-bad" => {
            let mut copy = message.clone();
            copy.topic = "bad/+".into();
            let answer = host::publish(&copy).err().unwrap_or_default();
            message.payload = answer.into_bytes();
            PublishDecision::Replace(message)
        }
        "clock" => {
            message.payload = host::now_millis().to_string().into_bytes();
            PublishDecision::Replace(message)
        }
        _ => PublishDecision::Continue,
    }
}

export!(Scripted);
