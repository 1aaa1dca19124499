//! Chain semantics: decision order, rewrites, drops, declared hooks.

use super::*;
use crate::types::ReasonCode;

#[tokio::test]
async fn first_allow_or_deny_wins_and_no_opinion_passes_on() {
    let chain = load(&[
        scripted("abstain", json!({"connect": "none"})),
        scripted("denier", json!({"connect": "deny"})),
        scripted("allower", json!({"connect": "allow"})),
    ])
    .await
    .unwrap();
    let outcome = chain
        .on_connect(&client("c1"), &Credentials::default())
        .await;
    assert_eq!(
        outcome,
        ConnectOutcome::Deny {
            reason_code: ReasonCode::NOT_AUTHORIZED,
            reason: "scripted".to_owned()
        }
    );
    assert_eq!(hook_stats(&chain, 0, Hook::Connect).no_opinion, 1);
    assert_eq!(hook_stats(&chain, 1, Hook::Connect).deny, 1);
    assert_eq!(
        hook_stats(&chain, 2, Hook::Connect).calls,
        0,
        "chain stopped at the deny"
    );
}

#[tokio::test]
async fn allow_grants_the_plugins_attributes() {
    let chain = load(&[scripted(
        "auth",
        json!({"connect": "password", "password": "s3cret", "attributes": {"tenant": "acme"}}),
    )])
    .await
    .unwrap();
    let good = Credentials {
        username: Some("alice".to_owned()),
        password: Some(Bytes::from_static(b"s3cret")),
    };
    assert_eq!(
        chain.on_connect(&client("c1"), &good).await,
        ConnectOutcome::Allow {
            attributes: vec![("tenant".to_owned(), "acme".to_owned())]
        }
    );
    let bad = Credentials {
        password: Some(Bytes::from_static(b"guess")),
        ..good
    };
    assert!(matches!(
        chain.on_connect(&client("c1"), &bad).await,
        ConnectOutcome::Deny {
            reason_code: ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            ..
        }
    ));
}

#[tokio::test]
async fn nobody_deciding_leaves_no_opinion_to_the_broker() {
    let chain = load(&[scripted("a", json!({})), scripted("b", json!({}))])
        .await
        .unwrap();
    let c = client("c1");
    assert_eq!(
        chain.on_connect(&c, &Credentials::default()).await,
        ConnectOutcome::NoOpinion
    );
    assert_eq!(
        chain.on_subscribe(&c, "a/b", QoS::AtLeastOnce).await,
        SubscribeOutcome::NoOpinion
    );
}

#[tokio::test]
async fn subscribe_allow_grants_and_later_hooks_see_session_attributes() {
    let chain = load(&[scripted("tenant", json!({"subscribe": "tenant"}))])
        .await
        .unwrap();
    let mut c = client("c1");
    c.attributes = vec![("tenant".to_owned(), "acme".to_owned())];
    assert_eq!(
        chain
            .on_subscribe(&c, "tenants/acme/#", QoS::ExactlyOnce)
            .await,
        SubscribeOutcome::Allow(QoS::ExactlyOnce)
    );
    assert!(matches!(
        chain
            .on_subscribe(&c, "tenants/other/#", QoS::AtMostOnce)
            .await,
        SubscribeOutcome::Deny {
            reason_code: ReasonCode::NOT_AUTHORIZED,
            ..
        }
    ));
}

#[tokio::test]
async fn rewrites_apply_in_chain_order() {
    let chain = load(&[
        scripted("first", json!({"publish": "prefix:a/"})),
        scripted("second", json!({"publish": "prefix:b/"})),
    ])
    .await
    .unwrap();
    let out = continued(chain.on_publish(&client("c1"), message("t")).await);
    assert_eq!(out.topic.as_str(), "b/a/t");
    assert_eq!(out.payload, Bytes::from_static(b"21.5"));
    assert_eq!(out.publisher, Some(ClientId::new("pub")), "publisher kept");
    assert_eq!(hook_stats(&chain, 0, Hook::Publish).replaced, 1);
}

#[tokio::test]
async fn unchanged_message_passes_through_as_is() {
    let chain = load(&[scripted("pass", json!({"hooks": ["publish"]}))])
        .await
        .unwrap();
    let mut original = message("t");
    original.properties.user_properties = vec![("k".into(), "v".into())];
    let out = continued(chain.on_publish(&client("c1"), original.clone()).await);
    assert_eq!(out, original);
    assert_eq!(hook_stats(&chain, 0, Hook::Publish).continued, 1);
}

#[tokio::test]
async fn first_drop_ends_the_publish_chain() {
    let chain = load(&[
        scripted("dropper", json!({"publish": "drop"})),
        scripted("counter", json!({"publish": "count"})),
    ])
    .await
    .unwrap();
    assert_eq!(
        chain.on_publish(&client("c1"), message("t")).await,
        PublishOutcome::Drop {
            reason_code: ReasonCode::QUOTA_EXCEEDED,
            reason: "scripted".to_owned()
        }
    );
    assert_eq!(hook_stats(&chain, 1, Hook::Publish).calls, 0);
}

#[tokio::test]
async fn undeclared_hooks_are_never_called() {
    let chain = load(&[scripted(
        "pub-only",
        json!({"hooks": ["publish"], "connect": "deny"}),
    )])
    .await
    .unwrap();
    assert!(chain.has(Hook::Publish));
    assert!(!chain.has(Hook::Connect));
    assert!(!chain.has(Hook::Disconnect));
    assert_eq!(
        chain
            .on_connect(&client("c1"), &Credentials::default())
            .await,
        ConnectOutcome::NoOpinion
    );
    let stats = chain.stats();
    assert_eq!(stats[0].hooks.len(), 1, "stats list declared hooks only");
}

#[tokio::test]
async fn empty_chain_answers_without_plugins() {
    let chain = PluginChain::empty();
    assert!(chain.is_empty());
    assert!(Hook::ALL.iter().all(|h| !chain.has(*h)));
    let m = message("t");
    assert_eq!(
        chain.on_publish(&client("c"), m.clone()).await,
        PublishOutcome::Continue(m)
    );
    let loaded = PluginChain::load(&[], Arc::new(NoPublisher)).await.unwrap();
    assert!(loaded.stats().is_empty());
}

#[tokio::test]
async fn disconnect_notifies_every_declaring_plugin() {
    let chain = load(&[scripted("a", json!({})), scripted("b", json!({}))])
        .await
        .unwrap();
    chain
        .on_disconnect(&client("c1"), DisconnectReason::KeepAliveTimeout)
        .await;
    for plugin in 0..2 {
        assert_eq!(hook_stats(&chain, plugin, Hook::Disconnect).calls, 1);
        assert_eq!(
            chain.stats()[plugin].kv_keys,
            1,
            "each plugin counted in its own store"
        );
    }
}

#[tokio::test]
async fn message_fields_survive_the_round_trip_through_a_plugin() {
    let chain = load(&[scripted("prefixer", json!({"publish": "prefix:x/"}))])
        .await
        .unwrap();
    let mut original = message("t");
    original.retain = true;
    original.qos = QoS::ExactlyOnce;
    original.properties = MessageProperties {
        payload_format_indicator: Some(1),
        content_type: Some("text/plain".into()),
        response_topic: Some("replies/1".into()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01")),
        user_properties: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
    };
    original.expires_at = Some(std::time::Instant::now() + std::time::Duration::from_secs(30));
    let out = continued(chain.on_publish(&client("c1"), original.clone()).await);
    assert_eq!(out.topic.as_str(), "x/t");
    assert_eq!(
        Message {
            topic: original.topic.clone(),
            ..out
        },
        original,
        "every other field unchanged, expiry instant included"
    );
}

/// `gate` (drops `do/drop`, continues the rest), then `rename` (prefixes `x/`).
async fn gate_then_rename() -> (PluginChain, HookClient) {
    let chain = load(&[
        scripted("gate", json!({"hooks": ["publish"]})),
        scripted("rename", json!({"publish": "prefix:x/"})),
    ])
    .await
    .unwrap();
    (chain, HookClient::new(&client("c1")))
}

#[tokio::test]
async fn a_batch_is_one_call_per_plugin_with_the_outcomes_of_single_calls() {
    let (chain, hook_client) = gate_then_rename().await;
    let batch = vec![message("t1"), message("do/drop"), message("t2")];
    let outcomes = chain.on_publish_batch(&hook_client, batch).await;
    let topics: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            PublishOutcome::Continue(m) => m.topic.to_string(),
            PublishOutcome::Drop { reason_code, .. } => format!("dropped {reason_code}"),
        })
        .collect();
    assert_eq!(topics, ["x/t1", "dropped 0x97", "x/t2"], "in order");
    for (plugin, messages) in [(0, 3), (1, 2)] {
        let stats = hook_stats(&chain, plugin, Hook::Publish);
        assert_eq!(stats.calls, 1, "plugin {plugin}: one call for the batch");
        assert_eq!(
            stats.continued + stats.replaced + stats.dropped,
            messages,
            "plugin {plugin}: one decision per message"
        );
    }
    // the batch hook ran (it counts its calls in the key-value store)
    assert_eq!(chain.stats()[1].kv_keys, 2);
}

#[tokio::test]
async fn a_batch_left_with_one_message_calls_on_publish() {
    let (chain, hook_client) = gate_then_rename().await;
    let outcomes = chain
        .on_publish_batch(&hook_client, vec![message("do/drop"), message("t")])
        .await;
    assert!(matches!(outcomes[0], PublishOutcome::Drop { .. }));
    assert_eq!(continued(outcomes[1].clone()).topic.as_str(), "x/t");
    assert_eq!(hook_stats(&chain, 1, Hook::Publish).calls, 1);
    assert_eq!(
        chain.stats()[1].kv_keys,
        0,
        "on-publish, not the batch hook"
    );
}

#[tokio::test]
async fn a_batch_answer_of_the_wrong_length_is_an_invalid_answer_and_each_message_is_retried_alone()
{
    let mut cfg = scripted("short", json!({"publish": "prefix:x/"}));
    cfg.on_error.publish = FailurePolicy::Deny;
    let chain = load(&[cfg]).await.unwrap();
    let hook_client = HookClient::new(&client("c1"));
    let outcomes = chain
        .on_publish_batch(&hook_client, vec![message("a"), message("do/short-batch")])
        .await;
    // alone, each is answered normally: no policy (deny) for either
    assert_eq!(continued(outcomes[0].clone()).topic.as_str(), "x/a");
    assert_eq!(
        continued(outcomes[1].clone()).topic.as_str(),
        "do/short-batch"
    );
    let stats = hook_stats(&chain, 0, Hook::Publish);
    assert_eq!((stats.failures, stats.invalid_answers), (1, 1));
    assert_eq!(stats.calls, 3, "the batch, then one call per message");
}

#[tokio::test]
async fn a_trap_in_a_batch_gives_the_policy_to_the_trapping_message_only() {
    let mut cfg = scripted("trapper", json!({"publish": "prefix:x/"}));
    cfg.instances = Some(1);
    cfg.on_error.publish = FailurePolicy::Deny;
    let chain = load(&[cfg]).await.unwrap();
    let hook_client = HookClient::new(&client("c1"));
    let outcomes = chain
        .on_publish_batch(
            &hook_client,
            vec![message("a"), message("do/trap"), message("b")],
        )
        .await;
    assert_eq!(continued(outcomes[0].clone()).topic.as_str(), "x/a");
    assert!(
        matches!(outcomes[1], PublishOutcome::Drop { reason_code, .. } if reason_code == ReasonCode::UNSPECIFIED_ERROR),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(continued(outcomes[2].clone()).topic.as_str(), "x/b");
    assert_eq!(
        hook_stats(&chain, 0, Hook::Publish).failures,
        2,
        "the batch and the trapping message alone"
    );
    // fresh instances serve the next batch
    let next = chain
        .on_publish_batch(&hook_client, vec![message("c"), message("d")])
        .await;
    assert_eq!(continued(next[0].clone()).topic.as_str(), "x/c");
    assert_eq!(continued(next[1].clone()).topic.as_str(), "x/d");
}

#[tokio::test]
async fn a_deadline_in_a_batch_applies_the_policy_to_every_message_without_retrying() {
    let mut cfg = scripted("spinner", json!({"publish": "prefix:x/"}));
    cfg.instances = Some(1);
    cfg.hook_timeout_ms = 50;
    let chain = load(&[cfg]).await.unwrap();
    let hook_client = HookClient::new(&client("c1"));
    let outcomes = chain
        .on_publish_batch(&hook_client, vec![message("a"), message("do/spin")])
        .await;
    // the default publish policy is allow: both go on unchanged
    assert_eq!(continued(outcomes[0].clone()).topic.as_str(), "a");
    assert_eq!(continued(outcomes[1].clone()).topic.as_str(), "do/spin");
    let stats = hook_stats(&chain, 0, Hook::Publish);
    assert_eq!(
        (stats.calls, stats.failures, stats.timeouts),
        (1, 1, 1),
        "one deadline, not one per message"
    );
}
