//! PNG and JPEG (8 and 16 bit) with the `image` crate. The header is read first
//! and its dimensions checked, and the decoder also runs under `image::Limits`,
//! so a file claiming 60000×60000 pixels never gets a buffer.

use std::io::Cursor;

use image::{ColorType, ImageError, ImageFormat, ImageReader, Limits};

use super::error::{InputError, Refusal};
use super::validate::{is_colourful, ValidateOptions};
use crate::preprocess::Gray16;

/// The raster format of `bytes`, from its magic number.
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else {
        None
    }
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        _ => "image",
    }
}

/// Decode a PNG or JPEG into 16-bit grey (8-bit samples scaled by 257).
pub fn decode(
    bytes: &[u8],
    format: ImageFormat,
    input: &str,
    opts: &ValidateOptions,
) -> Result<Gray16, InputError> {
    let name = format_name(format);
    let corrupt = |e: ImageError| InputError::Corrupt {
        input: input.to_string(),
        format: name,
        reason: e.to_string(),
    };
    let (w, h) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(corrupt)?;
    opts.check_dimensions(input, w as u64, h as u64)?;
    // The JPEG decoder pads a truncated scan with grey instead of failing, so a
    // missing End Of Image marker is the only sign of a cut-off file.
    if format == ImageFormat::Jpeg && !has_jpeg_eoi(bytes) {
        return Err(InputError::Corrupt {
            input: input.to_string(),
            format: name,
            reason: "truncated: no End Of Image marker".into(),
        });
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(opts.max_side);
    limits.max_image_height = Some(opts.max_side);
    // Room for the decoded image at up to 4 channels × 16 bits, plus the grey copy.
    limits.max_alloc = Some(opts.max_pixels.saturating_mul(10));
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        ImageError::Limits(_) => InputError::TooLarge {
            input: input.to_string(),
            width: w as u64,
            height: h as u64,
            max_side: opts.max_side,
            max_pixels: opts.max_pixels,
        },
        e => corrupt(e),
    })?;
    match img.color() {
        ColorType::L8 | ColorType::L16 | ColorType::La8 | ColorType::La16 => {}
        other => {
            if is_colourful(&img.to_rgb8(), 8) {
                opts.refuse(
                    input,
                    Refusal::NotGreyscale(format!("{name} with colour content ({other:?})")),
                )?;
            }
        }
    }
    let grey = img.to_luma16();
    opts.check_min_size(input, grey.width(), grey.height())?;
    Ok(grey)
}

/// A JPEG ends with FF D9, possibly followed by a little padding.
fn has_jpeg_eoi(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}
