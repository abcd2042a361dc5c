//! Mentions in one sentence and the rules that decide what the sentence says
//! about each: NegEx-style trigger words with a scope, checked in CheXpert's
//! order (uncertainty that contains a negation first, then negation, then
//! uncertainty).
//!
//! A pre-trigger reaches forward to its mention unless a terminator ("but",
//! "however", "which", "there", ...) lies between them; negation crosses commas,
//! because reports list what they deny ("no focal consolidation, pneumothorax,
//! or pleural effusion"), while uncertainty stops at a comma unless the comma is
//! inside an "or"/"versus" list. A post-trigger ("is not seen", "has resolved",
//! "cannot be excluded") must sit in the mention's own clause.

use super::phrases::{self, Flag, Target, LEXICON};
use super::qualifiers::{attributes, heart_size};
use super::sentence::{Kind, Token};
use super::{Laterality, Mention};
use crate::Observation;

/// A phrase found in a sentence, with its token range.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    pub target: Target,
    pub flag: Flag,
    pub start: usize,
    pub end: usize,
}

/// The decision about one mention.
#[derive(Debug, Clone)]
pub(crate) struct Decided {
    pub target: Target,
    pub flag: Flag,
    pub mention: Mention,
    /// Token range of the evidence (mention plus a heart-size predicate).
    pub start: usize,
    pub end: usize,
    pub laterality: Option<Laterality>,
    pub severity: Option<String>,
}

pub(crate) fn word_in(t: &Token, list: &[&str]) -> bool {
    list.contains(&t.text)
}

pub(crate) fn is_terminator(tokens: &[Token], i: usize) -> bool {
    let t = &tokens[i];
    word_in(t, phrases::TERMINATORS)
        || (t.is("other") && tokens.get(i + 1).is_some_and(|n| n.is("than")))
        || (t.is("and") && tokens.get(i + 1).is_some_and(|n| n.is("there")))
        || t.is(":")
}

/// Greedy longest-match phrase finding, left to right.
pub(crate) fn find(tokens: &[Token]) -> Vec<Found> {
    let words: Vec<&str> = tokens.iter().map(|t| t.text).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i].kind == Kind::Word {
            if let Some((p, n)) = LEXICON.longest_at(&words[i..]) {
                if p.target != Target::Ignore {
                    let lo = (i.saturating_sub(5)..i)
                        .rev()
                        .find(|&j| tokens[j].kind != Kind::Word)
                        .map_or(i.saturating_sub(5), |j| j + 1);
                    let before = &tokens[lo..i];
                    let target = match p.target {
                        Target::Finding(Observation::LungLesion)
                            if before.iter().any(|t| t.is("calcified")) =>
                        {
                            Target::Other
                        }
                        Target::Finding(Observation::Pneumonia | Observation::Edema)
                            if before[before.len().saturating_sub(4)..]
                                .iter()
                                .any(|t| word_in(t, phrases::PAST)) =>
                        {
                            Target::Other
                        }
                        t => t,
                    };
                    out.push(Found {
                        target,
                        flag: p.flag,
                        start: i,
                        end: i + n,
                    });
                }
                i += n;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// "cannot exclude", "not excluded", "cannot be ruled out": the negator within
/// three words before an exclude/rule word.
fn not_excluded_at(tokens: &[Token], p: usize) -> bool {
    let t = &tokens[p];
    if !(t.text.starts_with("exclud") || t.is("rule") || t.is("ruled")) {
        return false;
    }
    tokens[p.saturating_sub(3)..p].iter().any(|w| {
        word_in(
            w,
            &[
                "not",
                "cannot",
                "can't",
                "cant",
                "difficult",
                "unable",
                "hard",
            ],
        )
    })
}

/// "no change in", "not significantly changed": negation words that affirm.
fn negates_change(tokens: &[Token], i: usize) -> bool {
    tokens[i + 1..tokens.len().min(i + 4)].iter().any(|w| {
        [
            "chang", "increas", "decreas", "worsen", "progress", "improv", "differ",
        ]
        .iter()
        .any(|p| w.text.starts_with(p))
    })
}

fn pre_negated(tokens: &[Token], start: usize) -> bool {
    let mut words = 0;
    let mut i = start;
    while i > 0 {
        i -= 1;
        let t = &tokens[i];
        if is_terminator(tokens, i) {
            return false;
        }
        if t.kind == Kind::Comma {
            // "no ..., small left effusion" starts an affirmed item; "no
            // effusion seen, dense nodule" closes the negated clause.
            let affirming = tokens
                .get(i + 1)
                .is_some_and(|n| word_in(n, phrases::AFFIRMING));
            let closed = i > 0 && word_in(&tokens[i - 1], phrases::SEEN);
            if affirming || closed {
                return false;
            }
            continue;
        }
        if word_in(t, phrases::NEGATION_PRE) {
            if negates_change(tokens, i) {
                return false;
            }
            let ok = match t.text {
                "negative" => tokens.get(i + 1).is_some_and(|n| n.is("for")),
                "absence" => tokens.get(i + 1).is_some_and(|n| n.is("of")),
                "not" => !tokens
                    .get(i + 1)
                    .is_some_and(|n| n.text.starts_with("exclud")),
                _ => true,
            };
            if ok {
                return true;
            }
        }
        if i > 0
            && phrases::NEGATION_PRE_PAIRS
                .iter()
                .any(|(a, b)| tokens[i - 1].is(a) && t.is(b))
        {
            return true;
        }
        if t.kind == Kind::Word {
            words += 1;
            if words > 12 {
                return false;
            }
        }
    }
    false
}

/// End (exclusive) of the clause that follows a mention ending at `end`.
pub(crate) fn clause_end(
    tokens: &[Token],
    found: &[Found],
    end: usize,
    comma_stops: bool,
) -> usize {
    let mut p = end;
    while p < tokens.len() {
        if is_terminator(tokens, p) {
            return p;
        }
        let t = &tokens[p];
        if t.kind == Kind::Comma {
            let list_goes_on = found.iter().any(|f| f.start > p && f.start <= p + 3);
            if comma_stops || !list_goes_on {
                return p;
            }
        }
        if (t.is("and") || t.is("with"))
            && tokens
                .get(p + 1)
                .is_some_and(|n| word_in(n, &["the", "a", "an", "no"]))
        {
            return p;
        }
        p += 1;
    }
    p
}

enum Post {
    Negated,
    Uncertain,
}

fn post_trigger(tokens: &[Token], found: &[Found], end: usize) -> Option<Post> {
    let stop = clause_end(tokens, found, end, false);
    for p in end..stop {
        let t = &tokens[p];
        let next = tokens.get(p + 1);
        if t.is("not") {
            if next.is_some_and(|n| word_in(n, &["well", "clearly", "entirely"])) {
                return Some(Post::Uncertain);
            }
            if next.is_some_and(|n| word_in(n, phrases::SEEN)) {
                return Some(Post::Negated);
            }
        }
        if t.is("no") && next.is_some_and(|n| n.is("longer")) {
            return Some(Post::Negated);
        }
        if word_in(t, phrases::NEGATION_POST)
            && !(p > 0
                && word_in(
                    &tokens[p - 1],
                    &["partially", "nearly", "almost", "not", "incompletely"],
                ))
        {
            return Some(Post::Negated);
        }
    }
    let stop = clause_end(tokens, found, end, true);
    // The trigger must belong to this mention: no other mention between them
    // ("opacity, likely atelectasis") and none after it.
    (end..stop)
        .find(|&p| {
            word_in(&tokens[p], phrases::UNCERTAIN_POST)
                && !found
                    .iter()
                    .any(|f| f.start >= end && f.start < stop && f.start != p)
        })
        .map(|_| Post::Uncertain)
}

/// First mention of the "or"/"versus" list containing `k`, if `k` is in one.
fn or_list_start(tokens: &[Token], found: &[Found], k: usize) -> Option<usize> {
    let linked = |a: &Found, b: &Found| -> Option<bool> {
        let gap = &tokens[a.end..b.start];
        if gap.len() > 4 || gap.is_empty() {
            return None;
        }
        // A bare "and" joins two affirmed findings; "and/or" is a hedge.
        let bare_and = gap
            .iter()
            .enumerate()
            .any(|(j, t)| t.is("and") && !gap.get(j + 1).is_some_and(|n| n.is("/")));
        let connector =
            |t: &Token| word_in(t, &["or", "versus", "vs", "/"]) || t.kind == Kind::Comma;
        if bare_and || !gap.iter().any(connector) {
            return None;
        }
        Some(gap.iter().any(|t| word_in(t, &["or", "versus", "vs"])))
    };
    let items: Vec<usize> = (0..found.len())
        .filter(|&i| found[i].target != Target::Heart)
        .collect();
    let pos = items.iter().position(|&i| i == k)?;
    let mut lo = pos;
    while lo > 0 && linked(&found[items[lo - 1]], &found[items[lo]]).is_some() {
        lo -= 1;
    }
    let mut hi = pos;
    while hi + 1 < items.len() && linked(&found[items[hi]], &found[items[hi + 1]]).is_some() {
        hi += 1;
    }
    let any_or = (lo..hi).any(|j| linked(&found[items[j]], &found[items[j + 1]]) == Some(true));
    any_or.then(|| found[items[lo]].start)
}

fn pre_uncertain(tokens: &[Token], start: usize, list_start: usize) -> bool {
    let mut i = start;
    while i > 0 {
        i -= 1;
        if is_terminator(tokens, i) {
            return false;
        }
        if tokens[i].kind == Kind::Comma && i < list_start {
            return (0..i)
                .rev()
                .take_while(|&j| !is_terminator(tokens, j))
                .any(|j| word_in(&tokens[j], phrases::UNCERTAIN_LIST));
        }
        if word_in(&tokens[i], phrases::UNCERTAIN_PRE) {
            return true;
        }
    }
    false
}

/// Decide one mention spanning tokens `start..end` (the `k`-th found phrase).
pub(crate) fn classify(
    tokens: &[Token],
    found: &[Found],
    k: usize,
    start: usize,
    end: usize,
) -> Mention {
    let clause_start = (0..start)
        .rev()
        .find(|&i| is_terminator(tokens, i))
        .map_or(0, |i| i + 1);
    let clause_stop = clause_end(tokens, found, end, false);
    if (clause_start..clause_stop).any(|p| not_excluded_at(tokens, p)) {
        return Mention::Uncertain;
    }
    if pre_negated(tokens, start) {
        return Mention::Negative;
    }
    match post_trigger(tokens, found, end) {
        Some(Post::Negated) => return Mention::Negative,
        Some(Post::Uncertain) => return Mention::Uncertain,
        None => {}
    }
    let list_start = or_list_start(tokens, found, k);
    if list_start.is_some() || pre_uncertain(tokens, start, list_start.unwrap_or(start)) {
        return Mention::Uncertain;
    }
    if found[k].flag == Flag::Hedged {
        Mention::Uncertain
    } else {
        Mention::Positive
    }
}

/// Decide every mention of one sentence.
pub(crate) fn decide(tokens: &[Token]) -> Vec<Decided> {
    let found = find(tokens);
    let mut out = Vec::with_capacity(found.len());
    for (k, f) in found.iter().enumerate() {
        let (mention, start, end) = match f.target {
            Target::Heart => match heart_size(tokens, &found, k) {
                Some((m, at)) => (m, f.start.min(at), f.end.max(at + 1)),
                None => continue,
            },
            _ => (classify(tokens, &found, k, f.start, f.end), f.start, f.end),
        };
        let (laterality, severity) = if f.target == Target::Heart {
            // The size predicate itself ("large") is not a severity; the word
            // nearest before it is ("slightly large", "mildly enlarged").
            let at = if f.start > start { start } else { end - 1 };
            let near = tokens[start.saturating_sub(2)..end]
                .iter()
                .enumerate()
                .filter(|&(j, t)| {
                    j + start.saturating_sub(2) != at && word_in(t, phrases::SEVERITY)
                })
                .min_by_key(|&(j, _)| (j + start.saturating_sub(2)).abs_diff(at))
                .map(|(_, t)| t.text.to_string());
            (
                None,
                near.or_else(|| attributes(tokens, &found, start, end).1),
            )
        } else {
            attributes(tokens, &found, start, end)
        };
        out.push(Decided {
            target: f.target,
            flag: f.flag,
            mention,
            start,
            end,
            laterality,
            severity,
        });
    }
    out
}
