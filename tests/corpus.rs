//! The report corpus reader on committed IU fixtures (see
//! `tests/fixtures/iu/ATTRIBUTION.md`).

use std::path::Path;

use cxr_edge::corpus::{self, CorpusError, Layout, Split, Study};

use crate::util::fixture;

fn load(rel: &str) -> corpus::Collection {
    corpus::load(fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn folder_reads_every_section_of_a_real_report() {
    let c = load("iu/ecgen-radiology");
    assert_eq!(c.layout, Layout::XmlFolder);
    assert_eq!(c.studies.len(), 35);
    assert!(c.skipped.is_empty(), "{:?}", c.skipped);
    let first = &c.studies[0];
    assert_eq!(first.uid, "CXR1");
    assert_eq!(first.comparison.as_deref(), Some("None."));
    assert_eq!(first.indication.as_deref(), Some("Positive TB test"));
    assert!(first
        .findings
        .as_deref()
        .unwrap()
        .starts_with("The cardiac silhouette and mediastinum size"));
    assert_eq!(first.impression.as_deref(), Some("Normal chest x-XXXX."));
    assert_eq!(first.mesh_major, ["normal"]);
    let ids: Vec<_> = first.images.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"]);
    assert!(first.images.iter().all(|i| i.path.is_none()));

    let cxr10 = c.studies.iter().find(|s| s.uid == "CXR10").unwrap();
    assert_eq!(
        cxr10.mesh_major,
        ["Calcified Granuloma/lung/upper lobe/right"]
    );
    assert_eq!(cxr10.mesh_automatic, ["calcified granuloma"]);
    // Sorted numerically, not by file name.
    let numbers: Vec<_> = c.studies.iter().map(|s| s.number().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
}

#[test]
fn empty_sections_are_none_and_entities_are_decoded() {
    let c = load("iu/ecgen-radiology");
    let get = |uid: &str| c.studies.iter().find(|s| s.uid == uid).unwrap();
    // 1137.xml has `<AbstractText Label="FINDINGS"/>` and an empty IMPRESSION.
    assert_eq!(get("CXR1137").findings, None);
    assert_eq!(get("CXR1137").impression, None);
    // 1068.xml has no parentImage at all.
    assert!(get("CXR1068").images.is_empty());
    assert_eq!(get("CXR1000").images.len(), 3);
    let with_entities = c
        .studies
        .iter()
        .flat_map(all_text)
        .filter(|t| t.contains('&') || t.contains('>') || t.contains('<'))
        .count();
    assert!(with_entities > 0, "&amp;/&gt; should decode to & and >");
    assert!(c
        .studies
        .iter()
        .flat_map(all_text)
        .all(|t| !t.contains("&amp;")));
}

fn all_text(s: &Study) -> Vec<&str> {
    [&s.comparison, &s.indication, &s.findings, &s.impression]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect()
}

#[test]
fn tgz_gives_the_same_studies_as_the_folder() {
    let folder = load("iu/ecgen-radiology");
    let tgz = load("iu/NLMCXR_reports.tgz");
    assert_eq!(tgz.layout, Layout::Tgz);
    assert_eq!(folder.studies, tgz.studies);
}

#[test]
fn kaggle_csv_gives_the_same_studies_up_to_its_known_losses() {
    let folder = load("iu/ecgen-radiology");
    let csv = load("iu/kaggle");
    assert_eq!(csv.layout, Layout::KaggleCsv);
    assert_eq!(csv.studies.len(), folder.studies.len());
    for (x, k) in folder.studies.iter().zip(&csv.studies) {
        assert_eq!(x.uid, k.uid);
        assert_eq!(
            (&x.comparison, &x.indication, &x.findings, &x.impression),
            (&k.comparison, &k.indication, &k.findings, &k.impression),
            "{}",
            x.uid
        );
        assert_eq!(x.mesh_major, k.mesh_major, "{}", x.uid);
        // The CSV has no automatic MeSH terms.
        assert!(k.mesh_automatic.is_empty());
        assert_eq!(x.images.len(), k.images.len(), "{}", x.uid);
        if x.uid != "CXR1" {
            assert_eq!(x.images, k.images, "{}", x.uid);
        }
    }
    // The Kaggle file names drop CXR1's `_1` series infix.
    assert_eq!(csv.studies[0].images[0].id, "CXR1_IM-0001-3001");
    // Pointing at the reports CSV itself works too.
    assert_eq!(load("iu/kaggle/indiana_reports.csv").studies, csv.studies);
}

#[test]
fn bad_files_are_skipped_with_their_name_and_problem() {
    let c = load("iu/bad");
    let uids: Vec<_> = c.studies.iter().map(|s| s.uid.as_str()).collect();
    assert_eq!(uids, ["CXR1", "CXR3"]);
    let reason = |file: &str| {
        let s = c
            .skipped
            .iter()
            .find(|s| s.source.ends_with(file))
            .unwrap_or_else(|| panic!("{file} not in {:?}", c.skipped));
        s.reason.clone()
    };
    assert_eq!(c.skipped.len(), 4, "{:?}", c.skipped);
    assert_eq!(reason("empty.xml"), "empty file");
    assert!(reason("truncated.xml").starts_with("truncated"));
    assert!(reason("mismatched.xml").contains("Abstrakt"));
    assert!(reason("not-a-report.xml").contains("uId"));
}

#[test]
fn truncated_archive_keeps_what_was_read_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("iu/NLMCXR_reports.tgz")).unwrap();
    let cut = dir.path().join("cut.tgz");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let c = corpus::load(&cut).unwrap();
    assert!(
        !c.studies.is_empty() && c.studies.len() < 35,
        "{}",
        c.studies.len()
    );
    let last = c.skipped.last().expect("the cut is reported");
    assert!(last.source.ends_with("cut.tgz"), "{last:?}");
}

#[test]
fn garbage_archive_and_empty_folder_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = corpus::load(dir.path()).unwrap_err();
    assert!(matches!(err, CorpusError::NoReports { .. }), "{err}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));

    let junk = dir.path().join("junk.tgz");
    std::fs::write(&junk, b"this is not gzip").unwrap();
    let err = corpus::load(&junk).unwrap_err();
    assert!(err.to_string().contains("junk.tgz"), "{err}");

    let only_bad = dir.path().join("only-bad");
    std::fs::create_dir(&only_bad).unwrap();
    std::fs::write(only_bad.join("empty.xml"), b"").unwrap();
    let err = corpus::load(&only_bad).unwrap_err();
    assert!(err.to_string().contains("empty.xml: empty file"), "{err}");

    let missing = corpus::load(dir.path().join("nope")).unwrap_err();
    assert!(matches!(missing, CorpusError::Io { .. }), "{missing}");
}

#[test]
fn unknown_csv_header_is_an_error_naming_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("indiana_reports.csv"),
        "id,report\n1,Normal chest.\n",
    )
    .unwrap();
    std::fs::copy(
        fixture("iu/kaggle/indiana_projections.csv"),
        dir.path().join("indiana_projections.csv"),
    )
    .unwrap();
    let err = corpus::load(dir.path()).unwrap_err();
    assert!(matches!(err, CorpusError::UnknownHeader { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("indiana_reports.csv") && msg.contains("id,report"),
        "{msg}"
    );
    assert!(msg.contains("impression"), "{msg}");
}

#[test]
fn images_resolve_when_nlmcxr_png_sits_beside_the_reports() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("ecgen-radiology");
    std::fs::create_dir(&reports).unwrap();
    for f in ["1.xml", "10.xml"] {
        std::fs::copy(fixture("iu/ecgen-radiology").join(f), reports.join(f)).unwrap();
    }
    let png = dir.path().join("NLMCXR_png");
    std::fs::create_dir(&png).unwrap();
    std::fs::write(png.join("CXR1_1_IM-0001-3001.png"), b"").unwrap();
    // Loading the parent folder finds `ecgen-radiology/` inside it.
    let c = corpus::load(dir.path()).unwrap();
    let imgs = &c.studies[0].images;
    assert_eq!(
        imgs[0].path.as_deref(),
        Some(png.join("CXR1_1_IM-0001-3001.png").as_path())
    );
    assert_eq!(imgs[1].path, None, "absent file stays unresolved");
}

#[test]
fn split_is_stable_by_study_and_round_trips() {
    // Pinned: a change in the hash would silently reshuffle every experiment.
    let val: Vec<_> = (1..=40)
        .map(|n| format!("CXR{n}"))
        .filter(|u| corpus::split_of(u, 10) == Split::Val)
        .collect();
    assert_eq!(val, ["CXR14", "CXR18", "CXR20", "CXR27", "CXR32", "CXR37"]);
    assert_eq!(corpus::split_of("CXR1", 0), Split::Train);
    assert_eq!(corpus::split_of("CXR1", 100), Split::Val);
    let share = (0..2000)
        .filter(|n| corpus::split_of(&format!("CXR{n}"), 20) == Split::Val)
        .count();
    assert!(
        (300..500).contains(&share),
        "{share} of 2000 in a 20% split"
    );

    let c = load("iu/ecgen-radiology");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("split.json");
    let written = corpus::write_split(&c, 20, &path).unwrap();
    assert_eq!(written.train.len() + written.val.len(), 35);
    assert_eq!(corpus::read_split(&path).unwrap(), written);
    let (train, valid) = c.split(20);
    assert_eq!(valid.len(), written.val.len());
    assert!(train.iter().all(|s| !written.val.contains(&s.uid)));
    assert!(corpus::read_split(Path::new("/nonexistent/split.json")).is_err());
}

#[test]
fn stats_are_identical_for_folder_tgz_and_csv() {
    let folder = corpus::CorpusStats::of(&load("iu/ecgen-radiology"), 5);
    let tgz = corpus::CorpusStats::of(&load("iu/NLMCXR_reports.tgz"), 5);
    let csv = corpus::CorpusStats::of(&load("iu/kaggle"), 5);
    let body = |s: &corpus::CorpusStats| s.render().lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&folder), body(&tgz));
    assert_eq!(body(&folder), body(&csv));
    assert_eq!(folder.per_image, tgz.per_image);
}

#[test]
fn stats_count_per_report_and_per_image() {
    let c = load("iu/ecgen-radiology");
    let s = corpus::CorpusStats::of(&c, 3);
    assert_eq!(s.studies, 35);
    assert_eq!(s.images, 66);
    assert_eq!(s.per_report.total, 35);
    assert_eq!(s.per_image.total, 66);
    let no_findings: Vec<&Study> = c.studies.iter().filter(|s| s.findings.is_none()).collect();
    assert_eq!(s.per_report.no_findings, no_findings.len());
    assert_eq!(
        s.per_image.no_findings,
        no_findings.iter().map(|s| s.images.len()).sum::<usize>()
    );
    let g = s.per_image;
    assert_eq!(
        g.findings_or_impression_missing,
        g.no_findings + g.no_impression - g.no_findings_nor_impression
    );
    let imgs: usize = s.images_per_study.iter().map(|(k, n)| k * n).sum();
    assert_eq!(imgs, 66);
    // Six fixture reports (1009, 1018, 1032, 1036, 1820, 5) say exactly this.
    assert_eq!(
        s.top_impressions[0],
        ("No acute cardiopulmonary abnormality.".to_string(), 6)
    );
    assert!(s.vocab.raw > s.vocab.seed, "{:?}", s.vocab);
    assert!(s.report_tokens.max >= s.findings_tokens.max);
}
