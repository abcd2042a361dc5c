//! Sentence splitting and tokenisation with byte offsets into the labelled text.
//!
//! The rules only need lowercase words and a few punctuation marks (commas end
//! list items, `/` joins "and/or", `?` hedges), so this is a small hand-written
//! scanner rather than a general tokenizer. Offsets always point into the
//! original text, which is what the evidence spans report.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Word,
    Comma,
    /// `:` `(` `)` `/` `?` and other marks that matter for scope.
    Mark,
}

/// One token: a lowercase slice of the text and its byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    pub text: &'a str,
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
}

impl Token<'_> {
    pub fn is(&self, word: &str) -> bool {
        self.text == word
    }

    pub fn is_word(&self) -> bool {
        self.kind == Kind::Word
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '\''
}

/// Split `lower` (the ASCII-lowercased text, same byte offsets as the original)
/// into sentences of tokens.
///
/// A sentence ends at `.`, `;`, `!` or `?` followed by whitespace or the end of
/// the text, and at a line break. A `.` between digits ("2.5 cm") does not end a
/// sentence. Hyphens separate words, so "air-space" reads as "air space" and the
/// de-identification token "x-XXXX" as two words.
pub(crate) fn sentences(lower: &str) -> Vec<Vec<Token<'_>>> {
    let bytes = lower.as_bytes();
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut chars = lower.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if is_word_char(c) {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if is_word_char(d) {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let text = lower[i..end].trim_matches('\'');
            if !text.is_empty() {
                let start = i + lower[i..end].find(text).unwrap_or(0);
                current.push(Token {
                    text,
                    start,
                    end: start + text.len(),
                    kind: Kind::Word,
                });
            }
            continue;
        }
        let next = bytes.get(i + 1).copied();
        let ends = match c {
            '\n' | '\r' => true,
            '.' => {
                let prev_digit = i > 0 && bytes[i - 1].is_ascii_digit();
                let next_digit = next.is_some_and(|b| b.is_ascii_digit());
                !(prev_digit && next_digit) && next.is_none_or(|b| b.is_ascii_whitespace())
            }
            ';' | '!' => true,
            '?' => next.is_none_or(|b| b.is_ascii_whitespace()),
            _ => false,
        };
        if c == '?' {
            current.push(Token {
                text: "?",
                start: i,
                end: i + 1,
                kind: Kind::Mark,
            });
        } else if c == ',' {
            current.push(Token {
                text: ",",
                start: i,
                end: i + 1,
                kind: Kind::Comma,
            });
        } else if matches!(c, ':' | '(' | ')' | '/') {
            current.push(Token {
                text: &lower[i..i + 1],
                start: i,
                end: i + 1,
                kind: Kind::Mark,
            });
        }
        if ends && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Vec<&str>> {
        sentences(text)
            .into_iter()
            .map(|s| s.into_iter().map(|t| t.text).collect())
            .collect()
    }

    #[test]
    fn splits_sentences_but_not_decimals() {
        assert_eq!(
            words("a 2.5 cm nodule. no effusion; clear\nlungs"),
            vec![
                vec!["a", "2", "5", "cm", "nodule"],
                vec!["no", "effusion"],
                vec!["clear"],
                vec!["lungs"],
            ]
        );
    }

    #[test]
    fn hyphens_split_and_marks_are_kept() {
        assert_eq!(
            words("air-space disease, x-xxxx and/or effusion?"),
            vec![vec![
                "air", "space", "disease", ",", "x", "xxxx", "and", "/", "or", "effusion", "?"
            ]]
        );
    }

    #[test]
    fn offsets_point_into_the_text() {
        let text = "no 'pneumothorax'.";
        let s = sentences(text);
        let t = s[0][1];
        assert_eq!(&text[t.start..t.end], "pneumothorax");
    }
}
