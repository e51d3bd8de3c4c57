//! The reader's resume position, kept in a sled database in its state directory.
//!
//! # Resumption
//! A checkpoint is stored only after the transaction it follows has been handed on
//! (printed, written to the output file, later: acknowledged by the transport), so a
//! restart can repeat but never skip a transaction. Where the consumer is a file, the
//! file's length is saved in the same sled record: on restart the file is truncated to
//! that length, which removes whatever was written after the checkpoint, and reading
//! resumes from the checkpoint; the file then holds every transaction exactly once.
//!
//! The record also names the source server (`server_id`, and `server_uuid` on MySQL):
//! a state directory moved to a reader of another server is refused rather than used
//! with positions that mean something else there.

use crate::error::Error;
use crate::position::Checkpoint;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const KEY: &[u8] = b"reader/checkpoint";

/// What is stored under the checkpoint key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub checkpoint: Checkpoint,
    /// `@@server_id` of the source server.
    pub source_server_id: u32,
    /// `@@server_uuid` (MySQL) or empty (MariaDB).
    #[serde(default)]
    pub source_uuid: String,
    /// Length of the output file after this transaction (when writing to a file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_len: Option<u64>,
    /// Wall-clock time of the save, milliseconds since the epoch (for `status`).
    pub saved_at_ms: i64,
}

pub struct CheckpointStore {
    db: sled::Db,
    dir: PathBuf,
}

impl CheckpointStore {
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let state = |what: String| Error::State {
            dir: dir.display().to_string(),
            what,
        };
        std::fs::create_dir_all(dir).map_err(|e| state(format!("cannot create: {e}")))?;
        let db = sled::Config::new()
            .path(dir.join("sled"))
            .mode(sled::Mode::LowSpace)
            .flush_every_ms(None)
            .open()
            .map_err(|e| state(format!("cannot open (is another drc using it?): {e}")))?;
        Ok(CheckpointStore {
            db,
            dir: dir.to_path_buf(),
        })
    }

    fn state_err(&self, what: String) -> Error {
        Error::State {
            dir: self.dir.display().to_string(),
            what,
        }
    }

    pub fn load(&self) -> Result<Option<Saved>, Error> {
        match self.db.get(KEY).map_err(|e| self.state_err(e.to_string()))? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| self.state_err(format!("unreadable checkpoint record: {e}"))),
        }
    }

    /// Stores `saved` (in memory; durable after [`CheckpointStore::flush`]).
    pub fn save(&self, saved: &Saved) -> Result<(), Error> {
        let v = serde_json::to_vec(saved).expect("checkpoint serializes");
        self.db.insert(KEY, v).map_err(|e| self.state_err(e.to_string()))?;
        Ok(())
    }

    /// Makes every saved checkpoint durable (fsync).
    pub fn flush(&self) -> Result<(), Error> {
        self.db.flush().map_err(|e| self.state_err(e.to_string()))?;
        Ok(())
    }

    /// Another record of the store (e.g. the Redis publisher's position, in its own
    /// store): its bytes.
    pub fn record(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .db
            .get(key)
            .map_err(|e| self.state_err(e.to_string()))?
            .map(|v| v.to_vec()))
    }

    /// Stores another record (durable after [`CheckpointStore::flush`]).
    pub fn set_record(&self, key: &[u8], v: &[u8]) -> Result<(), Error> {
        self.db.insert(key, v).map_err(|e| self.state_err(e.to_string()))?;
        Ok(())
    }

    /// Where the store is (for error messages).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn clear(&self) -> Result<(), Error> {
        self.db.remove(KEY).map_err(|e| self.state_err(e.to_string()))?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::FilePos;

    #[test]
    fn save_flush_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let saved = Saved {
            checkpoint: Checkpoint {
                file: FilePos::new("bin.000002", 1234),
                gtid: Some(crate::position::GtidState::Mariadb("1-1-7".parse().unwrap())),
            },
            source_server_id: 1,
            source_uuid: String::new(),
            output_len: Some(99),
            saved_at_ms: 5,
        };
        {
            let s = CheckpointStore::open(dir.path()).unwrap();
            assert_eq!(s.load().unwrap(), None);
            s.save(&saved).unwrap();
            s.flush().unwrap();
        }
        let s = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(s.load().unwrap(), Some(saved));
    }
}
