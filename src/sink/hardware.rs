//! Hardware sinks and buttons (feature `hardware`): SPI panels through
//! `mipidsi` on `linux-embedded-hal`, the SSD1306 through `ssd1306`, the real
//! `/dev/fb*` through the `framebuffer` crate, and GPIO push buttons.
//!
//! Each sink renders the whole screen into memory first and sends it in one
//! burst: on SPI that is one address window and one pixel stream (no visible
//! redraw), and the pixels are exactly those of the PNG sink.

use std::time::{Duration, Instant};

use embedded_graphics::pixelcolor::Rgb565;
use embedded_hal::digital::OutputPin;
use gpio_cdev::{Chip, LineHandle, LineRequestFlags};
use linux_embedded_hal::spidev::{SpiModeFlags, SpidevOptions};
use linux_embedded_hal::{CdevPin, Delay, I2cdev, SpidevDevice};
use mipidsi::interface::SpiInterface;
use mipidsi::models::{ILI9341Rgb565, Model, ST7789};
use mipidsi::options::{ColorInversion, ColorOrder};
use mipidsi::{Builder, Display};
use ssd1306::mode::BufferedGraphicsMode;
use ssd1306::mode::DisplayConfig as _;
use ssd1306::prelude::{DisplayRotation, DisplaySize128x64, I2CInterface};
use ssd1306::{I2CDisplayInterface, Ssd1306};

use super::config::{ButtonsConfig, DisplayConfig, DisplayKind};
use super::fb::{FbFormat, FramebufferSink};
use super::{render, render_mono, Button, ButtonSource, Layout, Sink, SinkError};
use crate::screen::Screen;

/// spidev's default `bufsiz` is 4096 bytes; a larger transfer fails with EMSGSIZE.
const SPI_CHUNK: usize = 4096;

const CONSUMER: &str = "cxr-edge";

fn dev_err(device: &std::path::Path, problem: impl std::fmt::Debug) -> SinkError {
    SinkError::Device {
        device: device.display().to_string(),
        problem: format!("{problem:?}"),
    }
}

fn gpio_err(chip: &std::path::Path, line: u32, problem: impl std::fmt::Display) -> SinkError {
    SinkError::Gpio {
        device: format!("{} line {line}", chip.display()),
        problem: problem.to_string(),
    }
}

fn output_line(
    chip: &mut Chip,
    path: &std::path::Path,
    line: u32,
    initial: u8,
) -> Result<LineHandle, SinkError> {
    chip.get_line(line)
        .and_then(|l| l.request(LineRequestFlags::OUTPUT, initial, CONSUMER))
        .map_err(|e| gpio_err(path, line, e))
}

/// Opens the display `config` describes (any hardware kind).
pub fn open(config: &DisplayConfig) -> Result<Box<dyn Sink>, SinkError> {
    match config.kind {
        DisplayKind::St7789 => open_panel(ST7789, config),
        DisplayKind::Ili9341 => open_panel(ILI9341Rgb565, config),
        DisplayKind::Ssd1306 => Ok(Box::new(OledSink::open(config)?)),
        DisplayKind::Framebuffer => open_framebuffer(config),
        DisplayKind::None | DisplayKind::Png => config.open(),
    }
}

type Spi = SpiInterface<'static, SpidevDevice, CdevPin>;

/// An SPI panel driven by `mipidsi`.
pub struct PanelSink<M: Model<ColorFormat = Rgb565>, RST: OutputPin> {
    display: Display<Spi, M, RST>,
    layout: Layout,
    device: String,
    /// Kept so the backlight stays requested (and lit) while the sink lives.
    _backlight: Option<LineHandle>,
}

/// Opens an ST7789/ILI9341-class panel on spidev with DC (and optional reset
/// and backlight) lines from one GPIO chip.
pub fn open_panel<M>(model: M, config: &DisplayConfig) -> Result<Box<dyn Sink>, SinkError>
where
    M: Model<ColorFormat = Rgb565> + 'static,
{
    let mut spi = SpidevDevice::open(&config.spi).map_err(|e| dev_err(&config.spi, e))?;
    let options = SpidevOptions::new()
        .bits_per_word(8)
        .max_speed_hz(config.spi_hz)
        .mode(SpiModeFlags::SPI_MODE_0)
        .build();
    spi.0
        .configure(&options)
        .map_err(|e| dev_err(&config.spi, e))?;
    let chip_path = &config.gpiochip;
    let mut chip = Chip::new(chip_path).map_err(|e| gpio_err(chip_path, config.dc, e))?;
    let pin = |h: LineHandle, line: u32| CdevPin::new(h).map_err(|e| gpio_err(chip_path, line, e));
    let dc = pin(output_line(&mut chip, chip_path, config.dc, 0)?, config.dc)?;
    let backlight = config
        .backlight
        .map(|l| output_line(&mut chip, chip_path, l, 1))
        .transpose()?;
    // The interface borrows its buffer for the display's lifetime; one 4 KiB
    // allocation per opened panel is leaked on purpose.
    let buffer: &'static mut [u8] = Box::leak(vec![0u8; SPI_CHUNK].into_boxed_slice());
    let di = SpiInterface::new(spi, dc, buffer);
    let order = if config.bgr {
        ColorOrder::Bgr
    } else {
        ColorOrder::Rgb
    };
    let invert = if config.invert_colors {
        ColorInversion::Inverted
    } else {
        ColorInversion::Normal
    };
    let builder = Builder::new(model, di)
        .display_size(config.width, config.height)
        .display_offset(config.offset_x, config.offset_y)
        .invert_colors(invert)
        .color_order(order);
    let device = config.spi.display().to_string();
    Ok(match config.reset {
        Some(line) => {
            let rst = pin(output_line(&mut chip, chip_path, line, 1)?, line)?;
            Box::new(PanelSink {
                display: builder
                    .reset_pin(rst)
                    .init(&mut Delay)
                    .map_err(|e| dev_err(&config.spi, e))?,
                layout: config.layout,
                device,
                _backlight: backlight,
            })
        }
        // No reset line wired: mipidsi sends a software reset instead.
        None => Box::new(PanelSink {
            display: builder
                .init(&mut Delay)
                .map_err(|e| dev_err(&config.spi, e))?,
            layout: config.layout,
            device,
            _backlight: backlight,
        }),
    })
}

impl<M: Model<ColorFormat = Rgb565>, RST: OutputPin> Sink for PanelSink<M, RST> {
    fn show(&mut self, screen: &Screen) -> Result<(), SinkError> {
        render(screen, self.layout)
            .blit(&mut self.display)
            .map_err(|e| SinkError::Device {
                device: self.device.clone(),
                problem: format!("{e:?}"),
            })
    }
}

/// A 128×64 SSD1306 on I2C.
pub struct OledSink {
    display:
        Ssd1306<I2CInterface<I2cdev>, DisplaySize128x64, BufferedGraphicsMode<DisplaySize128x64>>,
    device: String,
}

impl OledSink {
    pub fn open(config: &DisplayConfig) -> Result<Self, SinkError> {
        let i2c = I2cdev::new(&config.i2c).map_err(|e| dev_err(&config.i2c, e))?;
        let di = I2CDisplayInterface::new_custom_address(i2c, config.i2c_address);
        let mut display = Ssd1306::new(di, DisplaySize128x64, DisplayRotation::Rotate0)
            .into_buffered_graphics_mode();
        display.init().map_err(|e| dev_err(&config.i2c, e))?;
        Ok(OledSink {
            display,
            device: config.i2c.display().to_string(),
        })
    }
}

impl Sink for OledSink {
    fn show(&mut self, screen: &Screen) -> Result<(), SinkError> {
        let device = std::path::Path::new(&self.device);
        render_mono(screen)
            .blit(&mut self.display)
            .map_err(|e| dev_err(device, e))?;
        self.display.flush().map_err(|e| dev_err(device, e))
    }
}

/// The mapped `/dev/fb*` as a byte buffer.
pub struct FbDevice(pub framebuffer::Framebuffer);

impl AsMut<[u8]> for FbDevice {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0.frame[..]
    }
}

fn open_framebuffer(config: &DisplayConfig) -> Result<Box<dyn Sink>, SinkError> {
    let path = config.path.clone().unwrap_or_else(|| "/dev/fb0".into());
    let fb = framebuffer::Framebuffer::new(&path).map_err(|e| SinkError::Framebuffer {
        device: path.display().to_string(),
        problem: e.details,
    })?;
    let v = &fb.var_screen_info;
    let format = FbFormat::from_layout(v.bits_per_pixel, v.red.offset).ok_or_else(|| {
        SinkError::Framebuffer {
            device: path.display().to_string(),
            problem: format!(
                "unsupported pixel layout: {} bpp, red at bit {}",
                v.bits_per_pixel, v.red.offset
            ),
        }
    })?;
    Ok(Box::new(FramebufferSink {
        width: v.xres,
        height: v.yres,
        stride: fb.fix_screen_info.line_length as usize,
        format,
        layout: config.layout,
        device: path.display().to_string(),
        buffer: FbDevice(fb),
    }))
}

/// Push buttons to ground, polled (a press is a falling level held for one poll).
pub struct Buttons {
    lines: Vec<(Button, LineHandle, bool)>,
    debounce: Duration,
    last: Instant,
}

impl Buttons {
    /// Requests the configured lines as inputs; `None` when no button is configured.
    pub fn open(config: &ButtonsConfig) -> Result<Option<Self>, SinkError> {
        let wanted = [
            (Button::NextPage, config.next_page),
            (Button::PreviousPage, config.previous_page),
        ];
        if wanted.iter().all(|(_, l)| l.is_none()) {
            return Ok(None);
        }
        let path = config
            .gpiochip
            .clone()
            .unwrap_or_else(|| "/dev/gpiochip0".into());
        let mut chip = Chip::new(&path).map_err(|e| gpio_err(&path, 0, e))?;
        let mut lines = Vec::new();
        for (button, line) in wanted {
            if let Some(n) = line {
                let handle = chip
                    .get_line(n)
                    .and_then(|l| l.request(LineRequestFlags::INPUT, 0, CONSUMER))
                    .map_err(|e| gpio_err(&path, n, e))?;
                lines.push((button, handle, false));
            }
        }
        Ok(Some(Buttons {
            lines,
            debounce: Duration::from_millis(150),
            last: Instant::now(),
        }))
    }

    /// The button newly pressed since the last poll, if any.
    pub fn poll(&mut self) -> Option<Button> {
        let mut pressed = None;
        for (button, handle, was_down) in &mut self.lines {
            let down = handle.get_value().map(|v| v == 0).unwrap_or(false);
            if down && !*was_down && self.last.elapsed() >= self.debounce && pressed.is_none() {
                pressed = Some(*button);
            }
            *was_down = down;
        }
        if pressed.is_some() {
            self.last = Instant::now();
        }
        pressed
    }
}

impl ButtonSource for Buttons {
    fn poll(&mut self) -> Option<Button> {
        Buttons::poll(self)
    }
}
