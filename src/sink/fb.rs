//! The Linux framebuffer as a draw target over plain bytes.
//!
//! `/dev/fb*` is a memory mapping of `height` lines of `stride` bytes with 16
//! or 32 bits a pixel. Drawing into a byte slice with that geometry (instead of
//! through the `framebuffer` crate, which cannot open a regular file) lets tests
//! run the same code over a `Vec` or a mapped file; on the device the slice is
//! the crate's mapping (see `sink::hardware`).

use embedded_graphics::pixelcolor::{Rgb565, Rgb888};
use embedded_graphics::prelude::*;

use super::{render, Layout, Sink, SinkError};
use crate::screen::{Canvas, Screen};

/// Pixel layouts the Linux framebuffer drivers on the supported boards use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FbFormat {
    /// 16 bpp, little-endian RGB565 (fbtft SPI panels).
    Rgb565,
    /// 32 bpp, little-endian XRGB8888, i.e. bytes B, G, R, X (vc4/HDMI).
    Xrgb8888,
    /// 32 bpp, little-endian XBGR8888, i.e. bytes R, G, B, X.
    Xbgr8888,
}

impl FbFormat {
    /// The format for a depth and the bit offset of red, as `FBIOGET_VSCREENINFO` reports them.
    pub fn from_layout(bits_per_pixel: u32, red_offset: u32) -> Option<Self> {
        match (bits_per_pixel, red_offset) {
            (16, 11) => Some(FbFormat::Rgb565),
            (32, 16) => Some(FbFormat::Xrgb8888),
            (32, 0) => Some(FbFormat::Xbgr8888),
            _ => None,
        }
    }

    pub fn bytes_per_pixel(self) -> usize {
        match self {
            FbFormat::Rgb565 => 2,
            FbFormat::Xrgb8888 | FbFormat::Xbgr8888 => 4,
        }
    }
}

/// A `DrawTarget` over `height` lines of `stride` bytes.
pub struct FbTarget<'a> {
    buf: &'a mut [u8],
    width: u32,
    height: u32,
    stride: usize,
    format: FbFormat,
}

impl<'a> FbTarget<'a> {
    /// Checks that `buf` holds `height` lines of `stride` bytes and that a line
    /// holds `width` pixels; `device` names the buffer in the error.
    pub fn new(
        buf: &'a mut [u8],
        width: u32,
        height: u32,
        stride: usize,
        format: FbFormat,
        device: &str,
    ) -> Result<Self, SinkError> {
        let need_line = width as usize * format.bytes_per_pixel();
        let need = stride.checked_mul(height as usize);
        let problem = if stride < need_line {
            Some(format!(
                "line of {stride} bytes cannot hold {width} pixels of {format:?}"
            ))
        } else if need.is_none_or(|n| n > buf.len()) {
            Some(format!(
                "{} bytes cannot hold {height} lines of {stride} bytes",
                buf.len()
            ))
        } else {
            None
        };
        match problem {
            Some(problem) => Err(SinkError::Framebuffer {
                device: device.to_string(),
                problem,
            }),
            None => Ok(FbTarget {
                buf,
                width,
                height,
                stride,
                format,
            }),
        }
    }

    fn put(&mut self, x: u32, y: u32, c: Rgb565) {
        let at = y as usize * self.stride + x as usize * self.format.bytes_per_pixel();
        match self.format {
            FbFormat::Rgb565 => {
                self.buf[at..at + 2].copy_from_slice(&c.into_storage().to_le_bytes());
            }
            FbFormat::Xrgb8888 | FbFormat::Xbgr8888 => {
                let c: Rgb888 = c.into();
                let px = if self.format == FbFormat::Xrgb8888 {
                    [c.b(), c.g(), c.r(), 0xff]
                } else {
                    [c.r(), c.g(), c.b(), 0xff]
                };
                self.buf[at..at + 4].copy_from_slice(&px);
            }
        }
    }

    /// Reads a pixel back (tests, screenshots of a running unit).
    pub fn get(&self, x: u32, y: u32) -> Option<Rgb565> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let at = y as usize * self.stride + x as usize * self.format.bytes_per_pixel();
        Some(match self.format {
            FbFormat::Rgb565 => Rgb565::from(embedded_graphics::pixelcolor::raw::RawU16::new(
                u16::from_le_bytes([self.buf[at], self.buf[at + 1]]),
            )),
            FbFormat::Xrgb8888 => {
                Rgb888::new(self.buf[at + 2], self.buf[at + 1], self.buf[at]).into()
            }
            FbFormat::Xbgr8888 => {
                Rgb888::new(self.buf[at], self.buf[at + 1], self.buf[at + 2]).into()
            }
        })
    }
}

impl OriginDimensions for FbTarget<'_> {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for FbTarget<'_> {
    type Color = Rgb565;
    type Error = core::convert::Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb565>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Self::Error> {
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < self.width && (p.y as u32) < self.height {
                self.put(p.x as u32, p.y as u32, c);
            }
        }
        Ok(())
    }
}

/// Draws `canvas` centred on `target`, scaled by the largest whole factor that
/// fits (a 240×320 screen on a 1920×1080 HDMI framebuffer is drawn 3×), with
/// the rest of the target cleared to black.
pub fn present(canvas: &Canvas<Rgb565>, target: &mut FbTarget<'_>) {
    let (tw, th) = (target.width, target.height);
    let (cw, ch) = (canvas.width().max(1), canvas.height().max(1));
    let scale = (tw / cw).min(th / ch).max(1);
    let (ox, oy) = (
        tw.saturating_sub(cw * scale) / 2,
        th.saturating_sub(ch * scale) / 2,
    );
    for y in 0..th {
        for x in 0..tw {
            let src = if x >= ox && y >= oy {
                canvas.get((x - ox) / scale, (y - oy) / scale)
            } else {
                None
            };
            target.put(x, y, src.unwrap_or(Rgb565::BLACK));
        }
    }
}

/// Shows screens on a framebuffer held in any byte buffer `B`: a `Vec` or a
/// mapped file in tests, the mapped `/dev/fb*` on the device.
pub struct FramebufferSink<B> {
    pub buffer: B,
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    pub format: FbFormat,
    pub layout: Layout,
    /// Names the buffer in errors (`/dev/fb1`, a file path).
    pub device: String,
}

impl<B: AsMut<[u8]>> Sink for FramebufferSink<B> {
    fn show(&mut self, screen: &Screen) -> Result<(), SinkError> {
        let canvas = render(screen, self.layout);
        let mut target = FbTarget::new(
            self.buffer.as_mut(),
            self.width,
            self.height,
            self.stride,
            self.format,
            &self.device,
        )?;
        present(&canvas, &mut target);
        Ok(())
    }
}
