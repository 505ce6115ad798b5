//! Writing output files so that an interrupted or failed run never leaves a
//! half-written one: everything goes to a temporary name beside the target and is
//! renamed into place once complete.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file being written under a temporary name; [`PendingFile::commit`] renames it
/// into place, dropping it without committing removes it.
pub struct PendingFile {
    file: Option<io::BufWriter<File>>,
    temporary: PathBuf,
    target: PathBuf,
}

impl PendingFile {
    /// Starts writing what will become `target` (creating its directory).
    pub fn create(target: &Path) -> io::Result<PendingFile> {
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::other(format!("{} is not a file path", target.display())))?;
        let temporary = target.with_file_name(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = File::create(&temporary)?;
        Ok(PendingFile {
            file: Some(io::BufWriter::new(file)),
            temporary,
            target: target.to_owned(),
        })
    }

    /// Flushes, syncs and renames the file to its final name; when any of that
    /// fails, the temporary file is removed too.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("committed once");
        let committed = file
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_all())
            .and_then(|()| std::fs::rename(&self.temporary, &self.target));
        if committed.is_err() {
            let _ = std::fs::remove_file(&self.temporary);
        }
        committed
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("not yet committed").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("not yet committed").flush()
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// Writes `contents` to `target` all at once or not at all.
pub fn write_atomically(target: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = PendingFile::create(target)?;
    file.write_all(contents)?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_commit_leaves_no_partial_file() {
        let dir = std::env::temp_dir().join(format!("loadgen-files-fail-{}", std::process::id()));
        // The target is a directory that is not empty: the rename fails.
        let target = dir.join("out.txt");
        std::fs::create_dir_all(target.join("inside")).unwrap();
        assert!(write_atomically(&target, b"data").is_err());
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["out.txt"], "no .partial file is left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_committed_files_appear() {
        let dir = std::env::temp_dir().join(format!("loadgen-files-{}", std::process::id()));
        let target = dir.join("sub/out.txt");
        {
            let mut pending = PendingFile::create(&target).unwrap();
            pending.write_all(b"half").unwrap();
            // dropped without commit
        }
        assert!(!target.exists());
        assert_eq!(
            std::fs::read_dir(dir.join("sub")).unwrap().count(),
            0,
            "temporary left behind"
        );
        write_atomically(&target, b"whole").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"whole");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
