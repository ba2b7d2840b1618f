//! Replacing a file on disk so that no reader ever sees half of it and a crash leaves either the
//! old or the new content: the users file, the session-signing keys, development certificates.
//!
//! The new content goes to a temporary file in the same directory, created with a random name
//! and `O_EXCL` (`tempfile`, so a link planted under a predictable name cannot redirect the
//! write) and with its final mode from the start (a private file is never readable by others,
//! not even for a moment); it is flushed to disk, renamed over the target, and the directory is
//! flushed too, so the rename itself survives a power cut.
//!
//! [`FileStamp`] tells whether files changed since they were last read (the reloads of
//! `crate::reload`).

use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

/// What identifies a version of each of some files: size, modification time and inode (a file
/// replaced by a rename, as [`replace`] does, has a new inode even within the same second).
/// A file that cannot be read has no stamp; its appearing is a change too.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct FileStamp(Vec<Option<(u64, SystemTime, u64)>>);

impl FileStamp {
    pub(crate) fn of<P: AsRef<Path>>(paths: &[P]) -> FileStamp {
        FileStamp(
            paths
                .iter()
                .map(|p| {
                    let m = std::fs::metadata(p).ok()?;
                    let modified = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    Some((m.len(), modified, inode(&m)))
                })
                .collect(),
        )
    }
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(m)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

/// Who may read the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// 0600: secrets (password hashes, TOTP secrets, private keys, signing keys).
    Private,
    /// 0644: certificates.
    Public,
}

/// Replaces `path` with `data` atomically and durably; see the module documentation. The
/// directory must exist.
pub(crate) fn replace(path: &Path, data: &[u8], mode: Mode) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".vigie-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let bits = match mode {
            Mode::Private => 0o600,
            Mode::Public => 0o644,
        };
        builder.permissions(std::fs::Permissions::from_mode(bits));
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Creates `dir` (and its parents) if needed and makes it 0700, tightening one that exists:
/// the state directory and the audit trail are nobody else's business on the machine.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Flushes a directory's entries (a rename in it) to disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn replaces_with_the_mode_asked_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("users.yaml");
        std::fs::write(&secret, "old").unwrap();
        replace(&secret, b"new", Mode::Private).unwrap();
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "new");
        let cert = dir.path().join("server.crt");
        replace(&cert, b"cert", Mode::Public).unwrap();
        #[cfg(unix)]
        {
            assert_eq!(mode_of(&secret), 0o600);
            assert_eq!(mode_of(&cert), 0o644);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    /// A link planted where the old code put its temporary file (`users.tmp`) is not followed.
    #[cfg(unix)]
    #[test]
    fn a_planted_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "untouched").unwrap();
        let path = dir.path().join("users.yaml");
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("users.tmp")).unwrap();
        replace(&path, b"hashes", Mode::Private).unwrap();
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "untouched");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hashes");
    }

    #[test]
    fn a_stamp_changes_with_a_replaced_or_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "same").unwrap();
        let before = FileStamp::of(&[&a, &b]);
        assert_eq!(before, FileStamp::of(&[&a, &b]));
        // Same size, same second: the rename gives a new inode.
        replace(&a, b"SAME", Mode::Private).unwrap();
        let replaced = FileStamp::of(&[&a, &b]);
        assert_ne!(before, replaced);
        std::fs::write(&b, "").unwrap();
        assert_ne!(replaced, FileStamp::of(&[&a, &b]));
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(replace(&dir.path().join("no/such/file"), b"x", Mode::Private).is_err());
    }
}
