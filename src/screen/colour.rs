//! The 240×320 portrait colour layout (ST7789/ILI9341 panels, framebuffer, PNG).
//!
//! Top to bottom: a 24 px header (study id, time; its colour tells the state at
//! a glance), the thumbnail with the heat map beside the flagged findings and
//! their model scores (four a page), the impression in 8×13 text (28 characters
//! a line, 9 lines a page), the line saying this is decision support and not a
//! diagnosis, and a 24 px status bar. A result with more findings or a longer
//! impression than one page holds has pages ("page 1/3"): page k shows the k-th
//! four findings and the k-th part of the impression, a part that fits on one
//! page is shown on every page, and a page past the last part of one says on
//! which pages it is. Fonts are no smaller than 6×10 so the screen reads at arm's length.

use core::fmt::Write;

use embedded_graphics::mono_font::ascii::{
    FONT_10X20, FONT_6X10, FONT_6X13_BOLD, FONT_7X13, FONT_8X13, FONT_9X15, FONT_9X15_BOLD,
};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle, RoundedRectangle};
use embedded_graphics::text::{Alignment, Baseline, LineHeight, Text, TextStyleBuilder};
use embedded_text::alignment::HorizontalAlignment;
use embedded_text::style::TextBoxStyleBuilder;
use embedded_text::TextBox;
use heapless::String;

use super::pages::{part, wrap, DISCLAIMER};
use super::{Label, Outbox, Screen, ScreenState, Status, Thumbnail};

pub const WIDTH: u32 = 240;
pub const HEIGHT: u32 = 320;

const fn rgb(r: u8, g: u8, b: u8) -> Rgb565 {
    Rgb565::new(r >> 3, g >> 2, b >> 3)
}

pub(super) const BACKGROUND: Rgb565 = rgb(12, 14, 18);
const TEXT: Rgb565 = rgb(240, 240, 240);
const MUTED: Rgb565 = rgb(140, 170, 200);
const HEADER_NORMAL: Rgb565 = rgb(24, 60, 120);
const HEADER_ERROR: Rgb565 = rgb(170, 24, 24);
const HEADER_WARN: Rgb565 = rgb(200, 120, 0);
const STATUS_BG: Rgb565 = rgb(40, 44, 52);
const HIGH: Rgb565 = rgb(200, 36, 36);
const MODERATE: Rgb565 = rgb(240, 170, 0);
const CLEAR: Rgb565 = rgb(40, 150, 70);
const GOOD: Rgb565 = rgb(120, 210, 130);
const WARN: Rgb565 = rgb(255, 190, 60);
const BAD: Rgb565 = rgb(255, 110, 110);
const FRAME: Rgb565 = rgb(90, 100, 115);

/// Scores at or above this are drawn red, flagged ones below it amber.
const HIGH_SCORE: f32 = 0.75;
const HEADER_H: i32 = 24;
const STATUS_Y: i32 = 296;
const THUMB_AT: Point = Point::new(4, 28);
const LABELS_X: i32 = 104;
const LABELS_W: u32 = 134;
const LABEL_H: u32 = 17;
/// Findings beside the thumbnail on one page.
const LABEL_ROWS: usize = 4;
/// The impression in 8×13 text: 28 columns, 9 lines a page.
const IMPRESSION_AT: Point = Point::new(6, 143);
const IMPRESSION_COLS: usize = 28;
const IMPRESSION_LINES: usize = 9;
const IMPRESSION_LINE_H: i32 = 15;
const DISCLAIMER_Y: i32 = 285;

fn style(font: &'static MonoFont<'static>, c: Rgb565) -> MonoTextStyle<'static, Rgb565> {
    MonoTextStyle::new(font, c)
}

/// Draws `screen` on a 240×320 target (anything larger is drawn in its top-left corner).
pub fn draw_screen<D>(screen: &Screen, target: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb565>,
{
    target.fill_solid(
        &Rectangle::new(Point::zero(), Size::new(WIDTH, HEIGHT)),
        BACKGROUND,
    )?;
    match screen.state {
        ScreenState::Idle => {
            header(target, "cxr-edge", "", HEADER_NORMAL)?;
            centred(target, "Ready", &FONT_10X20, GOOD, 120)?;
            centred(target, "Waiting for images", &FONT_8X13, TEXT, 150)?;
            centred(target, "Send a chest radiograph", &FONT_6X10, MUTED, 172)?;
            centred(target, "to this unit", &FONT_6X10, MUTED, 186)?;
        }
        ScreenState::Processing => {
            header(target, &screen.study, &screen.time, HEADER_NORMAL)?;
            if let Some(t) = &screen.thumbnail {
                thumbnail(target, t, Point::new((WIDTH - t.side()) as i32 / 2, 50))?;
            }
            centred(target, "Analysing...", &FONT_10X20, TEXT, 186)?;
            centred(
                target,
                "The report follows in a few seconds",
                &FONT_6X10,
                MUTED,
                212,
            )?;
        }
        ScreenState::Result => result(screen, target)?,
        ScreenState::Error => {
            header(target, "Error", &screen.time, HEADER_ERROR)?;
            Text::with_baseline(
                "Something went wrong",
                Point::new(8, 36),
                style(&FONT_9X15_BOLD, BAD),
                Baseline::Top,
            )
            .draw(target)?;
            let text_box = TextBoxStyleBuilder::new()
                .line_height(LineHeight::Pixels(16))
                .build();
            TextBox::with_textbox_style(
                &screen.message,
                Rectangle::new(Point::new(8, 62), Size::new(224, 224)),
                style(&FONT_8X13, TEXT),
                text_box,
            )
            .draw(target)?;
        }
        ScreenState::NotChestFilm => {
            header(target, &screen.study, &screen.time, HEADER_WARN)?;
            if let Some(t) = &screen.thumbnail {
                thumbnail(target, t, Point::new((WIDTH - t.side()) as i32 / 2, 40))?;
            }
            centred(target, "Not a chest film", &FONT_10X20, WARN, 166)?;
            let text_box = TextBoxStyleBuilder::new()
                .alignment(HorizontalAlignment::Center)
                .line_height(LineHeight::Pixels(16))
                .build();
            TextBox::with_textbox_style(
                &screen.message,
                Rectangle::new(Point::new(8, 192), Size::new(224, 96)),
                style(&FONT_7X13, TEXT),
                text_box,
            )
            .draw(target)?;
        }
    }
    status_bar(target, &screen.status)
}

/// How many pages the colour layout needs for a result `screen` (at least 1).
pub fn page_count(screen: &Screen) -> usize {
    plan(screen).count
}

/// The text of the result page of `screen` that [`draw_screen`] shows, top to
/// bottom (header and status bar left out): what a reader of the panel can
/// read. Empty for screens other than a result.
pub fn page_text(screen: &Screen) -> Vec<std::string::String> {
    if screen.state != ScreenState::Result {
        return Vec::new();
    }
    let p = plan(screen);
    let mut out = vec![FINDINGS_HEADING.to_string()];
    let (range, score) = findings_subheading(screen.labels.len(), &p, screen.calibrated);
    out.extend(
        [range.to_string(), score.to_string()]
            .into_iter()
            .filter(|s| !s.is_empty()),
    );
    match p.labels {
        Some(_) if screen.labels.is_empty() => out.push(NO_FLAGS.into()),
        Some((_, labels)) => out.extend(
            labels
                .iter()
                .map(|l| format!("{} {}", l.name, super::score_text(l.score))),
        ),
        None => out.push(elsewhere("findings", p.label_parts).to_string()),
    }
    out.push("IMPRESSION".into());
    if p.count > 1 {
        out.push(page_indicator(&p).to_string());
    }
    match &p.impression {
        Some(lines) => out.extend(lines.iter().map(|l| l.to_string())),
        None => out.push(elsewhere("impression", p.impression_parts).to_string()),
    }
    out.push(DISCLAIMER.into());
    out
}

const FINDINGS_HEADING: &str = "FLAGGED FINDINGS";
const NO_FLAGS: &str = "No flagged findings";

/// One page of a result: which findings and which impression lines it shows
/// (`None`: that part is on other pages).
struct Plan<'a> {
    page: usize,
    count: usize,
    label_parts: usize,
    impression_parts: usize,
    /// Index of the first finding shown, and the findings shown.
    labels: Option<(usize, &'a [Label])>,
    impression: Option<heapless::Vec<&'a str, IMPRESSION_LINES>>,
}

fn plan(screen: &Screen) -> Plan<'_> {
    let label_parts = screen.labels.len().div_ceil(LABEL_ROWS).max(1);
    let lines = wrap(&screen.impression, IMPRESSION_COLS);
    let impression_parts = lines.len().div_ceil(IMPRESSION_LINES).max(1);
    let count = label_parts.max(impression_parts);
    let page = screen.page % count;
    let labels = part(page, label_parts).map(|k| {
        let first = k * LABEL_ROWS;
        let end = (first + LABEL_ROWS).min(screen.labels.len());
        (first, &screen.labels[first.min(end)..end])
    });
    let impression = part(page, impression_parts).map(|k| {
        lines
            .iter()
            .skip(k * IMPRESSION_LINES)
            .take(IMPRESSION_LINES)
            .copied()
            .collect()
    });
    Plan {
        page,
        count,
        label_parts,
        impression_parts,
        labels,
        impression,
    }
}

/// "findings: pages 1-3": where a part not on this page is.
fn elsewhere(what: &str, parts: usize) -> String<32> {
    let mut s = String::new();
    let _ = write!(s, "{what}: pages 1-{parts}");
    s
}

fn page_indicator(p: &Plan) -> String<16> {
    let mut s = String::new();
    let _ = write!(s, "page {}/{}", p.page + 1, p.count);
    s
}

/// The findings column's second heading line: which findings this page shows
/// (when they take several pages) and what the numbers are.
fn findings_subheading(total: usize, p: &Plan, calibrated: bool) -> (String<16>, &'static str) {
    let mut range = String::new();
    if let (true, Some((first, shown))) = (p.label_parts > 1, p.labels) {
        let last = first + shown.len();
        let _ = match shown.len() {
            1 => write!(range, "{last} of {total}"),
            _ => write!(range, "{}-{last} of {total}", first + 1),
        };
    } else if p.labels.is_none() {
        let _ = write!(range, "{total} in all");
    }
    let heading = match (total > 0, calibrated) {
        (false, _) => "",
        (true, true) => "PROBABILITY",
        (true, false) => "MODEL SCORE",
    };
    (range, heading)
}

fn result<D: DrawTarget<Color = Rgb565>>(screen: &Screen, target: &mut D) -> Result<(), D::Error> {
    header(target, &screen.study, &screen.time, HEADER_NORMAL)?;
    match &screen.thumbnail {
        Some(t) => thumbnail(target, t, THUMB_AT)?,
        None => {
            let frame = Rectangle::new(THUMB_AT, Size::new(96, 96));
            frame
                .into_styled(PrimitiveStyle::with_stroke(FRAME, 1))
                .draw(target)?;
            centred_in(target, "no image", &FONT_6X10, MUTED, frame)?;
        }
    }
    let p = plan(screen);
    findings(target, screen.labels.len(), &p, screen.calibrated)?;
    impression(target, &p)?;
    centred(target, DISCLAIMER, &FONT_6X10, WARN, DISCLAIMER_Y)
}

fn impression<D: DrawTarget<Color = Rgb565>>(target: &mut D, p: &Plan) -> Result<(), D::Error> {
    Text::with_baseline(
        "IMPRESSION",
        Point::new(6, 129),
        style(&FONT_6X10, MUTED),
        Baseline::Top,
    )
    .draw(target)?;
    if p.count > 1 {
        right(
            target,
            &page_indicator(p),
            &FONT_6X10,
            WARN,
            Point::new(234, 129),
        )?;
    }
    Rectangle::new(Point::new(6, 140), Size::new(228, 1))
        .into_styled(PrimitiveStyle::with_fill(FRAME))
        .draw(target)?;
    let Some(lines) = &p.impression else {
        let note = elsewhere("impression", p.impression_parts);
        return Text::with_baseline(
            &note,
            IMPRESSION_AT,
            style(&FONT_6X10, MUTED),
            Baseline::Top,
        )
        .draw(target)
        .map(drop);
    };
    for (i, line) in lines.iter().enumerate() {
        let at = IMPRESSION_AT + Point::new(0, i as i32 * IMPRESSION_LINE_H);
        Text::with_baseline(line, at, style(&FONT_8X13, TEXT), Baseline::Top).draw(target)?;
    }
    Ok(())
}

fn findings<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    total: usize,
    p: &Plan,
    calibrated: bool,
) -> Result<(), D::Error> {
    let heading = style(&FONT_6X10, MUTED);
    Text::with_baseline(
        FINDINGS_HEADING,
        Point::new(LABELS_X, 27),
        heading,
        Baseline::Top,
    )
    .draw(target)?;
    let (range, score) = findings_subheading(total, p, calibrated);
    Text::with_baseline(&range, Point::new(LABELS_X, 38), heading, Baseline::Top).draw(target)?;
    right(
        target,
        score,
        &FONT_6X10,
        MUTED,
        Point::new(LABELS_X + LABELS_W as i32, 38),
    )?;
    let row = |i: usize| Point::new(LABELS_X, 50 + i as i32 * (LABEL_H as i32 + 2));
    let Some((_, labels)) = p.labels else {
        let note = elsewhere("findings", p.label_parts);
        return Text::with_baseline(&note, row(0), heading, Baseline::Top)
            .draw(target)
            .map(drop);
    };
    if total == 0 {
        return label(target, row(0), NO_FLAGS, "", CLEAR, TEXT);
    }
    for (i, l) in labels.iter().enumerate() {
        let (bg, fg) = if l.score >= HIGH_SCORE {
            (HIGH, TEXT)
        } else {
            (MODERATE, Rgb565::BLACK)
        };
        label(target, row(i), l.name, &super::score_text(l.score), bg, fg)?;
    }
    Ok(())
}

fn label<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    at: Point,
    name: &str,
    value: &str,
    bg: Rgb565,
    fg: Rgb565,
) -> Result<(), D::Error> {
    let area = Rectangle::new(at, Size::new(LABELS_W, LABEL_H));
    RoundedRectangle::with_equal_corners(area, Size::new(4, 4))
        .into_styled(PrimitiveStyle::with_fill(bg))
        .draw(target)?;
    let mid = at.y + LABEL_H as i32 / 2;
    Text::with_baseline(
        name,
        Point::new(at.x + 4, mid),
        style(&FONT_6X13_BOLD, fg),
        Baseline::Middle,
    )
    .draw(target)?;
    if !value.is_empty() {
        let s = TextStyleBuilder::new()
            .alignment(Alignment::Right)
            .baseline(Baseline::Middle)
            .build();
        Text::with_text_style(
            value,
            Point::new(at.x + LABELS_W as i32 - 4, mid),
            style(&FONT_6X13_BOLD, fg),
            s,
        )
        .draw(target)?;
    }
    Ok(())
}

fn header<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    left: &str,
    time: &str,
    bg: Rgb565,
) -> Result<(), D::Error> {
    target.fill_solid(
        &Rectangle::new(Point::zero(), Size::new(WIDTH, HEADER_H as u32)),
        bg,
    )?;
    Text::with_baseline(
        left,
        Point::new(6, HEADER_H / 2),
        style(&FONT_9X15_BOLD, TEXT),
        Baseline::Middle,
    )
    .draw(target)?;
    let s = TextStyleBuilder::new()
        .alignment(Alignment::Right)
        .baseline(Baseline::Middle)
        .build();
    Text::with_text_style(
        time,
        Point::new(WIDTH as i32 - 6, HEADER_H / 2),
        style(&FONT_9X15, TEXT),
        s,
    )
    .draw(target)?;
    Ok(())
}

fn status_bar<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    status: &Status,
) -> Result<(), D::Error> {
    target.fill_solid(
        &Rectangle::new(
            Point::new(0, STATUS_Y),
            Size::new(WIDTH, HEIGHT - STATUS_Y as u32),
        ),
        STATUS_BG,
    )?;
    let line1 = STATUS_Y + 2;
    let line2 = STATUS_Y + 13;
    let model = if status.model_id.is_empty() {
        "no model"
    } else {
        status.model_id.as_str()
    };
    Text::with_baseline(
        model,
        Point::new(4, line1),
        style(&FONT_6X10, MUTED),
        Baseline::Top,
    )
    .draw(target)?;
    let mut right_text: String<32> = String::new();
    if let Some(ms) = status.latency_ms {
        // Milliseconds below a second: a fast model would otherwise read "0.0 s".
        if ms < 1000 {
            let _ = write!(right_text, "{ms} ms  ");
        } else {
            let _ = write!(right_text, "{}.{} s  ", ms / 1000, (ms % 1000) / 100);
        }
    }
    let _ = write!(right_text, "queue {}", status.queue_len);
    right(
        target,
        &right_text,
        &FONT_6X10,
        TEXT,
        Point::new(WIDTH as i32 - 4, line1),
    )?;

    let mut line: String<72> = String::new();
    let colour = if !status.last_error.is_empty() {
        let _ = write!(line, "! {}", status.last_error);
        BAD
    } else {
        match status.outbox {
            Outbox::Off => {
                let _ = line.push_str("Outbox off: reports kept locally");
                MUTED
            }
            Outbox::Synced => {
                let _ = line.push_str("Outbox: all reports delivered");
                GOOD
            }
            Outbox::Pending(n) => {
                let _ = write!(line, "Outbox: {n} waiting to be sent");
                WARN
            }
            Outbox::Failing(n) => {
                let _ = write!(line, "Outbox FAILING: {n} not delivered");
                BAD
            }
        }
    };
    Text::with_baseline(
        &line,
        Point::new(4, line2),
        style(&FONT_6X10, colour),
        Baseline::Top,
    )
    .draw(target)?;
    Ok(())
}

fn thumbnail<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    t: &Thumbnail,
    at: Point,
) -> Result<(), D::Error> {
    let side = t.side();
    Rectangle::new(at - Point::new(1, 1), Size::new(side + 2, side + 2))
        .into_styled(PrimitiveStyle::with_stroke(FRAME, 1))
        .draw(target)?;
    target.fill_contiguous(
        &Rectangle::new(at, Size::new(side, side)),
        t.pixels().iter().copied(),
    )
}

fn centred<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    text: &str,
    font: &'static MonoFont<'static>,
    c: Rgb565,
    y: i32,
) -> Result<(), D::Error> {
    let s = TextStyleBuilder::new()
        .alignment(Alignment::Center)
        .baseline(Baseline::Middle)
        .build();
    Text::with_text_style(text, Point::new(WIDTH as i32 / 2, y), style(font, c), s).draw(target)?;
    Ok(())
}

fn centred_in<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    text: &str,
    font: &'static MonoFont<'static>,
    c: Rgb565,
    area: Rectangle,
) -> Result<(), D::Error> {
    let s = TextStyleBuilder::new()
        .alignment(Alignment::Center)
        .baseline(Baseline::Middle)
        .build();
    Text::with_text_style(text, area.center(), style(font, c), s).draw(target)?;
    Ok(())
}

fn right<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    text: &str,
    font: &'static MonoFont<'static>,
    c: Rgb565,
    at: Point,
) -> Result<(), D::Error> {
    let s = TextStyleBuilder::new()
        .alignment(Alignment::Right)
        .baseline(Baseline::Top)
        .build();
    Text::with_text_style(text, at, style(font, c), s).draw(target)?;
    Ok(())
}
