//! Hand-built files in each transfer syntax: a valid one passes (and dicom-rs
//! reads it, so the builders are right), and each way of declaring more bytes
//! than are present is refused with the tag and the numbers.

use std::io::Write;

use dicom_core::{Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::file::ReadPreamble;
use dicom_object::OpenFileOptions;

use super::{check, short_length, LengthError, Offset, MAX_DEPTH};

const LIMIT: u64 = 1 << 20;
const HUGE: u32 = 1_500_000_000;

#[derive(Clone, Copy, Debug)]
enum Enc {
    ExplicitLe,
    ExplicitBe,
    ImplicitLe,
}

const ALL: [Enc; 3] = [Enc::ExplicitLe, Enc::ExplicitBe, Enc::ImplicitLe];

impl Enc {
    fn uid(self) -> &'static str {
        match self {
            Enc::ExplicitLe => uids::EXPLICIT_VR_LITTLE_ENDIAN,
            Enc::ExplicitBe => super::EXPLICIT_VR_BIG_ENDIAN,
            Enc::ImplicitLe => uids::IMPLICIT_VR_LITTLE_ENDIAN,
        }
    }

    fn u16(self, v: u16) -> [u8; 2] {
        match self {
            Enc::ExplicitBe => v.to_be_bytes(),
            _ => v.to_le_bytes(),
        }
    }

    fn u32(self, v: u32) -> [u8; 4] {
        match self {
            Enc::ExplicitBe => v.to_be_bytes(),
            _ => v.to_le_bytes(),
        }
    }

    fn tag(self, tag: Tag) -> Vec<u8> {
        [self.u16(tag.0), self.u16(tag.1)].concat()
    }

    /// An element header declaring `len` bytes (items and delimiters have no VR).
    fn header(self, tag: Tag, vr: VR, len: u32) -> Vec<u8> {
        let mut out = self.tag(tag);
        match self {
            Enc::ImplicitLe => out.extend(self.u32(len)),
            _ if tag.0 == 0xFFFE => out.extend(self.u32(len)),
            _ if short_length(vr) => {
                out.extend(vr.to_bytes());
                out.extend(self.u16(len as u16));
            }
            _ => {
                out.extend(vr.to_bytes());
                out.extend([0, 0]);
                out.extend(self.u32(len));
            }
        }
        out
    }

    fn element(self, tag: Tag, vr: VR, value: &[u8]) -> Vec<u8> {
        [self.header(tag, vr, value.len() as u32), value.to_vec()].concat()
    }

    fn item(self, len: u32) -> Vec<u8> {
        [self.tag(super::ITEM), self.u32(len).to_vec()].concat()
    }

    fn delimiter(self, tag: Tag) -> Vec<u8> {
        [self.tag(tag), self.u32(0).to_vec()].concat()
    }

    /// Patient ID, a defined-length sequence with one defined-length item, an
    /// undefined-length sequence with one undefined-length item, Pixel Data.
    fn valid_dataset(self) -> Vec<u8> {
        let nested = self.element(tags::CODE_VALUE, VR::SH, b"T-D3000 ");
        let mut out = self.element(tags::PATIENT_ID, VR::LO, b"SYN00001");
        out.extend(self.header(
            tags::ANATOMIC_REGION_SEQUENCE,
            VR::SQ,
            8 + nested.len() as u32,
        ));
        out.extend(self.item(nested.len() as u32));
        out.extend(&nested);
        out.extend(self.header(tags::REQUEST_ATTRIBUTES_SEQUENCE, VR::SQ, u32::MAX));
        out.extend(self.item(u32::MAX));
        out.extend(&nested);
        out.extend(self.delimiter(super::ITEM_END));
        out.extend(self.delimiter(super::SEQUENCE_END));
        out.extend(self.element(tags::PIXEL_DATA, VR::OW, &[7; 16]));
        out
    }
}

/// Preamble, `DICM` and a file meta group naming `uid`, then `dataset`.
fn part10(uid: &str, dataset: &[u8]) -> Vec<u8> {
    let mut uid = uid.as_bytes().to_vec();
    if uid.len() % 2 == 1 {
        uid.push(0);
    }
    let le = Enc::ExplicitLe;
    let group = le.element(tags::TRANSFER_SYNTAX_UID, VR::UI, &uid);
    let mut out = vec![0; 128];
    out.extend(b"DICM");
    out.extend(le.element(
        Tag(0x0002, 0x0000),
        VR::UL,
        &(group.len() as u32).to_le_bytes(),
    ));
    out.extend(group);
    out.extend(dataset);
    out
}

fn dicom_rs_reads(file: &[u8]) -> bool {
    OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(file)
        .is_ok()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

#[test]
fn valid_files_pass_in_every_transfer_syntax() {
    for enc in ALL {
        let file = part10(enc.uid(), &enc.valid_dataset());
        assert!(
            dicom_rs_reads(&file),
            "{enc:?}: the builder makes a file dicom-rs reads"
        );
        assert_eq!(check(&file, LIMIT), Ok(()), "{enc:?}");
    }
    let deflated = part10(
        uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
        &deflate(&Enc::ExplicitLe.valid_dataset()),
    );
    assert!(dicom_rs_reads(&deflated));
    assert_eq!(check(&deflated, LIMIT), Ok(()));
}

#[test]
fn a_huge_element_is_named_with_declared_and_available_bytes() {
    for enc in ALL {
        let mut dataset = enc.element(tags::PATIENT_ID, VR::LO, b"SYN00001");
        let at = dataset.len();
        dataset.extend(enc.header(tags::PIXEL_DATA, VR::OB, HUGE));
        dataset.extend([0; 4]);
        let file = part10(enc.uid(), &dataset);
        let e = check(&file, LIMIT).unwrap_err();
        let start = (file.len() - dataset.len() + at) as u64;
        let header = if matches!(enc, Enc::ImplicitLe) {
            8
        } else {
            12
        };
        assert_eq!(
            e,
            LengthError::Overrun {
                tag: tags::PIXEL_DATA,
                at: Offset {
                    byte: start,
                    inflated: false
                },
                declared: HUGE.into(),
                available: 4,
                within: "file",
            },
            "{enc:?}"
        );
        assert_eq!(file.len() as u64, start + header + 4);
        assert!(e.to_string().contains("(7FE0,0010)"), "{e}");
    }
}

#[test]
fn a_huge_file_meta_element_is_refused() {
    let le = Enc::ExplicitLe;
    let mut file = vec![0; 128];
    file.extend(b"DICM");
    file.extend(le.element(Tag(0x0002, 0x0000), VR::UL, &100u32.to_le_bytes()));
    file.extend(le.header(tags::MEDIA_STORAGE_SOP_CLASS_UID, VR::UN, HUGE));
    file.extend([b'1'; 10]);
    let e = check(&file, LIMIT).unwrap_err();
    assert!(
        matches!(e, LengthError::Overrun { tag, available: 10, .. } if tag == tags::MEDIA_STORAGE_SOP_CLASS_UID),
        "{e}"
    );
    let mut no_group_length = vec![0; 128];
    no_group_length.extend(b"DICM");
    no_group_length.extend(le.element(tags::TRANSFER_SYNTAX_UID, VR::UI, b"1.2.840.10008.1.2\0"));
    assert_eq!(
        check(&no_group_length, LIMIT),
        Err(LengthError::NoMetaGroupLength)
    );
}

#[test]
fn nested_lengths_are_bounded_by_their_item_and_sequence() {
    for enc in ALL {
        // An element inside a defined-length item that declares more than the
        // item holds, though the file holds it.
        let inner = enc.header(tags::CODE_VALUE, VR::SH, 200);
        let mut dataset = enc.header(
            tags::ANATOMIC_REGION_SEQUENCE,
            VR::SQ,
            8 + inner.len() as u32,
        );
        dataset.extend(enc.item(inner.len() as u32));
        dataset.extend(&inner);
        dataset.extend([b' '; 300]);
        let e = check(&part10(enc.uid(), &dataset), LIMIT).unwrap_err();
        assert!(
            matches!(e, LengthError::Overrun { tag, declared: 200, available: 0, within: "item", .. } if tag == tags::CODE_VALUE),
            "{enc:?}: {e}"
        );
        // A huge element inside an undefined-length item of an undefined-length
        // sequence is bounded by the file.
        let mut dataset = enc.header(tags::REQUEST_ATTRIBUTES_SEQUENCE, VR::SQ, u32::MAX);
        dataset.extend(enc.item(u32::MAX));
        dataset.extend(enc.header(tags::CODE_MEANING, VR::UT, HUGE));
        let e = check(&part10(enc.uid(), &dataset), LIMIT).unwrap_err();
        assert!(
            matches!(e, LengthError::Overrun { tag, available: 0, within: "file", .. } if tag == tags::CODE_MEANING),
            "{enc:?}: {e}"
        );
        // A defined-length sequence longer than the file.
        let dataset = enc.header(tags::ANATOMIC_REGION_SEQUENCE, VR::SQ, HUGE);
        let e = check(&part10(enc.uid(), &dataset), LIMIT).unwrap_err();
        assert!(
            matches!(
                e,
                LengthError::Overrun {
                    declared: 1_500_000_000,
                    ..
                }
            ),
            "{e}"
        );
    }
}

#[test]
fn encapsulated_fragments_are_checked() {
    for enc in ALL {
        let mut dataset = enc.header(tags::PIXEL_DATA, VR::OB, u32::MAX);
        dataset.extend(enc.item(0));
        dataset.extend(enc.item(4));
        dataset.extend([1; 4]);
        let good = [dataset.clone(), enc.delimiter(super::SEQUENCE_END)].concat();
        let file = part10(uids::JPEG_BASELINE8_BIT, &good);
        if matches!(enc, Enc::ExplicitLe) {
            assert!(dicom_rs_reads(&file));
            assert_eq!(check(&file, LIMIT), Ok(()));
        }
        dataset.extend(enc.item(HUGE));
        dataset.extend([1; 8]);
        let file = part10(enc.uid(), &dataset);
        let e = check(&file, LIMIT).unwrap_err();
        assert!(
            matches!(
                e,
                LengthError::Overrun {
                    tag: Tag(0xFFFE, 0xE000),
                    available: 8,
                    ..
                }
            ),
            "{enc:?}: {e}"
        );
    }
}

#[test]
fn implicit_vr_sequences_are_found_through_the_dictionary() {
    // (0008,1140) is SQ in the dictionary: its item's huge element is caught
    // only if the walk enters the defined-length sequence as dicom-rs does.
    let enc = Enc::ImplicitLe;
    let inner = enc.header(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, HUGE);
    let mut dataset = enc.header(
        tags::REFERENCED_IMAGE_SEQUENCE,
        VR::SQ,
        8 + inner.len() as u32,
    );
    dataset.extend(enc.item(inner.len() as u32));
    dataset.extend(&inner);
    let e = check(&part10(enc.uid(), &dataset), LIMIT).unwrap_err();
    assert!(
        matches!(e, LengthError::Overrun { tag, within: "item", .. } if tag == tags::REFERENCED_SOP_INSTANCE_UID),
        "{e}"
    );
}

#[test]
fn deflated_data_sets_are_bounded_and_walked() {
    let le = Enc::ExplicitLe;
    let mut dataset = le.element(tags::PATIENT_ID, VR::LO, b"SYN00001");
    dataset.extend(le.header(tags::PIXEL_DATA, VR::OW, 1 << 16));
    dataset.extend(vec![0; 1 << 16]);
    let file = part10(uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, &deflate(&dataset));
    assert_eq!(check(&file, 1 << 17), Ok(()));
    // 64 KiB of zeros deflate to a few hundred bytes: the limit, not the file
    // size, is what bounds it.
    assert!(file.len() < 1000, "{}", file.len());
    assert_eq!(
        check(&file, 1 << 15),
        Err(LengthError::InflatesPastLimit { max: 1 << 15 })
    );

    let mut dataset = le.element(tags::PATIENT_ID, VR::LO, b"SYN00001");
    dataset.extend(le.header(tags::PIXEL_DATA, VR::OW, HUGE));
    let file = part10(uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, &deflate(&dataset));
    let e = check(&file, LIMIT).unwrap_err();
    assert!(
        matches!(
            e,
            LengthError::Overrun {
                at: Offset {
                    byte: 16,
                    inflated: true
                },
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("of the inflated data set"), "{e}");

    // BTYPE 11 is reserved: not a deflate stream.
    let corrupt = part10(uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, &[0xFF; 64]);
    assert!(matches!(
        check(&corrupt, LIMIT),
        Err(LengthError::Inflate { .. })
    ));
}

#[test]
fn nesting_is_bounded() {
    let nest = |levels: usize| {
        let le = Enc::ExplicitLe;
        let mut dataset = Vec::new();
        for _ in 0..levels {
            dataset.extend(le.header(tags::REQUEST_ATTRIBUTES_SEQUENCE, VR::SQ, u32::MAX));
            dataset.extend(le.item(u32::MAX));
        }
        for _ in 0..levels {
            dataset.extend(le.delimiter(super::ITEM_END));
            dataset.extend(le.delimiter(super::SEQUENCE_END));
        }
        part10(le.uid(), &dataset)
    };
    assert_eq!(check(&nest(MAX_DEPTH), LIMIT), Ok(()));
    assert!(dicom_rs_reads(&nest(MAX_DEPTH)));
    let e = check(&nest(MAX_DEPTH + 1), LIMIT).unwrap_err();
    assert!(
        matches!(e, LengthError::TooDeep { max: MAX_DEPTH, .. }),
        "{e}"
    );
}

#[test]
fn every_truncation_is_an_answer_and_a_cut_value_is_an_overrun() {
    for enc in ALL {
        let file = part10(enc.uid(), &enc.valid_dataset());
        for n in 0..file.len() {
            let _ = check(&file[..n], LIMIT);
        }
        // Cut inside the Pixel Data value: 16 declared, 10 present.
        let e = check(&file[..file.len() - 6], LIMIT).unwrap_err();
        assert!(
            matches!(e, LengthError::Overrun { tag, declared: 16, available: 10, .. } if tag == tags::PIXEL_DATA),
            "{enc:?}: {e}"
        );
    }
}

#[test]
fn unknown_transfer_syntaxes_are_left_to_dicom_rs() {
    let file = part10("1.2.3.4", &[0xFF; 64]);
    assert_eq!(check(&file, LIMIT), Ok(()));
    assert!(!dicom_rs_reads(&file));
}
