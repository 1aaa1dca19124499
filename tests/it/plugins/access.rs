//! Authentication and authorisation plugins: `api-keys` (`on-connect` with grants) and
//! `tenant-isolation` (`on-subscribe` and `on-publish` confining a client to
//! `tenants/{tenant}/#`), and the chain semantics of decision hooks.

use integration::packets::{Connect, Publish};
use integration::plugins::{API_KEYS_WASM, TENANT_ISOLATION_WASM};
use integration::{QUIET, RawClient, V311};
use serde_json::json;

use super::{plugin, start, v5_with_password, v5_with_username};

/// 0x87 Not authorized, what tenant-isolation answers outside the namespace.
const NOT_AUTHORIZED: u8 = 0x87;

/// [api-keys with two keys, tenant-isolation exempting `admin`], as in the READMEs.
fn keys_then_tenants() -> Vec<cauldron::config::PluginConfig> {
    vec![
        plugin(
            "api-keys",
            API_KEYS_WASM,
            json!({
                "keys": [
                    {"key": "k-acme", "attributes": {"tenant": "acme"}},
                    {"key": "k-admin", "attributes": {"role": "admin"}},
                ],
            }),
        ),
        plugin(
            "tenant-isolation",
            TENANT_ISOLATION_WASM,
            json!({"exempt_roles": ["admin"]}),
        ),
    ]
}

/// [api-keys allow-listing user `observer` as admin, passing on everyone else;
/// tenant-isolation taking the tenant from the user name (`acme@s1` → `acme`)].
fn tenants_from_usernames() -> Vec<cauldron::config::PluginConfig> {
    vec![
        plugin(
            "api-keys",
            API_KEYS_WASM,
            json!({
                "users": [{"username": "observer", "attributes": {"role": "admin"}}],
                "on_unknown": "no-opinion",
            }),
        ),
        plugin(
            "tenant-isolation",
            TENANT_ISOLATION_WASM,
            json!({"exempt_roles": ["admin"]}),
        ),
    ]
}

/// An exempt client subscribed to every topic.
async fn observer(b: &integration::TestBroker) -> RawClient {
    let mut o = v5_with_username(b, "observer", "observer").await;
    assert_eq!(o.subscribe("#", 1).await, vec![1], "admin is exempt");
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_api_key_connects_and_its_granted_tenant_confines_the_session() {
    // Issue 3: on-connect allow "with a grant for the session: attributes such as roles or
    // tenant, which later hooks ... can read". The user name `dev1` names no tenant, so
    // only the key's grant can put the client in `tenants/acme`.
    let b = start(keys_then_tenants()).await;
    let mut obs = v5_with_password(&b, "admin", "admin", "k-admin").await;
    assert_eq!(obs.subscribe("#", 1).await, vec![1], "role admin is exempt");
    let mut dev = v5_with_password(&b, "dev1", "dev1", "k-acme").await;

    let inside = dev
        .publish(Publish::new("tenants/acme/temp", b"21").qos(1, 0))
        .await;
    assert_eq!(inside, 0x00, "publish inside the granted tenant accepted");
    let p = obs.recv_publish_acked().await;
    assert_eq!(p.topic, "tenants/acme/temp");

    let outside = dev
        .publish(Publish::new("tenants/globex/temp", b"21").qos(1, 0))
        .await;
    assert_eq!(
        outside, NOT_AUTHORIZED,
        "publish outside the granted tenant"
    );
    obs.expect_no_packet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_api_key_is_refused_with_0x86_in_v5() {
    // api-keys README rule 1: no key matches → deny with 0x86 (bad user name or password).
    let b = start(keys_then_tenants()).await;
    let mut c = RawClient::connect(b.addr).await;
    c.expect_refused(
        &Connect::v5("intruder").credentials("dev1", b"k-wrong"),
        0x86,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_api_key_is_refused_with_return_code_4_in_v311() {
    // 0x86 maps to the 3.1.1 CONNACK return code 4 (bad user name or password).
    let b = start(keys_then_tenants()).await;
    let mut c = RawClient::connect(b.addr).await;
    c.expect_refused(
        &Connect::v311("intruder").credentials("dev1", b"k-wrong"),
        4,
    )
    .await;
}

/// [keys-a (passes unknown keys on), keys-b (denies them), tenant-isolation]; both know
/// `k-shared` with different tenants, and keys-a binds `k-bound` to user `ops`.
fn two_key_plugins() -> Vec<cauldron::config::PluginConfig> {
    vec![
        plugin(
            "keys-a",
            API_KEYS_WASM,
            json!({
                "keys": [
                    {"key": "k-shared", "attributes": {"tenant": "a"}},
                    {"key": "k-bound", "username": "ops", "attributes": {"tenant": "a"}},
                ],
                "on_unknown": "no-opinion",
            }),
        ),
        plugin(
            "keys-b",
            API_KEYS_WASM,
            json!({
                "keys": [
                    {"key": "k-shared", "attributes": {"tenant": "b"}},
                    {"key": "k-bound", "attributes": {"tenant": "b"}},
                    {"key": "k-b", "attributes": {"tenant": "b"}},
                ],
            }),
        ),
        plugin("tenant-isolation", TENANT_ISOLATION_WASM, json!({})),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_opinion_passes_the_connect_to_the_next_plugin() {
    // Issue 3 chain semantics: "no-opinion passes on". keys-a does not know `k-b` and
    // passes; keys-b allows it and grants tenant b; an unknown key reaches keys-b too,
    // which denies it.
    let b = start(two_key_plugins()).await;
    let mut c = v5_with_password(&b, "dev-b", "dev-b", "k-b").await;
    let code = c.publish(Publish::new("tenants/b/x", b"1").qos(1, 0)).await;
    assert_eq!(code, 0x00, "keys-b's grant (tenant b) applies");

    let mut refused = RawClient::connect(b.addr).await;
    refused
        .expect_refused(&Connect::v5("dev-x").credentials("dev-x", b"k-none"), 0x86)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_definite_connect_answer_wins() {
    // Issue 3 chain semantics: "the first allow or deny wins". keys-a allows `k-shared`
    // with tenant a although keys-b would grant tenant b; keys-a denies `k-bound` for a
    // user other than `ops` although keys-b would allow it.
    let b = start(two_key_plugins()).await;
    let mut c = v5_with_password(&b, "dev-s", "dev-s", "k-shared").await;
    let in_a = c.publish(Publish::new("tenants/a/x", b"1").qos(1, 0)).await;
    let in_b = c.publish(Publish::new("tenants/b/x", b"1").qos(1, 0)).await;
    assert_eq!(
        (in_a, in_b),
        (0x00, NOT_AUTHORIZED),
        "keys-a's grant (tenant a) is the one applied"
    );

    let mut refused = RawClient::connect(b.addr).await;
    refused
        .expect_refused(&Connect::v5("eve").credentials("eve", b"k-bound"), 0x86)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_outside_the_tenant_is_dropped_with_not_authorized() {
    // tenant-isolation README: "A publish outside the namespace is dropped with 0x87";
    // issue 3: drop "with a reason code that v5 publishers see in PUBACK/PUBREC". The
    // exempt observer subscribed to `#` never gets the dropped message.
    let b = start(tenants_from_usernames()).await;
    let mut obs = observer(&b).await;
    let mut dev = v5_with_username(&b, "s1", "acme@s1").await;

    let qos1 = dev
        .publish(Publish::new("tenants/globex/x", b"out").qos(1, 0))
        .await;
    let qos2 = dev
        .publish(Publish::new("elsewhere", b"out").qos(2, 0))
        .await;
    assert_eq!(
        (qos1, qos2),
        (NOT_AUTHORIZED, NOT_AUTHORIZED),
        "PUBACK and PUBREC carry 0x87"
    );
    obs.expect_no_packet(QUIET).await;

    let inside = dev
        .publish(Publish::new("tenants/acme/x", b"in").qos(1, 0))
        .await;
    assert_eq!(inside, 0x00, "publish inside the tenant accepted");
    let p = obs.recv_publish_acked().await;
    assert_eq!(
        (p.topic.as_str(), p.payload_str()),
        ("tenants/acme/x", "in")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_outside_the_tenant_is_refused_and_inside_granted() {
    // tenant-isolation README: "A subscription outside the namespace ... is denied with
    // 0x87"; inside gets no opinion, so the broker grants the requested QoS. A shared
    // subscription is checked on its inner filter.
    let b = start(tenants_from_usernames()).await;
    let mut dev = v5_with_username(&b, "s1", "acme@s1").await;
    assert_eq!(
        dev.subscribe("tenants/globex/#", 1).await,
        vec![NOT_AUTHORIZED]
    );
    assert_eq!(dev.subscribe("#", 1).await, vec![NOT_AUTHORIZED]);
    assert_eq!(
        dev.subscribe("$share/g/tenants/globex/#", 1).await,
        vec![NOT_AUTHORIZED]
    );
    assert_eq!(dev.subscribe("tenants/acme/#", 1).await, vec![1]);
    assert_eq!(dev.subscribe("$share/g/tenants/acme/x", 2).await, vec![2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_client_is_confined_to_its_tenant() {
    // The same confinement for an MQTT 3.1.1 client (rumqttc): SUBACK 0x80 outside, and
    // an outside publish never reaches the exempt observer while an inside one does.
    let b = start(tenants_from_usernames()).await;
    let mut obs = observer(&b).await;
    let mut opts = V311::options(b.addr, "s311");
    opts.set_credentials("acme@s311", "");
    // rumqttc sends no password when it is empty: api-keys does not list the user and
    // passes it on (`on_unknown = "no-opinion"`), so the tenant comes from the user name.
    let mut dev = V311::connect_opts(opts).await;

    let outside = dev
        .subscribe("tenants/globex/#", rumqttc::QoS::AtLeastOnce)
        .await;
    assert_eq!(outside, vec![rumqttc::SubscribeReasonCode::Failure]);
    let inside = dev
        .subscribe("tenants/acme/#", rumqttc::QoS::AtLeastOnce)
        .await;
    assert_eq!(
        inside,
        vec![rumqttc::SubscribeReasonCode::Success(
            rumqttc::QoS::AtLeastOnce
        )]
    );

    dev.publish("tenants/globex/x", rumqttc::QoS::AtLeastOnce, false, b"out")
        .await;
    dev.publish("tenants/acme/x", rumqttc::QoS::AtLeastOnce, false, b"in")
        .await;
    let p = obs.recv_publish_acked().await;
    assert_eq!(
        (p.topic.as_str(), p.payload_str()),
        ("tenants/acme/x", "in"),
        "only the inside publish is routed"
    );
    let own = dev.recv().await;
    assert_eq!(own.topic, "tenants/acme/x");
    obs.expect_no_packet(QUIET).await;
    dev.disconnect().await;
}
