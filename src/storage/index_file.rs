//! An index file (`.index`, `.timeindex`) opened only while it is being written: a partition
//! that takes no writes holds one descriptor (its `.log`), not three, so ten thousand partitions
//! fit common open-file limits. Reads (at start-up) go through `std::fs` in one go; the files
//! are small and rebuilt from the log when in doubt.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{BufferedFile, OpenOptions};

use super::blocking::off_reactor;
use super::StorageError;

pub struct IndexFile {
    path: PathBuf,
    open: RefCell<Option<Rc<BufferedFile>>>,
}

impl IndexFile {
    pub fn new(path: PathBuf) -> IndexFile {
        IndexFile {
            path,
            open: RefCell::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file; empty when it does not exist.
    pub fn read_all(&self) -> Result<Vec<u8>, StorageError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(error) => Err(StorageError::io(&self.path, error)),
        }
    }

    /// Writes `bytes` at `position`, opening (creating) the file if it is closed.
    pub async fn write_at(&self, bytes: Vec<u8>, position: u64) -> Result<(), StorageError> {
        let file = self.handle().await?;
        file.write_at(bytes, position)
            .await
            .map_err(|error| StorageError::io(&self.path, error))?;
        Ok(())
    }

    /// Replaces the file's contents by `bytes`.
    pub async fn rewrite(&self, bytes: Vec<u8>) -> Result<(), StorageError> {
        let file = self.handle().await?;
        file.truncate(0)
            .await
            .map_err(|error| StorageError::io(&self.path, error))?;
        if !bytes.is_empty() {
            self.write_at(bytes, 0).await?;
        }
        Ok(())
    }

    /// Fsyncs the file if it is open, then closes it.
    pub async fn sync_and_close(&self) -> Result<(), StorageError> {
        let open = self.open.borrow_mut().take();
        if let Some(file) = open {
            file.fdatasync()
                .await
                .map_err(|error| StorageError::io(&self.path, error))?;
        }
        Ok(())
    }

    /// Closes the file if it is open (what was written stays in the page cache).
    pub fn close(&self) {
        self.open.borrow_mut().take();
    }

    /// Closes and unlinks the file (off the reactor); a file already gone is no error.
    pub async fn remove(&self) -> Result<(), StorageError> {
        self.close();
        let path = self.path.clone();
        off_reactor(move || match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(StorageError::io(&path, error))
            }
            _ => Ok(()),
        })
        .await
    }

    async fn handle(&self) -> Result<Rc<BufferedFile>, StorageError> {
        if let Some(file) = self.open.borrow().as_ref() {
            return Ok(file.clone());
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .buffered_open(&self.path)
            .await
            .map_err(|error| StorageError::io(&self.path, error))?;
        let file = Rc::new(file);
        *self.open.borrow_mut() = Some(file.clone());
        Ok(file)
    }
}
