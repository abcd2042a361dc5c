//! The 128×64 monochrome layout for SSD1306 OLEDs: 21 columns × 6 rows of 6×10
//! text. An inverted header row, four content rows and a status row.
//!
//! A result's content is one list of rows: what the numbers are ("Flagged:
//! model score", or "No flagged findings"), one row per flagged finding with its
//! score, then the impression wrapped to 21 columns; it is cut into pages of
//! four rows, and the header shows the time and the page ("19:42 2/5"). The
//! bottom row of a result says "Not a diagnosis", with "!" when the status line
//! has trouble to report or the queue length ("q3") otherwise.

use core::fmt::Write;

use embedded_graphics::mono_font::ascii::{FONT_10X20, FONT_6X10};
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};
use embedded_text::TextBox;
use heapless::String;

use super::pages::{score_text, wrap, DISCLAIMER_SHORT, MAX_LINES};
use super::{Label, Outbox, Screen, ScreenState};

pub const MONO_WIDTH: u32 = 128;
pub const MONO_HEIGHT: u32 = 64;
const ROW: i32 = 10;
const STATUS_Y: i32 = 54;
const COLS: usize = 21;
/// Rows between the header and the bottom row.
const CONTENT_ROWS: usize = 4;

const ON: MonoTextStyle<'static, BinaryColor> = MonoTextStyle::new(&FONT_6X10, BinaryColor::On);

/// Draws `screen` on a 128×64 monochrome target.
pub fn draw_screen_mono<D>(screen: &Screen, target: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    let full = Rectangle::new(Point::zero(), Size::new(MONO_WIDTH, MONO_HEIGHT));
    target.fill_solid(&full, BinaryColor::Off)?;
    match screen.state {
        ScreenState::Idle => {
            header(target, "cxr-edge", "")?;
            centred(
                target,
                "Ready",
                MonoTextStyle::new(&FONT_10X20, BinaryColor::On),
                26,
            )?;
            centred(target, "waiting for images", ON, 44)?;
        }
        ScreenState::Processing => {
            header(target, &screen.study, &screen.time)?;
            centred(target, "Analysing...", ON, 32)?;
        }
        ScreenState::Error => {
            header(target, "ERROR", &screen.time)?;
            TextBox::new(
                &screen.message,
                Rectangle::new(Point::new(0, 12), Size::new(128, 42)),
                ON,
            )
            .draw(target)?;
        }
        ScreenState::NotChestFilm => {
            header(target, &screen.study, &screen.time)?;
            centred(target, "NOT A CHEST FILM", ON, 24)?;
            centred(target, "no report made", ON, 38)?;
        }
        ScreenState::Result => return result(screen, target),
    }
    status(screen, target)
}

/// How many pages the mono layout needs for a result `screen` (at least 1).
pub fn page_count_mono(screen: &Screen) -> usize {
    content(screen).len().div_ceil(CONTENT_ROWS).max(1)
}

/// The text of the result page of `screen` that [`draw_screen_mono`] shows:
/// the content rows, then the bottom row (header left out). Empty for screens
/// other than a result.
pub fn page_text_mono(screen: &Screen) -> Vec<std::string::String> {
    if screen.state != ScreenState::Result {
        return Vec::new();
    }
    let mut out: Vec<std::string::String> = page_rows(screen)
        .iter()
        .map(|l| l.text().to_string())
        .collect();
    out.push(DISCLAIMER_SHORT.into());
    out
}

/// One content row of a result.
#[derive(Clone, Copy)]
enum Row<'a> {
    Text(&'a str),
    Finding(&'a Label),
}

impl Row<'_> {
    fn text(&self) -> String<24> {
        match self {
            Row::Text(t) => super::fit(t),
            Row::Finding(l) => {
                let score = score_text(l.score);
                let room = COLS - 1 - score.len();
                let name: String<24> = super::fit(l.name);
                let mut s = String::new();
                let _ = write!(
                    s,
                    "{:<room$} {score}",
                    name.get(..room.min(name.len())).unwrap_or("")
                );
                s
            }
        }
    }
}

/// Every content row of a result in order: what the numbers are, the flagged
/// findings, the impression wrapped to the width.
fn content(screen: &Screen) -> heapless::Vec<Row<'_>, { MAX_LINES + 16 }> {
    let mut rows = heapless::Vec::new();
    let _ = rows.push(Row::Text(if screen.labels.is_empty() {
        "No flagged findings"
    } else {
        if screen.calibrated {
            "Flagged: probability"
        } else {
            "Flagged: model score"
        }
    }));
    for l in &screen.labels {
        let _ = rows.push(Row::Finding(l));
    }
    for line in wrap(&screen.impression, COLS) {
        let _ = rows.push(Row::Text(line));
    }
    rows
}

/// The rows of the page `screen.page` asks for (wrapping around).
fn page_rows(screen: &Screen) -> heapless::Vec<Row<'_>, CONTENT_ROWS> {
    let rows = content(screen);
    let page = screen.page % page_count_mono(screen);
    rows.iter()
        .skip(page * CONTENT_ROWS)
        .take(CONTENT_ROWS)
        .copied()
        .collect()
}

fn result<D: DrawTarget<Color = BinaryColor>>(
    screen: &Screen,
    target: &mut D,
) -> Result<(), D::Error> {
    let count = page_count_mono(screen);
    let mut right: String<16> = String::new();
    let _ = write!(right, "{}", screen.time);
    if count > 1 {
        let _ = write!(right, " {}/{}", screen.page % count + 1, count);
    }
    // The study id gets what the time and page number leave.
    let room = COLS.saturating_sub(right.len() + 1);
    let study = screen
        .study
        .get(..room.min(screen.study.len()))
        .unwrap_or("");
    header(target, study, &right)?;
    for (i, row) in page_rows(screen).iter().enumerate() {
        let at = Point::new(0, 12 + i as i32 * ROW);
        Text::with_baseline(&row.text(), at, ON, Baseline::Top).draw(target)?;
    }
    Text::with_baseline(DISCLAIMER_SHORT, Point::new(0, STATUS_Y), ON, Baseline::Top)
        .draw(target)?;
    // What the status row would say, in brief: trouble, else the queue.
    let s = &screen.status;
    let mut brief: String<8> = String::new();
    if !s.last_error.is_empty() || matches!(s.outbox, Outbox::Failing(_)) {
        let _ = brief.push('!');
    } else if s.queue_len > 0 {
        let _ = write!(brief, "q{}", s.queue_len.min(999));
    }
    let style = TextStyleBuilder::new()
        .alignment(Alignment::Right)
        .baseline(Baseline::Top)
        .build();
    Text::with_text_style(&brief, Point::new(MONO_WIDTH as i32, STATUS_Y), ON, style)
        .draw(target)?;
    Ok(())
}

fn header<D: DrawTarget<Color = BinaryColor>>(
    target: &mut D,
    left: &str,
    right: &str,
) -> Result<(), D::Error> {
    target.fill_solid(
        &Rectangle::new(Point::zero(), Size::new(MONO_WIDTH, 11)),
        BinaryColor::On,
    )?;
    let off = MonoTextStyle::new(&FONT_6X10, BinaryColor::Off);
    Text::with_baseline(left, Point::new(1, 1), off, Baseline::Top).draw(target)?;
    let style = TextStyleBuilder::new()
        .alignment(Alignment::Right)
        .baseline(Baseline::Top)
        .build();
    Text::with_text_style(right, Point::new(MONO_WIDTH as i32 - 1, 1), off, style).draw(target)?;
    Ok(())
}

fn status<D: DrawTarget<Color = BinaryColor>>(
    screen: &Screen,
    target: &mut D,
) -> Result<(), D::Error> {
    let s = &screen.status;
    let mut line: String<32> = String::new();
    if !s.last_error.is_empty() {
        let _ = write!(line, "!{}", s.last_error);
    } else {
        let _ = write!(line, "q{}", s.queue_len);
        if let Some(ms) = s.latency_ms {
            let _ = write!(line, " {}.{}s", ms / 1000, (ms % 1000) / 100);
        }
        let _ = match s.outbox {
            Outbox::Off => Ok(()),
            Outbox::Synced => write!(line, " out ok"),
            Outbox::Pending(n) => write!(line, " out {n}"),
            Outbox::Failing(n) => write!(line, " OUT!{n}"),
        };
    }
    let shown: String<32> = super::fit(line.get(..COLS.min(line.len())).unwrap_or(""));
    Text::with_baseline(&shown, Point::new(0, STATUS_Y), ON, Baseline::Top).draw(target)?;
    Ok(())
}

fn centred<D: DrawTarget<Color = BinaryColor>>(
    target: &mut D,
    text: &str,
    style: MonoTextStyle<'static, BinaryColor>,
    y: i32,
) -> Result<(), D::Error> {
    let ts = TextStyleBuilder::new()
        .alignment(Alignment::Center)
        .baseline(Baseline::Middle)
        .build();
    Text::with_text_style(text, Point::new(MONO_WIDTH as i32 / 2, y), style, ts).draw(target)?;
    Ok(())
}
