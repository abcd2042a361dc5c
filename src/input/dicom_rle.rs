//! RLE Lossless pixel data (DICOM PS3.5 Annex G) checked before dicom-rs decodes
//! it. Its decoder (dicom-transfer-syntax-registry 0.10) trusts the fragment: it
//! slices the 64-byte segment header without a length check, allocates the
//! declared segment count (up to 2³² offsets), and indexes each decoded segment
//! up to Rows × Columns without checking it is that long, so a truncated or
//! altered fragment panics it (the fuzz suite, `tests/fuzz`, found the last one in
//! its first 300 cases). [`check`] refuses, by name, every fragment the decoder
//! would index past; one that passes decodes without a panic.

use thiserror::Error;

/// The RLE Lossless transfer syntax.
pub const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// The header: a segment count and 15 offsets, little-endian `u32`s.
const HEADER_BYTES: usize = 64;
const MAX_SEGMENTS: usize = 15;

/// Why an RLE fragment cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RleError {
    #[error("RLE fragment of {0} bytes is shorter than its 64-byte segment header")]
    ShortHeader(usize),
    #[error("RLE header declares {found} segments, the image needs {needed} (at most 15)")]
    Segments { found: u32, needed: usize },
    #[error("RLE segment {index} spans bytes {start}..{end} of a {len}-byte fragment")]
    SegmentRange {
        index: usize,
        start: usize,
        end: usize,
        len: usize,
    },
    #[error("RLE segment {index} decodes to {got} bytes, Rows × Columns needs {needed}")]
    ShortSegment {
        index: usize,
        got: usize,
        needed: usize,
    },
}

/// Check the first frame's fragment against the image it must decode to.
/// Layouts the decoder refuses by itself (bits allocated other than 8 or 16)
/// pass here.
pub fn check(
    fragment: &[u8],
    rows: u64,
    cols: u64,
    samples: u64,
    bits_allocated: u64,
) -> Result<(), RleError> {
    if bits_allocated != 8 && bits_allocated != 16 {
        return Ok(());
    }
    if fragment.len() < HEADER_BYTES {
        return Err(RleError::ShortHeader(fragment.len()));
    }
    let word = |i: usize| u32::from_le_bytes(fragment[4 * i..4 * i + 4].try_into().unwrap());
    let found = word(0);
    let needed = (samples.saturating_mul(bits_allocated / 8)).min(usize::MAX as u64) as usize;
    if found as usize > MAX_SEGMENTS || (found as usize) < needed {
        return Err(RleError::Segments { found, needed });
    }
    let pixels = rows.saturating_mul(cols).min(usize::MAX as u64) as usize;
    let n = found as usize;
    for index in 0..needed {
        let start = word(1 + index) as usize;
        let end = if index + 1 < n {
            word(2 + index) as usize
        } else {
            fragment.len()
        };
        if start > end || end > fragment.len() {
            return Err(RleError::SegmentRange {
                index,
                start,
                end,
                len: fragment.len(),
            });
        }
        let got = packbits_len(&fragment[start..end]);
        if got < pixels {
            return Err(RleError::ShortSegment {
                index,
                got,
                needed: pixels,
            });
        }
    }
    Ok(())
}

/// The length a PackBits segment decodes to, read as the decoder reads it:
/// header byte `h` in 0..=127 copies `h + 1` bytes (fewer if the segment ends),
/// -127..=-1 repeats the next byte `1 - h` times (none if it is missing), -128
/// does nothing.
fn packbits_len(segment: &[u8]) -> usize {
    let (mut at, mut len) = (0, 0usize);
    while at < segment.len() {
        let h = segment[at] as i8;
        at += 1;
        match h {
            0..=127 => {
                let n = (h as usize + 1).min(segment.len() - at);
                len += n;
                at += h as usize + 1;
            }
            -127..=-1 => {
                if at >= segment.len() {
                    break;
                }
                len += (1 - h as isize) as usize;
                at += 1;
            }
            -128 => {}
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-segment 8-bit fragment whose segment is `segment`.
    fn fragment(segments: u32, segment: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; HEADER_BYTES];
        f[..4].copy_from_slice(&segments.to_le_bytes());
        f[4..8].copy_from_slice(&(HEADER_BYTES as u32).to_le_bytes());
        f.extend_from_slice(segment);
        f
    }

    #[test]
    fn packbits_lengths() {
        assert_eq!(packbits_len(&[2, 1, 2, 3]), 3);
        assert_eq!(packbits_len(&[(-3i8) as u8, 9]), 4);
        assert_eq!(packbits_len(&[0x80, 0, 7]), 1);
        // A literal run cut short counts what is there; a repeat without its byte, nothing.
        assert_eq!(packbits_len(&[5, 1, 2]), 2);
        assert_eq!(packbits_len(&[(-3i8) as u8]), 0);
    }

    #[test]
    fn a_whole_fragment_passes() {
        // 2 × 3 pixels: a run of 4 and a literal of 2.
        let f = fragment(1, &[(-3i8) as u8, 7, 1, 8, 9]);
        assert_eq!(check(&f, 2, 3, 1, 8), Ok(()));
    }

    /// What the fuzz suite found: a segment decoding to fewer bytes than Rows ×
    /// Columns made the decoder index past it.
    #[test]
    fn a_short_segment_is_refused() {
        let f = fragment(1, &[(-3i8) as u8, 7, 0, 8]);
        let e = check(&f, 2, 3, 1, 8).unwrap_err();
        assert_eq!(
            e,
            RleError::ShortSegment {
                index: 0,
                got: 5,
                needed: 6
            }
        );
    }

    #[test]
    fn broken_headers_are_refused() {
        assert_eq!(check(&[1, 0, 0], 1, 1, 1, 8), Err(RleError::ShortHeader(3)));
        let e = check(&fragment(u32::MAX, &[0, 1]), 1, 1, 1, 8).unwrap_err();
        assert!(matches!(e, RleError::Segments { .. }), "{e}");
        // 16-bit grey needs two segments.
        let e = check(&fragment(1, &[0, 1]), 1, 1, 1, 16).unwrap_err();
        assert_eq!(
            e,
            RleError::Segments {
                found: 1,
                needed: 2
            }
        );
        let mut f = fragment(1, &[0, 1]);
        f[4..8].copy_from_slice(&1000u32.to_le_bytes());
        let e = check(&f, 1, 1, 1, 8).unwrap_err();
        assert!(matches!(e, RleError::SegmentRange { index: 0, .. }), "{e}");
    }
}
