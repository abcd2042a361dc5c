//! Where a [`Screen`] goes: one small trait with one required method, and one
//! implementation per kind of display.
//!
//! Host-only sinks ([`NoSink`], [`PngSink`], and [`FramebufferSink`] over any
//! byte buffer) are always built; the SPI panels, the SSD1306 OLED, the real
//! `/dev/fb*` device and the GPIO buttons ([`ButtonSource`]) need the `hardware` feature, so the
//! default build stays pure host Rust. Every sink draws with the same pure
//! layout functions in [`crate::screen`], so a PNG shows exactly what the panel shows.

mod config;
mod fb;
#[cfg(feature = "hardware")]
pub mod hardware;

use std::path::PathBuf;

use embedded_graphics::pixelcolor::BinaryColor;

use crate::screen::{self, Canvas, Screen, ScreenError};

pub use config::{ButtonsConfig, DisplayConfig, DisplayKind};
pub use fb::{present, FbFormat, FbTarget, FramebufferSink};

/// A display that can show a screen.
pub trait Sink {
    /// Shows `screen`, replacing whatever was shown before.
    fn show(&mut self, screen: &Screen) -> Result<(), SinkError>;
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn show(&mut self, screen: &Screen) -> Result<(), SinkError> {
        (**self).show(screen)
    }
}

/// Which of the two layouts a sink draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// 240×320 colour ([`screen::draw_screen`]).
    #[default]
    Colour,
    /// 128×64 monochrome ([`screen::draw_screen_mono`]).
    Mono,
}

/// Renders `screen` with `layout` into an in-memory canvas (mono as black/white RGB565).
pub fn render(screen: &Screen, layout: Layout) -> Canvas<embedded_graphics::pixelcolor::Rgb565> {
    use embedded_graphics::pixelcolor::Rgb565;
    use embedded_graphics::prelude::RgbColor;
    match layout {
        Layout::Colour => {
            let mut canvas = Canvas::new(screen::WIDTH, screen::HEIGHT, Rgb565::BLACK);
            let Ok(()) = screen::draw_screen(screen, &mut canvas);
            canvas
        }
        Layout::Mono => {
            let mono = render_mono(screen);
            let mut canvas = Canvas::new(mono.width(), mono.height(), Rgb565::BLACK);
            let colours = mono.pixels().iter().map(|&p| {
                if p == BinaryColor::On {
                    Rgb565::WHITE
                } else {
                    Rgb565::BLACK
                }
            });
            let area = embedded_graphics::primitives::Rectangle::new(
                embedded_graphics::prelude::Point::zero(),
                embedded_graphics::prelude::Size::new(mono.width(), mono.height()),
            );
            let Ok(()) = embedded_graphics::prelude::DrawTarget::fill_contiguous(
                &mut canvas,
                &area,
                colours,
            );
            canvas
        }
    }
}

/// How many pages `layout` needs to show the result on `screen`.
pub fn page_count(screen: &Screen, layout: Layout) -> usize {
    match layout {
        Layout::Colour => screen::page_count(screen),
        Layout::Mono => screen::page_count_mono(screen),
    }
}

/// What a button press asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    NextPage,
    PreviousPage,
}

/// Push buttons, polled by `serve` while it waits: the GPIO buttons of
/// `[buttons]` (feature `hardware`), or a script in tests.
pub trait ButtonSource {
    /// The button pressed since the last poll, if any.
    fn poll(&mut self) -> Option<Button>;
}

/// Renders the 128×64 layout into a monochrome canvas.
pub fn render_mono(screen: &Screen) -> Canvas<BinaryColor> {
    let mut canvas = Canvas::new(screen::MONO_WIDTH, screen::MONO_HEIGHT, BinaryColor::Off);
    let Ok(()) = screen::draw_screen_mono(screen, &mut canvas);
    canvas
}

/// Shows nothing (headless units, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSink;

impl Sink for NoSink {
    fn show(&mut self, _: &Screen) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Writes every screen to one PNG file (replaced each time): for checking a
/// unit remotely and for `cxr-edge report --screen`.
#[derive(Debug, Clone)]
pub struct PngSink {
    pub path: PathBuf,
    pub layout: Layout,
}

impl PngSink {
    pub fn new(path: impl Into<PathBuf>, layout: Layout) -> Self {
        PngSink {
            path: path.into(),
            layout,
        }
    }
}

impl Sink for PngSink {
    fn show(&mut self, screen: &Screen) -> Result<(), SinkError> {
        match self.layout {
            Layout::Colour => screen::render_png(screen, &self.path)?,
            Layout::Mono => render_mono(screen).save_mono_png(&self.path)?,
        }
        Ok(())
    }
}

/// Errors of the display sinks; each names the device or file.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Screen(#[from] ScreenError),
    #[error("framebuffer {device}: {problem}")]
    Framebuffer { device: String, problem: String },
    #[error("display {device}: {problem}")]
    Device { device: String, problem: String },
    #[error("GPIO {device}: {problem}")]
    Gpio { device: String, problem: String },
}
