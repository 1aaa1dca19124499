//! ACL rules through real clients: who/what/topic rules, placeholders, filter against
//! rule, partly denied filters, `$SYS`, and the answers in both protocol generations.

use cauldron::acl::{Action, Permission};
use cauldron::stats::Stats;
use integration::packets::{Connect, Publish};
use integration::{QUIET, RawClient};

use super::{password_config, password_file, rule, start_with, v5_login};

use Action::{All, Publish as Pub, Subscribe as Sub};
use Permission::{Allow, Deny};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_match_users_clients_roles_anonymous_and_everyone() {
    // Issue 4 ACL: "who (a user, a client id, a group or role, anonymous, everyone),
    // what (publish, subscribe, both) ... First match wins; the default is deny".
    let (_dir, path) = password_file(&[("alice", "a"), ("bob", "b")]);
    let b = start_with(|c| {
        c.auth.password_file = Some(password_config(&path));
        c.acl.rules = vec![
            rule("user:alice", All, "alice/#", Allow),
            rule("client:sensor-7", Pub, "sensors/7", Allow),
            rule("anonymous", Sub, "public/#", Allow),
            rule("all", Sub, "news/#", Allow),
            rule("user:bob", Sub, "news/secret", Deny),
        ];
    })
    .await;
    let mut alice = v5_login(&b, "alice-c", "alice", "a").await;
    assert_eq!(alice.subscribe("alice/inbox", 1).await, vec![1]);
    assert_eq!(
        alice.subscribe("public/x", 1).await,
        vec![0x87],
        "alice is not anonymous"
    );
    assert_eq!(alice.subscribe("news/secret", 1).await, vec![1]);
    assert_eq!(
        alice
            .publish(Publish::new("alice/out", b"1").qos(1, 0))
            .await,
        0
    );
    assert_eq!(
        alice
            .publish(Publish::new("sensors/7", b"1").qos(1, 0))
            .await,
        0x87
    );

    let mut bob = v5_login(&b, "bob-c", "bob", "b").await;
    assert_eq!(
        bob.subscribe("news/secret", 1).await,
        vec![1],
        "first match wins: `all news/#` comes before bob's deny"
    );
    let mut sensor = RawClient::connect_with(b.addr, &Connect::v5("sensor-7"))
        .await
        .0;
    assert_eq!(
        sensor
            .publish(Publish::new("sensors/7", b"1").qos(1, 0))
            .await,
        0
    );
    assert_eq!(sensor.subscribe("public/#", 0).await, vec![0]);
    assert_eq!(
        sensor
            .publish(Publish::new("sensors/8", b"1").qos(1, 0))
            .await,
        0x87
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholders_substitute_whole_levels_only() {
    // Issue 4: "${username}, ${clientid} and claim or attribute placeholders
    // (substituting a whole topic level only; a value containing +, # or / never
    // matches)".
    let (_dir, path) = password_file(&[("u1", "p"), ("a+b", "p")]);
    let b = start_with(|c| {
        c.auth.password_file = Some(password_config(&path));
        c.acl.rules = vec![
            rule("all", All, "users/${username}/#", Allow),
            rule("all", All, "clients/${clientid}/#", Allow),
        ];
    })
    .await;
    let mut u1 = v5_login(&b, "c1", "u1", "p").await;
    assert_eq!(u1.subscribe("users/u1/#", 1).await, vec![1]);
    assert_eq!(u1.subscribe("users/u2/#", 1).await, vec![0x87]);
    assert_eq!(u1.subscribe("clients/c1/+", 1).await, vec![1]);
    assert_eq!(
        u1.publish(Publish::new("clients/c2/x", b"1").qos(1, 0))
            .await,
        0x87
    );
    let mut wild = v5_login(&b, "c2", "a+b", "p").await;
    assert_eq!(
        wild.subscribe("users/a+b/#", 1).await,
        vec![0x8F],
        "not even a valid filter"
    );
    assert_eq!(
        wild.subscribe("users/+/#", 1).await,
        vec![0x87],
        "a username with + must not widen the rule"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_checked_filter_against_rule() {
    // Issue 4: "A subscription is granted only if the rules allow that filter (filter
    // against rule, not just topic against rule)."
    let b = start_with(|c| {
        c.acl.rules = vec![
            rule("all", Sub, "a/+", Allow),
            rule("all", Sub, "b/#", Allow),
        ];
    })
    .await;
    let mut c = RawClient::connect_with(b.addr, &Connect::v5("f")).await.0;
    assert_eq!(c.subscribe("a/x", 0).await, vec![0]);
    assert_eq!(c.subscribe("a/+", 0).await, vec![0]);
    assert_eq!(
        c.subscribe("a/#", 0).await,
        vec![0x87],
        "a/# is wider than a/+"
    );
    assert_eq!(c.subscribe("b/+/c", 0).await, vec![0]);
    assert_eq!(c.subscribe("#", 0).await, vec![0x87]);
    let mut v3 = RawClient::connect_v311(b.addr, "f3").await;
    assert_eq!(
        v3.subscribe("#", 0).await,
        vec![0x80],
        "3.1.1 SUBACK failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_inside_an_allowed_filter_withholds_those_topics() {
    // Issue 4: "Where a deny rule covers part of an allowed filter, messages on the
    // denied topics are not delivered."
    let b = start_with(|c| {
        c.acl.rules = vec![
            rule("all", Sub, "plant/secret/#", Deny),
            rule("all", All, "plant/#", Allow),
        ];
    })
    .await;
    let mut sub = RawClient::connect_with(b.addr, &Connect::v5("s")).await.0;
    assert_eq!(
        sub.subscribe("plant/#", 1).await,
        vec![1],
        "partly denied filter granted"
    );
    let mut p = RawClient::connect_with(b.addr, &Connect::v5("p")).await.0;
    p.publish(Publish::new("plant/secret/key", b"no").qos(1, 0))
        .await;
    p.publish(Publish::new("plant/line/1", b"yes").qos(1, 0))
        .await;
    let got = sub.recv_publish_acked().await;
    assert_eq!(
        (got.topic.as_str(), got.payload_str()),
        ("plant/line/1", "yes")
    );
    sub.expect_no_packet(QUIET).await;
    assert_eq!(Stats::get(&b.broker().stats.acl_denied_delivery), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_is_readable_only_where_a_rule_names_it() {
    // Issue 4: "$-topics are not reached by leading wildcards; $SYS is readable only
    // where a rule allows."
    let (_dir, path) = password_file(&[("ops", "o")]);
    let b = start_with(|c| {
        c.auth.password_file = Some(password_config(&path));
        c.acl.default = Allow;
        c.acl.rules = vec![rule("user:ops", Sub, "$SYS/#", Allow)];
    })
    .await;
    let mut anyone = RawClient::connect_with(b.addr, &Connect::v5("x")).await.0;
    assert_eq!(
        anyone.subscribe("$SYS/#", 0).await,
        vec![0x87],
        "even with default allow"
    );
    assert_eq!(anyone.subscribe("#", 0).await, vec![0]);
    let mut ops = v5_login(&b, "ops-c", "ops", "o").await;
    assert_eq!(ops.subscribe("$SYS/broker/#", 0).await, vec![0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_publishes_answer_per_protocol_and_config() {
    // Issue 4: "PUBACK/PUBREC 0x87; 3.1.1 ... a denied publish dropped (or the client
    // disconnected, by config). Every denial is logged once and counted."
    let rules = || vec![rule("all", All, "ok/#", Allow)];
    let b = start_with(|c| c.acl.rules = rules()).await;
    let mut sub = RawClient::connect_with(b.addr, &Connect::v5("watch"))
        .await
        .0;
    assert_eq!(sub.subscribe("ok/#", 1).await, vec![1]);
    let mut v5 = RawClient::connect_with(b.addr, &Connect::v5("v5")).await.0;
    assert_eq!(v5.publish(Publish::new("nope", b"1").qos(1, 0)).await, 0x87);
    assert_eq!(v5.publish(Publish::new("nope", b"1").qos(2, 0)).await, 0x87);
    let mut v3 = RawClient::connect_v311(b.addr, "v3").await;
    assert_eq!(
        v3.publish(Publish::new("nope", b"1").qos(1, 0)).await,
        0,
        "acknowledged, dropped"
    );
    v3.publish(Publish::new("ok/yes", b"1").qos(1, 0)).await;
    let got = sub.recv_publish_acked().await;
    assert_eq!(got.topic, "ok/yes", "the denied message was not routed");
    assert_eq!(Stats::get(&b.broker().stats.acl_denied_publish), 3);

    let strict = start_with(|c| {
        c.acl.rules = rules();
        c.auth.denied_publish_v3 = cauldron::config::DeniedPublish::Disconnect;
    })
    .await;
    let mut v3 = RawClient::connect_v311(strict.addr, "v3").await;
    v3.send(&Publish::new("nope", b"1").qos(1, 7).bytes()).await;
    v3.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_will_on_a_denied_topic_refuses_the_connection() {
    // A will the ACL would refuse is refused at CONNECT (0x87 / 3.1.1 code 5) rather
    // than silently dropped later.
    let b = start_with(|c| c.acl.rules = vec![rule("all", All, "ok/#", Allow)]).await;
    let will = integration::Will::new("secret/will", b"bye");
    let mut c = RawClient::connect(b.addr).await;
    c.expect_refused(&Connect::v5("w").will(will.clone()), 0x87)
        .await;
    let mut c = RawClient::connect(b.addr).await;
    c.expect_refused(&Connect::v311("w3").will(will), 5).await;
}
