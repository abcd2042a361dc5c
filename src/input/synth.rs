//! Build realistic CR/DX DICOM files in memory: 12 bits stored in 16, MONOCHROME1
//! or MONOCHROME2, pixel spacing, window, identity attributes, as real CR units
//! write them (modelled on the IU X-ray DICOM headers). Used by the tests, the
//! `make_sample_dicom` example and the benchmark, so no test needs a DICOM file
//! from outside the repository.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use super::dicom::text;
use crate::scp::CR_IMAGE_STORAGE;

/// Explicit VR Little Endian.
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Deflated Explicit VR Little Endian.
pub const DEFLATED_EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1.99";

/// A synthetic CR instance. Fields are public so tests can make any variant
/// (a CT, a lateral, no pixel data, a huge claimed size).
#[derive(Debug, Clone)]
pub struct SynthCr {
    pub rows: u16,
    pub columns: u16,
    pub bits_stored: u16,
    pub monochrome1: bool,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub patient_id: String,
    pub patient_name: String,
    pub modality: String,
    pub body_part: Option<String>,
    pub view_position: Option<String>,
    /// View Code Sequence item (code value, code meaning), as DX units write
    /// the view: SNOMED `R-10214` "postero-anterior", `R-10232`/`R-102CD` lateral.
    pub view_code: Option<(String, String)>,
    pub pixel_spacing_mm: f64,
    /// Stored values, `rows × columns`, row-major; `None` writes no Pixel Data.
    pub pixels: Option<Vec<u16>>,
    /// [`EXPLICIT_VR_LE`] or [`DEFLATED_EXPLICIT_VR_LE`] (whole data set zlib'd).
    pub transfer_syntax: &'static str,
}

impl SynthCr {
    /// A 12-bit MONOCHROME1 PA chest CR of `rows × columns` with a synthetic
    /// chest-like picture; `n` makes the UIDs unique (`2.25.<n>…`).
    pub fn new(n: u64, rows: u16, columns: u16) -> SynthCr {
        SynthCr {
            rows,
            columns,
            bits_stored: 12,
            monochrome1: true,
            sop_class_uid: CR_IMAGE_STORAGE.to_string(),
            sop_instance_uid: format!("2.25.{}", 1_000_000 + n * 3),
            study_instance_uid: format!("2.25.{}", 1_000_001 + n * 3),
            series_instance_uid: format!("2.25.{}", 1_000_002 + n * 3),
            patient_id: format!("SYN{n:05}"),
            patient_name: format!("SYNTHETIC^{n}"),
            modality: "CR".into(),
            body_part: Some("CHEST".into()),
            view_position: Some("PA".into()),
            view_code: None,
            pixel_spacing_mm: 0.15 * 2320.0 / rows.max(1) as f64,
            pixels: Some(chest_pattern(rows, columns, 12, true, n)),
            transfer_syntax: EXPLICIT_VR_LE,
        }
    }

    /// Stored values from a MONOCHROME2 8-bit picture (white = dense): widened to
    /// `bits_stored` and inverted when MONOCHROME1, as a CR unit would store it.
    pub fn with_grey8(mut self, width: u16, height: u16, grey: &[u8]) -> SynthCr {
        let max = (1u32 << self.bits_stored) - 1;
        self.columns = width;
        self.rows = height;
        self.pixels = Some(
            grey.iter()
                .map(|&g| {
                    let v = g as u32 * max / 255;
                    (if self.monochrome1 { max - v } else { v }) as u16
                })
                .collect(),
        );
        self
    }

    /// The DICOM Part 10 file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut obj = InMemDicomObject::new_empty();
        self.put_identity(&mut obj);
        self.put_image(&mut obj);
        self.put_view_code(&mut obj);
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(self.sop_class_uid.as_str())
            .media_storage_sop_instance_uid(self.sop_instance_uid.as_str())
            .transfer_syntax(self.transfer_syntax)
            .build()
            .expect("all required meta attributes are set");
        let mut out = Vec::new();
        obj.with_exact_meta(meta)
            .write_all(&mut out)
            .expect("writing DICOM to memory cannot fail");
        debug_assert!(text(
            &dicom_object::OpenFileOptions::new()
                .from_reader(&out[128..])
                .expect("round trip"),
            tags::SOP_INSTANCE_UID
        )
        .is_some());
        out
    }

    /// Patient, study, series and instance attributes, as a CR unit writes them.
    fn put_identity(&self, obj: &mut InMemDicomObject) {
        let mut put = |tag, vr, value: PrimitiveValue| {
            obj.put(DataElement::new(tag, vr, value));
        };
        put(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100".into());
        put(
            tags::SOP_CLASS_UID,
            VR::UI,
            self.sop_class_uid.as_str().into(),
        );
        put(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            self.sop_instance_uid.as_str().into(),
        );
        put(tags::STUDY_DATE, VR::DA, "20110328".into());
        put(tags::STUDY_TIME, VR::TM, "090650".into());
        put(tags::ACCESSION_NUMBER, VR::SH, "".into());
        put(tags::MODALITY, VR::CS, self.modality.as_str().into());
        put(tags::MANUFACTURER, VR::LO, "cxr-edge synthetic".into());
        put(
            tags::PATIENT_NAME,
            VR::PN,
            self.patient_name.as_str().into(),
        );
        put(tags::PATIENT_ID, VR::LO, self.patient_id.as_str().into());
        put(tags::PATIENT_SEX, VR::CS, "O".into());
        if let Some(b) = &self.body_part {
            put(tags::BODY_PART_EXAMINED, VR::CS, b.as_str().into());
        }
        if let Some(v) = &self.view_position {
            put(tags::VIEW_POSITION, VR::CS, v.as_str().into());
        }
        put(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            self.study_instance_uid.as_str().into(),
        );
        put(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            self.series_instance_uid.as_str().into(),
        );
        put(tags::STUDY_ID, VR::SH, "1".into());
        put(tags::SERIES_NUMBER, VR::IS, "1".into());
        put(tags::INSTANCE_NUMBER, VR::IS, "1".into());
    }

    /// The Image Pixel module, the window and the rescale, and the pixels
    /// themselves where there are any.
    fn put_image(&self, obj: &mut InMemDicomObject) {
        let mut put = |tag, vr, value: PrimitiveValue| {
            obj.put(DataElement::new(tag, vr, value));
        };
        put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
        let photometric = if self.monochrome1 {
            "MONOCHROME1"
        } else {
            "MONOCHROME2"
        };
        put(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric.into());
        put(tags::ROWS, VR::US, PrimitiveValue::from(self.rows));
        put(tags::COLUMNS, VR::US, PrimitiveValue::from(self.columns));
        let spacing = format!("{:.4}\\{:.4}", self.pixel_spacing_mm, self.pixel_spacing_mm);
        put(tags::PIXEL_SPACING, VR::DS, spacing.as_str().into());
        put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
        put(
            tags::BITS_STORED,
            VR::US,
            PrimitiveValue::from(self.bits_stored),
        );
        put(
            tags::HIGH_BIT,
            VR::US,
            PrimitiveValue::from(self.bits_stored - 1),
        );
        put(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(0u16),
        );
        let max = (1u32 << self.bits_stored) - 1;
        put(
            tags::WINDOW_CENTER,
            VR::DS,
            format!("{}", max / 2 + 1).as_str().into(),
        );
        put(
            tags::WINDOW_WIDTH,
            VR::DS,
            format!("{}", max + 1).as_str().into(),
        );
        put(tags::RESCALE_INTERCEPT, VR::DS, "0".into());
        put(tags::RESCALE_SLOPE, VR::DS, "1".into());
        put(tags::RESCALE_TYPE, VR::LO, "US".into());
        if let Some(p) = &self.pixels {
            put(
                tags::PIXEL_DATA,
                VR::OW,
                PrimitiveValue::U16(p.as_slice().into()),
            );
        }
    }

    /// The View Code Sequence, where the instance has one.
    fn put_view_code(&self, obj: &mut InMemDicomObject) {
        if let Some((value, meaning)) = &self.view_code {
            let item = InMemDicomObject::from_element_iter([
                DataElement::new(
                    tags::CODE_VALUE,
                    VR::SH,
                    PrimitiveValue::from(value.as_str()),
                ),
                DataElement::new(
                    tags::CODING_SCHEME_DESIGNATOR,
                    VR::SH,
                    PrimitiveValue::from("SRT"),
                ),
                DataElement::new(
                    tags::CODE_MEANING,
                    VR::LO,
                    PrimitiveValue::from(meaning.as_str()),
                ),
            ]);
            obj.put(DataElement::new(
                tags::VIEW_CODE_SEQUENCE,
                VR::SQ,
                dicom_core::value::DataSetSequence::from(vec![item]),
            ));
        }
    }
}

/// A smooth chest-like picture in stored values: bright mediastinum and
/// diaphragm, two darker lung fields, a seed-dependent texture.
pub fn chest_pattern(rows: u16, cols: u16, bits: u16, monochrome1: bool, seed: u64) -> Vec<u16> {
    let max = ((1u32 << bits) - 1) as f64;
    let (h, w) = (rows as f64, cols as f64);
    let mut out = Vec::with_capacity(rows as usize * cols as usize);
    for y in 0..rows as usize {
        for x in 0..cols as usize {
            let (u, v) = (x as f64 / w, y as f64 / h);
            let lung = |cx: f64| {
                let d = ((u - cx) / 0.17).powi(2) + ((v - 0.45) / 0.3).powi(2);
                (1.0 - d).max(0.0)
            };
            let texture = ((x as f64 * 0.21 + seed as f64).sin() * (y as f64 * 0.17).cos()) * 0.03;
            let density =
                (0.8 - 0.55 * (lung(0.3) + lung(0.7)) + texture + 0.2 * v).clamp(0.0, 1.0);
            let stored = if monochrome1 { 1.0 - density } else { density };
            out.push((stored * max).round() as u16);
        }
    }
    out
}
