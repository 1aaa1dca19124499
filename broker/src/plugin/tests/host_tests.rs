//! Host functions: key-value store, publish and its loop protection, logging, clock.

use std::time::{SystemTime, UNIX_EPOCH};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_store_is_shared_by_the_plugins_instances() {
    let mut cfg = scripted("kv", json!({}));
    cfg.instances = Some(2);
    let chain = load(&[cfg]).await.unwrap();
    let c = client("c1");
    // Consecutive calls rotate over the pool, so the set and the get run in different
    // instances; the counter sees every call whichever instance serves it.
    let mut stored = message("do/kv-set");
    stored.payload = Bytes::from_static(b"shared");
    chain.on_publish(&c, stored).await;
    let read = continued(chain.on_publish(&c, message("do/kv-get")).await);
    assert_eq!(read.payload, Bytes::from_static(b"shared"));

    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let chain = chain.clone();
        calls.spawn(async move { chain.on_publish(&client("c1"), message("do/count")).await });
    }
    let mut counts: Vec<i64> = calls
        .join_all()
        .await
        .into_iter()
        .map(|outcome| {
            let m = continued(outcome);
            let (_, value) = m.properties.user_properties.last().cloned().unwrap();
            value.parse().unwrap()
        })
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![1, 2, 3, 4, 5, 6]);
}

/// Hooks after on-connect get a handle; `host.current-client` answers the record of the
/// client whose call runs, whichever client the instance served before.
#[tokio::test]
async fn current_client_is_the_client_of_the_running_call() {
    let mut cfg = scripted("whoami", json!({}));
    cfg.instances = Some(1);
    let chain = load(&[cfg]).await.unwrap();
    let (alice, bob) = (
        HookClient::new(&client("alice")),
        HookClient::new(&client("bob")),
    );
    for who in [&alice, &bob, &alice, &bob] {
        let outcome = chain.on_publish_with(who, message("do/whoami")).await;
        let expected = format!("who/{}", who.record.client_id);
        assert_eq!(continued(outcome).topic.as_str(), expected);
    }
    let batch = chain
        .on_publish_batch(&bob, vec![message("do/whoami"), message("do/whoami")])
        .await;
    for outcome in batch {
        assert_eq!(continued(outcome).topic.as_str(), "who/bob");
    }
    assert_ne!(alice.handle, bob.handle, "each client has its own handle");
}

#[tokio::test]
async fn published_messages_pass_only_later_plugins_so_nothing_loops() {
    // Both plugins republish every message they see under `echo/`. Were a plugin to see
    // its own messages again this would never end.
    let (chain, recorder) = load_recording(&[
        scripted("first", json!({"publish": "republish:echo/"})),
        scripted("second", json!({"publish": "republish:echo/"})),
    ])
    .await
    .unwrap();
    let out = continued(chain.on_publish(&client("c1"), message("t")).await);
    assert_eq!(out.topic.as_str(), "t");
    // first publishes echo/t, which passes second (who publishes echo/echo/t); then
    // second handles the original t and publishes echo/t.
    assert_eq!(recorder.topics(), vec!["echo/echo/t", "echo/t", "echo/t"]);
    assert_eq!(
        hook_stats(&chain, 0, Hook::Publish).calls,
        1,
        "first never sees its own"
    );
    assert_eq!(hook_stats(&chain, 1, Hook::Publish).calls, 2);
    let published = recorder.messages.lock().unwrap();
    assert!(
        published.iter().all(|m| m.publisher.is_none()),
        "broker-made"
    );
    assert!(
        published
            .iter()
            .all(|m| m.payload == Bytes::from_static(b"21.5"))
    );
}

#[tokio::test]
async fn published_messages_can_be_dropped_by_later_plugins() {
    let (chain, recorder) = load_recording(&[
        scripted("echo", json!({"publish": "republish:echo/"})),
        scripted("dropper", json!({"publish": "drop"})),
    ])
    .await
    .unwrap();
    let outcome = chain.on_publish(&client("c1"), message("t")).await;
    assert!(matches!(outcome, PublishOutcome::Drop { .. }));
    assert!(recorder.topics().is_empty());
}

#[tokio::test]
async fn invalid_published_message_is_refused_to_the_plugin() {
    let (chain, recorder) = load_recording(&[scripted("bad", json!({}))]).await.unwrap();
    let out = continued(
        chain
            .on_publish(&client("c1"), message("do/publish-bad"))
            .await,
    );
    let answer = String::from_utf8(out.payload.to_vec()).unwrap();
    assert!(answer.contains("wildcard"), "{answer}");
    assert!(recorder.topics().is_empty());
}

#[tokio::test]
async fn now_millis_is_the_wall_clock() {
    let chain = load(&[scripted("clock", json!({}))]).await.unwrap();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let out = continued(chain.on_publish(&client("c1"), message("do/clock")).await);
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let millis: u128 = String::from_utf8(out.payload.to_vec())
        .unwrap()
        .parse()
        .unwrap();
    assert!((before..=after).contains(&millis));
}

#[path = "../../../tests/support/captured_log.rs"]
mod captured_log;
use captured_log::Captured;

#[test]
fn guest_output_and_host_log_go_to_tracing() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let chain = load(&[scripted("chatty", json!({}))]).await.unwrap();
            chain.on_publish(&client("c1"), message("do/stdout")).await;
            chain.on_publish(&client("c1"), message("do/log")).await;
            chain.on_publish(&client("c1"), message("do/trap")).await;
        });
    });
    let text = captured.text();
    for expected in [
        "hello from stdout",
        "hello from stderr",
        "scripted log",
        "k=v",
        "plugin=\"chatty\"",
        "scripted trap",
        "on-publish trapped",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}
