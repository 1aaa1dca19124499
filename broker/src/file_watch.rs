//! Noticing that a file changed on disk without reading it, for the files the broker
//! re-reads on its own (the password file, the JWT keys, the TLS certificates).
//!
//! A file's version is its stamp: modification time, length and (on unix) inode, so an
//! edit in place and a replacement by rename are both seen. The server's watcher looks
//! every few seconds, and a change is read only once it has held for one look: a file
//! replaced in place is truncated and then written, and read in between it is empty (a
//! valid password file that refuses every user) or cut short.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

/// Identifies a version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
}

fn stamp_of(path: &Path) -> std::io::Result<FileStamp> {
    let meta = std::fs::metadata(path)?;
    Ok(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&meta),
    })
}

/// What the watch knows of its file.
#[derive(Debug, Default)]
struct State {
    /// The stamp of the file as last read (successfully or not).
    seen: Option<FileStamp>,
    /// A changed stamp the last look saw, to read if the next look sees it unchanged.
    settling: Option<FileStamp>,
    /// The last look could not see the file (already reported).
    missing: bool,
}

/// One watched file. `Send + Sync`.
#[derive(Debug)]
pub struct FileWatch {
    path: PathBuf,
    state: Mutex<State>,
}

impl FileWatch {
    /// Watches `path`; nothing is known of it until the first [`FileWatch::read`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileWatch {
            path: path.into(),
            state: Mutex::default(),
        }
    }

    /// The watched file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the file with `read`, its stamp taken first (a change racing with the read
    /// is seen at the next look). Reads through one watch are serialised; whether `read`
    /// succeeds or not, this version is not read again by [`FileWatch::changed`], so
    /// each bad version is reported once.
    pub fn read<T>(&self, read: impl FnOnce(&Path) -> T) -> T {
        let mut state = self.state();
        state.seen = stamp_of(&self.path).ok();
        state.settling = None;
        read(&self.path)
    }

    /// One look: true when the file differs from the version last read and has not
    /// changed since the previous look, so it is to be read now. An error when the file
    /// cannot be looked at (removed, say), reported once (see [`FileWatch::look`]); the
    /// version last read stays in force.
    pub fn changed(&self) -> std::io::Result<bool> {
        self.look().map(|look| look == Look::Changed)
    }

    /// One look, with the three answers a group of files needs (see [`Look`]). A file
    /// that cannot be looked at is an error once; the looks after that find it
    /// [`Look::Unchanged`] until it is back.
    pub fn look(&self) -> std::io::Result<Look> {
        let stamp = stamp_of(&self.path);
        let mut state = self.state();
        let current = match stamp {
            Ok(current) => {
                state.missing = false;
                current
            }
            Err(_) if state.missing => return Ok(Look::Unchanged),
            Err(e) => {
                state.missing = true;
                state.settling = None;
                return Err(e);
            }
        };
        if state.seen == Some(current) {
            state.settling = None;
            return Ok(Look::Unchanged);
        }
        if state.settling != Some(current) {
            state.settling = Some(current);
            return Ok(Look::Changing);
        }
        Ok(Look::Changed)
    }
}

/// What one look at a watched file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// The version last read.
    Unchanged,
    /// A new version, changed since the previous look: not to be read yet.
    Changing,
    /// A new version that has held since the previous look: to be read.
    Changed,
}

/// Looks at every file of a group (a certificate and its key, say) and tells whether
/// to read them again: some changed, and none is still changing, so a pair rotated one
/// file after the other is read once both have settled. An error, with the file's path,
/// when a file cannot be looked at.
pub fn group_changed<'a>(
    watches: impl IntoIterator<Item = &'a FileWatch>,
) -> Result<bool, (PathBuf, std::io::Error)> {
    let mut changed = false;
    let mut changing = false;
    for watch in watches {
        let look = watch.look().map_err(|e| (watch.path().to_path_buf(), e))?;
        match look {
            Look::Unchanged => {}
            Look::Changing => changing = true,
            Look::Changed => changed = true,
        }
    }
    Ok(changed && !changing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(text: &str) -> (tempfile::TempDir, FileWatch) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, text).unwrap();
        let watch = FileWatch::new(&path);
        watch.read(|p| std::fs::read(p).unwrap());
        (dir, watch)
    }

    #[test]
    fn an_unchanged_file_is_not_read_again() {
        let (_dir, watch) = watched("a");
        assert!(!watch.changed().unwrap());
        assert!(!watch.changed().unwrap());
    }

    #[test]
    fn a_change_is_read_at_the_look_after_it_is_seen() {
        let (_dir, watch) = watched("a");
        std::fs::write(watch.path(), "ab").unwrap();
        assert!(!watch.changed().unwrap(), "seen; read at the next look");
        assert!(watch.changed().unwrap(), "held for one look");
        assert!(
            watch.changed().unwrap(),
            "still to be read until it is read"
        );
        let text = watch.read(|p| std::fs::read_to_string(p).unwrap());
        assert_eq!(text, "ab");
        assert!(!watch.changed().unwrap(), "read: unchanged again");
    }

    #[test]
    fn a_file_still_changing_waits() {
        // Replaced in place: truncated, then written. Caught empty, it is not read.
        let (_dir, watch) = watched("alice");
        std::fs::write(watch.path(), "").unwrap();
        assert!(!watch.changed().unwrap());
        std::fs::write(watch.path(), "alice\nbob\n").unwrap();
        assert!(!watch.changed().unwrap(), "changed again: it waits again");
        assert!(watch.changed().unwrap());
    }

    #[test]
    fn a_replacement_by_rename_is_seen() {
        let (dir, watch) = watched("a");
        let next = dir.path().join("next");
        std::fs::write(&next, "b").unwrap();
        std::fs::rename(&next, watch.path()).unwrap();
        assert!(!watch.changed().unwrap());
        assert!(watch.changed().unwrap());
    }

    #[test]
    fn a_version_that_failed_to_read_is_not_read_again() {
        let (_dir, watch) = watched("good");
        std::fs::write(watch.path(), "bad!").unwrap();
        assert!(!watch.changed().unwrap());
        assert!(watch.changed().unwrap());
        let parsed: Result<(), &str> = watch.read(|_| Err("bad"));
        assert!(parsed.is_err());
        assert!(!watch.changed().unwrap(), "reported once");
    }

    #[test]
    fn a_group_is_read_once_every_changed_file_has_settled() {
        let (dir, cert) = watched("cert1");
        let key = FileWatch::new(dir.path().join("key"));
        std::fs::write(key.path(), "key1").unwrap();
        key.read(|_| ());
        assert!(!group_changed([&cert, &key]).unwrap());

        std::fs::write(cert.path(), "cert2").unwrap();
        assert!(!group_changed([&cert, &key]).unwrap(), "cert changing");
        std::fs::write(key.path(), "key2").unwrap();
        assert!(
            !group_changed([&cert, &key]).unwrap(),
            "cert settled, key changing: not yet"
        );
        assert!(group_changed([&cert, &key]).unwrap(), "both settled");
        cert.read(|_| ());
        key.read(|_| ());
        assert!(!group_changed([&cert, &key]).unwrap());
    }

    #[test]
    fn a_removed_file_is_an_error_and_its_return_a_change() {
        let (_dir, watch) = watched("a");
        std::fs::remove_file(watch.path()).unwrap();
        assert!(watch.changed().is_err());
        assert!(!watch.changed().unwrap(), "reported once");
        std::fs::write(watch.path(), "a2").unwrap();
        assert!(!watch.changed().unwrap());
        assert!(watch.changed().unwrap());
    }
}
