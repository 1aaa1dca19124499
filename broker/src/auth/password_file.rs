//! The password file format: one `username:$argon2id$v=19$m=..,t=..,p=..$salt$hash` per
//! line, `#` comments and blank lines allowed, whitespace around lines ignored. Parses
//! and validates the whole file (errors say `path:line`), edits it in memory keeping
//! comments and order, and writes it back atomically. It also owns the error type
//! shared by the password authenticator. It knows nothing about sessions, peers,
//! caching or throttling, and never puts a password or a hash into an error.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use argon2::password_hash::phc;
use argon2::{Algorithm, PasswordHash};

/// Largest argon2 memory cost accepted in a file entry (1 GiB): a typo there would
/// otherwise let every verification allocate gigabytes.
pub const MAX_MEMORY_KIB: u32 = 1 << 20;

/// Errors of the password authenticator and its file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read password file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file could not be written.
    #[error("cannot write password file {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A line of the file is invalid.
    #[error("{}:{line}: {problem}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: EntryError,
    },
    /// A user entry given to [`PasswordFile::set_user`] is invalid.
    #[error("invalid entry: {0}")]
    Entry(EntryError),
    /// [`PasswordFile::delete_user`] was asked for a user the file does not hold.
    #[error("user {user} not found in {}", path.display())]
    UnknownUser {
        /// The username.
        user: String,
        /// The file.
        path: PathBuf,
    },
    /// The configured argon2 parameters are unusable.
    #[error("invalid argon2 parameters: {0}")]
    Params(argon2::Error),
    /// An empty password cannot be hashed.
    #[error("empty password refused")]
    EmptyPassword,
    /// Hashing failed (for example the system RNG failed).
    #[error("cannot hash password: {0}")]
    Hash(argon2::password_hash::Error),
}

/// What is wrong with one `username:hash` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// No `:` separator.
    #[error("expected `username:hash`")]
    MissingSeparator,
    /// The username is empty.
    #[error("empty username")]
    EmptyUsername,
    /// The username cannot be stored in the file.
    #[error("username {0:?} is not allowed: {1}")]
    BadUsername(String, &'static str),
    /// The same user appears twice.
    #[error("duplicate user {user} (first defined on line {first_line})")]
    Duplicate {
        /// The username.
        user: String,
        /// Line of the first definition.
        first_line: usize,
    },
    /// The hash does not parse as a PHC string.
    #[error("user {user}: hash is not a valid PHC string ({reason})")]
    NotPhc {
        /// The username.
        user: String,
        /// The parser's complaint (never contains the hash itself).
        reason: String,
    },
    /// The hash uses another algorithm than argon2id.
    #[error(
        "user {user}: hash uses {algorithm}, only argon2id is accepted (re-create it with `cauldron passwd`)"
    )]
    NotArgon2id {
        /// The username.
        user: String,
        /// The algorithm identifier found.
        algorithm: String,
    },
    /// The argon2 parameters, salt or output are missing or out of range.
    #[error("user {user}: {reason}")]
    BadParams {
        /// The username.
        user: String,
        /// What is wrong.
        reason: String,
    },
}

/// Whether [`PasswordFile::set_user`] added or replaced an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    /// The user was new.
    Added,
    /// The user's hash was replaced in place.
    Updated,
}

/// One line of the file, kept verbatim unless its user was edited.
#[derive(Clone)]
struct Line {
    text: String,
    user: Option<(String, PasswordHash)>,
}

/// A parsed password file that remembers comments, blank lines and order.
#[derive(Clone)]
pub struct PasswordFile {
    path: PathBuf,
    lines: Vec<Line>,
}

impl fmt::Debug for PasswordFile {
    // Hand-written so that hashes never reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordFile")
            .field("path", &self.path)
            .field("users", &self.len())
            .finish()
    }
}

impl PasswordFile {
    /// An empty file that will be written to `path`.
    pub fn empty(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lines: Vec::new(),
        }
    }

    /// Parses `text` as the contents of `path` (used in error messages only).
    pub fn parse(path: impl Into<PathBuf>, text: &str) -> Result<Self, Error> {
        let path = path.into();
        let mut lines = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let line_error = |problem| Error::Line {
                path: path.clone(),
                line: number,
                problem,
            };
            let trimmed = raw.trim();
            let user = if trimmed.is_empty() || trimmed.starts_with('#') {
                None
            } else {
                let (user, hash) = parse_entry(trimmed).map_err(line_error)?;
                if let Some(&first_line) = seen.get(&user) {
                    return Err(line_error(EntryError::Duplicate { user, first_line }));
                }
                seen.insert(user.clone(), number);
                Some((user, hash))
            };
            lines.push(Line {
                text: raw.to_owned(),
                user,
            });
        }
        Ok(Self { path, lines })
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(path, &text),
            Err(source) => Err(Error::Read { path, source }),
        }
    }

    /// Like [`PasswordFile::load`], but a missing file is an empty one.
    pub fn load_or_empty(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::empty(path)),
            Err(source) => Err(Error::Read { path, source }),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.lines.iter().filter(|l| l.user.is_some()).count()
    }

    /// True when the file holds no user.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when `user` has an entry.
    pub fn contains(&self, user: &str) -> bool {
        self.users().any(|(name, _)| name == user)
    }

    /// The users and their parsed hashes, in file order.
    pub fn users(&self) -> impl Iterator<Item = (&str, &PasswordHash)> {
        self.lines
            .iter()
            .filter_map(|l| l.user.as_ref().map(|(name, hash)| (name.as_str(), hash)))
    }

    /// Consumes the file into a username → hash map.
    pub fn into_users(self) -> HashMap<String, PasswordHash> {
        self.lines.into_iter().filter_map(|l| l.user).collect()
    }

    /// Adds `user` with the PHC string `hash` at the end, or replaces the existing
    /// entry in place. Validates both like the parser does.
    pub fn set_user(&mut self, user: &str, hash: &str) -> Result<SetOutcome, Error> {
        validate_username(user).map_err(Error::Entry)?;
        let parsed = parse_hash(user, hash).map_err(Error::Entry)?;
        let text = format!("{user}:{hash}");
        let existing = self
            .lines
            .iter_mut()
            .find(|l| l.user.as_ref().is_some_and(|(name, _)| name == user));
        if let Some(line) = existing {
            line.text = text;
            line.user = Some((user.to_owned(), parsed));
            return Ok(SetOutcome::Updated);
        }
        self.lines.push(Line {
            text,
            user: Some((user.to_owned(), parsed)),
        });
        Ok(SetOutcome::Added)
    }

    /// Removes `user`'s line; an error when the file has no such user.
    pub fn delete_user(&mut self, user: &str) -> Result<(), Error> {
        let position = self
            .lines
            .iter()
            .position(|l| l.user.as_ref().is_some_and(|(name, _)| name == user));
        match position {
            Some(index) => {
                self.lines.remove(index);
                Ok(())
            }
            None => Err(Error::UnknownUser {
                user: user.to_owned(),
                path: self.path.clone(),
            }),
        }
    }

    /// The file contents: untouched lines verbatim, `\n` line endings.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            out.push_str(&line.text);
            out.push('\n');
        }
        out
    }

    /// Writes the file atomically: a temporary file in the same directory, flushed,
    /// then renamed over the target. An existing file keeps its permissions; a new
    /// one is created 0600 on unix. A symlinked path replaces the link's target.
    pub fn write_atomic(&self) -> Result<(), Error> {
        let write_error = |source| Error::Write {
            path: self.path.clone(),
            source,
        };
        let target = match std::fs::canonicalize(&self.path) {
            Ok(resolved) => resolved,
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.path.clone(),
            Err(e) => return Err(write_error(e)),
        };
        let dir = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // tempfile creates the file with mode 0600 on unix.
        let mut temp = tempfile::NamedTempFile::new_in(&dir).map_err(write_error)?;
        if let Ok(meta) = std::fs::metadata(&target) {
            temp.as_file()
                .set_permissions(meta.permissions())
                .map_err(write_error)?;
        }
        temp.write_all(self.to_text().as_bytes())
            .map_err(write_error)?;
        temp.as_file().sync_all().map_err(write_error)?;
        temp.persist(&target).map_err(|e| write_error(e.error))?;
        sync_dir(&dir);
        Ok(())
    }
}

/// Best effort: make the rename durable.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Splits and validates a trimmed, non-comment line.
fn parse_entry(line: &str) -> Result<(String, PasswordHash), EntryError> {
    let (user, hash) = line.split_once(':').ok_or(EntryError::MissingSeparator)?;
    validate_username(user)?;
    let parsed = parse_hash(user, hash)?;
    Ok((user.to_owned(), parsed))
}

/// A username must be storable: non-empty, no `:`, no surrounding whitespace or
/// control characters, and not starting with `#` (it would read as a comment).
pub fn validate_username(user: &str) -> Result<(), EntryError> {
    let bad = |why| Err(EntryError::BadUsername(user.to_owned(), why));
    if user.is_empty() {
        return Err(EntryError::EmptyUsername);
    }
    if user.contains(':') {
        return bad("contains ':'");
    }
    if user.starts_with('#') {
        return bad("starts with '#'");
    }
    if user.trim() != user {
        return bad("has leading or trailing whitespace");
    }
    if user.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    Ok(())
}

/// Parses a PHC string and checks it is a complete, usable argon2id hash.
pub fn parse_hash(user: &str, hash: &str) -> Result<PasswordHash, EntryError> {
    let parsed = PasswordHash::new(hash).map_err(|e| EntryError::NotPhc {
        user: user.to_owned(),
        reason: phc_reason(&e),
    })?;
    let bad = |reason: String| EntryError::BadParams {
        user: user.to_owned(),
        reason,
    };
    match Algorithm::new(parsed.algorithm.as_str()) {
        Ok(Algorithm::Argon2id) => {}
        _ => {
            return Err(EntryError::NotArgon2id {
                user: user.to_owned(),
                algorithm: parsed.algorithm.as_str().to_owned(),
            });
        }
    }
    if let Some(version) = parsed.version {
        argon2::Version::try_from(version)
            .map_err(|_| bad(format!("unsupported argon2 version {version}")))?;
    }
    let params = argon2::Params::try_from(&parsed)
        .map_err(|e| bad(format!("invalid argon2 parameters ({e})")))?;
    if params.m_cost() > MAX_MEMORY_KIB {
        return Err(bad(format!(
            "argon2 memory cost {} KiB is above the {MAX_MEMORY_KIB} KiB limit",
            params.m_cost()
        )));
    }
    match (&parsed.salt, &parsed.hash) {
        (Some(salt), Some(_)) if salt.len() >= argon2::MIN_SALT_LEN => Ok(parsed),
        (Some(_), Some(_)) => Err(bad("salt is too short".to_owned())),
        _ => Err(bad("salt or hash output missing".to_owned())),
    }
}

/// The PHC parser's message. Its `Display` describes the problem, never the input.
fn phc_reason(error: &phc::Error) -> String {
    error.to_string()
}

#[cfg(test)]
#[path = "password_file_tests.rs"]
mod tests;
