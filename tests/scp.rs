//! The DICOM receiver against a real peer: dcmtk's `echoscu` and `storescu`
//! (Debian package `dcmtk`, listed in scripts/apt-test.txt) sending to the SCP on
//! 127.0.0.1 with the real durable store behind it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use cxr_edge::input::synth::SynthCr;
use cxr_edge::input::{decode_file, ValidateOptions};
use cxr_edge::scp::{Scp, ScpConfig, ScpHandle};
use cxr_edge::store::{Store, StoreOptions};

pub const AE: &str = "CXR-TEST";

pub struct Peer {
    pub store: Arc<Store>,
    pub handle: ScpHandle,
    _dir: tempfile::TempDir,
    files: PathBuf,
}

fn start(options: StoreOptions) -> Peer {
    start_with(options, ScpConfig::default())
}

/// A receiver with `config`, but our AE title and a free port on 127.0.0.1.
pub fn start_with(options: StoreOptions, config: ScpConfig) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("store"), options).unwrap());
    let config = ScpConfig {
        ae_title: AE.into(),
        bind: "127.0.0.1:0".parse().unwrap(),
        ..config
    };
    let handle = Scp::bind(config, store.clone()).unwrap().spawn().unwrap();
    let files = dir.path().join("send");
    std::fs::create_dir(&files).unwrap();
    Peer {
        store,
        handle,
        _dir: dir,
        files,
    }
}

pub fn tool(name: &str, args: &[&str]) -> Output {
    Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("{name} not runnable ({e}); install the packages in scripts/apt-test.txt")
    })
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Peer {
    /// Where test files to send are written.
    pub fn files_dir(&self) -> &Path {
        &self.files
    }

    pub fn port(&self) -> String {
        self.handle.local_addr().port().to_string()
    }

    /// Write synthetic CR instances `first..first+n` and return their paths.
    pub fn write(&self, first: u64, n: u64) -> Vec<PathBuf> {
        (first..first + n)
            .map(|i| {
                let path = self.files.join(format!("cr{i}.dcm"));
                std::fs::write(&path, SynthCr::new(i, 300, 260).to_bytes()).unwrap();
                path
            })
            .collect()
    }

    pub fn storescu(&self, extra: &[&str], files: &[PathBuf]) -> Output {
        let port = self.port();
        let mut args = vec!["-aec", AE];
        args.extend_from_slice(extra);
        args.extend(["127.0.0.1", port.as_str()]);
        let paths: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
        args.extend(paths);
        tool("storescu", &args)
    }

    pub fn kept(&self) -> BTreeSet<String> {
        self.store.pending().into_iter().map(|p| p.key).collect()
    }
}

pub fn uid(i: u64) -> String {
    SynthCr::new(i, 1, 1).sop_instance_uid
}

fn inbox_count(peer: &Peer) -> usize {
    std::fs::read_dir(peer.store.root().join("inbox"))
        .unwrap()
        .count()
}

#[test]
fn echo_answers_our_ae_title_only() {
    let peer = start(StoreOptions::default());
    let ok = tool("echoscu", &["-aec", AE, "127.0.0.1", &peer.port()]);
    assert!(ok.status.success(), "{}", text(&ok));
    let wrong = tool(
        "echoscu",
        &["-aec", "SOMEONE-ELSE", "127.0.0.1", &peer.port()],
    );
    assert!(!wrong.status.success(), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("Called AE Title Not Recognized"),
        "the standard rejection: {}",
        text(&wrong)
    );
}

fn echo_as(peer: &Peer, calling: &str) -> Output {
    tool(
        "echoscu",
        &["-aet", calling, "-aec", AE, "127.0.0.1", &peer.port()],
    )
}

#[test]
fn only_calling_titles_on_the_allow_list_associate() {
    let config = ScpConfig {
        allowed_calling_ae_titles: vec!["XRAY-1".into(), "XRAY-2".into()],
        ..ScpConfig::default()
    };
    let peer = start_with(StoreOptions::default(), config);
    for ok in ["XRAY-1", "XRAY-2"] {
        let out = echo_as(&peer, ok);
        assert!(out.status.success(), "{ok}: {}", text(&out));
    }
    let out = echo_as(&peer, "INTRUDER");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Calling AE Title Not Recognized"),
        "the standard rejection: {}",
        text(&out)
    );
}

#[test]
fn only_peers_on_the_allow_list_associate() {
    let allowed = |nets: &[&str]| ScpConfig {
        allowed_peers: nets.iter().map(|n| n.parse().unwrap()).collect(),
        ..ScpConfig::default()
    };
    let elsewhere = start_with(
        StoreOptions::default(),
        allowed(&["192.0.2.7", "10.0.0.0/8"]),
    );
    let out = echo_as(&elsewhere, "XRAY-1");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Association Rejected"),
        "{}",
        text(&out)
    );
    let here = start_with(
        StoreOptions::default(),
        allowed(&["10.0.0.0/8", "127.0.0.0/8"]),
    );
    let out = echo_as(&here, "XRAY-1");
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn dx_for_processing_is_refused_at_negotiation() {
    let peer = start(StoreOptions { min_free_bytes: 0 });
    let file = peer.write(600, 1).remove(0);
    let out = tool(
        "dcmodify",
        &[
            "-nb",
            "-m",
            "(0008,0016)=1.2.840.10008.5.1.4.1.1.1.1.1",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "dcmodify: {}", text(&out));
    let out = peer.storescu(&["-v"], std::slice::from_ref(&file));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("No presentation context for: (DP) 1.2.840.10008.5.1.4.1.1.1.1.1"),
        "storescu says why: {}",
        text(&out)
    );
    assert!(peer.kept().is_empty());
}

#[test]
fn every_acknowledged_instance_is_kept_exactly_once() {
    let peer = start(StoreOptions { min_free_bytes: 0 });
    let files = peer.write(100, 3);
    let out = peer.storescu(&[], &files);
    assert!(out.status.success(), "{}", text(&out));
    let expected: BTreeSet<String> = (100..103).map(uid).collect();
    assert_eq!(peer.kept(), expected);
    // Sent again: acknowledged again, kept once.
    let out = peer.storescu(&[], &files);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(peer.kept(), expected);
    assert_eq!(inbox_count(&peer), 3);
    // What was kept is the instance as sent, pixel for pixel.
    let opts = ValidateOptions::default();
    for (i, f) in (100..103).zip(&files) {
        let kept = decode_file(&peer.store.instance_path(&uid(i)).unwrap(), &opts).unwrap();
        let sent = decode_file(f, &opts).unwrap();
        assert_eq!(kept.image, sent.image);
        assert_eq!(kept.info.sop_instance_uid.as_deref(), Some(uid(i).as_str()));
    }
}

/// Transcode `src` to `dst` with a command line tool; panics with its output.
fn transcode(name: &str, args: &[&str], src: &Path, dst: &Path) {
    let mut all: Vec<&str> = args.to_vec();
    all.extend([src.to_str().unwrap(), dst.to_str().unwrap()]);
    let out = tool(name, &all);
    assert!(
        out.status.success() && dst.exists(),
        "{name}: {}",
        text(&out)
    );
}

#[test]
fn compressed_transfer_syntaxes_arrive_pixel_exact() {
    let peer = start(StoreOptions { min_free_bytes: 0 });
    let originals = peer.write(200, 3);
    let cases = [
        // (tool, its args, storescu proposal, expected transfer syntax)
        ("dcmcjpeg", vec![], "-xs", "1.2.840.10008.1.2.4.70"),
        ("dcmcrle", vec![], "-xr", "1.2.840.10008.1.2.5"),
        ("gdcmconv", vec!["--j2k"], "-xv", "1.2.840.10008.1.2.4.90"),
    ];
    let opts = ValidateOptions::default();
    for ((name, args, proposal, ts), (i, original)) in cases.iter().zip((200..).zip(&originals)) {
        let compressed = original.with_extension(format!("{name}.dcm"));
        transcode(name, args, original, &compressed);
        let out = peer.storescu(&[proposal], std::slice::from_ref(&compressed));
        assert!(out.status.success(), "{name}: {}", text(&out));
        let kept = peer
            .store
            .instance_path(&uid(i))
            .unwrap_or_else(|| panic!("{name}: not kept"));
        let bytes = std::fs::read(&kept).unwrap();
        assert!(
            bytes.windows(ts.len()).any(|w| w == ts.as_bytes()),
            "{name}: kept in {ts}"
        );
        let got = decode_file(&kept, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = decode_file(original, &opts).unwrap();
        assert_eq!(got.image, want.image, "{name}: lossless round trip");
    }
}

#[test]
fn jpeg_ls_is_not_negotiated_in_this_build() {
    let peer = start(StoreOptions { min_free_bytes: 0 });
    let original = peer.write(300, 1).remove(0);
    let jls = original.with_extension("jls.dcm");
    transcode("dcmcjpls", &[], &original, &jls);
    let out = peer.storescu(&["-xt", "-R"], std::slice::from_ref(&jls));
    // Only uncompressed was accepted for the context, and storescu cannot
    // decompress JPEG-LS either: nothing is sent, nothing is kept.
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("JPEG-LS"),
        "storescu says why: {}",
        text(&out)
    );
    assert!(peer.kept().is_empty());
}

#[test]
fn twenty_studies_over_parallel_associations() {
    let peer = start(StoreOptions { min_free_bytes: 0 });
    let batches: Vec<Vec<PathBuf>> = (0..4).map(|b| peer.write(400 + b * 5, 5)).collect();
    std::thread::scope(|s| {
        let runs: Vec<_> = batches
            .iter()
            .map(|files| s.spawn(|| peer.storescu(&[], files)))
            .collect();
        for r in runs {
            let out = r.join().unwrap();
            assert!(out.status.success(), "{}", text(&out));
        }
    });
    let expected: BTreeSet<String> = (400..420).map(uid).collect();
    assert_eq!(peer.kept(), expected);
    assert_eq!(inbox_count(&peer), 20);
}

#[test]
fn a_store_that_cannot_keep_answers_out_of_resources() {
    // More free space demanded than any disk has: the store refuses everything.
    let peer = start(StoreOptions {
        min_free_bytes: u64::MAX / 2,
    });
    let files = peer.write(500, 2);
    let out = peer.storescu(&["-v"], &files);
    let said = text(&out).to_lowercase().replace(' ', "");
    assert!(
        said.contains("a700") || said.contains("outofresources"),
        "{}",
        text(&out)
    );
    assert!(peer.kept().is_empty());
    assert_eq!(inbox_count(&peer), 0);
}

/// The shipped board configurations parse, bind one address (not every
/// interface) and carry an allow-list.
#[test]
fn board_configs_bind_the_link_and_allow_one_sender() {
    let boards = Path::new(env!("CARGO_MANIFEST_DIR")).join("board");
    let mut seen = 0;
    for entry in std::fs::read_dir(boards).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let config = cxr_edge::serve::ServeConfig::load(&path).unwrap();
        let dicom = config.dicom.expect("a [dicom] section");
        assert!(!dicom.bind.ip().is_unspecified(), "{}", path.display());
        assert!(
            !dicom.allowed_calling_ae_titles.is_empty(),
            "{}",
            path.display()
        );
        assert!(!dicom.allowed_peers.is_empty(), "{}", path.display());
        seen += 1;
    }
    assert_eq!(seen, 4);
}
