//! The pixel-based frontal-chest check: fitted by `cxr-edge view-check`, carried
//! in the bundle, applied by `report` (and `serve`, through the same reporter).

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::util::{fixture, own_binary};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped default model, with the check fitted on the real NIH films.
fn default_model() -> PathBuf {
    root().join("models/cxr-attn128-v2")
}

fn cxr(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = own_binary(env!("CARGO_BIN_EXE_cxr-edge"));
    cmd.env_remove("CXR_MODEL");
    cmd.args(args);
    cmd.output().expect("run cxr-edge")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn the_default_model_refuses_a_ct_slice_from_its_pixels_and_reads_the_samples() {
    // A PNG has no header to say what it is: only the pixels can.
    let ct = fixture("not-frontal/vqarad_synpic42951.png");
    let o = cxr(&[&"report", &ct, &"--model", &default_model()]);
    let (_, err) = text(&o);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("vqarad_synpic42951.png"), "{err}");
    assert!(
        err.contains("does not look like a frontal chest radiograph"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let forced = cxr(&[&"report", &ct, &"--model", &default_model(), &"--force"]);
    assert!(forced.status.success(), "{}", text(&forced).1);

    // The committed samples are frontal films: every one is read.
    let samples: Vec<PathBuf> = std::fs::read_dir(root().join("samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("png" | "dcm")))
        .collect();
    assert!(samples.len() >= 3);
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"report"];
    for s in &samples {
        args.push(s);
    }
    let model = default_model();
    args.extend([&"--model" as &dyn AsRef<std::ffi::OsStr>, &model]);
    let o = cxr(&args);
    assert!(o.status.success(), "{}", text(&o).1);
}

/// A not-frontal layout (`labels.csv` + images) of generated pictures.
fn not_frontal_folder(dir: &Path) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut csv = String::from("image_file,kind,patient_group\n");
    for i in 0..6u32 {
        let img = image::GrayImage::from_fn(300, 300, |x, y| {
            image::Luma([if ((x / (8 + i)) + (y / 16)) % 2 == 0 {
                40
            } else {
                200
            }])
        });
        let name = format!("images/pattern{i}.png");
        img.save(dir.join(&name)).unwrap();
        csv.push_str(&format!("{name},other,group{i}\n"));
    }
    std::fs::write(dir.join("labels.csv"), csv).unwrap();
}

#[test]
fn view_check_fits_writes_and_the_bundle_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    for e in std::fs::read_dir(fixture("bundle/tiny")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), bundle.join(e.file_name())).unwrap();
    }
    let nf = dir.path().join("not-frontal");
    not_frontal_folder(&nf);
    let eval = dir.path().join("eval.json");
    let o = cxr(&[
        &"view-check",
        &"--model",
        &bundle,
        &"--nih",
        &fixture("nih"),
        &"--not-frontal",
        &nf,
        &"--write",
        &"--eval-out",
        &eval,
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("threshold") && out.contains("all not frontal"),
        "{out}"
    );
    let eval: serde_json::Value = serde_json::from_slice(&std::fs::read(&eval).unwrap()).unwrap();
    // Fitted on the fixture films of the training split, as the trainer splits.
    let training = cxr_edge::nih::read_labels(&fixture("nih"))
        .unwrap()
        .iter()
        .filter(|i| {
            cxr_edge::nih::Holdout::of_patient(&i.patient, cxr_edge::nih::HELD_OUT_PERCENT)
                == cxr_edge::nih::Holdout::Train
        })
        .count();
    assert!(training > 0);
    assert_eq!(eval["fit_films"], training, "{eval}");
    let measured: u64 = eval["not_frontal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["view_check"]["of"].as_u64().unwrap())
        .sum();
    assert_eq!(
        measured,
        6 + 10,
        "6 patterns and 10 generated images: {eval}"
    );

    // The manifest names the file with its hash, and the device verifies it.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
    let name = manifest["view_check"].as_str().unwrap();
    assert_eq!(name, cxr_edge::view_check::FILE);
    assert!(manifest["files"][name]["sha256"].is_string());
    let info = cxr(&[&"info", &bundle]);
    assert!(info.status.success(), "{}", text(&info).1);
    let check = cxr_edge::view_check::ViewCheck::load(&bundle.join(name)).unwrap();
    assert_eq!(check.dim() % 4, 0);

    // Altering it is caught like any other bundle file.
    let mut bytes = std::fs::read(bundle.join(name)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(bundle.join(name), bytes).unwrap();
    let o = cxr(&[
        &"report",
        &fixture("nih/images/00001280_004.png"),
        &"--force",
        &"--model",
        &bundle,
    ]);
    let (_, err) = text(&o);
    assert!(!o.status.success() && err.contains("sha256"), "{err}");
}

#[test]
fn every_page_of_a_long_result_is_written_by_report_screen() {
    // The shipped model with every threshold at 0 flags all nine findings:
    // more than one page.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for e in std::fs::read_dir(default_model()).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, model.join(p.file_name().unwrap())).unwrap();
    }
    let manifest = model.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    for o in m["observations"].as_array_mut().unwrap() {
        o["threshold"] = serde_json::json!(0.0);
    }
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let png = dir.path().join("screen.png");
    let film = root().join("samples/nih_00001582_023_cardiomegaly_effusion.png");
    let o = cxr(&[&"report", &film, &"--model", &model, &"--screen", &png]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(png.is_file());
    let second = dir.path().join("screen-page2.png");
    assert!(second.is_file(), "no second page");
    let (a, b) = (
        std::fs::read(&png).unwrap(),
        std::fs::read(&second).unwrap(),
    );
    assert_ne!(a, b, "the pages differ");
}
