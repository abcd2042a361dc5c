//! Every length a DICOM Part 10 file declares, checked against the bytes actually
//! present before dicom-rs reads the file.
//!
//! Hand-written because dicom-rs 0.10 cannot do it: its readers reserve and
//! zero-fill each value's declared length before reading it (`try_reserve_exact`
//! then `resize` in dicom-parser's stateful decoder and dicom-object's meta
//! reader), so a 168-byte file that declares a 1.6 GB element commits 1.6 GB, and
//! `OpenFileOptions` has no limit to set. This walk reads headers only and skips
//! values. It makes the structural decisions dicom-parser's `DataSetReader` makes
//! (a sequence is VR SQ, from the dictionary in implicit VR; any other undefined
//! length is a sequence too, except Pixel Data, which is a fragment sequence; a
//! short read at a tag, or in a fragment sequence, ends the data set), so every
//! length dicom-rs will allocate for has been compared here with what is left of
//! the file, or of the enclosing item or sequence. A deflated data set is inflated
//! up to a limit and walked the same way; nesting is bounded because dicom-object
//! builds nested sequences by recursion (a deep file would overflow the stack).

use std::fmt;
use std::io::Read;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{tags, uids, StandardDataDictionary};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use thiserror::Error;

/// Deepest nesting of sequences accepted. CR/DX headers nest three or four deep
/// (a code sequence inside a request attributes item). dicom-object recurses
/// twice per level: 3000 levels (a 60 KB file) overflowed an 8 MiB stack in a
/// debug build, which aborts the process rather than panicking; 64 levels pass
/// on a 2 MiB test thread (`nesting_is_bounded`).
pub const MAX_DEPTH: usize = 64;

const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_END: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_END: Tag = Tag(0xFFFE, 0xE0DD);
const UNDEFINED: u32 = u32::MAX;
/// Explicit VR Big Endian: retired from the standard (so deprecated in
/// dicom-dictionary-std) but still read by dicom-rs, so still walked here.
pub(crate) const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";
/// The file meta group starts after the 128-byte preamble and `DICM`.
const META_START: usize = 132;

/// Where in the input a problem is: a byte offset into the file, or into the
/// inflated data set of a deflated transfer syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset {
    pub byte: u64,
    pub inflated: bool,
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inflated {
            false => write!(f, "byte {}", self.byte),
            true => write!(f, "byte {} of the inflated data set", self.byte),
        }
    }
}

/// A length or structure in the file that dicom-rs must not be left to trust.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LengthError {
    #[error("{tag} at {at} declares {declared} bytes but only {available} remain in the {within}")]
    Overrun {
        tag: Tag,
        at: Offset,
        declared: u64,
        available: u64,
        /// `file`, `data set`, `sequence` or `item`.
        within: &'static str,
    },
    #[error("the header at {at} is cut off by the end of the {within}")]
    TruncatedHeader { at: Offset, within: &'static str },
    #[error("{tag} at {at} has an undefined length where only a defined one is valid")]
    UndefinedLength { tag: Tag, at: Offset },
    #[error("{tag} at {at} where {expected} was expected")]
    UnexpectedTag {
        tag: Tag,
        at: Offset,
        expected: &'static str,
    },
    #[error("{tag} at {at} nests sequences deeper than {max}")]
    TooDeep { tag: Tag, at: Offset, max: usize },
    #[error("the file meta group does not start with its length (0002,0000)")]
    NoMetaGroupLength,
    #[error("the deflated data set cannot be inflated: {reason}")]
    Inflate { reason: String },
    #[error("the deflated data set inflates to more than {max} bytes")]
    InflatesPastLimit { max: u64 },
}

/// Check every declared length of the DICOM Part 10 file `file` (preamble
/// included). A deflated data set is inflated to at most `max_inflated` bytes.
/// A transfer syntax dicom-rs cannot read is not walked: dicom-rs refuses it
/// before reading the data set.
pub fn check(file: &[u8], max_inflated: u64) -> Result<(), LengthError> {
    let (uid, dataset_start) = meta_group(file)?;
    let uid = uid.trim_end_matches(|c: char| c.is_whitespace() || c == '\0');
    let Some(ts) = TransferSyntaxRegistry.get(uid) else {
        return Ok(());
    };
    if !ts.can_decode_dataset() {
        return Ok(());
    }
    let dataset = &file[dataset_start..];
    let big_endian = uid == EXPLICIT_VR_BIG_ENDIAN;
    let explicit_vr = uid != uids::IMPLICIT_VR_LITTLE_ENDIAN;
    if ts.is_codec_free() || ts.is_encapsulated_pixel_data() {
        let mut walk = Walker::new(
            dataset,
            dataset_start as u64,
            false,
            big_endian,
            explicit_vr,
        );
        return walk.dataset();
    }
    let inflated = inflate(dataset, max_inflated)?;
    Walker::new(&inflated, 0, true, big_endian, explicit_vr).dataset()
}

/// Walk the file meta group as dicom-object's meta reader does (explicit VR
/// little endian, elements until their sizes reach the group length); returns
/// the transfer syntax UID and where the data set starts.
fn meta_group(file: &[u8]) -> Result<(String, usize), LengthError> {
    let body = file.get(META_START..).unwrap_or_default();
    let mut walk = Walker::new(body, META_START as u64, false, false, true);
    let bound = walk.bound("file");
    let group_length = match walk.element_header(bound)? {
        Some(h) if h.tag == Tag(0x0002, 0x0000) && h.len == 4 => {
            walk.value(&h, bound)?;
            walk.read_u32(walk.pos - 4)
        }
        _ => return Err(LengthError::NoMetaGroupLength),
    };
    let mut uid = String::new();
    let mut total: u32 = 0;
    while total < group_length {
        let start = walk.pos;
        let Some(h) = walk.element_header(bound)? else {
            return Err(LengthError::TruncatedHeader {
                at: walk.offset(start),
                within: "file",
            });
        };
        if h.len == UNDEFINED {
            return Err(LengthError::UndefinedLength {
                tag: h.tag,
                at: walk.offset(h.at),
            });
        }
        walk.value(&h, bound)?;
        if h.tag == tags::TRANSFER_SYNTAX_UID {
            uid = String::from_utf8_lossy(&body[walk.pos - h.len as usize..walk.pos]).into_owned();
        }
        // The same saturating count as dicom-object's, so both stop at one element.
        let header_size = (walk.pos - start) as u32 - h.len;
        total = total.saturating_add(header_size).saturating_add(h.len);
    }
    Ok((uid, META_START + walk.pos))
}

/// Inflate a deflated data set (raw deflate, as dicom-rs's `FlateAdapter`
/// reads it), refusing to produce more than `max` bytes: a few kilobytes of
/// deflate can stand for gigabytes, all of them present as far as lengths go.
fn inflate(deflated: &[u8], max: u64) -> Result<Vec<u8>, LengthError> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(deflated)
        .take(max.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| LengthError::Inflate {
            reason: e.to_string(),
        })?;
    if out.len() as u64 > max {
        return Err(LengthError::InflatesPastLimit { max });
    }
    Ok(out)
}

/// An element or item header.
struct Header {
    tag: Tag,
    vr: VR,
    len: u32,
    /// Where the header starts, relative to the walked bytes.
    at: usize,
}

/// The end of what encloses the element being read, and its name for errors.
#[derive(Clone, Copy)]
struct Bound {
    end: usize,
    within: &'static str,
}

/// A cursor over a data set that reads headers and skips values.
struct Walker<'a> {
    data: &'a [u8],
    pos: usize,
    /// Added to positions in errors, so they are offsets into the file.
    base: u64,
    inflated: bool,
    big_endian: bool,
    explicit_vr: bool,
}

impl<'a> Walker<'a> {
    fn new(data: &'a [u8], base: u64, inflated: bool, big_endian: bool, explicit_vr: bool) -> Self {
        Walker {
            data,
            pos: 0,
            base,
            inflated,
            big_endian,
            explicit_vr,
        }
    }

    fn offset(&self, at: usize) -> Offset {
        Offset {
            byte: self.base + at as u64,
            inflated: self.inflated,
        }
    }

    fn bound(&self, within: &'static str) -> Bound {
        Bound {
            end: self.data.len(),
            within,
        }
    }

    fn read_u16(&self, at: usize) -> u16 {
        let b = [self.data[at], self.data[at + 1]];
        match self.big_endian {
            true => u16::from_be_bytes(b),
            false => u16::from_le_bytes(b),
        }
    }

    fn read_u32(&self, at: usize) -> u32 {
        let b = [
            self.data[at],
            self.data[at + 1],
            self.data[at + 2],
            self.data[at + 3],
        ];
        match self.big_endian {
            true => u32::from_be_bytes(b),
            false => u32::from_le_bytes(b),
        }
    }

    /// Advance past `n` header bytes inside `bound`, or say where it is cut off.
    fn header_bytes(&mut self, n: usize, at: usize, bound: Bound) -> Result<usize, LengthError> {
        if bound.end.saturating_sub(self.pos) < n {
            return Err(LengthError::TruncatedHeader {
                at: self.offset(at),
                within: bound.within,
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok(start)
    }

    /// The next element header; `None` when fewer than 4 bytes are left, which
    /// dicom-parser takes for the end of the data set.
    fn element_header(&mut self, bound: Bound) -> Result<Option<Header>, LengthError> {
        if self.data.len() - self.pos < 4 {
            return Ok(None);
        }
        let at = self.header_bytes(4, self.pos, bound)?;
        let tag = Tag(self.read_u16(at), self.read_u16(at + 2));
        if !self.explicit_vr || tag.0 == 0xFFFE {
            let p = self.header_bytes(4, at, bound)?;
            let vr = match self.explicit_vr {
                true => VR::UN,
                false => implicit_vr(tag),
            };
            let len = self.read_u32(p);
            return Ok(Some(Header { tag, vr, len, at }));
        }
        let p = self.header_bytes(2, at, bound)?;
        let vr = VR::from_binary([self.data[p], self.data[p + 1]]).unwrap_or(VR::UN);
        let len = if short_length(vr) {
            let p = self.header_bytes(2, at, bound)?;
            u32::from(self.read_u16(p))
        } else {
            let p = self.header_bytes(6, at, bound)?;
            self.read_u32(p + 2)
        };
        Ok(Some(Header { tag, vr, len, at }))
    }

    /// The next item or delimiter header; `None` when fewer than 8 bytes are left.
    fn item_header(&mut self, bound: Bound) -> Result<Option<Header>, LengthError> {
        if self.data.len() - self.pos < 8 {
            return Ok(None);
        }
        let at = self.header_bytes(8, self.pos, bound)?;
        let tag = Tag(self.read_u16(at), self.read_u16(at + 2));
        let len = self.read_u32(at + 4);
        Ok(Some(Header {
            tag,
            vr: VR::UN,
            len,
            at,
        }))
    }

    /// Where a defined-length value that starts here ends, if it fits inside `bound`.
    fn end_within(&self, h: &Header, bound: Bound) -> Result<usize, LengthError> {
        let available = bound.end.saturating_sub(self.pos);
        if h.len as usize > available {
            return Err(LengthError::Overrun {
                tag: h.tag,
                at: self.offset(h.at),
                declared: h.len.into(),
                available: available as u64,
                within: bound.within,
            });
        }
        Ok(self.pos + h.len as usize)
    }

    /// Skip a defined-length value, which must fit inside `bound`.
    fn value(&mut self, h: &Header, bound: Bound) -> Result<(), LengthError> {
        self.pos = self.end_within(h, bound)?;
        Ok(())
    }

    fn dataset(&mut self) -> Result<(), LengthError> {
        let within = if self.inflated { "data set" } else { "file" };
        self.elements(self.bound(within), false, 0)
    }

    /// The elements of the data set (`depth` 0) or of an item: up to the end of
    /// `bound` when `defined`, else up to an item delimiter.
    fn elements(&mut self, bound: Bound, defined: bool, depth: usize) -> Result<(), LengthError> {
        while !(defined && self.pos == bound.end) {
            let Some(h) = self.element_header(bound)? else {
                return Ok(());
            };
            if h.vr == VR::SQ {
                self.sequence(&h, bound, depth + 1)?;
            } else if h.tag == ITEM_END {
                // dicom-parser ignores a stray item delimiter outside any sequence.
                if depth > 0 {
                    return Ok(());
                }
            } else if h.len == UNDEFINED && h.tag == tags::PIXEL_DATA {
                self.fragments(bound)?;
            } else if h.len == UNDEFINED {
                self.sequence(&h, bound, depth + 1)?;
            } else {
                self.value(&h, bound)?;
            }
        }
        Ok(())
    }

    /// The items of a sequence, up to its defined end or its delimiter.
    fn sequence(&mut self, h: &Header, outer: Bound, depth: usize) -> Result<(), LengthError> {
        if depth > MAX_DEPTH {
            return Err(LengthError::TooDeep {
                tag: h.tag,
                at: self.offset(h.at),
                max: MAX_DEPTH,
            });
        }
        let defined = h.len != UNDEFINED;
        let bound = self.inner_bound(h, outer, "sequence")?;
        while !(defined && self.pos == bound.end) {
            let start = self.pos;
            let Some(item) = self.item_header(bound)? else {
                return Err(LengthError::TruncatedHeader {
                    at: self.offset(start),
                    within: bound.within,
                });
            };
            match item.tag {
                ITEM => {
                    let inner = self.inner_bound(&item, bound, "item")?;
                    self.elements(inner, item.len != UNDEFINED, depth)?;
                }
                SEQUENCE_END => return Ok(()),
                tag => return Err(self.unexpected(tag, item.at, "an item")),
            }
        }
        Ok(())
    }

    /// Encapsulated Pixel Data: the offset table and fragments, each a
    /// defined-length item, up to the sequence delimiter.
    fn fragments(&mut self, bound: Bound) -> Result<(), LengthError> {
        loop {
            let Some(item) = self.item_header(bound)? else {
                // dicom-parser ends the whole data set at a short read here.
                self.pos = self.data.len();
                return Ok(());
            };
            match item.tag {
                ITEM if item.len == UNDEFINED => {
                    return Err(LengthError::UndefinedLength {
                        tag: ITEM,
                        at: self.offset(item.at),
                    })
                }
                ITEM => self.value(&item, bound)?,
                SEQUENCE_END => return Ok(()),
                tag => return Err(self.unexpected(tag, item.at, "a pixel data fragment")),
            }
        }
    }

    /// The bound inside a sequence or item: its own end when its length is
    /// defined (which must fit in `outer`), else the enclosing one.
    fn inner_bound(
        &self,
        h: &Header,
        outer: Bound,
        within: &'static str,
    ) -> Result<Bound, LengthError> {
        if h.len == UNDEFINED {
            return Ok(outer);
        }
        Ok(Bound {
            end: self.end_within(h, outer)?,
            within,
        })
    }

    fn unexpected(&self, tag: Tag, at: usize, expected: &'static str) -> LengthError {
        LengthError::UnexpectedTag {
            tag,
            at: self.offset(at),
            expected,
        }
    }
}

/// The VRs whose length is 16 bits in explicit VR (PS3.5 7.1.2); dicom-rs reads
/// an unknown VR as UN, with a 32-bit length.
fn short_length(vr: VR) -> bool {
    use VR::*;
    matches!(
        vr,
        AE | AS
            | AT
            | CS
            | DA
            | DS
            | DT
            | FL
            | FD
            | IS
            | LO
            | LT
            | PN
            | SH
            | SL
            | SS
            | ST
            | TM
            | UI
            | UL
            | US
    )
}

/// The VR dicom-rs gives an implicit-VR element: OW for Pixel Data and overlay
/// data, else the standard dictionary's, else UN.
fn implicit_vr(tag: Tag) -> VR {
    if tag == tags::PIXEL_DATA || (tag.0 >> 8 == 0x60 && tag.1 == 0x3000) {
        return VR::OW;
    }
    StandardDataDictionary
        .by_tag(tag)
        .map(|e| e.vr().relaxed())
        .unwrap_or(VR::UN)
}

#[cfg(test)]
mod tests;
