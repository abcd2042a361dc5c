//! The five targets: each feeds bytes through the code a real input goes through.
//!
//! - Films (DICOM, PNG, JPEG): what `serve` does with a received or dropped file,
//!   short of the model: [`input::instance_key`] (the store's idempotence key),
//!   [`dicom::header_info`] (the identity on a refusal screen), then
//!   [`input::decode_bytes`] (`report` and `serve` alike: size cap, DICOM length
//!   pre-check, header checks, decoding to 16-bit grey) and the preprocessing
//!   a bundle's manifest asks for.
//! - The bundle manifest: [`Bundle::open`] on a folder holding the case as
//!   `manifest.json` and small files the seed manifests list with their hashes,
//!   then what the device reads from an opened manifest (the artefact for this
//!   CPU, thresholds, `info`'s summary, and its preprocessing applied to a film).
//! - The serve configuration: [`ServeConfig::parse`] (parse and check) and the
//!   values `serve` derives from a checked file.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cxr_edge::bundle::Bundle;
use cxr_edge::input::{self, dicom, ValidateOptions};
use cxr_edge::preprocess::{Gray16, PreprocessOptions};
use cxr_edge::serve::ServeConfig;
use cxr_edge::Observation;

use super::harness::Target;
use super::mutate::{self, fix_png_crcs, Grammar};

/// What every error must name.
const INPUT: &str = "fuzz-case";

/// Largest accepted width or height in the fuzz runs.
pub const MAX_SIDE: u32 = 2048;
/// Largest accepted width × height in the fuzz runs: a 2048² film, 1/16 of
/// the unit's default, so that the cases claiming the largest film accepted
/// (and decoding it, from a few kilobytes of noise) cost the unoptimised test
/// build a second rather than many; `MAX_CASE_HEAP` scales with it.
pub const MAX_PIXELS: u64 = MAX_SIDE as u64 * MAX_SIDE as u64;
/// Largest accepted input (and inflated DICOM data set): such a film at 16 bits.
pub const MAX_INPUT_BYTES: u64 = 2 * MAX_PIXELS;

/// The unit's checks with smaller size limits, so that a case claiming the
/// largest accepted film costs milliseconds, not seconds; the chest-film
/// refusals forced past, so that cases reach the decoders and preprocessing;
/// and a small `min_side`, as the seeds are 64×64 to keep cases fast.
pub fn validate_options() -> ValidateOptions {
    ValidateOptions {
        max_side: MAX_SIDE,
        max_pixels: MAX_PIXELS,
        max_input_bytes: MAX_INPUT_BYTES,
        min_side: 16,
        force: true,
    }
}

/// The preprocessing of the committed test bundle (`tests/fixtures/bundle/tiny`,
/// 32² input): the same steps as a 224² bundle's, at a fraction of the
/// resizing cost, which dominates a case in the unoptimised test build.
fn preprocess() -> PreprocessOptions {
    PreprocessOptions {
        size: 32,
        ..PreprocessOptions::default()
    }
}

/// The error must name the input; the result is whether the input was accepted.
fn named<T, E: std::fmt::Display>(r: Result<T, E>, name: &str) -> Result<Option<T>, String> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let msg = e.to_string();
            if msg.contains(name) {
                Ok(None)
            } else {
                Err(format!("error does not name the input {name:?}: {msg}"))
            }
        }
    }
}

fn film(bytes: &[u8]) -> Result<bool, String> {
    let _ = input::instance_key(bytes);
    let _ = dicom::header_info(bytes, INPUT);
    let Some(radiograph) = named(
        input::decode_bytes(bytes, INPUT, &validate_options()),
        INPUT,
    )?
    else {
        return Ok(false);
    };
    let tensor = preprocess().apply(&radiograph.image);
    if let Some(v) = tensor.iter().find(|v| !v.is_finite()) {
        return Err(format!("preprocessing gave {v}"));
    }
    Ok(true)
}

/// A bundle folder holding the placeholder files the seed manifests list.
fn bundle_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("fuzz-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "decoder.nnef.tar",
            "decoder.onnx",
            "encoder.int8.nnef.tar",
            "encoder.int8.onnx",
            "encoder.nnef.tar",
            "encoder.onnx",
            "parity.json",
            "vocab.json",
        ] {
            std::fs::write(dir.join(name), format!("placeholder {name}\n")).unwrap();
        }
        dir
    })
}

fn manifest(bytes: &[u8]) -> Result<bool, String> {
    let dir = bundle_dir();
    std::fs::write(dir.join("manifest.json"), bytes).unwrap();
    let Some(bundle) = named(Bundle::open(dir), &dir.display().to_string())? else {
        return Ok(false);
    };
    let m = bundle.manifest();
    let _ = m.artefact_for(std::env::consts::ARCH);
    let _ = Observation::ALL.map(|o| m.threshold(o));
    let _ = bundle.describe();
    let film = Gray16::from_fn(64, 48, |x, y| image::Luma([(x * 1000 + y * 10) as u16]));
    let _ = m.preprocess.apply(&film);
    Ok(true)
}

fn config(bytes: &[u8]) -> Result<bool, String> {
    // `load` refuses a file that is not UTF-8; lossy conversion lets mutated
    // bytes reach the TOML parser instead.
    let text = String::from_utf8_lossy(bytes);
    let Some(config) = named(ServeConfig::parse(&text, INPUT), INPUT)? else {
        return Ok(false);
    };
    let _ = config.validate_options();
    if let Some(w) = &config.watch {
        let _ = w.settle();
    }
    Ok(true)
}

pub const DICOM: Target = Target {
    name: "dicom",
    ext: "dcm",
    grammar: Grammar {
        fields: mutate::dicom_fields,
        dictionary: &[
            b"\xe0\x7f\x10\x00",                           // (7FE0,0010) Pixel Data
            b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff", // encapsulated Pixel Data
            b"\xfe\xff\x00\xe0",                           // Item
            b"\xfe\xff\x00\xe0\xff\xff\xff\xff",
            b"\xfe\xff\x0d\xe0\x00\x00\x00\x00", // Item Delimitation
            b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", // Sequence Delimitation
            b"\x28\x00\x10\x00US\x02\x00\x00\x08", // Rows 2048
            b"\x28\x00\x10\x00US\x02\x00",       // Rows
            b"\x28\x00\x11\x00US\x02\x00",       // Columns
            b"\x28\x00\x00\x01US\x02\x00",       // Bits Allocated
            b"\x28\x00\x01\x01US\x02\x00",       // Bits Stored
            b"\x28\x00\x02\x01",                 // High Bit
            b"\x28\x00\x03\x01",                 // Pixel Representation
            b"\x28\x00\x02\x00",                 // Samples per Pixel
            b"\x28\x00\x04\x00",                 // Photometric Interpretation
            b"\x28\x00\x08\x00IS\x02\x00",       // Number of Frames
            b"\x28\x00\x06\x00",                 // Planar Configuration
            b"\x28\x00\x10\x30SQ\x00\x00\xff\xff\xff\xff", // VOI LUT Sequence
            b"\x28\x00\x00\x30SQ\x00\x00\xff\xff\xff\xff", // Modality LUT Sequence
            b"\x28\x00\x02\x30US\x06\x00",       // LUT Descriptor
            b"\x28\x00\x53\x10DS",               // Rescale Slope
            b"\x28\x00\x50\x10DS",               // Window Center
            b"\x02\x00\x10\x00UI",               // Transfer Syntax UID
            b"SQ\x00\x00\xff\xff\xff\xff",
            b"OB\x00\x00",
            b"OW\x00\x00",
            b"UN\x00\x00",
            b"UT\x00\x00",
            b"1.2.840.10008.1.2\x00",
            b"1.2.840.10008.1.2.1\x00",
            b"1.2.840.10008.1.2.2\x00",
            b"1.2.840.10008.1.2.1.99",
            b"1.2.840.10008.1.2.4.50",
            b"1.2.840.10008.1.2.4.70",
            b"1.2.840.10008.1.2.4.90",
            b"1.2.840.10008.1.2.5\x00",
            b"MONOCHROME1 ",
            b"MONOCHROME2 ",
            b"RGB ",
            b"YBR_FULL_422",
            b"PALETTE COLOR ",
            b"-1e308",
            b"NaN ",
        ],
        fixup: None,
    },
    run: film,
};

pub const PNG: Target = Target {
    name: "png",
    ext: "png",
    grammar: Grammar {
        fields: mutate::png_fields,
        dictionary: &[
            b"IHDR",
            b"IDAT",
            b"\x00\x00\x00\x00IDAT",
            b"IEND",
            b"\x00\x00\x00\x00IEND\xaeB`\x82",
            b"PLTE",
            b"tRNS",
            b"sBIT",
            b"gAMA",
            b"iCCP",
            b"zTXt",
            b"iTXt",
            b"acTL",
            b"fcTL",
            b"fdAT",
            b"\x10\x06\x00\x00\x00", // 16-bit RGBA
            b"\x10\x00\x00\x00\x01", // 16-bit grey, interlaced
            b"\x01\x03\x00\x00\x00", // 1-bit palette
            b"\x00\x00\x08\x00",     // 2048: the largest side accepted
            b"\x00\x00\x08\x01",     // 2049
        ],
        fixup: Some(fix_png_crcs),
    },
    run: film,
};

pub const JPEG: Target = Target {
    name: "jpeg",
    ext: "jpg",
    grammar: Grammar {
        fields: mutate::jpeg_fields,
        dictionary: &[
            b"\xff\xd8",
            b"\xff\xd9",
            b"\xff\xc0",
            b"\xff\xc1",
            b"\xff\xc2",
            b"\xff\xc3",
            b"\xff\xc4",
            b"\xff\xdb",
            b"\xff\xda",
            b"\xff\xdd\x00\x04\x00\x01",
            b"\xff\xd0",
            b"\xff\xd7",
            b"\xff\x00",
            b"\xff\xe0\x00\x10JFIF\x00",
            b"\xff\xee\x00\x0eAdobe\x00",
            b"\xff\xe2\x00\x10ICC_PROFILE\x00",
            b"\xff\xfe\x00\x02",
            b"\xff\xc0\x00\x0b\x08\x08\x00\x08\x00\x01\x01\x11\x00", // 2048² grey
            b"\x08\x00\x08\x00",
            b"\xff\xc2\x00\x11\x08\x00\x40\x00\x40\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01",
        ],
        fixup: None,
    },
    run: film,
};

pub const MANIFEST: Target = Target {
    name: "manifest",
    ext: "json",
    grammar: Grammar {
        fields: mutate::no_fields,
        dictionary: &[
            b"\"",
            b"{",
            b"}",
            b"[",
            b"]",
            b",",
            b":",
            b"null",
            b"true",
            b"0",
            b"-1",
            b"1e309",
            b"-0.0",
            b"4294967296",
            b"18446744073709551616",
            b"100000",
            b"65536",
            b"\"fp32\"",
            b"\"int8\"",
            b"\"merge\"",
            b"\"x86_64\"",
            b"\"aarch64\"",
            b"\"\"",
            b"\"../vocab.json\"",
            b"\"/\"",
            b"\"manifest.json\"",
            b"\"\\u0000\"",
            b"\"\\ud800\"",
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
            b"{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":",
        ],
        fixup: None,
    },
    run: manifest,
};

pub const CONFIG: Target = Target {
    name: "config",
    ext: "toml",
    grammar: Grammar {
        fields: mutate::no_fields,
        dictionary: &[
            b"\n[dicom]\n",
            b"\n[watch]\n",
            b"\n[display]\n",
            b"\n[[dicom]]\n",
            b"ae_title = \"",
            b"bind = \"[::1]:0\"",
            b"dir = \"\"",
            b" = 18446744073709551615",
            b" = -1",
            b" = 0",
            b" = inf",
            b" = nan",
            b" = 1e400",
            b"\"\"\"",
            b"'''",
            b"{ }",
            b" = { dir = \"d\" }",
            b"\"\\u0000\"",
            b"\"\\uD800\"",
            b"1979-05-27T07:32:00Z",
            b"\n",
            b"#",
            b"=",
            b"\"",
            b"threads = 0\n",
            b"kind = \"framebuffer\"\n",
            b"kind = \"ssd1306\"\n",
            b"0x7fffffffffffffff",
            b"99999999999999999999",
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
            b"a.b.c.d.e.f.g = 1\n",
        ],
        fixup: None,
    },
    run: config,
};
