//! Train/validation split by study. The assignment is a pure function of the uid
//! (SHA-256, not the std hasher, whose output may change between Rust releases), so
//! it is stable across machines, layouts and collection subsets: a study never moves
//! between splits when reports are added or withheld.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Collection, CorpusError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Val,
}

/// Which split a study belongs to; about `val_percent`% of uids land in `Val`.
pub fn split_of(uid: &str, val_percent: u8) -> Split {
    let digest = Sha256::digest(uid.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    if u64::from_be_bytes(head) % 100 < u64::from(val_percent) {
        Split::Val
    } else {
        Split::Train
    }
}

/// The split of a collection as written to disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitFile {
    pub val_percent: u8,
    pub train: Vec<String>,
    pub val: Vec<String>,
}

impl SplitFile {
    pub fn of(collection: &Collection, val_percent: u8) -> Self {
        let mut file = Self {
            val_percent,
            train: Vec::new(),
            val: Vec::new(),
        };
        for s in &collection.studies {
            match split_of(&s.uid, val_percent) {
                Split::Train => file.train.push(s.uid.clone()),
                Split::Val => file.val.push(s.uid.clone()),
            }
        }
        file
    }
}

impl Collection {
    /// (train, validation) studies, in collection order.
    pub fn split(&self, val_percent: u8) -> (Vec<&super::Study>, Vec<&super::Study>) {
        self.studies
            .iter()
            .partition(|s| split_of(&s.uid, val_percent) == Split::Train)
    }
}

/// Write the split of `collection` as JSON (uid lists) so later steps and other
/// tools can read the exact same partition.
pub fn write_split(
    collection: &Collection,
    val_percent: u8,
    path: &Path,
) -> Result<SplitFile, CorpusError> {
    if val_percent > 100 {
        return Err(CorpusError::Split {
            path: path.to_path_buf(),
            message: format!("validation percentage {val_percent} is over 100"),
        });
    }
    let file = SplitFile::of(collection, val_percent);
    let json = serde_json::to_string_pretty(&file).expect("plain data serialises");
    std::fs::write(path, json).map_err(|source| CorpusError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(file)
}

pub fn read_split(path: &Path) -> Result<SplitFile, CorpusError> {
    let text = std::fs::read_to_string(path).map_err(|source| CorpusError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| CorpusError::Split {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
