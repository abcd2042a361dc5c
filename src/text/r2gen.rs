//! A faithful port of R2Gen's `Tokenizer.clean_report_iu_xray`
//! (github.com/cuhksz-nlp/R2Gen, `modules/tokenizers.py`), so that scores computed
//! on our normalised text can be set beside the R2Gen line of papers. The Python is:
//!
//! ```text
//! report_cleaner = lambda t: t.replace('..', '.').replace('..', '.').replace('..', '.')
//!     .replace('1. ', '').replace('. 2. ', '. ').replace('. 3. ', '. ')
//!     .replace('. 4. ', '. ').replace('. 5. ', '. ').replace(' 2. ', '. ')
//!     .replace(' 3. ', '. ').replace(' 4. ', '. ').replace(' 5. ', '. ')
//!     .strip().lower().split('. ')
//! sent_cleaner = lambda t: re.sub('[.,?;*!%^&_+():-\[\]{}]', '',
//!     t.replace('"', '').replace('/', '').replace('\\', '').replace("'", '')
//!      .strip().lower())
//! tokens = [sent_cleaner(sent) for sent in report_cleaner(report)
//!           if sent_cleaner(sent) != []]
//! report = ' . '.join(tokens) + ' .'
//! ```
//!
//! Reproduced quirks, on purpose: the filter `!= []` compares a string with a list
//! and is always true, so empty sentences survive as doubled ` . . ` marks; inside the
//! character class `:-\[` is a *range* from `:` to `[` (so `;<=>?@`, `A`–`Z` and `[`
//! are removed, while `-` is kept: `x-xxxx` survives); digits are kept.

/// R2Gen's `clean_report_iu_xray`, character for character (Python `str` methods
/// map to their Rust equivalents: `replace` → `replace`, `strip` → `trim`, `lower`
/// → `to_lowercase`, `split('. ')` → `split(". ")`).
pub fn clean_report_iu_xray(report: &str) -> String {
    let mut t = report.to_string();
    for (from, to) in [
        ("..", "."),
        ("..", "."),
        ("..", "."),
        ("1. ", ""),
        (". 2. ", ". "),
        (". 3. ", ". "),
        (". 4. ", ". "),
        (". 5. ", ". "),
        (" 2. ", ". "),
        (" 3. ", ". "),
        (" 4. ", ". "),
        (" 5. ", ". "),
    ] {
        t = t.replace(from, to);
    }
    let t = t.trim().to_lowercase();
    let sentences: Vec<String> = t.split(". ").map(sent_cleaner).collect();
    format!("{} .", sentences.join(" . "))
}

fn sent_cleaner(sentence: &str) -> String {
    // The four chained Python `replace(c, '')` calls, in one pass.
    let t = sentence.replace(['"', '/', '\\', '\''], "");
    t.trim()
        .to_lowercase()
        .chars()
        .filter(|&c| !removed(c))
        .collect()
}

/// Membership in the regex class `[.,?;*!%^&_+():-\[\]{}]`.
fn removed(c: char) -> bool {
    matches!(
        c,
        '.' | ',' | '?' | ';' | '*' | '!' | '%' | '^' | '&' | '_' | '+' | '(' | ')' | ':'
            ..='[' | ']' | '{' | '}'
    )
}
