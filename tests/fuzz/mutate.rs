//! A small deterministic mutator in the style of AFL's "havoc" stage: a stack of
//! 1–16 random edits (bit flips, boundary integers, arithmetic, block deletion,
//! duplication and insertion, truncation, splicing with another seed, tokens from
//! a per-format dictionary). Every case is a pure function of (run seed, format,
//! case number), so any case can be made again from its number alone.

/// SplitMix64: tiny, fast, and the same output on every platform and Rust
/// version (unlike a `rand` generator, whose stream may change between releases).
pub struct Rng(u64);

impl Rng {
    /// The generator for one case.
    pub fn for_case(seed: u64, format: &str, case: u64) -> Rng {
        let mut h = seed ^ 0x6a09_e667_f3bc_c908;
        for b in format.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut rng = Rng(h ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        rng.next();
        rng
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Boundary values that make length and size fields interesting.
const INTERESTING_8: &[u8] = &[0, 1, 2, 16, 32, 64, 100, 127, 128, 255];
const INTERESTING_16: &[u16] = &[
    0, 1, 2, 8, 12, 16, 255, 256, 512, 1000, 1024, 2048, 4096, 0x7fff, 0x8000, 0xfffe, 0xffff,
];
const INTERESTING_32: &[u32] = &[
    0,
    1,
    2,
    4,
    0xff,
    0x100,
    0xffff,
    0x800,
    0x1_0000,
    0x10_0000,
    0x100_0000,
    0x4000_0000,
    0x5f5e_1000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
];

/// A header field worth setting to a boundary value: an image's width or
/// height, bits or samples per pixel. Plain byte edits almost never land on
/// one in 10 000 cases, and these are what sizes the decoders' buffers.
pub struct Field {
    pub at: usize,
    /// 1, 2 or 4 bytes.
    pub width: usize,
    pub big_endian: bool,
    pub values: &'static [u32],
}

/// Widths and heights around the fuzz runs' limit (2048 a side) and past it.
pub const DIMENSIONS: &[u32] = &[0, 1, 2, 15, 16, 255, 1024, 2047, 2048, 2049, 4096, 65535];
/// Bits allocated or stored, samples per pixel.
pub const SAMPLE_SIZES: &[u32] = &[0, 1, 2, 3, 4, 7, 8, 12, 16, 17, 24, 32, 64, 255];

/// What a format contributes to mutation.
pub struct Grammar {
    /// The header fields of an input (found afresh after other edits).
    pub fields: fn(&[u8]) -> Vec<Field>,
    /// Tokens worth inserting or writing over (tags, chunk names, markers, keys).
    pub dictionary: &'static [&'static [u8]],
    /// Repairs a checksum after mutation (PNG chunk CRCs), so that most cases
    /// get past it into the decoder; applied to 7 cases in 8.
    pub fixup: Option<fn(&mut [u8])>,
}

/// Mutate a copy of `corpus[pick]` for one case; `max_len` caps the result.
pub fn case(corpus: &[Vec<u8>], grammar: &Grammar, rng: &mut Rng, max_len: usize) -> Vec<u8> {
    let mut data = corpus[rng.below(corpus.len())].clone();
    let edits = 1 << rng.below(5);
    for _ in 0..edits {
        edit(&mut data, corpus, grammar, rng);
        data.truncate(max_len);
    }
    if let Some(fix) = grammar.fixup {
        if !rng.chance(8) {
            fix(&mut data);
        }
    }
    data
}

fn edit(data: &mut Vec<u8>, corpus: &[Vec<u8>], grammar: &Grammar, rng: &mut Rng) {
    if data.is_empty() {
        data.push(rng.next() as u8);
        return;
    }
    let len = data.len();
    let pos = rng.below(len);
    match rng.below(14) {
        13 => {
            let fields = (grammar.fields)(data);
            if let Some(f) = fields.get(rng.below(fields.len().max(1))) {
                let v = f.values[rng.below(f.values.len())];
                // The value's low `width` bytes, in the field's byte order.
                let (le, be) = (v.to_le_bytes(), v.to_be_bytes());
                let bytes = if f.big_endian {
                    &be[4 - f.width..]
                } else {
                    &le[..f.width]
                };
                overwrite(data, f.at, bytes);
            }
        }
        0 => data[pos] ^= 1 << rng.below(8),
        1 => data[pos] = rng.next() as u8,
        2 => data[pos] = INTERESTING_8[rng.below(INTERESTING_8.len())],
        3 => {
            let v = INTERESTING_16[rng.below(INTERESTING_16.len())];
            let bytes = if rng.chance(2) {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            overwrite(data, pos, &bytes);
        }
        4 => {
            let v = INTERESTING_32[rng.below(INTERESTING_32.len())];
            let bytes = if rng.chance(2) {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            overwrite(data, pos, &bytes);
        }
        5 => arithmetic(data, pos, rng),
        6 => {
            let n = block_len(rng, len - pos);
            data.drain(pos..pos + n);
        }
        7 => {
            // Duplicate a block somewhere (repeated elements, chunks, segments).
            let from = rng.below(len);
            let n = block_len(rng, len - from);
            let block = data[from..from + n].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, block);
        }
        8 => {
            let cap = if rng.chance(4) { 4096 } else { 32 };
            let n = 1 + rng.below(cap);
            let byte = rng.next() as u8;
            let block: Vec<u8> = if rng.chance(2) {
                vec![byte; n]
            } else {
                (0..n).map(|_| rng.next() as u8).collect()
            };
            data.splice(pos..pos, block);
        }
        9 => data.truncate(pos),
        10 => {
            let other = &corpus[rng.below(corpus.len())];
            let from = rng.below(other.len().max(1));
            data.truncate(pos);
            data.extend_from_slice(&other[from.min(other.len())..]);
        }
        _ => {
            let token = grammar.dictionary[rng.below(grammar.dictionary.len())];
            if rng.chance(2) {
                data.splice(pos..pos, token.iter().copied());
            } else {
                overwrite(data, pos, token);
            }
        }
    }
}

/// Mostly short blocks, sometimes long ones.
fn block_len(rng: &mut Rng, room: usize) -> usize {
    let cap = if rng.chance(8) { room } else { room.min(64) };
    1 + rng.below(cap.max(1))
}

fn overwrite(data: &mut [u8], pos: usize, bytes: &[u8]) {
    let n = bytes.len().min(data.len() - pos);
    data[pos..pos + n].copy_from_slice(&bytes[..n]);
}

/// Add or subtract a small number from a 1-, 2- or 4-byte little-endian field.
fn arithmetic(data: &mut [u8], pos: usize, rng: &mut Rng) {
    let delta = 1 + rng.below(35) as u32;
    let width = [1, 2, 4][rng.below(3)].min(data.len() - pos);
    let mut buf = [0u8; 4];
    buf[..width].copy_from_slice(&data[pos..pos + width]);
    let v = u32::from_le_bytes(buf);
    let v = if rng.chance(2) {
        v.wrapping_add(delta)
    } else {
        v.wrapping_sub(delta)
    };
    data[pos..pos + width].copy_from_slice(&v.to_le_bytes()[..width]);
}

/// No header fields (text formats).
pub fn no_fields(_: &[u8]) -> Vec<Field> {
    Vec::new()
}

/// PNG: IHDR's width and height, then its bit depth and colour type.
pub fn png_fields(data: &[u8]) -> Vec<Field> {
    if data.len() < 26 || &data[12..16] != b"IHDR" {
        return Vec::new();
    }
    let field = |at, width, values| Field {
        at,
        width,
        big_endian: true,
        values,
    };
    vec![
        field(16, 4, DIMENSIONS),
        field(20, 4, DIMENSIONS),
        field(24, 1, SAMPLE_SIZES),
    ]
}

/// JPEG: each frame header's (SOF0–SOF3) height, width and precision.
pub fn jpeg_fields(data: &[u8]) -> Vec<Field> {
    let mut fields = Vec::new();
    for (i, w) in data.windows(2).enumerate() {
        if w[0] == 0xff && (0xc0..=0xc3).contains(&w[1]) && i + 9 <= data.len() {
            let field = |at, width, values| Field {
                at,
                width,
                big_endian: true,
                values,
            };
            fields.push(field(i + 4, 1, SAMPLE_SIZES));
            fields.push(field(i + 5, 2, DIMENSIONS));
            fields.push(field(i + 7, 2, DIMENSIONS));
        }
    }
    fields
}

/// DICOM: the value of Rows, Columns, Samples per Pixel, Bits Allocated and
/// Bits Stored, wherever the tag appears (little or big endian; the value
/// starts 8 bytes after the tag in explicit and implicit VR alike).
pub fn dicom_fields(data: &[u8]) -> Vec<Field> {
    const TAGS: [([u8; 2], &[u32]); 5] = [
        ([0x00, 0x10], DIMENSIONS),
        ([0x00, 0x11], DIMENSIONS),
        ([0x00, 0x02], SAMPLE_SIZES),
        ([0x01, 0x00], SAMPLE_SIZES),
        ([0x01, 0x01], SAMPLE_SIZES),
    ];
    let mut fields = Vec::new();
    for (i, w) in data.windows(4).enumerate() {
        for (element, values) in TAGS {
            let le = w == [0x28, 0x00, element[1], element[0]];
            let be = w == [0x00, 0x28, element[0], element[1]];
            if (le || be) && i + 10 <= data.len() {
                fields.push(Field {
                    at: i + 8,
                    width: 2,
                    big_endian: be,
                    values,
                });
            }
        }
    }
    fields
}

/// Recompute the CRC of every whole chunk of a PNG.
pub fn fix_png_crcs(data: &mut [u8]) {
    let mut at = 8;
    while at + 12 <= data.len() {
        let n = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let Some(end) = at.checked_add(8 + n).filter(|&e| e + 4 <= data.len()) else {
            break;
        };
        let mut crc = flate2::Crc::new();
        crc.update(&data[at + 4..end]);
        data[end..end + 4].copy_from_slice(&crc.sum().to_be_bytes());
        at = end + 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_is_a_function_of_its_number() {
        let corpus = vec![b"0123456789abcdef".to_vec(), b"xyz".to_vec()];
        let g = Grammar {
            fields: |_| Vec::new(),
            dictionary: &[b"TOKEN"],
            fixup: None,
        };
        let make = |n| case(&corpus, &g, &mut Rng::for_case(7, "t", n), 1024);
        assert_eq!(make(3), make(3));
        let distinct: std::collections::BTreeSet<Vec<u8>> = (0..200).map(make).collect();
        assert!(distinct.len() > 150, "{} distinct of 200", distinct.len());
    }
}
