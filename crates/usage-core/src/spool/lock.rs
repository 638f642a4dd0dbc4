//! One writer per spool directory: an exclusive lock on `<dir>/LOCK`, taken when the
//! spool opens and held until it is dropped (the OS releases it if the process dies,
//! so a kill -9 never leaves a stale lock). The file holds the owner's pid, so a
//! second writer's error names it. Read-only tools take no lock and change nothing.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The held lock; dropping it releases the directory.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

fn lock_path(dir: &Path) -> PathBuf {
    dir.join("LOCK")
}

impl DirLock {
    /// Takes the directory's lock, or says who holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, String> {
        let path = lock_path(dir);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = holder_pid(&mut file).map_or("unknown".to_string(), |p| p.to_string());
                return Err(format!(
                    "locked by another process (pid {holder}): a spool has one writer; stop that process, \
                     or look without writing with `usage spool inspect`"
                ));
            }
            Err(TryLockError::Error(e)) => return Err(format!("cannot lock {}: {e}", path.display())),
        }
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(pid.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(DirLock { _file: file })
    }

    /// The pid of the process writing to `dir` now, if any (for read-only tools).
    pub(crate) fn holder(dir: &Path) -> Option<u32> {
        let mut file = File::open(lock_path(dir)).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(TryLockError::WouldBlock) => holder_pid(&mut file),
            Err(TryLockError::Error(_)) => None,
        }
    }
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holders_pid_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        // Locks belong to open files, so a second open in this process conflicts as
        // another process would.
        let err = DirLock::acquire(dir.path()).unwrap_err();
        assert!(
            err.contains(&format!("locked by another process (pid {})", std::process::id())),
            "{err}"
        );
        assert_eq!(DirLock::holder(dir.path()), Some(std::process::id()));
        drop(first);
        assert_eq!(DirLock::holder(dir.path()), None);
        let _again = DirLock::acquire(dir.path()).unwrap();
    }
}
