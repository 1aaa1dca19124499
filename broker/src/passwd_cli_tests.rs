//! Tests of `cauldron passwd`.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use argon2::password_hash::PasswordVerifier;
use clap::Parser;

use super::*;
use argon2::PasswordHash;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: PasswdArgs,
}

const TINY: Argon2Params = Argon2Params {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

fn args(line: &[&str]) -> PasswdArgs {
    let mut argv = vec!["passwd"];
    argv.extend_from_slice(line);
    Cli::try_parse_from(argv).unwrap().args
}

fn with_password(pw: &str) -> impl FnOnce() -> anyhow::Result<Vec<u8>> {
    let pw = pw.as_bytes().to_vec();
    move || Ok(pw)
}

fn no_password() -> anyhow::Result<Vec<u8>> {
    panic!("the password must not be asked for")
}

fn stored_hash(path: &Path, user: &str) -> PasswordHash {
    PasswordFile::load(path)
        .unwrap()
        .users()
        .find(|(name, _)| *name == user)
        .map(|(_, hash)| hash.clone())
        .unwrap()
}

fn verifies(hash: &PasswordHash, pw: &str) -> bool {
    argon2::Argon2::default()
        .verify_password(pw.as_bytes(), hash)
        .is_ok()
}

#[test]
fn adds_user_creating_the_file_then_updates_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    let p = path.to_str().unwrap();
    let change = execute(&args(&[p, "alice"]), &TINY, with_password("s3cret")).unwrap();
    assert_eq!(change, Change::Added);
    assert!(verifies(&stored_hash(&path, "alice"), "s3cret"));

    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("# keep me\n{text}")).unwrap();
    let change = execute(&args(&[p, "alice"]), &TINY, with_password("n3w")).unwrap();
    assert_eq!(change, Change::Updated);
    let hash = stored_hash(&path, "alice");
    assert!(verifies(&hash, "n3w"));
    assert!(!verifies(&hash, "s3cret"));
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("# keep me\nalice:")
    );
}

#[test]
fn deletes_user_and_refuses_absent_user() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    let p = path.to_str().unwrap();
    execute(&args(&[p, "alice"]), &TINY, with_password("a")).unwrap();
    execute(&args(&[p, "bob"]), &TINY, with_password("b")).unwrap();
    let change = execute(&args(&[p, "alice", "--delete"]), &TINY, no_password).unwrap();
    assert_eq!(change, Change::Deleted);
    let file = PasswordFile::load(&path).unwrap();
    assert!(!file.contains("alice") && file.contains("bob"));

    let err = execute(&args(&[p, "alice", "--delete"]), &TINY, no_password).unwrap_err();
    assert!(err.to_string().contains("user alice not found"), "{err}");
}

#[test]
fn delete_from_missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    let a = args(&[path.to_str().unwrap(), "alice", "--delete"]);
    assert!(execute(&a, &TINY, no_password).is_err());
    assert!(!path.exists());
}

#[test]
fn refuses_empty_password_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    let err = execute(
        &args(&[path.to_str().unwrap(), "alice"]),
        &TINY,
        with_password(""),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "empty password refused");
    assert!(!path.exists());
}

#[test]
fn refuses_unstorable_username_before_asking_for_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    for user in ["#root", "a:b", ""] {
        let a = args(&[path.to_str().unwrap(), user]);
        assert!(
            execute(&a, &TINY, no_password).is_err(),
            "{user:?} accepted"
        );
    }
    assert!(!path.exists());
}

#[test]
fn broken_file_is_reported_with_its_line_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    std::fs::write(&path, "# c\nnot a valid line\n").unwrap();
    let err = execute(
        &args(&[path.to_str().unwrap(), "alice"]),
        &TINY,
        no_password,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("passwd:2: expected `username:hash`"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "# c\nnot a valid line\n"
    );
}

#[test]
fn argon2_flags_override_the_base_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    let a = args(&[
        path.to_str().unwrap(),
        "alice",
        "--memory-kib",
        "16",
        "--iterations",
        "2",
        "--parallelism",
        "2",
    ]);
    execute(&a, &Argon2Params::default(), with_password("pw")).unwrap();
    let hash = stored_hash(&path, "alice");
    assert_eq!(hash.algorithm.as_str(), "argon2id");
    assert_eq!(hash.params.to_string(), "m=16,t=2,p=2");
}

#[test]
fn invalid_argon2_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    let a = args(&[path.to_str().unwrap(), "alice", "--memory-kib", "1"]);
    let err = execute(&a, &TINY, no_password).unwrap_err();
    assert!(
        err.to_string().starts_with("invalid argon2 parameters"),
        "{err}"
    );
}

#[test]
fn password_flag_is_used_and_redacted_in_debug_output() {
    let a = args(&["f", "alice", "--password", "hunter2"]);
    assert_eq!(obtain_password(&a).unwrap(), b"hunter2");
    let shown = format!("{a:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn delete_conflicts_with_password_sources() {
    for extra in [
        ["--password", "x"].as_slice(),
        &["--stdin"],
        &["--iterations", "3"],
    ] {
        let mut argv = vec!["passwd", "f", "alice", "--delete"];
        argv.extend_from_slice(extra);
        assert!(Cli::try_parse_from(argv).is_err(), "{extra:?} accepted");
    }
    assert!(Cli::try_parse_from(["passwd", "f", "a", "--stdin", "--password", "x"]).is_err());
}

#[test]
fn stdin_line_keeps_spaces_and_drops_only_the_line_ending() {
    let read = |input: &[u8]| read_password_line(&mut &input[..]).unwrap();
    assert_eq!(read(b" pass word \r\nnext line\n"), b" pass word ");
    assert_eq!(read(b"no newline"), b"no newline");
    assert_eq!(read(b"\n"), b"");
}
