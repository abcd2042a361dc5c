//! Is this a frontal chest radiograph the model can read, and is it small enough
//! to decode safely? The header checks run before any pixel is decoded, so a hostile
//! or mistaken input costs a few hundred bytes of parsing, not gigabytes.

use super::error::{InputError, Refusal};
use crate::preprocess::Gray16;

/// Options for decoding and validating one input. Checks apply in this order:
/// 1. size limits, never overridden: the input's size (`max_input_bytes`, before
///    it is read or parsed), then the header's dimensions (`max_side`, `max_pixels`);
/// 2. DICOM header: modality, body part, view position (refusals);
/// 3. after decoding: greyscale, `min_side` and contrast (refusals).
///
/// Refusals (steps 2–3) are skipped when `force` is set; errors are not.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidateOptions {
    /// Largest accepted width or height.
    pub max_side: u32,
    /// Largest accepted width × height (bounds the decode buffer).
    pub max_pixels: u64,
    /// Largest accepted input in bytes: a file, a C-STORE, or a deflated DICOM
    /// data set once inflated. Bounds what parsing can allocate, with every
    /// declared DICOM length checked against the bytes present.
    pub max_input_bytes: u64,
    /// Smallest accepted width or height.
    pub min_side: u32,
    /// Read the film even if it does not look like a frontal chest radiograph.
    pub force: bool,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            // A 43 cm detector at 0.1 mm is 4300 pixels; leave room for 0.05 mm.
            max_side: 10_000,
            // 64 Mpx × 2 bytes = 128 MiB for the 16-bit buffer.
            max_pixels: 64 * 1024 * 1024,
            // The largest film `max_pixels` admits, 64 Mpx at 2 bytes (128 MiB),
            // plus 16 MiB of header, overlays and private data. A portable DX
            // unit's 43×43 cm detector at 0.1–0.14 mm sends at most 4300² pixels,
            // 37 MB uncompressed, so this is 4× the largest real film.
            max_input_bytes: 144 * 1024 * 1024,
            min_side: 256,
            force: false,
        }
    }
}

impl ValidateOptions {
    /// Refuse a header's claimed dimensions before any allocation.
    pub fn check_dimensions(&self, input: &str, width: u64, height: u64) -> Result<(), InputError> {
        if width > self.max_side as u64
            || height > self.max_side as u64
            || width.saturating_mul(height) > self.max_pixels
        {
            return Err(InputError::TooLarge {
                input: input.to_string(),
                width,
                height,
                max_side: self.max_side,
                max_pixels: self.max_pixels,
            });
        }
        Ok(())
    }

    /// Refuse an input over `max_input_bytes` (`what`: `file` or `input`).
    pub fn check_input_size(
        &self,
        input: &str,
        what: &'static str,
        size: u64,
    ) -> Result<(), InputError> {
        if size > self.max_input_bytes {
            return Err(InputError::InputTooLarge {
                input: input.to_string(),
                what,
                size,
                max_bytes: self.max_input_bytes,
            });
        }
        Ok(())
    }

    /// Refuse a film whose decoded size is too small to read.
    pub fn check_min_size(&self, input: &str, width: u32, height: u32) -> Result<(), InputError> {
        if width.min(height) < self.min_side {
            return self.refuse(
                input,
                Refusal::TooSmall {
                    width,
                    height,
                    min_side: self.min_side,
                },
            );
        }
        Ok(())
    }

    /// Check the DICOM identity attributes (any of them may be absent: absent passes).
    pub fn check_header(
        &self,
        input: &str,
        modality: Option<&str>,
        body_part: Option<&str>,
        view_position: Option<&str>,
    ) -> Result<(), InputError> {
        if let Some(m) = modality.map(str::trim).filter(|m| !m.is_empty()) {
            if !matches!(m.to_ascii_uppercase().as_str(), "CR" | "DX") {
                return self.refuse(input, Refusal::WrongModality(m.to_string()));
            }
        }
        if let Some(b) = body_part.map(str::trim).filter(|b| !b.is_empty()) {
            // Real headers say CHEST, NON GRID CHEST, PORTABLE CHEST, THORAX.
            let up = b.to_ascii_uppercase();
            if !(up.contains("CHEST") || up.contains("THORAX") || up.contains("LUNG")) {
                return self.refuse(input, Refusal::WrongBodyPart(b.to_string()));
            }
        }
        if let Some(v) = view_position.map(str::trim).filter(|v| !v.is_empty()) {
            if is_lateral(v) {
                return self.refuse(input, Refusal::LateralView(v.to_string()));
            }
        }
        Ok(())
    }

    /// Refuse an image without contrast: its 0.5 and 99.5 percentile grey
    /// levels less than one 8-bit step (257 of 65535) apart. Every real
    /// radiograph spans far more; a blank, all-black or all-white export does not.
    pub fn check_contrast(&self, input: &str, image: &Gray16) -> Result<(), InputError> {
        let (lo, hi) = crate::preprocess::percentiles(image, 0.5, 99.5);
        let span = hi - lo;
        if span < 257 {
            return self.refuse(input, Refusal::Uniform { span });
        }
        Ok(())
    }

    /// Return the refusal as an error unless forced.
    pub fn refuse(&self, input: &str, refusal: Refusal) -> Result<(), InputError> {
        if self.force {
            tracing::warn!(input, reason = %refusal, "forced past a chest-film refusal");
            return Ok(());
        }
        Err(InputError::NotChestFilm {
            input: input.to_string(),
            refusal,
        })
    }
}

/// Lateral view codes seen in real CR/DX headers (DICOM CID 4010 and vendor text).
fn is_lateral(view: &str) -> bool {
    let v = view.to_ascii_uppercase();
    matches!(v.as_str(), "LL" | "RL" | "LAT" | "LATERAL" | "LLD" | "RLD") || v.contains("LATERAL")
}

/// Whether an RGB(A) image is really colour: more than 1 % of pixels whose
/// channels differ by more than `tolerance` (exports of grey films as RGB pass).
pub fn is_colourful(rgb: &image::RgbImage, tolerance: u8) -> bool {
    let coloured = rgb
        .pixels()
        .filter(|p| {
            let [r, g, b] = p.0;
            r.abs_diff(g) > tolerance || g.abs_diff(b) > tolerance || r.abs_diff(b) > tolerance
        })
        .count();
    coloured * 100 > rgb.pixels().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks() {
        let o = ValidateOptions::default();
        assert!(o
            .check_header("x", Some("CR"), Some("CHEST"), Some("PA"))
            .is_ok());
        assert!(o
            .check_header("x", Some("DX"), Some("PORTABLE CHEST"), Some("AP"))
            .is_ok());
        assert!(o.check_header("x", None, None, None).is_ok());
        let e = o.check_header("x", Some("CT"), None, None).unwrap_err();
        assert_eq!(e.code(), "wrong-modality");
        let e = o
            .check_header("x", Some("CR"), Some("EXTREMETY"), None)
            .unwrap_err();
        assert_eq!(e.code(), "wrong-body-part");
        let e = o
            .check_header("x", Some("CR"), Some("CHEST"), Some("LL"))
            .unwrap_err();
        assert_eq!(e.code(), "lateral-view");
        let forced = ValidateOptions {
            force: true,
            ..Default::default()
        };
        assert!(forced
            .check_header("x", Some("CT"), Some("HAND"), Some("LL"))
            .is_ok());
    }

    #[test]
    fn dimension_limits_are_not_forceable() {
        let o = ValidateOptions {
            force: true,
            ..Default::default()
        };
        let e = o.check_dimensions("big.png", 60_000, 60_000).unwrap_err();
        assert!(e.to_string().contains("big.png"), "{e}");
        assert!(e.to_string().contains("60000×60000"), "{e}");
        assert!(o.check_dimensions("ok.png", 3000, 3000).is_ok());
    }
}
