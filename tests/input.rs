//! Inputs: PNG, JPEG and DICOM decoding, the size limit checked before any
//! allocation, chest-film refusals, and bad files each failing with a typed error
//! that names the input while the other inputs still decode.

use std::io::Cursor;
use std::time::Duration;

use cxr_edge::input::dicom_lengths::LengthError;
use cxr_edge::input::synth::SynthCr;
use cxr_edge::input::{
    decode_bytes, decode_file, instance_key, FolderSource, InputError, MemorySource, Source,
    ValidateOptions,
};
use dicom_core::Tag;
use image::{ImageFormat, Luma};
use proptest::prelude::*;
use proptest::sample::Index;

fn png16(w: u32, h: u32) -> Vec<u8> {
    let img = image::ImageBuffer::from_fn(w, h, |x, y| Luma([((x * 97 + y * 31) % 65536) as u16]));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

fn jpeg8(w: u32, h: u32) -> Vec<u8> {
    let img = image::GrayImage::from_fn(w, h, |x, y| Luma([((x + y) % 256) as u8]));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
}

/// A small PNG whose IHDR claims `w × h` 16-bit pixels: one tiny IDAT, IEND.
pub fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        let mut body = kind.to_vec();
        body.extend(data);
        let mut crc = flate2::Crc::new();
        crc.update(&body);
        out.extend((data.len() as u32).to_be_bytes());
        out.extend(&body);
        out.extend(crc.sum().to_be_bytes());
    }
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([16, 0, 0, 0, 0]); // 16-bit grey
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut z, &[0u8; 1024]).unwrap();
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

fn opts() -> ValidateOptions {
    ValidateOptions::default()
}

#[test]
fn png16_and_jpeg8_decode_to_gray16() {
    let r = decode_bytes(&png16(300, 280), "a.png", &opts()).unwrap();
    assert_eq!(r.image.dimensions(), (300, 280));
    assert_eq!(
        r.image.get_pixel(1, 0).0[0],
        97,
        "16-bit samples kept exactly"
    );
    assert!(r.info.instance_key.starts_with("sha256:"));
    let r = decode_bytes(&jpeg8(320, 300), "b.jpg", &opts()).unwrap();
    assert_eq!(r.image.dimensions(), (320, 300));
    assert_eq!(r.info.source, "b.jpg");
}

#[test]
fn dicom_cr_monochrome1_is_inverted_and_identified() {
    let cr = SynthCr::new(1, 300, 280);
    let r = decode_bytes(&cr.to_bytes(), "cr.dcm", &opts()).unwrap();
    assert_eq!(r.image.dimensions(), (280, 300));
    assert_eq!(r.info.instance_key, cr.sop_instance_uid);
    assert_eq!(
        r.info.study_instance_uid.as_deref(),
        Some(&*cr.study_instance_uid)
    );
    assert_eq!(r.info.modality.as_deref(), Some("CR"));
    // The mediastinum (centre) is denser than a lung field: brighter after the
    // MONOCHROME1 inversion.
    let centre = r.image.get_pixel(140, 120).0[0];
    let lung = r.image.get_pixel(84, 135).0[0];
    assert!(centre > lung + 5000, "centre {centre} lung {lung}");

    let mut m2 = SynthCr::new(2, 300, 280);
    m2.monochrome1 = false;
    m2.pixels = Some(cxr_edge::input::synth::chest_pattern(
        300, 280, 12, false, 2,
    ));
    let r2 = decode_bytes(&m2.to_bytes(), "m2.dcm", &opts()).unwrap();
    let diff = (r2.image.get_pixel(140, 120).0[0] as i32 - centre as i32).abs();
    assert!(
        diff < 300,
        "MONOCHROME1 and MONOCHROME2 of one picture agree: {diff}"
    );
}

#[test]
fn header_claiming_60000_squared_is_refused_before_decoding() {
    let e = decode_bytes(&png_header_only(60_000, 60_000), "huge.png", &opts()).unwrap_err();
    assert!(
        matches!(
            e,
            InputError::TooLarge {
                width: 60_000,
                height: 60_000,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().starts_with("huge.png:"), "{e}");

    let mut cr = SynthCr::new(3, 64, 64);
    cr.rows = 60_000;
    cr.columns = 60_000; // Pixel Data stays 64×64: only the header lies.
    let e = decode_bytes(&cr.to_bytes(), "huge.dcm", &opts()).unwrap_err();
    assert!(matches!(e, InputError::TooLarge { .. }), "{e}");
    // Forcing does not lift the limit.
    let forced = ValidateOptions {
        force: true,
        ..opts()
    };
    assert!(matches!(
        decode_bytes(&png_header_only(60_000, 60_000), "huge.png", &forced),
        Err(InputError::TooLarge { .. })
    ));
}

#[test]
fn bad_files_fail_with_typed_errors_naming_the_input() {
    let png = png16(300, 300);
    let jpg = jpeg8(300, 300);
    let dcm = SynthCr::new(4, 300, 300).to_bytes();
    let mut no_pixels = SynthCr::new(5, 300, 300);
    no_pixels.pixels = None;
    // Rows × Columns larger than the Pixel Data holds (but under the limit).
    let mut short_pixels = SynthCr::new(13, 300, 300);
    short_pixels.rows = 2000;
    short_pixels.columns = 2000;
    let mut corrupt_png = png.clone();
    for b in &mut corrupt_png[60..200] {
        *b ^= 0x5A;
    }
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("zero.png", vec![], "empty"),
        (
            "text.png",
            b"hello, not an image".to_vec(),
            "unknown-format",
        ),
        ("trunc.png", png[..png.len() / 2].to_vec(), "corrupt"),
        ("garbled.png", corrupt_png, "corrupt"),
        ("trunc.jpg", jpg[..jpg.len() / 2].to_vec(), "corrupt"),
        ("trunc.dcm", dcm[..dcm.len() / 2].to_vec(), "corrupt"),
        ("header.dcm", dcm[..200].to_vec(), "corrupt"),
        ("nopixels.dcm", no_pixels.to_bytes(), "no-pixel-data"),
        ("short.dcm", short_pixels.to_bytes(), "corrupt"),
    ];
    for (name, bytes, code) in &cases {
        let e = decode_bytes(bytes, name, &opts()).unwrap_err();
        assert_eq!(e.code(), *code, "{name}: {e}");
        assert!(e.to_string().starts_with(&format!("{name}:")), "{e}");
    }
    // The good inputs are unaffected.
    for (name, bytes) in [("ok.png", &png), ("ok.jpg", &jpg), ("ok.dcm", &dcm)] {
        decode_bytes(bytes, name, &opts()).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn non_chest_films_are_refused_unless_forced() {
    let mut ct = SynthCr::new(6, 300, 300);
    ct.modality = "CT".into();
    let mut lateral = SynthCr::new(7, 300, 300);
    lateral.view_position = Some("LL".into());
    let mut hand = SynthCr::new(8, 300, 300);
    hand.body_part = Some("HAND".into());
    let small = SynthCr::new(9, 100, 120);
    // A DX unit that names the view only in its View Code Sequence.
    let mut coded_lateral = SynthCr::new(10, 300, 300);
    coded_lateral.view_position = None;
    coded_lateral.view_code = Some(("R-10232".into(), "lateral".into()));
    let mut blank = SynthCr::new(11, 300, 300);
    blank.pixels = Some(vec![1800; 300 * 300]);
    let cases = [
        (ct, "wrong-modality"),
        (lateral, "lateral-view"),
        (coded_lateral, "lateral-view"),
        (blank, "uniform-image"),
        (hand, "wrong-body-part"),
        (small, "too-small"),
    ];
    for (cr, code) in cases {
        let name = format!("{code}.dcm");
        let e = decode_bytes(&cr.to_bytes(), &name, &opts()).unwrap_err();
        assert_eq!(e.code(), code, "{e}");
        assert!(e.to_string().contains("not a valid chest film"), "{e}");
        let forced = ValidateOptions {
            force: true,
            ..opts()
        };
        decode_bytes(&cr.to_bytes(), &name, &forced).unwrap();
    }
    let colour = image::RgbImage::from_fn(300, 300, |x, _| image::Rgb([x as u8, 0, 255]));
    let mut bytes = Vec::new();
    colour
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .unwrap();
    assert_eq!(
        decode_bytes(&bytes, "c.png", &opts()).unwrap_err().code(),
        "not-greyscale"
    );
    // A grey film saved as RGB is read.
    let grey_rgb = image::RgbImage::from_fn(300, 300, |x, _| image::Rgb([x as u8; 3]));
    let mut bytes = Vec::new();
    grey_rgb
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .unwrap();
    decode_bytes(&bytes, "g.png", &opts()).unwrap();
}

#[test]
fn twelve_bit_lossy_jpeg_is_refused_by_name() {
    // Only the header matters: the refusal comes before the pixel data is read.
    let mut cr = SynthCr::new(10, 300, 300);
    cr.transfer_syntax = "1.2.840.10008.1.2.4.51";
    let e = decode_bytes(&cr.to_bytes(), "lossy12.dcm", &opts()).unwrap_err();
    assert_eq!(e.code(), "unsupported-transfer-syntax", "{e}");
    assert!(e.to_string().contains("1.2.840.10008.1.2.4.51"), "{e}");
    assert!(e.to_string().starts_with("lossy12.dcm:"), "{e}");
}

#[test]
fn instance_key_is_the_sop_instance_uid_or_a_hash() {
    let cr = SynthCr::new(11, 64, 64);
    assert_eq!(instance_key(&cr.to_bytes()), cr.sop_instance_uid);
    let png = png16(10, 10);
    assert_eq!(instance_key(&png), instance_key(&png.clone()));
    assert!(instance_key(&png).starts_with("sha256:"));
}

#[test]
fn folder_source_yields_settled_files_once_and_deletes_when_done() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.png"), png16(300, 300)).unwrap();
    std::fs::write(
        dir.path().join("b.dcm"),
        SynthCr::new(12, 300, 300).to_bytes(),
    )
    .unwrap();
    std::fs::write(dir.path().join(".c.dcm"), b"being written").unwrap();
    std::fs::write(dir.path().join("d.part"), b"being written").unwrap();
    let mut src = FolderSource::new(dir.path(), Duration::ZERO);
    let items: Vec<_> = src.drain().into_iter().map(Result::unwrap).collect();
    assert_eq!(items.len(), 2);
    assert!(
        src.poll().unwrap().is_none(),
        "not yielded twice before done"
    );
    for item in &items {
        decode_bytes(&item.bytes, &item.origin, &opts()).unwrap();
        src.done(item).unwrap();
    }
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, [".c.dcm", "d.part"]);

    let mut mem = MemorySource::new();
    mem.push("x", png16(300, 300));
    let got = mem.poll().unwrap().unwrap();
    assert_eq!(got.origin, "memory:x");
    assert!(mem.poll().unwrap().is_none());
}

#[test]
fn a_missing_folder_is_one_error_per_drain_and_is_read_afresh_when_back() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("drop");
    let mut src = FolderSource::new(&folder, Duration::ZERO);
    let got = src.drain();
    assert_eq!(got.len(), 1, "one error, not one per poll for ever");
    let e = got[0].as_ref().unwrap_err();
    assert!(e.to_string().contains("drop"), "{e}");
    assert!(src.check().is_err());

    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("a.png"), png16(300, 300)).unwrap();
    assert!(src.check().is_ok());
    assert_eq!(src.drain().len(), 1);
    std::fs::remove_dir_all(&folder).unwrap();
    assert!(src.check().is_err());
    // Same name, new folder: the file handed out before is not remembered.
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("a.png"), png16(300, 300)).unwrap();
    assert!(src.check().is_ok());
    assert_eq!(src.drain().len(), 1);
}

#[test]
fn decode_file_names_a_missing_file() {
    let e = decode_file(std::path::Path::new("/nonexistent/x.dcm"), &opts()).unwrap_err();
    assert_eq!(e.code(), "io");
    assert!(e.to_string().contains("/nonexistent/x.dcm"), "{e}");
}

#[test]
fn committed_sample_dicom_matches_its_png() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let dcm = decode_file(&root.join("nih_00001638_000_normal.dcm"), &opts()).unwrap();
    let png = decode_file(&root.join("nih_00001638_000_normal.png"), &opts()).unwrap();
    assert_eq!(dcm.image.dimensions(), png.image.dimensions());
    assert_eq!(dcm.info.modality.as_deref(), Some("CR"));
    assert_eq!(dcm.info.view_position.as_deref(), Some("PA"));
    // 8 → 12 bits, MONOCHROME1, window over the full range: back within ~1 %.
    let n = png.image.len() as f64;
    let mean_abs: f64 = dcm
        .image
        .iter()
        .zip(png.image.iter())
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .sum::<f64>()
        / n;
    assert!(mean_abs < 0.01 * 65535.0, "mean |Δ| = {mean_abs}");
}

/// A Part 10 file in explicit VR little endian whose data set is `dataset`.
fn part10(dataset: &[u8]) -> Vec<u8> {
    let uid = b"1.2.840.10008.1.2.1\0";
    let mut out = vec![0; 128];
    out.extend(b"DICM");
    out.extend([0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
    out.extend((8 + uid.len() as u32).to_le_bytes());
    out.extend([0x02, 0x00, 0x10, 0x00, b'U', b'I', uid.len() as u8, 0]);
    out.extend(uid);
    out.extend(dataset);
    out
}

#[test]
fn a_tiny_dicom_declaring_a_huge_element_is_refused_naming_the_tag() {
    // Pixel Data (7FE0,0010) OB declaring 1.5 GB, followed by 4 bytes: dicom-rs
    // would reserve and zero the 1.5 GB before finding out.
    let mut dataset = vec![0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0];
    dataset.extend(1_500_000_000u32.to_le_bytes());
    dataset.extend([0; 4]);
    let bytes = part10(&dataset);
    assert_eq!(bytes.len(), 188);
    let e = decode_bytes(&bytes, "huge-element.dcm", &opts()).unwrap_err();
    assert!(
        matches!(
            &e,
            InputError::DicomLength {
                problem: LengthError::Overrun {
                    tag: Tag(0x7FE0, 0x0010),
                    declared: 1_500_000_000,
                    available: 4,
                    ..
                },
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.code(), "corrupt");
    let message = e.to_string();
    for part in ["huge-element.dcm:", "(7FE0,0010)", "1500000000", "only 4"] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    // The identity lookups refuse it too, rather than allocate.
    assert!(instance_key(&bytes).starts_with("sha256:"));
    assert!(cxr_edge::input::dicom::header_info(&bytes, "huge-element.dcm").is_none());
}

#[test]
fn a_film_whose_pixel_data_length_lies_is_refused_from_a_file() {
    let mut bytes = SynthCr::new(14, 300, 300).to_bytes();
    let header = [0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0];
    let at = bytes.windows(8).rposition(|w| w == header).unwrap();
    let present = (bytes.len() - at - 12) as u64;
    assert_eq!(present, 300 * 300 * 2);
    bytes[at + 8..at + 12].copy_from_slice(&1_600_000_000u32.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lying.dcm");
    std::fs::write(&path, &bytes).unwrap();
    let e = decode_file(&path, &opts()).unwrap_err();
    match &e {
        InputError::DicomLength {
            input,
            problem:
                LengthError::Overrun {
                    tag,
                    at: offset,
                    declared,
                    available,
                    within,
                },
        } => {
            assert_eq!(input, &path.display().to_string());
            assert_eq!(*tag, Tag(0x7FE0, 0x0010));
            assert_eq!(offset.byte, at as u64);
            assert_eq!(
                (*declared, *available, *within),
                (1_600_000_000, present, "file")
            );
        }
        _ => panic!("{e}"),
    }
}

#[test]
fn inputs_over_the_size_limit_are_refused_before_reading() {
    let bytes = SynthCr::new(15, 300, 300).to_bytes();
    let tight = ValidateOptions {
        max_input_bytes: bytes.len() as u64 - 1,
        force: true,
        ..opts()
    };
    let e = decode_bytes(&bytes, "big.dcm", &tight).unwrap_err();
    assert_eq!(e.code(), "input-too-large", "{e}");
    assert!(e.to_string().starts_with("big.dcm: input holds"), "{e}");
    let exact = ValidateOptions {
        max_input_bytes: bytes.len() as u64,
        ..opts()
    };
    decode_bytes(&bytes, "big.dcm", &exact).unwrap();

    // A sparse 64 GiB file: reading it whole would exhaust memory, so only a
    // check of its size before reading lets this test finish.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.dcm");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(64 << 30).unwrap();
    let e = decode_file(&path, &opts()).unwrap_err();
    assert!(
        matches!(e, InputError::InputTooLarge { what: "file", size, max_bytes, .. }
            if size == 64 << 30 && max_bytes == opts().max_input_bytes),
        "{e}"
    );
}

#[test]
fn a_deflated_data_set_is_bounded_once_inflated() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join("nih_00001638_000_normal.dcm");
    let bytes = std::fs::read(&path).unwrap();
    // Over the file's size, under what its pixels inflate to.
    let limit = ValidateOptions {
        max_input_bytes: bytes.len() as u64 * 2,
        ..opts()
    };
    let e = decode_bytes(&bytes, "sample.dcm", &limit).unwrap_err();
    assert!(
        matches!(
            e,
            InputError::InputTooLarge {
                what: "inflated data set",
                ..
            }
        ),
        "{e}"
    );
    decode_bytes(&bytes, "sample.dcm", &opts()).unwrap();
}

/// The films the mutation test starts from: the committed sample (deflated)
/// and small synthetic CRs in each transfer syntax dicom-rs writes.
fn fuzz_seeds() -> &'static [Vec<u8>] {
    static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(make_fuzz_seeds)
}

fn make_fuzz_seeds() -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut seeds = vec![std::fs::read(root.join("nih_00001638_000_normal.dcm")).unwrap()];
    for (n, ts) in [
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.1.99",
    ]
    .into_iter()
    .enumerate()
    {
        let mut cr = SynthCr::new(20 + n as u64, 260, 256);
        cr.transfer_syntax = ts;
        seeds.push(cr.to_bytes());
    }
    seeds
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(Index),
    Byte(Index, u8),
    /// Overwrite four bytes: where a length was, a random length.
    Word(Index, u32),
    Remove(Index, u8),
    Duplicate(Index, u8),
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len().max(1);
    match *m {
        Mutation::Truncate(i) => bytes.truncate(i.index(len)),
        Mutation::Byte(i, b) => {
            if let Some(x) = bytes.get_mut(i.index(len)) {
                *x = b;
            }
        }
        Mutation::Word(i, w) => {
            let at = i.index(len.saturating_sub(3).max(1));
            if let Some(x) = bytes.get_mut(at..at + 4) {
                x.copy_from_slice(&w.to_le_bytes());
            }
        }
        Mutation::Remove(i, n) => {
            let at = i.index(len).min(bytes.len());
            bytes.drain(at..(at + n as usize).min(bytes.len()));
        }
        Mutation::Duplicate(i, n) => {
            let at = i.index(len).min(bytes.len());
            let copy = bytes[at..(at + n as usize).min(bytes.len())].to_vec();
            bytes.splice(at..at, copy);
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Byte(i, b)),
        (any::<Index>(), any::<u32>()).prop_map(|(i, w)| Mutation::Word(i, w)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, n)| Mutation::Remove(i, n)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever is done to a film, decoding answers (Ok or an error naming
    /// the input); a panic fails the test.
    #[test]
    fn mutated_dicom_decodes_or_fails_without_panicking(
        seed in 0..5usize,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = fuzz_seeds()[seed].clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let force = ValidateOptions { force: true, ..opts() };
        if let Err(e) = decode_bytes(&bytes, "mutated.dcm", &force) {
            prop_assert!(e.to_string().starts_with("mutated.dcm:"), "{}", e);
        }
        let _ = instance_key(&bytes);
    }
}

#[test]
fn a_frontal_view_code_and_a_real_contrast_range_pass() {
    let mut pa = SynthCr::new(12, 300, 300);
    pa.view_position = None;
    pa.view_code = Some(("R-10214".into(), "postero-anterior".into()));
    decode_bytes(&pa.to_bytes(), "pa.dcm", &opts()).unwrap_or_else(|e| panic!("{e}"));
    // All-white and all-black 8-bit exports have no contrast; one grey step of
    // contrast over a tenth of the image is enough to be read.
    for (name, grey) in [("white.png", 255u8), ("black.png", 0)] {
        let img = image::GrayImage::from_pixel(300, 300, image::Luma([grey]));
        let mut bytes = Vec::new();
        img.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        let e = decode_bytes(&bytes, name, &opts()).unwrap_err();
        assert_eq!(e.code(), "uniform-image", "{e}");
        assert!(e.to_string().starts_with(name), "{e}");
    }
    let faint = image::GrayImage::from_fn(300, 300, |_, y| {
        image::Luma([if y < 30 { 101 } else { 100 }])
    });
    let mut bytes = Vec::new();
    faint
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .unwrap();
    decode_bytes(&bytes, "faint.png", &opts()).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_file_over_the_cap_is_refused_from_its_size_once_and_the_others_still_come() {
    let dir = tempfile::tempdir().unwrap();
    // A sparse 3 GiB file: refused from its size, never read (the test would
    // need 3 GiB of memory if it were).
    let big = std::fs::File::create(dir.path().join("a-huge.dcm")).unwrap();
    big.set_len(3 << 30).unwrap();
    std::fs::write(dir.path().join("b.png"), png16(300, 300)).unwrap();
    let mut src = FolderSource::new(dir.path(), Duration::ZERO).with_max_bytes(1 << 20);
    let got = src.drain();
    assert_eq!(got.len(), 1, "the error stops one drain");
    let e = got[0].as_ref().unwrap_err();
    assert_eq!(e.code(), "input-too-large", "{e}");
    assert!(
        e.to_string().contains("a-huge.dcm") && e.to_string().contains("3221225472"),
        "{e}"
    );
    // The next drain yields the good file; the big one is not tried again.
    let next: Vec<_> = src.drain().into_iter().map(Result::unwrap).collect();
    assert_eq!(next.len(), 1);
    assert!(next[0].origin.ends_with("b.png"));
    assert!(src.drain().is_empty());
}
