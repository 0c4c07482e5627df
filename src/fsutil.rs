//! Durable, private file writes.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync dir) with mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic(path, bytes, 0o600)
}

/// Writes `bytes` to `path` atomically with the given mode.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    // One temp file per call: two writers of one path in this process must not rename each other's file.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.tmp.{}.{seq}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads at most `max + 1` bytes of `path`: enough for a caller to see that a file is over its cap without
/// holding more of it in memory (a 300 MB "token" costs `max + 1` bytes, not 300 MB).
pub fn read_at_most(path: &Path, max: usize) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    fs::File::open(path)?.take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1)).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Creates `dir` (and parents) with mode 0700 if missing.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn concurrent_writers_of_one_path_all_succeed() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("mark");
        std::thread::scope(|s| {
            let writers: Vec<_> = (0..8u8)
                .map(|i| {
                    let path = &path;
                    s.spawn(move || (0..20).try_for_each(|_| write_private(path, &[i; 16])))
                })
                .collect();
            for w in writers {
                w.join().unwrap().unwrap();
            }
        });
        let bytes = fs::read(&path).unwrap();
        assert!(bytes.len() == 16 && bytes.iter().all(|b| *b == bytes[0]), "one writer's bytes, whole");
        let left: Vec<_> = fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 1, "no temp file left behind: {left:?}");
    }

    #[test]
    fn private_files_are_0600_and_replace_atomically() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("key");
        write_private(&p, b"one").unwrap();
        write_private(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1, "no temp file left behind");
    }

    #[test]
    fn capped_reads_stop_one_byte_past_the_cap() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big");
        fs::write(&p, vec![7u8; 1000]).unwrap();
        assert_eq!(read_at_most(&p, 10).unwrap().len(), 11);
        assert_eq!(read_at_most(&p, 5000).unwrap().len(), 1000);
        // An endless file ends at the cap too.
        assert_eq!(read_at_most(Path::new("/dev/zero"), 16 * 1024).unwrap().len(), 16 * 1024 + 1);
    }
}
