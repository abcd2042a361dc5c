//! Report text: normalisation presets, tokenisation, vocabulary, sentence splitting.
//! (Implementation in progress: this module's API is fixed.)

use serde::{Deserialize, Serialize};

/// Named normalisation presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// The seed study: lowercase, drop special characters, drop words containing
    /// digits, drop `XXXX` de-identification tokens.
    #[default]
    Seed,
    /// The R2Gen cleaning, for comparability with published numbers.
    R2gen,
}

/// Normalise a text with a preset; words are separated by single spaces.
pub fn normalize(text: &str, preset: Preset) -> String {
    let _ = preset;
    text.to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
