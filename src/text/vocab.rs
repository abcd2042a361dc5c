//! Token ↔ id table shared by the trainer (targets) and the device (decoding).
//!
//! Ids 0–3 are fixed: `PAD`, `BOS` (`startseq`), `EOS` (`endseq`) and `UNK`, the
//! seed study's start/end words, so a sequence is `startseq … endseq` padded with 0.
//! Other tokens follow by descending training count, ties broken alphabetically, so
//! the same texts always give the same table. [`Vocab::hash`] fingerprints that
//! table; the bundle manifest records it so a device never pairs a decoder with the
//! wrong vocabulary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const PAD: u32 = 0;
pub const BOS: u32 = 1;
pub const EOS: u32 = 2;
pub const UNK: u32 = 3;
/// The tokens of ids 0–3.
pub const SPECIALS: [&str; 4] = ["<pad>", "startseq", "endseq", "<unk>"];

const FORMAT: &str = "cxr-edge-vocab/1";

#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a vocabulary file: {message}")]
    Format { path: PathBuf, message: String },
}

/// The table; build with [`Vocab::build`] or read with [`Vocab::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    tokens: Vec<String>,
    index: HashMap<String, u32>,
    min_count: usize,
}

#[derive(Serialize, Deserialize)]
struct VocabFile {
    format: String,
    min_count: usize,
    /// SHA-256 of the token table, checked on load to catch hand edits.
    sha256: String,
    /// Every token in id order, specials first.
    tokens: Vec<String>,
}

impl Vocab {
    pub const PAD: u32 = PAD;
    pub const BOS: u32 = BOS;
    pub const EOS: u32 = EOS;
    pub const UNK: u32 = UNK;

    /// Count whitespace tokens over already-normalised `texts` and keep those seen at
    /// least `min_count` times (0 counts as 1).
    pub fn build<I, S>(texts: I, min_count: usize) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for text in texts {
            for tok in text.as_ref().split_whitespace() {
                if !SPECIALS.contains(&tok) {
                    *counts.entry(tok.to_string()).or_default() += 1;
                }
            }
        }
        let min_count = min_count.max(1);
        let mut kept: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|&(_, n)| n >= min_count)
            .collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let tokens = SPECIALS
            .iter()
            .map(|s| s.to_string())
            .chain(kept.into_iter().map(|(t, _)| t))
            .collect();
        Self::from_tokens(tokens, min_count)
    }

    fn from_tokens(tokens: Vec<String>, min_count: usize) -> Self {
        let index = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Self {
            tokens,
            index,
            min_count,
        }
    }

    /// Number of ids, specials included.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True when only the specials are present.
    pub fn is_empty(&self) -> bool {
        self.tokens.len() <= SPECIALS.len()
    }

    pub fn min_count(&self) -> usize {
        self.min_count
    }

    pub fn id(&self, token: &str) -> Option<u32> {
        self.index.get(token).copied()
    }

    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Ids of the whitespace tokens of `text` (no BOS/EOS); unknown tokens → `UNK`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        text.split_whitespace()
            .map(|t| self.id(t).unwrap_or(UNK))
            .collect()
    }

    /// `BOS`, the ids of `text`, `EOS`: a teacher-forcing target.
    pub fn encode_framed(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![BOS];
        ids.extend(self.encode(text));
        ids.push(EOS);
        ids
    }

    /// Text of `ids`: stops at the first `EOS`, skips `PAD` and `BOS`; ids outside
    /// the table read as `<unk>`.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut out = String::new();
        for &id in ids {
            match id {
                EOS => break,
                PAD | BOS => continue,
                _ => {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(self.token(id).unwrap_or(SPECIALS[UNK as usize]));
                }
            }
        }
        out
    }

    /// SHA-256 (hex) of the token table: each token followed by `\n`, in id order.
    /// Depends only on the tokens and their ids, not on the JSON layout.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        for t in &self.tokens {
            h.update(t.as_bytes());
            h.update(b"\n");
        }
        hex::encode(h.finalize())
    }

    pub fn save(&self, path: &Path) -> Result<(), VocabError> {
        let file = VocabFile {
            format: FORMAT.into(),
            min_count: self.min_count,
            sha256: self.hash(),
            tokens: self.tokens.clone(),
        };
        let json = serde_json::to_string_pretty(&file).expect("plain data serialises");
        std::fs::write(path, json).map_err(|source| VocabError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Read a table written by [`Vocab::save`], checking the specials, duplicates
    /// and the recorded hash.
    pub fn load(path: &Path) -> Result<Self, VocabError> {
        let bad = |message: String| VocabError::Format {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|source| VocabError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file: VocabFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if file.format != FORMAT {
            return Err(bad(format!(
                "format {:?}, expected {FORMAT:?}",
                file.format
            )));
        }
        if file.tokens.len() < SPECIALS.len() || file.tokens[..SPECIALS.len()] != SPECIALS {
            return Err(bad(format!("the first tokens must be {SPECIALS:?}")));
        }
        let vocab = Self::from_tokens(file.tokens, file.min_count);
        if vocab.index.len() != vocab.tokens.len() {
            return Err(bad("duplicate tokens".into()));
        }
        if vocab.hash() != file.sha256 {
            return Err(bad(format!(
                "sha256 {} does not match its tokens ({})",
                file.sha256,
                vocab.hash()
            )));
        }
        Ok(vocab)
    }
}
