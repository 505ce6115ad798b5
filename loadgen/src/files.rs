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

    /// Flushes, syncs and renames the file to its final name.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("committed once");
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&self.temporary, &self.target)
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
