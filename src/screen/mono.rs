//! The 128×64 monochrome layout for SSD1306 OLEDs: 21 columns × 6 rows of 6×10
//! text. An inverted header row, the top finding, the impression in the
//! rows left (paged), and a status row.

use core::fmt::Write;

use embedded_graphics::mono_font::ascii::{FONT_10X20, FONT_6X10};
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};
use embedded_text::style::TextBoxStyleBuilder;
use embedded_text::TextBox;
use heapless::String;

use super::{Outbox, Screen, ScreenState};

pub const MONO_WIDTH: u32 = 128;
pub const MONO_HEIGHT: u32 = 64;
const ROW: i32 = 10;
const STATUS_Y: i32 = 54;
const MAX_PAGES: usize = 32;

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
        ScreenState::Result => {
            header(target, &screen.study, &screen.time)?;
            let rows = finding_rows(screen);
            for (i, row) in rows.iter().enumerate() {
                Text::with_baseline(row, Point::new(0, 12 + i as i32 * ROW), ON, Baseline::Top)
                    .draw(target)?;
            }
            let area = impression_box(rows.len());
            let pages = pages(&screen.impression, area);
            let page = screen.page % pages.len();
            TextBox::with_textbox_style(pages[page], area, ON, TextBoxStyleBuilder::new().build())
                .draw(target)?;
            if pages.len() > 1 {
                let mut s: String<8> = String::new();
                let _ = write!(s, "{}/{}", page + 1, pages.len());
                let style = TextStyleBuilder::new()
                    .alignment(Alignment::Right)
                    .baseline(Baseline::Top)
                    .build();
                Text::with_text_style(&s, Point::new(MONO_WIDTH as i32, STATUS_Y), ON, style)
                    .draw(target)?;
            }
        }
    }
    status(screen, target)
}

/// How many impression pages the mono layout needs (at least 1).
pub fn page_count_mono(screen: &Screen) -> usize {
    pages(
        &screen.impression,
        impression_box(finding_rows(screen).len()),
    )
    .len()
}

/// One row: the top finding, and how many more are flagged.
fn finding_rows(screen: &Screen) -> heapless::Vec<String<24>, 1> {
    let mut row: String<24> = String::new();
    match screen.labels.first() {
        None => {
            let _ = row.push_str("No flagged findings");
        }
        Some(top) => {
            let mut tail: String<12> = String::new();
            let _ = write!(tail, " {}%", (top.score * 100.0).round() as u32);
            if screen.labels.len() > 1 {
                let _ = write!(tail, " +{}", screen.labels.len() - 1);
            }
            // 21 columns: "!" + name (cut to fit) + tail.
            let room = 21usize.saturating_sub(1 + tail.len());
            let name: String<24> = super::fit(top.name);
            let _ = row.push('!');
            let _ = row.push_str(name.get(..room.min(name.len())).unwrap_or(""));
            let _ = row.push_str(&tail);
        }
    }
    let mut rows = heapless::Vec::new();
    let _ = rows.push(row);
    rows
}

fn impression_box(finding_rows: usize) -> Rectangle {
    let top = 12 + finding_rows as i32 * ROW + 1;
    Rectangle::new(
        Point::new(0, top),
        Size::new(MONO_WIDTH, (STATUS_Y - top).max(ROW) as u32),
    )
}

fn pages(text: &str, area: Rectangle) -> heapless::Vec<&str, MAX_PAGES> {
    let mut pages = heapless::Vec::new();
    let mut rest = text;
    loop {
        if pages.push(rest).is_err() {
            break;
        }
        let Ok(left) = TextBox::new(rest, area, ON).draw(&mut Discard);
        let left = left.trim_start();
        if left.is_empty() || left.len() >= rest.len() {
            break;
        }
        rest = left;
    }
    pages
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
    // Leave room for the page number on result screens.
    let cols = if screen.state == ScreenState::Result {
        16
    } else {
        21
    };
    let shown: String<32> = super::fit(line.get(..cols.min(line.len())).unwrap_or(""));
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

struct Discard;

impl OriginDimensions for Discard {
    fn size(&self) -> Size {
        Size::new(MONO_WIDTH, MONO_HEIGHT)
    }
}

impl DrawTarget for Discard {
    type Color = BinaryColor;
    type Error = core::convert::Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<BinaryColor>>>(
        &mut self,
        _: I,
    ) -> Result<(), Self::Error> {
        Ok(())
    }
}
