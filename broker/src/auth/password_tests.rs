//! Tests of the runtime password authenticator.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::path::Path;

use argon2::password_hash::PasswordVerifier;
use tempfile::TempDir;

use super::*;

const TINY: Argon2Params = Argon2Params {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

fn hash(password: &str) -> String {
    hash_password(password.as_bytes(), &TINY).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A temp dir holding `passwd` with `entries`, and a config pointing at it.
fn setup(entries: &[(&str, &str)]) -> (TempDir, PasswordFileConfig) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    write_users(&path, entries);
    let cfg = PasswordFileConfig {
        path,
        argon2: TINY,
        ..PasswordFileConfig::default()
    };
    (dir, cfg)
}

fn write_users(path: &Path, entries: &[(&str, &str)]) {
    let mut text = String::from("# test users\n");
    for (user, password) in entries {
        text.push_str(&format!("{user}:{}\n", hash(password)));
    }
    std::fs::write(path, text).unwrap();
}

const A: &str = "192.0.2.1";
const B: &str = "192.0.2.2";

#[test]
fn auth_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<PasswordAuth>();
}

#[test]
fn config_defaults_match_the_documented_values() {
    let cfg = PasswordFileConfig::default();
    assert_eq!(cfg.path, PathBuf::new());
    assert_eq!(
        (cfg.max_concurrent_checks, cfg.cache_secs, cfg.max_failures),
        (2, 60, 5)
    );
    assert_eq!(cfg.failure_window_secs, 60);
    assert_eq!(
        (cfg.throttle_delay_ms, cfg.max_throttle_delay_ms),
        (1000, 30_000)
    );
    assert_eq!(
        cfg.argon2,
        Argon2Params {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1
        }
    );
}

#[test]
fn hash_password_is_argon2id_with_the_given_params_and_verifies() {
    let params = Argon2Params {
        memory_kib: 16,
        iterations: 3,
        parallelism: 2,
    };
    let phc = hash_password(b"correct horse", &params).unwrap();
    let parsed = PasswordHash::new(&phc).unwrap();
    assert_eq!(parsed.algorithm.as_str(), "argon2id");
    assert_eq!(parsed.version, Some(19));
    assert_eq!(parsed.params.to_string(), "m=16,t=3,p=2");
    let argon2 = Argon2::default();
    assert!(argon2.verify_password(b"correct horse", &parsed).is_ok());
    assert!(argon2.verify_password(b"wrong horse", &parsed).is_err());
    // A fresh salt every time.
    assert_ne!(phc, hash_password(b"correct horse", &params).unwrap());
    // And the file parser accepts it.
    assert!(super::super::password_file::parse_hash("u", &phc).is_ok());
}

#[test]
fn hash_password_refuses_empty_password_and_bad_params() {
    assert!(matches!(
        hash_password(b"", &TINY),
        Err(Error::EmptyPassword)
    ));
    let bad = Argon2Params {
        memory_kib: 1,
        ..TINY
    };
    assert!(matches!(hash_password(b"x", &bad), Err(Error::Params(_))));
}

#[test]
fn load_reports_missing_file_and_bad_argon2_config() {
    let (_dir, mut cfg) = setup(&[]);
    cfg.path.set_file_name("missing");
    assert!(matches!(PasswordAuth::load(&cfg), Err(Error::Read { .. })));
    let (_dir, mut cfg) = setup(&[("alice", "a")]);
    cfg.argon2.iterations = 0;
    assert!(matches!(PasswordAuth::load(&cfg), Err(Error::Params(_))));
}

#[tokio::test]
async fn accepts_right_password_rejects_wrong_and_passes_on_unknown_user() {
    let (_dir, cfg) = setup(&[("alice", "wonderland"), ("bob", "builder")]);
    let auth = PasswordAuth::load(&cfg).unwrap();
    assert_eq!(auth.users(), 2);
    let peer = ip(A);
    assert_eq!(
        auth.check("alice", b"wonderland", peer).await,
        PasswordVerdict::Accepted
    );
    assert_eq!(
        auth.check("alice", b"builder", peer).await,
        PasswordVerdict::Rejected
    );
    assert_eq!(
        auth.check("bob", b"builder", peer).await,
        PasswordVerdict::Accepted
    );
    assert_eq!(
        auth.check("carol", b"x", peer).await,
        PasswordVerdict::UnknownUser
    );
}

#[tokio::test]
async fn unknown_user_still_costs_a_verification() {
    let (_dir, cfg) = setup(&[("alice", "a")]);
    let auth = PasswordAuth::load(&cfg).unwrap();
    assert_eq!(
        auth.check("mallory", b"x", ip(A)).await,
        PasswordVerdict::UnknownUser
    );
    assert_eq!(auth.verifications(), 1);
}

#[tokio::test]
async fn cache_hit_skips_argon2_but_not_for_another_password() {
    let (_dir, cfg) = setup(&[("alice", "a")]);
    let auth = PasswordAuth::load(&cfg).unwrap();
    for _ in 0..3 {
        assert_eq!(
            auth.check("alice", b"a", ip(A)).await,
            PasswordVerdict::Accepted
        );
    }
    assert_eq!(auth.verifications(), 1);
    assert_eq!(
        auth.check("alice", b"b", ip(A)).await,
        PasswordVerdict::Rejected
    );
    assert_eq!(auth.verifications(), 2);
}

#[tokio::test(start_paused = true)]
async fn cache_entries_expire() {
    let (_dir, cfg) = setup(&[("alice", "a")]);
    let auth = PasswordAuth::load(&cfg).unwrap();
    auth.check("alice", b"a", ip(A)).await;
    tokio::time::advance(Duration::from_secs(59)).await;
    auth.check("alice", b"a", ip(A)).await;
    assert_eq!(auth.verifications(), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        auth.check("alice", b"a", ip(A)).await,
        PasswordVerdict::Accepted
    );
    assert_eq!(auth.verifications(), 2);
}

#[tokio::test]
async fn zero_cache_secs_disables_the_cache() {
    let (_dir, mut cfg) = setup(&[("alice", "a")]);
    cfg.cache_secs = 0;
    let auth = PasswordAuth::load(&cfg).unwrap();
    auth.check("alice", b"a", ip(A)).await;
    auth.check("alice", b"a", ip(A)).await;
    assert_eq!(auth.verifications(), 2);
}

#[tokio::test]
async fn reload_with_changed_hash_invalidates_the_cache() {
    let (_dir, cfg) = setup(&[("alice", "old"), ("bob", "b")]);
    let auth = PasswordAuth::load(&cfg).unwrap();
    assert_eq!(
        auth.check("alice", b"old", ip(A)).await,
        PasswordVerdict::Accepted
    );
    assert_eq!(
        auth.check("bob", b"b", ip(A)).await,
        PasswordVerdict::Accepted
    );
    // Rewrite alice only; keep bob's exact line.
    let text = std::fs::read_to_string(&cfg.path).unwrap();
    let bob_line = text.lines().find(|l| l.starts_with("bob:")).unwrap();
    std::fs::write(&cfg.path, format!("alice:{}\n{bob_line}\n", hash("new"))).unwrap();
    assert_eq!(auth.reload().unwrap(), 2);

    let before = auth.verifications();
    assert_eq!(
        auth.check("alice", b"old", ip(B)).await,
        PasswordVerdict::Rejected
    );
    assert_eq!(
        auth.check("alice", b"new", ip(B)).await,
        PasswordVerdict::Accepted
    );
    assert_eq!(
        auth.verifications(),
        before + 2,
        "alice's cache entry survived"
    );
    // bob's entry did not change, so his cached success still holds.
    assert_eq!(
        auth.check("bob", b"b", ip(B)).await,
        PasswordVerdict::Accepted
    );
    assert_eq!(auth.verifications(), before + 2);
}

#[tokio::test]
async fn reload_removing_a_user_makes_it_unknown() {
    let (_dir, cfg) = setup(&[("alice", "a"), ("bob", "b")]);
    let auth = PasswordAuth::load(&cfg).unwrap();
    assert_eq!(
        auth.check("alice", b"a", ip(A)).await,
        PasswordVerdict::Accepted
    );
    write_users(&cfg.path, &[("bob", "b")]);
    assert_eq!(auth.reload().unwrap(), 1);
    assert_eq!(
        auth.check("alice", b"a", ip(A)).await,
        PasswordVerdict::UnknownUser
    );
}

#[tokio::test]
async fn reload_keeps_the_old_users_when_the_file_is_bad() {
    let (_dir, cfg) = setup(&[("alice", "a")]);
    let auth = PasswordAuth::load(&cfg).unwrap();
    std::fs::write(&cfg.path, format!("bob:{}\nbroken line\n", hash("b"))).unwrap();
    let err = auth.reload().unwrap_err();
    assert!(
        err.to_string()
            .ends_with("passwd:2: expected `username:hash`"),
        "{err}"
    );
    assert_eq!(auth.users(), 1);
    assert_eq!(
        auth.check("alice", b"a", ip(A)).await,
        PasswordVerdict::Accepted
    );
    assert_eq!(
        auth.check("bob", b"b", ip(A)).await,
        PasswordVerdict::UnknownUser
    );
    std::fs::remove_file(&cfg.path).unwrap();
    assert!(matches!(auth.reload(), Err(Error::Read { .. })));
    assert_eq!(auth.users(), 1);
}

#[tokio::test]
async fn reload_if_changed_detects_changes_and_reports_a_bad_file_once() {
    let (_dir, cfg) = setup(&[("alice", "a")]);
    let auth = PasswordAuth::load(&cfg).unwrap();
    assert_eq!(auth.reload_if_changed().unwrap(), None);

    write_users(&cfg.path, &[("alice", "a"), ("bob", "b")]);
    assert_eq!(
        auth.reload_if_changed().unwrap(),
        None,
        "seen; read at the next look"
    );
    assert_eq!(auth.reload_if_changed().unwrap(), Some(2));
    assert_eq!(auth.reload_if_changed().unwrap(), None);
    assert_eq!(
        auth.check("bob", b"b", ip(A)).await,
        PasswordVerdict::Accepted
    );

    std::fs::write(&cfg.path, "garbage\n").unwrap();
    assert_eq!(auth.reload_if_changed().unwrap(), None);
    assert!(auth.reload_if_changed().is_err());
    assert_eq!(auth.reload_if_changed().unwrap(), None);
    assert_eq!(auth.users(), 2);
}

#[tokio::test]
async fn a_file_caught_half_written_is_not_loaded() {
    // The bug this guards against: the file watcher looked between the truncation and
    // the write of a file being replaced in place, and loaded the empty file: every
    // user was refused. A bad file written next kept that empty set in force. Seen as
    // a flaky `sighup_style_reload_applies_a_new_file` in the integration tests.
    let (_dir, cfg) = setup(&[("alice", "a")]);
    let auth = PasswordAuth::load(&cfg).unwrap();
    std::fs::write(&cfg.path, "").unwrap();
    assert_eq!(
        auth.reload_if_changed().unwrap(),
        None,
        "a change is read once it holds"
    );
    assert_eq!(auth.users(), 1);
    write_users(&cfg.path, &[("alice", "a"), ("bob", "b")]);
    assert_eq!(
        auth.reload_if_changed().unwrap(),
        None,
        "changed again: it waits again"
    );
    assert_eq!(auth.users(), 1);
    assert_eq!(auth.reload_if_changed().unwrap(), Some(2));
    assert_eq!(
        auth.check("bob", b"b", ip(A)).await,
        PasswordVerdict::Accepted
    );
}

/// Throttling: 2 tolerated failures, then 1 s doubling delays, capped at 1.5 s.
fn throttled_cfg() -> (TempDir, PasswordFileConfig) {
    let (dir, mut cfg) = setup(&[("alice", "a")]);
    cfg.max_failures = 2;
    cfg.throttle_delay_ms = 1000;
    cfg.max_throttle_delay_ms = 1500;
    (dir, cfg)
}

#[tokio::test(start_paused = true)]
async fn throttling_delays_one_ip_after_max_failures_but_not_another() {
    let (_dir, cfg) = throttled_cfg();
    let auth = PasswordAuth::load(&cfg).unwrap();
    for _ in 0..2 {
        let start = Instant::now();
        assert_eq!(
            auth.check("alice", b"x", ip(A)).await,
            PasswordVerdict::Rejected
        );
        assert_eq!(start.elapsed(), Duration::ZERO, "delayed too early");
    }
    // Third attempt from A waits the delay (virtual time), then is verified.
    let start = Instant::now();
    assert_eq!(
        auth.check("alice", b"a", ip(A)).await,
        PasswordVerdict::Accepted
    );
    assert_eq!(start.elapsed(), Duration::from_millis(1000));
    // Another IP is not affected.
    let start = Instant::now();
    assert_eq!(
        auth.check("alice", b"a", ip(B)).await,
        PasswordVerdict::Accepted
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        auth.verifications(),
        3,
        "the last check must be a cache hit"
    );
}

#[tokio::test(start_paused = true)]
async fn queued_attempts_beyond_the_cap_are_refused_without_verifying() {
    let (_dir, cfg) = throttled_cfg();
    let auth = PasswordAuth::load(&cfg).unwrap();
    auth.check("alice", b"x", ip(A)).await;
    auth.check("alice", b"x", ip(A)).await;
    let before = auth.verifications();
    // Two parallel attempts: the first is admitted after 1 s, the second would be
    // released at 2 s > 1.5 s and is refused at once.
    let (first, second) = tokio::join!(
        auth.check("alice", b"a", ip(A)),
        auth.check("nobody", b"a", ip(A))
    );
    assert_eq!(first, PasswordVerdict::Accepted);
    assert_eq!(second, PasswordVerdict::Throttled);
    assert_eq!(auth.verifications(), before + 1);
}

#[tokio::test(start_paused = true)]
async fn recorded_chain_failures_count_towards_throttling() {
    let (_dir, cfg) = throttled_cfg();
    let auth = PasswordAuth::load(&cfg).unwrap();
    assert_eq!(
        auth.check("mallory", b"x", ip(A)).await,
        PasswordVerdict::UnknownUser
    );
    auth.record_failure(ip(A));
    auth.record_failure(ip(A));
    let start = Instant::now();
    auth.check("mallory", b"x", ip(A)).await;
    assert_eq!(start.elapsed(), Duration::from_millis(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_concurrent_checks_run_at_once() {
    let (_dir, mut cfg) = setup(&[("alice", "a")]);
    cfg.max_concurrent_checks = 1;
    cfg.cache_secs = 0;
    cfg.max_failures = 0;
    let auth = Arc::new(PasswordAuth::load(&cfg).unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let auth = Arc::clone(&auth);
            let password: &[u8] = if i % 2 == 0 { b"a" } else { b"b" };
            tokio::spawn(async move { auth.check("alice", password, ip(A)).await })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        if task.await.unwrap() == PasswordVerdict::Accepted {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 4);
    assert_eq!(auth.verifications(), 8);
    assert_eq!(auth.max_in_flight(), 1);
}

#[test]
fn debug_output_shows_no_hashes() {
    let (_dir, cfg) = setup(&[("alice", "a")]);
    let auth = PasswordAuth::load(&cfg).unwrap();
    let shown = format!("{auth:?}");
    assert!(!shown.contains("argon2id"), "{shown}");
    assert!(shown.contains("users: 1"), "{shown}");
}
