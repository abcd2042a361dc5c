//! A compressed frame's own header (JPEG SOF, JPEG 2000 SIZ) checked against the
//! DICOM header before dicom-rs decodes it. Its JPEG and JPEG 2000 adapters
//! (dicom-transfer-syntax-registry 0.10) size the frame from the DICOM header
//! (Rows × Columns × Samples per Pixel × bytes per sample) and then copy
//! whatever the codestream decodes to into it unchecked, so a codestream larger
//! than the header says, with more components or deeper samples, panics them
//! (the fuzz suite, `tests/fuzz`, found both); and the decoders allocate what
//! the codestream claims, which no DICOM header check bounds. [`check`] reads
//! the codestream's size and requires it to be the image the header describes.

use thiserror::Error;

/// Transfer syntaxes whose frames are JPEG (ISO 10918) streams (PS3.6 Table A-1).
pub const JPEG: &[&str] = &[
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
];

/// Transfer syntaxes whose frames are JPEG 2000 codestreams.
pub const JPEG_2000: &[&str] = &[
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
];

/// Start of codestream then the SIZ marker: how every JPEG 2000 codestream
/// begins (also inside a JP2 file's `jp2c` box).
const SOC_SIZ: [u8; 4] = [0xff, 0x4f, 0xff, 0x51];

/// The image a DICOM header describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub rows: u64,
    pub cols: u64,
    pub samples: u64,
    pub bits_allocated: u64,
}

/// What a codestream's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    width: u64,
    height: u64,
    components: u64,
    precision: u64,
}

/// Why a compressed frame cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("{0} frame has no image size header")]
    NoSize(&'static str),
    #[error(
        "{codec} frame is {width}×{height}, {components} component(s) of {precision} bits; \
         the header says {cols}×{rows}, {samples} sample(s) per pixel in {bits_allocated} bits"
    )]
    Mismatch {
        codec: &'static str,
        width: u64,
        height: u64,
        components: u64,
        precision: u64,
        cols: u64,
        rows: u64,
        samples: u64,
        bits_allocated: u64,
    },
}

/// Check the first fragment of frame 0 of transfer syntax `ts` against the
/// header; transfer syntaxes other than JPEG and JPEG 2000 pass.
pub fn check(ts: &str, fragment: &[u8], expected: Expected) -> Result<(), FrameError> {
    let (codec, found) = if JPEG.contains(&ts) {
        (
            "JPEG",
            jpeg_sof(fragment).ok_or(FrameError::NoSize("JPEG"))?,
        )
    } else if JPEG_2000.contains(&ts) {
        let found = j2k_siz(fragment).ok_or(FrameError::NoSize("JPEG 2000"))?;
        ("JPEG 2000", found)
    } else {
        return Ok(());
    };
    let e = expected;
    let sample_bytes = if found.precision > 8 { 16 } else { 8 };
    if found.width != e.cols
        || found.height != e.rows
        || found.components == 0
        || found.components > e.samples
        || sample_bytes > e.bits_allocated
    {
        return Err(FrameError::Mismatch {
            codec,
            width: found.width,
            height: found.height,
            components: found.components,
            precision: found.precision,
            cols: e.cols,
            rows: e.rows,
            samples: e.samples,
            bits_allocated: e.bits_allocated,
        });
    }
    Ok(())
}

/// The first frame header (SOF0–SOF15) of a JPEG stream, walking its markers.
fn jpeg_sof(data: &[u8]) -> Option<Found> {
    if !data.starts_with(&[0xff, 0xd8]) {
        return None;
    }
    let mut at = 2;
    loop {
        while data.get(at + 1) == Some(&0xff) {
            at += 1; // fill bytes
        }
        if *data.get(at)? != 0xff {
            return None;
        }
        let marker = *data.get(at + 1)?;
        let standalone = marker == 0x01 || (0xd0..=0xd8).contains(&marker);
        if standalone {
            at += 2;
            continue;
        }
        let sof = (0xc0..=0xcf).contains(&marker) && ![0xc4, 0xc8, 0xcc].contains(&marker);
        if sof {
            let h = data.get(at + 4..at + 10)?;
            return Some(Found {
                precision: h[0] as u64,
                height: u16::from_be_bytes([h[1], h[2]]) as u64,
                width: u16::from_be_bytes([h[3], h[4]]) as u64,
                components: h[5] as u64,
            });
        }
        let len = u16::from_be_bytes([*data.get(at + 2)?, *data.get(at + 3)?]) as usize;
        at += 2 + len;
    }
}

/// The image and tile size marker (SIZ) of a JPEG 2000 codestream.
fn j2k_siz(fragment: &[u8]) -> Option<Found> {
    let at = fragment.windows(SOC_SIZ.len()).position(|w| w == SOC_SIZ)?;
    // After the markers: Lsiz, Rsiz (2 bytes each), then Xsiz, Ysiz, XOsiz,
    // YOsiz and four tile fields (4 each), Csiz (2), then per component Ssiz
    // (bit depth − 1, high bit for signed), XRsiz, YRsiz.
    let siz = fragment.get(at + SOC_SIZ.len()..at + SOC_SIZ.len() + 41)?;
    let u32_at = |i: usize| u32::from_be_bytes(siz[i..i + 4].try_into().unwrap()) as u64;
    let (xsiz, ysiz, x0, y0) = (u32_at(4), u32_at(8), u32_at(12), u32_at(16));
    Some(Found {
        width: xsiz.saturating_sub(x0),
        height: ysiz.saturating_sub(y0),
        components: u16::from_be_bytes([siz[36], siz[37]]) as u64,
        precision: (siz[38] & 0x7f) as u64 + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const J2K: &str = "1.2.840.10008.1.2.4.90";
    const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";

    fn grey(rows: u64, cols: u64, bits_allocated: u64) -> Expected {
        Expected {
            rows,
            cols,
            samples: 1,
            bits_allocated,
        }
    }

    /// A codestream start: SOC, SIZ for `w`×`h` with `c` 16-bit components.
    fn codestream(w: u32, h: u32, c: u16) -> Vec<u8> {
        let mut v = SOC_SIZ.to_vec();
        v.extend_from_slice(&(38 + 3 * c).to_be_bytes()); // Lsiz
        v.extend_from_slice(&[0, 0]); // Rsiz
        for x in [w, h, 0, 0, w, h, 0, 0] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(&c.to_be_bytes());
        for _ in 0..c {
            v.extend_from_slice(&[15, 1, 1]);
        }
        v
    }

    /// SOI, an APP0 segment, then a baseline SOF0 for `w`×`h`, `c` components.
    fn jpeg(w: u16, h: u16, c: u8) -> Vec<u8> {
        let mut v = vec![0xff, 0xd8, 0xff, 0xe0, 0x00, 0x02, 0xff, 0xc0];
        v.extend_from_slice(&[0x00, 0x0b, 8]);
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&[c, 1, 0x11, 0]);
        v
    }

    #[test]
    fn matching_frames_pass() {
        assert_eq!(check(J2K, &codestream(64, 48, 1), grey(48, 64, 16)), Ok(()));
        assert_eq!(
            check(JPEG_BASELINE, &jpeg(64, 48, 1), grey(48, 64, 8)),
            Ok(())
        );
        assert_eq!(check("1.2.840.10008.1.2.5", b"", grey(48, 64, 8)), Ok(()));
    }

    /// What the fuzz suite found: a frame larger than Rows × Columns, with
    /// more components than samples or deeper samples made the decoders write
    /// past the frame buffer.
    #[test]
    fn frames_larger_than_the_header_are_refused() {
        let e = check(J2K, &codestream(64, 49, 1), grey(48, 64, 16)).unwrap_err();
        assert!(e.to_string().contains("64×49"), "{e}");
        assert!(check(J2K, &codestream(64, 48, 3), grey(48, 64, 16)).is_err());
        // 16-bit samples in an 8-bit frame.
        assert!(check(J2K, &codestream(64, 48, 1), grey(48, 64, 8)).is_err());
        let e = check(JPEG_BASELINE, &jpeg(4096, 48, 1), grey(48, 64, 8)).unwrap_err();
        assert!(e.to_string().contains("4096×48"), "{e}");
        assert!(check(JPEG_BASELINE, &jpeg(64, 48, 3), grey(48, 64, 8)).is_err());
    }

    #[test]
    fn frames_without_a_size_are_refused() {
        let short = &codestream(64, 48, 1)[..20];
        assert_eq!(
            check(J2K, short, grey(48, 64, 16)),
            Err(FrameError::NoSize("JPEG 2000"))
        );
        let e = check(JPEG_BASELINE, &jpeg(64, 48, 1)[..9], grey(48, 64, 8)).unwrap_err();
        assert_eq!(e, FrameError::NoSize("JPEG"));
        assert!(check(JPEG_BASELINE, b"not a JPEG", grey(1, 1, 8)).is_err());
    }
}
