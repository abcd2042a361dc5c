//! What surrounds a mention: the size predicate that turns a heart-anatomy
//! phrase into a cardiomegaly label ("heart size is normal", "mildly enlarged
//! cardiac silhouette"), and the laterality and severity words near a finding.

use super::phrases::{self, Target};
use super::rules::{classify, is_terminator, word_in, Found};
use super::sentence::{Kind, Token};
use super::{Laterality, Mention};

/// Heart-size predicate for an anatomy mention: (mention, predicate token).
pub(crate) fn heart_size(tokens: &[Token], found: &[Found], k: usize) -> Option<(Mention, usize)> {
    let f = found[k];
    let class = |i: usize| -> Option<Mention> {
        let t = &tokens[i];
        if word_in(t, phrases::ENLARGED) {
            let negated = tokens[i.saturating_sub(2)..i]
                .iter()
                .any(|w| word_in(w, &["not", "no", "non"]));
            Some(if negated {
                Mention::Negative
            } else {
                Mention::Positive
            })
        } else if word_in(t, phrases::NORMAL_SIZE) {
            Some(Mention::Negative)
        } else if word_in(t, phrases::BORDERLINE_SIZE) {
            Some(Mention::Uncertain)
        } else {
            None
        }
    };
    let blocked = |i: usize| {
        found
            .iter()
            .any(|g| g.start <= i && i < g.end && g.target != Target::Heart)
    };
    let mut before = None;
    for i in (f.start.saturating_sub(3)..f.start).rev() {
        if tokens[i].kind != Kind::Word || blocked(i) {
            break;
        }
        if let Some(m) = class(i) {
            before = Some((m, i, f.start - i));
            break;
        }
    }
    // The predicate may follow a list of structures ("the heart, pulmonary XXXX
    // and mediastinum are within normal limits"), so commas do not stop it
    // unless a new item with its own finding or qualifier starts there.
    let stop = (f.end..tokens.len())
        .find(|&i| {
            is_terminator(tokens, i)
                || (tokens[i].kind == Kind::Comma
                    && (found.iter().any(|g| g.start > i && g.start <= i + 3)
                        || tokens
                            .get(i + 1)
                            .is_some_and(|n| word_in(n, phrases::AFFIRMING))))
                || ((tokens[i].is("and") || tokens[i].is("with"))
                    && tokens
                        .get(i + 1)
                        .is_some_and(|n| word_in(n, &["the", "a", "an", "no"])))
        })
        .unwrap_or(tokens.len())
        .min(f.end + 10);
    let mut after = None;
    for i in f.end..stop {
        if blocked(i) {
            break;
        }
        if let Some(m) = class(i) {
            after = Some((m, i, i + 1 - f.end));
            break;
        }
    }
    // "upper limits normal or mildly enlarged": both sizes offered.
    if let Some((m, at, _)) = after {
        let rest = at + 1..stop;
        let or_other =
            rest.clone().any(|i| tokens[i].is("or")) && rest.filter_map(class).any(|n| n != m);
        if or_other {
            return Some((Mention::Uncertain, at));
        }
    }
    let (mention, at, _) = match (before, after) {
        (Some(b), Some(a)) => {
            if a.2 < b.2 {
                a
            } else {
                b
            }
        }
        (Some(b), None) => b,
        (None, Some(a)) => a,
        (None, None) => return None,
    };
    if mention != Mention::Positive {
        return Some((mention, at));
    }
    let (lo, hi) = (f.start.min(at), f.end.max(at + 1));
    if tokens[lo..hi]
        .iter()
        .any(|t| word_in(t, phrases::UNCERTAIN_PRE) || t.is("borderline"))
    {
        return Some((Mention::Uncertain, at));
    }
    Some((classify(tokens, found, k, lo, hi), at))
}

/// Laterality and severity words near a mention: first between it and the
/// previous mention, else between it and the next one.
pub(crate) fn attributes(
    tokens: &[Token],
    found: &[Found],
    start: usize,
    end: usize,
) -> (Option<Laterality>, Option<String>) {
    let prev_end = found
        .iter()
        .filter(|g| g.end <= start)
        .map(|g| g.end)
        .max()
        .unwrap_or(0);
    let next_start = found
        .iter()
        .filter(|g| g.start >= end)
        .map(|g| g.start)
        .min()
        .unwrap_or(tokens.len());
    let before_lo = (prev_end..start)
        .rev()
        .find(|&i| is_terminator(tokens, i) || tokens[i].kind == Kind::Comma)
        .map_or(prev_end, |i| i + 1)
        .max(start.saturating_sub(6));
    let after_hi = (end..next_start)
        .find(|&i| {
            is_terminator(tokens, i)
                || tokens[i].kind == Kind::Comma
                || word_in(&tokens[i], &["and", "or", "with", "versus", "vs"])
        })
        .unwrap_or(next_start)
        .min(end + 8);
    let regions = [before_lo..end, end..after_hi];
    let mut laterality = None;
    let mut severity = None;
    for r in regions {
        if laterality.is_none() {
            laterality = laterality_in(&tokens[r.clone()]);
        }
        if severity.is_none() {
            // Nearest to the mention first: "mildly hypoinflated with minimal
            // atelectasis" is minimal atelectasis.
            severity = tokens[r]
                .iter()
                .rev()
                .find(|t| word_in(t, phrases::SEVERITY))
                .map(|t| t.text.to_string());
        }
    }
    (laterality, severity)
}

fn laterality_in(tokens: &[Token]) -> Option<Laterality> {
    let (mut left, mut right) = (false, false);
    for t in tokens {
        match t.text {
            "left" | "lingula" | "lingular" => left = true,
            "right" => right = true,
            "bilateral" | "bilaterally" | "bibasilar" | "bibasal" | "bibasally" | "both"
            | "biapical" | "bilat" => return Some(Laterality::Bilateral),
            _ => {}
        }
    }
    match (left, right) {
        (true, true) => Some(Laterality::Bilateral),
        (true, false) => Some(Laterality::Left),
        (false, true) => Some(Laterality::Right),
        (false, false) => None,
    }
}
