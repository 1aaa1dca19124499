//! Sandbox limits and failure handling: deadlines, memory caps, traps, invalid answers,
//! failure policies and the failed state.

use std::time::{Duration, Instant};

use super::*;
use crate::types::ReasonCode;

fn limited(name: &str, config: Value, timeout_ms: u64) -> PluginConfig {
    let mut cfg = scripted(name, config);
    cfg.hook_timeout_ms = timeout_ms;
    cfg
}

/// On a current-thread runtime a spinning plugin still yields every epoch tick, so
/// another plugin's calls keep flowing while it spins, and it is cut off on time.
#[tokio::test(flavor = "current_thread")]
async fn spinning_plugin_is_cut_off_at_its_deadline_while_others_proceed() {
    let spinner = load(&[limited("spinner", json!({"publish": "spin"}), 50)])
        .await
        .unwrap();
    let fast = load(&[scripted("fast", json!({"publish": "prefix:ok/"}))])
        .await
        .unwrap();
    let started = Instant::now();
    let spin = tokio::spawn({
        let spinner = spinner.clone();
        async move { spinner.on_publish(&client("c1"), message("t")).await }
    });
    let mut fast_calls = 0;
    while !spin.is_finished() {
        let out = continued(fast.on_publish(&client("c2"), message("t")).await);
        assert_eq!(out.topic.as_str(), "ok/t");
        fast_calls += 1;
        tokio::task::yield_now().await;
    }
    let outcome = spin.await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(
        outcome,
        PublishOutcome::Continue(message("t")),
        "publish fails open"
    );
    assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(500),
        "cut off late: {elapsed:?}"
    );
    assert!(
        fast_calls >= 5,
        "only {fast_calls} calls got through while spinning"
    );
    let stats = hook_stats(&spinner, 0, Hook::Publish);
    assert_eq!((stats.failures, stats.timeouts), (1, 1));
}

#[tokio::test]
async fn deadline_on_connect_fails_closed_by_default() {
    let chain = load(&[limited("slow-auth", json!({"connect": "spin"}), 20)])
        .await
        .unwrap();
    assert_eq!(
        chain
            .on_connect(&client("c1"), &Credentials::default())
            .await,
        ConnectOutcome::Deny {
            reason_code: ReasonCode::SERVER_UNAVAILABLE,
            reason: "plugin unavailable".to_owned()
        }
    );
}

#[tokio::test]
async fn failure_policies_allow_and_skip() {
    let mut allow = limited("allow-on-error", json!({"connect": "trap"}), 100);
    allow.on_error.connect = FailurePolicy::Allow;
    let chain = load(&[allow]).await.unwrap();
    assert_eq!(
        chain
            .on_connect(&client("c1"), &Credentials::default())
            .await,
        ConnectOutcome::Allow { attributes: vec![] }
    );

    let mut skip = limited("skip-on-error", json!({"subscribe": "trap"}), 100);
    skip.on_error.subscribe = FailurePolicy::Skip;
    let decider = scripted("decider", json!({"subscribe": "allow-qos0"}));
    let chain = load(&[skip, decider]).await.unwrap();
    assert_eq!(
        chain
            .on_subscribe(&client("c1"), "a", QoS::AtLeastOnce)
            .await,
        SubscribeOutcome::Allow(QoS::AtMostOnce),
        "skip passes the decision on"
    );

    let mut deny = limited("drop-on-error", json!({"publish": "trap"}), 100);
    deny.on_error.publish = FailurePolicy::Deny;
    let chain = load(&[deny]).await.unwrap();
    assert!(matches!(
        chain.on_publish(&client("c1"), message("t")).await,
        PublishOutcome::Drop {
            reason_code: ReasonCode::UNSPECIFIED_ERROR,
            ..
        }
    ));
}

#[tokio::test]
async fn memory_hog_is_stopped_and_the_host_stays_healthy() {
    let mut cfg = scripted("hog", json!({}));
    cfg.memory_limit_mib = 8;
    let chain = load(&[cfg]).await.unwrap();
    let outcome = chain.on_publish(&client("c1"), message("do/hog")).await;
    assert_eq!(outcome, PublishOutcome::Continue(message("do/hog")));
    let stats = hook_stats(&chain, 0, Hook::Publish);
    assert_eq!((stats.failures, stats.timeouts), (1, 0));
    let next = chain.on_publish(&client("c1"), message("t")).await;
    assert_eq!(next, PublishOutcome::Continue(message("t")));
    assert_eq!(hook_stats(&chain, 0, Hook::Publish).continued, 1);
}

#[tokio::test]
async fn trapping_instance_is_replaced_and_the_next_call_works() {
    let mut cfg = scripted("trapper", json!({"publish": "prefix:ok/"}));
    cfg.instances = Some(1);
    let chain = load(&[cfg]).await.unwrap();
    let trapped = chain.on_publish(&client("c1"), message("do/trap")).await;
    assert_eq!(trapped, PublishOutcome::Continue(message("do/trap")));
    let out = continued(chain.on_publish(&client("c1"), message("t")).await);
    assert_eq!(out.topic.as_str(), "ok/t", "fresh instance, init ran again");
    let stats = hook_stats(&chain, 0, Hook::Publish);
    assert_eq!((stats.calls, stats.failures, stats.replaced), (2, 1, 1));
}

#[tokio::test]
async fn invalid_answers_count_as_failures() {
    let chain = load(&[scripted("liar", json!({}))]).await.unwrap();
    let c = client("c1");
    // A replacement topic with a wildcard, a drop with a success code, a grant above
    // the requested QoS, a deny with a success code.
    for topic in ["do/invalid", "do/invalid-drop"] {
        assert_eq!(
            chain.on_publish(&c, message(topic)).await,
            PublishOutcome::Continue(message(topic))
        );
    }
    assert!(matches!(
        chain.on_subscribe(&c, "do/invalid", QoS::AtLeastOnce).await,
        SubscribeOutcome::Deny { .. }
    ));
    assert!(matches!(
        chain
            .on_connect(&client("do/invalid"), &Credentials::default())
            .await,
        ConnectOutcome::Deny {
            reason_code: ReasonCode::SERVER_UNAVAILABLE,
            ..
        }
    ));
    assert_eq!(hook_stats(&chain, 0, Hook::Publish).invalid_answers, 2);
    assert_eq!(hook_stats(&chain, 0, Hook::Subscribe).invalid_answers, 1);
    assert_eq!(hook_stats(&chain, 0, Hook::Connect).invalid_answers, 1);
    assert!(
        !chain.stats()[0].failed,
        "failures on different hooks, 4 < 5"
    );
}

#[tokio::test]
async fn plugin_is_not_called_after_max_consecutive_failures() {
    let mut cfg = scripted("flaky", json!({"publish": "trap"}));
    cfg.max_consecutive_failures = 3;
    let chain = load(&[cfg]).await.unwrap();
    for _ in 0..5 {
        let outcome = chain.on_publish(&client("c1"), message("t")).await;
        assert_eq!(outcome, PublishOutcome::Continue(message("t")));
    }
    let stats = &chain.stats()[0];
    assert!(stats.failed);
    let publish = &stats
        .hooks
        .iter()
        .find(|h| h.hook == Hook::Publish)
        .unwrap();
    assert_eq!(
        (publish.calls, publish.failures, publish.skipped_failed),
        (3, 3, 2)
    );
}

#[tokio::test]
async fn a_success_resets_the_consecutive_failure_count() {
    let mut cfg = scripted("sometimes", json!({}));
    cfg.max_consecutive_failures = 2;
    let chain = load(&[cfg]).await.unwrap();
    for topic in ["do/trap", "fine", "do/trap", "fine", "do/trap"] {
        chain.on_publish(&client("c1"), message(topic)).await;
    }
    assert!(!chain.stats()[0].failed);
}

#[tokio::test]
async fn abandoned_call_discards_its_instance() {
    let mut cfg = limited("abandoned", json!({"publish": "prefix:ok/"}), 5_000);
    cfg.instances = Some(1);
    let chain = load(&[cfg]).await.unwrap();
    let abandoned = tokio::time::timeout(
        Duration::from_millis(30),
        chain.on_publish(&client("c1"), message("do/spin")),
    )
    .await;
    assert!(abandoned.is_err(), "the caller gave up");
    let out = continued(chain.on_publish(&client("c1"), message("t")).await);
    assert_eq!(out.topic.as_str(), "ok/t");
}
