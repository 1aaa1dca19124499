//! Tests of the password file format and editing.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::auth::password::{Argon2Params, hash_password};
use argon2::password_hash::PasswordHasher;

const TINY: Argon2Params = Argon2Params {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

fn hash(password: &str) -> String {
    hash_password(password.as_bytes(), &TINY).unwrap()
}

fn hash_with(algorithm: Algorithm) -> String {
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    argon2::Argon2::new(algorithm, argon2::Version::V0x13, params)
        .hash_password(b"pw")
        .unwrap()
        .to_string()
}

fn parse_err(text: &str) -> (usize, EntryError, String) {
    match PasswordFile::parse("/etc/cauldron/passwd", text) {
        Err(e @ Error::Line { line, .. }) => {
            let message = e.to_string();
            let Error::Line { problem, .. } = e else {
                unreachable!()
            };
            (line, problem, message)
        }
        other => panic!("expected a line error, got {other:?}"),
    }
}

#[test]
fn parses_users_comments_blank_lines_and_surrounding_whitespace() {
    let (a, b) = (hash("a"), hash("b"));
    let text = format!("# users\n\n  alice:{a}  \r\n\t# indented comment\nbob smith:{b}\n");
    let file = PasswordFile::parse("p", &text).unwrap();
    let names: Vec<_> = file.users().map(|(name, _)| name).collect();
    assert_eq!(names, ["alice", "bob smith"]);
    assert_eq!(file.len(), 2);
    assert!(file.contains("bob smith"));
    assert!(!file.contains("carol"));
}

#[test]
fn empty_file_has_no_users() {
    assert!(PasswordFile::parse("p", "").unwrap().is_empty());
    assert!(
        PasswordFile::parse("p", "# only a comment\n\n")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn rejects_line_without_separator_with_path_and_line() {
    let text = format!("# c\nalice:{}\nhunter2\n", hash("a"));
    let (line, problem, message) = parse_err(&text);
    assert_eq!(line, 3);
    assert_eq!(problem, EntryError::MissingSeparator);
    assert!(message.starts_with("/etc/cauldron/passwd:3: "), "{message}");
    assert!(
        !message.contains("hunter2"),
        "line content leaked: {message}"
    );
}

#[test]
fn rejects_empty_username() {
    let (line, problem, _) = parse_err(&format!(":{}", hash("a")));
    assert_eq!(line, 1);
    assert_eq!(problem, EntryError::EmptyUsername);
}

#[test]
fn rejects_username_with_trailing_whitespace() {
    let (_, problem, _) = parse_err(&format!("alice :{}", hash("a")));
    assert!(matches!(problem, EntryError::BadUsername(ref u, _) if u == "alice "));
}

#[test]
fn rejects_duplicate_user_naming_both_lines() {
    let text = format!(
        "alice:{}\n# x\nbob:{}\nalice:{}\n",
        hash("a"),
        hash("b"),
        hash("c")
    );
    let (line, problem, message) = parse_err(&text);
    assert_eq!(line, 4);
    assert_eq!(
        problem,
        EntryError::Duplicate {
            user: "alice".into(),
            first_line: 1
        }
    );
    assert_eq!(
        message,
        "/etc/cauldron/passwd:4: duplicate user alice (first defined on line 1)"
    );
}

#[test]
fn rejects_hash_that_is_not_phc_without_echoing_it() {
    let (line, problem, message) = parse_err("\nalice:plaintext-secret\n");
    assert_eq!(line, 2);
    assert!(matches!(problem, EntryError::NotPhc { ref user, .. } if user == "alice"));
    assert!(!message.contains("plaintext-secret"), "{message}");
}

#[test]
fn rejects_argon2i_and_argon2d_with_clear_message() {
    for (algorithm, name) in [
        (Algorithm::Argon2i, "argon2i"),
        (Algorithm::Argon2d, "argon2d"),
    ] {
        let hashed = hash_with(algorithm);
        let (line, problem, message) = parse_err(&format!("alice:{hashed}"));
        assert_eq!(line, 1);
        assert_eq!(
            problem,
            EntryError::NotArgon2id {
                user: "alice".into(),
                algorithm: name.into()
            }
        );
        assert!(message.contains("only argon2id is accepted"), "{message}");
        assert!(!message.contains(&hashed), "{message}");
    }
}

#[test]
fn rejects_other_algorithms() {
    let pbkdf2 =
        "alice:$pbkdf2-sha256$i=1000$c2FsdHNhbHQxMjM0NTY$aGFzaGhhc2hoYXNoaGFzaGhhc2gxMjM0NTY3OA";
    let (_, problem, _) = parse_err(pbkdf2);
    assert!(
        matches!(problem, EntryError::NotArgon2id { ref algorithm, .. } if algorithm == "pbkdf2-sha256"),
        "{problem:?}"
    );
}

#[test]
fn rejects_argon2id_without_salt_or_output() {
    let (_, problem, _) = parse_err("alice:$argon2id$v=19$m=8,t=1,p=1");
    assert!(
        matches!(problem, EntryError::BadParams { .. }),
        "{problem:?}"
    );
}

#[test]
fn rejects_out_of_range_params_and_huge_memory() {
    let good = hash("a");
    let too_small = good.replace("m=8,", "m=1,");
    let (_, problem, _) = parse_err(&format!("alice:{too_small}"));
    assert!(
        matches!(problem, EntryError::BadParams { .. }),
        "{problem:?}"
    );
    let huge = good.replace("m=8,", "m=4194304,");
    let (_, problem, message) = parse_err(&format!("alice:{huge}"));
    assert!(
        matches!(problem, EntryError::BadParams { .. }),
        "{problem:?}"
    );
    assert!(message.contains("limit"), "{message}");
}

#[test]
fn edits_keep_comments_order_and_untouched_lines_verbatim() {
    let (a, b) = (hash("a"), hash("b"));
    let text = format!("# header\n  alice:{a}\n\n# bob below\nbob:{b}\n# trailer\n");
    let mut file = PasswordFile::parse("p", &text).unwrap();
    let b2 = hash("b2");
    let c = hash("c");
    assert_eq!(file.set_user("bob", &b2).unwrap(), SetOutcome::Updated);
    assert_eq!(file.set_user("carol", &c).unwrap(), SetOutcome::Added);
    assert_eq!(
        file.to_text(),
        format!("# header\n  alice:{a}\n\n# bob below\nbob:{b2}\n# trailer\ncarol:{c}\n")
    );
    file.delete_user("alice").unwrap();
    assert_eq!(
        file.to_text(),
        format!("# header\n\n# bob below\nbob:{b2}\n# trailer\ncarol:{c}\n")
    );
    // The edited text parses back to the same users.
    let again = PasswordFile::parse("p", &file.to_text()).unwrap();
    assert_eq!(again.into_users(), file.into_users());
}

#[test]
fn set_user_rejects_unstorable_usernames_and_foreign_hashes() {
    let mut file = PasswordFile::empty("p");
    let good = hash("a");
    for bad in ["", "a:b", "#root", " alice", "alice\n"] {
        assert!(
            matches!(file.set_user(bad, &good), Err(Error::Entry(_))),
            "{bad:?} accepted"
        );
    }
    let argon2i = hash_with(Algorithm::Argon2i);
    assert!(matches!(
        file.set_user("alice", &argon2i),
        Err(Error::Entry(EntryError::NotArgon2id { .. }))
    ));
    assert!(file.is_empty());
}

#[test]
fn delete_unknown_user_is_an_error() {
    let mut file = PasswordFile::parse("p", &format!("alice:{}", hash("a"))).unwrap();
    let err = file.delete_user("bob").unwrap_err();
    assert!(matches!(err, Error::UnknownUser { ref user, .. } if user == "bob"));
    assert_eq!(err.to_string(), "user bob not found in p");
    assert_eq!(file.len(), 1);
}

#[test]
fn missing_file_is_a_read_error_naming_the_path_or_empty_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope");
    let err = PasswordFile::load(&path).unwrap_err();
    assert!(matches!(err, Error::Read { .. }));
    assert!(err.to_string().contains(&*path.to_string_lossy()));
    assert!(PasswordFile::load_or_empty(&path).unwrap().is_empty());
}

#[test]
fn add_update_delete_round_trip_through_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    let mut file = PasswordFile::load_or_empty(&path).unwrap();
    file.set_user("alice", &hash("a")).unwrap();
    file.set_user("bob", &hash("b")).unwrap();
    file.write_atomic().unwrap();

    let mut file = PasswordFile::load(&path).unwrap();
    assert_eq!(file.len(), 2);
    let new_alice = hash("a2");
    assert_eq!(
        file.set_user("alice", &new_alice).unwrap(),
        SetOutcome::Updated
    );
    file.delete_user("bob").unwrap();
    file.write_atomic().unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, format!("alice:{new_alice}\n"));
    // No temporary files are left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[cfg(unix)]
#[test]
fn new_files_are_private_and_existing_permissions_are_kept() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    let mut file = PasswordFile::empty(&path);
    file.set_user("alice", &hash("a")).unwrap();
    file.write_atomic().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    file.set_user("bob", &hash("b")).unwrap();
    file.write_atomic().unwrap();
    assert_eq!(mode(&path), 0o640);
}

#[cfg(unix)]
#[test]
fn writing_through_a_symlink_replaces_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("real");
    let link = dir.path().join("link");
    std::fs::write(&target, "# empty\n").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut file = PasswordFile::load(&link).unwrap();
    file.set_user("alice", &hash("a")).unwrap();
    file.write_atomic().unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(PasswordFile::load(&target).unwrap().len(), 1);
}

#[test]
fn debug_output_shows_no_hashes() {
    let hashed = hash("a");
    let file = PasswordFile::parse("p", &format!("alice:{hashed}")).unwrap();
    let shown = format!("{file:?}");
    assert!(!shown.contains("argon2id"), "{shown}");
}

/// One line of a generated password file: blank, a comment, a valid entry, a valid
/// entry with one byte changed, or anything.
fn any_line() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let valid = format!("alice:{}", hash("pw"));
    let mutated = valid.clone();
    prop_oneof![
        Just(String::new()),
        "#[ -~]{0,40}",
        "[a-z]{1,8}".prop_map(move |user| format!("{user}:{}", &valid[6..])),
        (0..mutated.len(), any::<char>()).prop_map(move |(at, c)| {
            let mut line: Vec<char> = mutated.chars().collect();
            line[at] = c;
            line.into_iter().collect()
        }),
        any::<String>(),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Whatever the file holds, it is read or refused with the number of a line it has
    /// (no panic); a file that reads holds one user per entry line at most.
    #[test]
    fn any_file_is_read_or_refused_at_one_of_its_lines(
        lines in proptest::collection::vec(any_line(), 0..12),
    ) {
        let text = lines.join("\n");
        let count = text.lines().count();
        match PasswordFile::parse("/etc/cauldron/passwd", &text) {
            Ok(file) => proptest::prop_assert!(file.len() <= count),
            Err(Error::Line { line, .. }) => {
                proptest::prop_assert!((1..=count).contains(&line), "line {} of {}", line, count)
            }
            Err(other) => proptest::prop_assert!(false, "not a line error: {}", other),
        }
    }
}
