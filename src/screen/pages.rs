//! What both layouts share to page a result: word wrapping into the layout's
//! columns, the words that say what the screen is and what its numbers are,
//! and the timed rotation through the pages.
//!
//! A result screen is split into pages so that every flagged finding and every
//! word of the impression can be seen: the layouts cut the findings and the
//! impression into page-sized parts, and `serve` shows the pages in turn
//! ([`Rotation`]) or on a button press.

use core::fmt::Write;
use std::time::{Duration, Instant};

use heapless::String;

/// Most wrapped lines of one impression (1024 characters in 21 columns need
/// at most 86: a line holds at least half its columns when words are wrapped).
pub(super) const MAX_LINES: usize = 128;

/// Said on every result screen of the colour layout.
pub const DISCLAIMER: &str = "Decision support only, not a diagnosis";
/// Said on every result screen of the 128×64 layout (21 columns).
pub const DISCLAIMER_SHORT: &str = "Not a diagnosis";

/// A finding's number as shown: two decimals, never a percentage that reads
/// like certainty (a model score, or a calibrated probability where the bundle
/// has a calibration; the heading above says which).
pub fn score_text(score: f32) -> String<8> {
    let mut s = String::new();
    let _ = write!(s, "{:.2}", score.clamp(0.0, 1.0));
    s
}

/// `text` cut into lines of at most `cols` characters, broken at spaces
/// (a word longer than a line is broken inside). Lines are slices of `text`;
/// more than [`MAX_LINES`] lines are dropped (a screen's impression is capped
/// well below that).
pub(super) fn wrap(text: &str, cols: usize) -> heapless::Vec<&str, MAX_LINES> {
    let mut lines = heapless::Vec::new();
    let cols = cols.max(1);
    let mut rest = text.trim();
    while !rest.is_empty() {
        let line = match rest.char_indices().nth(cols) {
            None => rest,
            // The character just past the line is a space: the line ends on a word.
            Some((end, ' ')) => &rest[..end],
            Some((end, _)) => match rest[..end].rfind(' ') {
                Some(space) if space > 0 => &rest[..space],
                _ => &rest[..end],
            },
        };
        if lines.push(line.trim_end()).is_err() {
            break;
        }
        rest = rest[line.len()..].trim_start();
    }
    lines
}

/// Which part a page shows of something split into `parts` parts: a single
/// part is shown on every page, otherwise page `page` shows part `page` and
/// pages past the last part show none of it.
pub(super) fn part(page: usize, parts: usize) -> Option<usize> {
    match parts {
        0 => None,
        1 => Some(0),
        _ => (page < parts).then_some(page),
    }
}

/// Timed page turning for a screen with several pages. The clock is passed in,
/// so callers (and tests) decide what time it is.
#[derive(Debug, Clone)]
pub struct Rotation {
    period: Duration,
    last_turn: Option<Instant>,
}

impl Rotation {
    /// Turns a page every `period`; a zero period never turns.
    pub fn new(period: Duration) -> Self {
        Rotation {
            period,
            last_turn: None,
        }
    }

    /// A new screen (or a page chosen by a button) went up at `now`: the next
    /// turn is a whole period later.
    pub fn restart(&mut self, now: Instant) {
        self.last_turn = Some(now);
    }

    /// Whether a page should be turned at `now`; when it should, the turn is
    /// counted from `now`.
    pub fn due(&mut self, now: Instant) -> bool {
        if self.period.is_zero() {
            return false;
        }
        let last = *self.last_turn.get_or_insert(now);
        if now.saturating_duration_since(last) >= self.period {
            self.last_turn = Some(now);
            true
        } else {
            false
        }
    }

    /// How long after `now` the next turn is due (`None`: never).
    pub fn until_due(&self, now: Instant) -> Option<Duration> {
        if self.period.is_zero() {
            return None;
        }
        let last = self.last_turn.unwrap_or(now);
        Some((last + self.period).saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_spaces_and_inside_long_words() {
        let lines = wrap(
            "Possible atelectasis. Findings consistent with pneumonia.",
            21,
        );
        assert_eq!(
            lines.as_slice(),
            [
                "Possible atelectasis.",
                "Findings consistent",
                "with pneumonia."
            ]
        );
        assert_eq!(
            wrap("abcdefghij kl", 4).as_slice(),
            ["abcd", "efgh", "ij", "kl"]
        );
        assert!(wrap("   ", 10).is_empty());
        let all: std::string::String = wrap(&"word ".repeat(300), 21).join(" ");
        assert_eq!(all, "word ".repeat(300).trim_end());
    }

    #[test]
    fn parts_repeat_only_when_single() {
        assert_eq!(part(2, 1), Some(0));
        assert_eq!(part(1, 3), Some(1));
        assert_eq!(part(3, 3), None);
        assert_eq!(part(0, 0), None);
    }

    #[test]
    fn rotation_turns_once_per_period() {
        let t0 = Instant::now();
        let mut r = Rotation::new(Duration::from_millis(4000));
        r.restart(t0);
        assert!(!r.due(t0 + Duration::from_millis(3999)));
        assert_eq!(r.until_due(t0), Some(Duration::from_millis(4000)));
        assert!(r.due(t0 + Duration::from_millis(4000)));
        assert!(
            !r.due(t0 + Duration::from_millis(4001)),
            "counted from the turn"
        );
        assert!(r.due(t0 + Duration::from_millis(8000)));
        let mut off = Rotation::new(Duration::ZERO);
        assert!(!off.due(t0 + Duration::from_secs(60)));
        assert_eq!(off.until_due(t0), None);
    }

    #[test]
    fn scores_are_decimals_not_percentages() {
        assert_eq!(score_text(0.734).as_str(), "0.73");
        assert_eq!(score_text(1.7).as_str(), "1.00");
    }
}
