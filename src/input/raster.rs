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
    if format == ImageFormat::Jpeg {
        check_jpeg_colour_space(bytes).map_err(|reason| InputError::Corrupt {
            input: input.to_string(),
            format: name,
            reason,
        })?;
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

/// zune-jpeg 0.5, the `image` crate's JPEG decoder, takes the colour space from
/// the frame header and from any Adobe APP14 segment, in file order and also
/// between progressive scans, and then indexes the frame's components by that
/// colour space's channel count: a grey frame followed by an Adobe segment
/// saying YCbCr panics it (the fuzz suite, `tests/fuzz`, found it). Follow the
/// markers as it does and refuse a JPEG whose colour space, at a scan or at the
/// end, has another channel count than the frame has components.
fn check_jpeg_colour_space(bytes: &[u8]) -> Result<(), String> {
    // Its default colour space is YCbCr: 3 channels.
    let (mut channels, mut components) = (3u8, None::<u8>);
    let check = |channels: u8, components: Option<u8>| match components {
        Some(c) if c != channels => Err(format!(
            "the frame has {c} component(s), its colour space (Adobe segment) {channels}"
        )),
        _ => Ok(()),
    };
    let mut at = 2;
    while at + 4 <= bytes.len() {
        let marker = bytes[at + 1];
        // Entropy-coded data, stuffed or fill bytes, restart markers: no segment.
        if bytes[at] != 0xff || matches!(marker, 0x00 | 0x01 | 0xd0..=0xd8 | 0xff) {
            at += 1;
            continue;
        }
        if marker == 0xd9 {
            break;
        }
        let len = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
        let segment = &bytes[at + 4..(at + 2 + len).clamp(at + 4, bytes.len())];
        let sof = (0xc0..=0xcf).contains(&marker) && ![0xc4, 0xc8, 0xcc].contains(&marker);
        match marker {
            _ if sof => {
                if let Some(&n) = segment.get(5) {
                    components = Some(n);
                    if n == 1 {
                        channels = 1;
                    } else if n == 4 && channels == 3 {
                        channels = 4;
                    }
                }
            }
            0xee if segment.starts_with(b"Adobe") && len >= 14 => {
                channels = match segment.get(11) {
                    Some(1) => 3,
                    Some(0 | 2) => 4,
                    _ => channels, // the decoder refuses other transforms itself
                };
            }
            0xda => check(channels, components)?,
            _ => {}
        }
        at += 2 + len;
    }
    check(channels, components)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, then the given segments (marker, payload), then SOS and EOI.
    fn jpeg(segments: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut v = vec![0xff, 0xd8];
        for (marker, payload) in segments {
            v.extend_from_slice(&[0xff, *marker]);
            v.extend_from_slice(&(payload.len() as u16 + 2).to_be_bytes());
            v.extend_from_slice(payload);
        }
        v.extend_from_slice(&[
            0xff, 0xda, 0x00, 0x08, 1, 1, 0, 0, 0x3f, 0, 0x12, 0xff, 0xd9,
        ]);
        v
    }

    fn sof(components: u8) -> (u8, Vec<u8>) {
        (0xc2, vec![8, 0, 64, 0, 64, components, 1, 0x11, 0])
    }

    fn adobe(transform: u8) -> (u8, Vec<u8>) {
        let mut p = b"Adobe".to_vec();
        p.extend_from_slice(&[0, 100, 0, 0, 0, 0, transform]);
        (0xee, p)
    }

    #[test]
    fn colour_space_follows_the_markers_in_order() {
        assert_eq!(check_jpeg_colour_space(&jpeg(&[sof(1)])), Ok(()));
        assert_eq!(check_jpeg_colour_space(&jpeg(&[sof(3)])), Ok(()));
        // Photoshop's grey JPEGs: an Adobe segment, then a one-component frame.
        assert_eq!(check_jpeg_colour_space(&jpeg(&[adobe(0), sof(1)])), Ok(()));
        assert_eq!(check_jpeg_colour_space(&jpeg(&[adobe(2), sof(4)])), Ok(()));
    }

    /// What the fuzz suite found: a grey frame, then an Adobe segment saying
    /// YCbCr, made zune-jpeg index a second component.
    #[test]
    fn an_adobe_colour_space_the_frame_lacks_is_refused() {
        let e = check_jpeg_colour_space(&jpeg(&[sof(1), adobe(1)])).unwrap_err();
        assert!(e.contains("1 component(s)"), "{e}");
        assert!(check_jpeg_colour_space(&jpeg(&[sof(3), adobe(0)])).is_err());
    }
}
