//! The `[display]` and `[buttons]` tables of the unit's TOML configuration,
//! parsed on every build so a host can check a board file; opening a hardware
//! display needs the `hardware` feature.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ButtonSource, Layout, NoSink, PngSink, Sink, SinkError};

/// Which display a unit drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisplayKind {
    /// No display.
    #[default]
    None,
    /// Rewrite a PNG file with every screen.
    Png,
    /// ST7789 SPI panel (mipidsi).
    St7789,
    /// ILI9341 SPI panel (mipidsi).
    Ili9341,
    /// SSD1306 128×64 I2C OLED.
    Ssd1306,
    /// A Linux framebuffer device (`/dev/fb0` HDMI, `/dev/fb1` fbtft panel).
    Framebuffer,
}

/// `[display]`: which panel and how it is wired. Pin numbers are line offsets
/// on `gpiochip` (on a Raspberry Pi, the BCM GPIO number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DisplayConfig {
    pub kind: DisplayKind,
    /// PNG file (`png`) or framebuffer device (`framebuffer`).
    pub path: Option<PathBuf>,
    pub layout: Layout,
    pub spi: PathBuf,
    pub spi_hz: u32,
    pub gpiochip: PathBuf,
    pub dc: u32,
    pub reset: Option<u32>,
    pub backlight: Option<u32>,
    pub width: u16,
    pub height: u16,
    pub offset_x: u16,
    pub offset_y: u16,
    /// Most ST7789 modules need colour inversion; ILI9341 modules do not.
    pub invert_colors: bool,
    /// Blue and red swapped (some ILI9341 modules).
    pub bgr: bool,
    pub i2c: PathBuf,
    pub i2c_address: u8,
    /// A result with several pages turns to the next one every `page_ms`
    /// milliseconds (0: only the buttons turn pages).
    pub page_ms: u64,
}

impl Default for DisplayConfig {
    fn default() -> Self {
        DisplayConfig {
            kind: DisplayKind::None,
            path: None,
            layout: Layout::Colour,
            spi: "/dev/spidev0.0".into(),
            spi_hz: 32_000_000,
            gpiochip: "/dev/gpiochip0".into(),
            dc: 25,
            reset: Some(27),
            backlight: Some(18),
            width: 240,
            height: 320,
            offset_x: 0,
            offset_y: 0,
            invert_colors: true,
            bgr: false,
            i2c: "/dev/i2c-1".into(),
            i2c_address: 0x3c,
            page_ms: 4000,
        }
    }
}

/// `[buttons]`: optional push buttons to ground that page through a result
/// (internal pull-ups are not set by the character device API on every
/// kernel, so fit 10 kΩ pull-ups). Lines are offsets on `gpiochip` (default
/// `/dev/gpiochip0`); a press also restarts the timed rotation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ButtonsConfig {
    pub gpiochip: Option<PathBuf>,
    pub next_page: Option<u32>,
    pub previous_page: Option<u32>,
}

impl ButtonsConfig {
    /// Opens the configured buttons; `None` when none is configured.
    pub fn open(&self) -> Result<Option<Box<dyn ButtonSource>>, SinkError> {
        if self.next_page.is_none() && self.previous_page.is_none() {
            return Ok(None);
        }
        self.open_hardware()
    }

    #[cfg(feature = "hardware")]
    fn open_hardware(&self) -> Result<Option<Box<dyn ButtonSource>>, SinkError> {
        Ok(super::hardware::Buttons::open(self)?.map(|b| Box::new(b) as Box<dyn ButtonSource>))
    }

    #[cfg(not(feature = "hardware"))]
    fn open_hardware(&self) -> Result<Option<Box<dyn ButtonSource>>, SinkError> {
        Err(SinkError::Gpio {
            device: "[buttons]".into(),
            problem: "this binary was built without the `hardware` feature".into(),
        })
    }
}

impl DisplayConfig {
    /// The layout the display shows: the SSD1306 always draws the mono one.
    pub fn shown_layout(&self) -> Layout {
        match self.kind {
            DisplayKind::Ssd1306 => Layout::Mono,
            _ => self.layout,
        }
    }

    /// Opens the configured display.
    pub fn open(&self) -> Result<Box<dyn Sink>, SinkError> {
        match self.kind {
            DisplayKind::None => Ok(Box::new(NoSink)),
            DisplayKind::Png => {
                let path = self.path.clone().ok_or_else(|| SinkError::Device {
                    device: "png".into(),
                    problem: "display.path is required for kind = \"png\"".into(),
                })?;
                Ok(Box::new(PngSink::new(path, self.layout)))
            }
            _ => self.open_hardware(),
        }
    }

    #[cfg(feature = "hardware")]
    fn open_hardware(&self) -> Result<Box<dyn Sink>, SinkError> {
        super::hardware::open(self)
    }

    #[cfg(not(feature = "hardware"))]
    fn open_hardware(&self) -> Result<Box<dyn Sink>, SinkError> {
        Err(SinkError::Device {
            device: format!("{:?}", self.kind).to_lowercase(),
            problem: "this binary was built without the `hardware` feature".into(),
        })
    }
}
