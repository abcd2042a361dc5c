//! An in-memory draw target: the PNG sink renders into it, the SPI panel sink
//! renders into it first and sends the frame in one burst, and the tests compare it.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use embedded_graphics::pixelcolor::{BinaryColor, Rgb888};
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;

use super::ScreenError;

/// Row-major pixels of one colour type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canvas<C> {
    width: u32,
    height: u32,
    pixels: Vec<C>,
}

impl<C: PixelColor> Canvas<C> {
    /// A canvas filled with `background`.
    pub fn new(width: u32, height: u32, background: C) -> Self {
        Canvas {
            width,
            height,
            pixels: vec![background; (width * height) as usize],
        }
    }

    /// Row-major pixels.
    pub fn pixels(&self) -> &[C] {
        &self.pixels
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Pixel at `(x, y)`, `None` outside.
    pub fn get(&self, x: u32, y: u32) -> Option<C> {
        (x < self.width && y < self.height).then(|| self.pixels[(y * self.width + x) as usize])
    }

    /// Sends the whole canvas to `target` as one contiguous area: on an SPI
    /// panel that is a single address window and one pixel stream.
    pub fn blit<D: DrawTarget<Color = C>>(&self, target: &mut D) -> Result<(), D::Error> {
        let area = Rectangle::new(Point::zero(), Size::new(self.width, self.height));
        target.fill_contiguous(&area, self.pixels.iter().copied())
    }
}

impl<C: PixelColor + Into<Rgb888>> Canvas<C> {
    /// The canvas as an 8-bit RGB image.
    pub fn to_rgb_image(&self) -> image::RgbImage {
        image::RgbImage::from_fn(self.width, self.height, |x, y| {
            let c: Rgb888 = self.pixels[(y * self.width + x) as usize].into();
            image::Rgb([c.r(), c.g(), c.b()])
        })
    }

    /// Write the canvas as a PNG at `path`, replacing it in one rename: a
    /// viewer reading the screen while it is redrawn, or after the unit was
    /// stopped in the middle of a redraw, sees the old screen or the new one,
    /// never a truncated file. (No fsync: the screen is not kept.)
    pub fn save_png(&self, path: &Path) -> Result<(), ScreenError> {
        let err = |source| ScreenError::WritePng {
            path: path.to_path_buf(),
            source,
        };
        let mut png = Vec::new();
        self.to_rgb_image()
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(err)?;
        let io = |e: std::io::Error| err(image::ImageError::IoError(e));
        let mut tmp = tempfile::Builder::new()
            .prefix(".screen-")
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(crate::store::fsutil::parent_of(path))
            .map_err(io)?;
        tmp.write_all(&png).map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

/// Mono screens as RGB: lit pixels in the OLED's usual white-blue.
impl From<MonoPixel> for Rgb888 {
    fn from(p: MonoPixel) -> Self {
        if p.0 == BinaryColor::On {
            Rgb888::new(0xd8, 0xf0, 0xff)
        } else {
            Rgb888::BLACK
        }
    }
}

/// Wrapper that lets a `Canvas<BinaryColor>` be saved as PNG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonoPixel(pub BinaryColor);

impl Canvas<BinaryColor> {
    /// Writes a mono canvas as PNG (lit pixels light, the rest black).
    pub fn save_mono_png(&self, path: &Path) -> Result<(), ScreenError> {
        let mapped = Canvas {
            width: self.width,
            height: self.height,
            pixels: self.pixels.iter().map(|&c| MonoPixel(c)).collect(),
        };
        mapped.save_png(path)
    }
}

impl PixelColor for MonoPixel {
    type Raw = ();
}

impl<C: PixelColor> OriginDimensions for Canvas<C> {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl<C: PixelColor> DrawTarget for Canvas<C> {
    type Color = C;
    type Error = core::convert::Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<C>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Self::Error> {
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < self.width && (p.y as u32) < self.height {
                self.pixels[(p.y as u32 * self.width + p.x as u32) as usize] = c;
            }
        }
        Ok(())
    }
}
