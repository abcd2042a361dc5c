//! Report text: normalisation presets, tokenisation, sentence splitting, the
//! vocabulary and length statistics. The trainer builds targets with these and the
//! device decodes with the same [`Vocab`], so both sides read text identically.
//!
//! Normalisation is a [`NormalizeOptions`] value; the named [`Preset`]s are fixed
//! option values so a bundle manifest can record which one a model was trained with.
//! Every preset is idempotent: normalising normalised text changes nothing, which
//! lets the metrics normalise model output and references alike.

mod r2gen;
mod stats;
mod vocab;

use serde::{Deserialize, Serialize};

pub use r2gen::clean_report_iu_xray;
pub use stats::LengthStats;
pub use vocab::{Vocab, VocabError, BOS, EOS, PAD, SPECIALS, UNK};

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

impl Preset {
    /// The options value this preset stands for.
    pub fn options(self) -> NormalizeOptions {
        match self {
            Preset::Seed => NormalizeOptions::SEED,
            Preset::R2gen => NormalizeOptions::R2GEN,
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "seed" => Ok(Preset::Seed),
            "r2gen" => Ok(Preset::R2gen),
            other => Err(format!("unknown text preset {other:?} (seed, r2gen)")),
        }
    }
}

/// What normalisation does, as data. Steps apply in this order:
///
/// 1. `r2gen`: R2Gen's `clean_report_iu_xray` on the whole text (see
///    [`clean_report_iu_xray`]); it lowercases, removes its own punctuation set and
///    keeps ` . ` sentence marks;
/// 2. `lowercase`;
/// 3. split into whitespace-separated words;
/// 4. `drop_deid`: drop every word containing `xxxx` in any case (`XXXX`, `x-XXXX`,
///    `XXXX-year-old`, `(XXXX).`): the collection's de-identification mark, which
///    also replaced ordinary words such as "ray" in "x-ray";
/// 5. `drop_digit_words`: drop every word containing a digit (`T8`, `2.5`, `1.`);
/// 6. `strip_special`: remove every character that is not a letter or digit from
///    the remaining words (`well-defined` → `welldefined`, `lungs.` → `lungs`) and
///    drop words left empty;
/// 7. join the words with single spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NormalizeOptions {
    pub r2gen: bool,
    pub lowercase: bool,
    pub drop_deid: bool,
    pub drop_digit_words: bool,
    pub strip_special: bool,
}

impl NormalizeOptions {
    /// [`Preset::Seed`]: steps 2–7.
    pub const SEED: Self = Self {
        r2gen: false,
        lowercase: true,
        drop_deid: true,
        drop_digit_words: true,
        strip_special: true,
    };
    /// [`Preset::R2gen`]: step 1 only, then whitespace collapsing (R2Gen's own
    /// tokenizer splits the cleaned text on whitespace too).
    pub const R2GEN: Self = Self {
        r2gen: true,
        lowercase: false,
        drop_deid: false,
        drop_digit_words: false,
        strip_special: false,
    };
    /// Whitespace collapsing only.
    pub const NONE: Self = Self {
        r2gen: false,
        lowercase: false,
        drop_deid: false,
        drop_digit_words: false,
        strip_special: false,
    };
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        Self::SEED
    }
}

/// Normalise a text with a preset; words are separated by single spaces.
pub fn normalize(text: &str, preset: Preset) -> String {
    normalize_with(text, &preset.options())
}

/// Normalise a text with explicit options (see [`NormalizeOptions`] for the order).
pub fn normalize_with(text: &str, opts: &NormalizeOptions) -> String {
    let cleaned;
    let mut text = text;
    if opts.r2gen {
        // R2Gen would turn an empty report into " ."; it never meets one (its
        // annotation files hold no empty reports), and an empty text should stay empty.
        if text.trim().is_empty() {
            return String::new();
        }
        cleaned = clean_report_iu_xray(text);
        text = &cleaned;
    }
    let lowered;
    if opts.lowercase {
        lowered = text.to_lowercase();
        text = &lowered;
    }
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if opts.drop_deid && word.to_ascii_lowercase().contains("xxxx") {
            continue;
        }
        if opts.drop_digit_words && word.chars().any(|c| c.is_numeric()) {
            continue;
        }
        let word: std::borrow::Cow<str> = if opts.strip_special {
            word.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
                .into()
        } else {
            word.into()
        };
        // Stripping can join a new de-identification mark (`xx-xx`); dropping it
        // here keeps the normaliser idempotent.
        if word.is_empty() || (opts.drop_deid && word.to_lowercase().contains("xxxx")) {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&word);
    }
    out
}

/// Normalise, then split into tokens.
pub fn tokenize(text: &str, preset: Preset) -> Vec<String> {
    normalize(text, preset)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Split raw report text into sentences: a break follows `.`, `!` or `?` when
/// whitespace or the end of the text comes next (so `2.5 cm` stays whole). Pieces
/// without a letter, such as the list numbers in `1. Clear lungs. 2. No effusion.`,
/// are dropped. Sentences keep their original wording and final mark.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let at_break = matches!(c, '.' | '!' | '?')
            && chars.peek().is_none_or(|&(_, next)| next.is_whitespace());
        if at_break {
            push_sentence(&mut out, &text[start..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    push_sentence(&mut out, &text[start..]);
    out
}

fn push_sentence(out: &mut Vec<String>, piece: &str) {
    let piece = piece.trim();
    if piece.chars().any(char::is_alphabetic) {
        out.push(piece.to_string());
    }
}
