//! The screen and the display sinks: golden PNG screens (pixel-exact, rewritten
//! only with `UPDATE_GOLDEN=1`, after which each changed PNG is looked at before
//! it is committed), the text each page shows, `MockDisplay` widget patterns, the
//! real `mipidsi` driver decoded from its SPI stream, and the framebuffer target
//! over a `Vec` and a mapped file.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use cxr_edge::preprocess::{to_gray16, Gray16};
use cxr_edge::report::{Finding, Heatmap, Report, StudyInfo, Timings};
use cxr_edge::screen::{self, Canvas, Outbox, Screen, ScreenState, Status};
use cxr_edge::sink::{
    self, Button, ButtonSource, FbFormat, FbTarget, FramebufferSink, Layout, PngSink, Sink,
};
use cxr_edge::Observation;
use embedded_graphics::mock_display::MockDisplay;
use embedded_graphics::pixelcolor::{BinaryColor, Rgb565, Rgb888};
use embedded_graphics::prelude::*;

fn radiograph() -> Gray16 {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/screen/cxr_00000211_018.png");
    let img = image::open(path).expect("screen fixture");
    to_gray16(&img)
}

fn finding(observation: Observation, score: f32) -> Finding {
    Finding {
        observation,
        score,
        threshold: 0.5,
        flagged: score >= 0.5,
        probability: None,
    }
}

/// A smooth blob of attention centred at `(cx, cy)` on a 16×16 grid.
fn heatmap(cx: f32, cy: f32) -> Heatmap {
    let side = 16;
    let values = (0..side * side)
        .map(|i| {
            let (x, y) = ((i % side) as f32, (i / side) as f32);
            let d2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
            1.0 / (1.0 + d2 / 6.0)
        })
        .collect();
    Heatmap { side, values }
}

fn report(impression: &str, findings: Vec<Finding>, heat: Option<Heatmap>) -> Report {
    Report {
        study: StudyInfo {
            instance_key: "1.2.826.0.1.3680043.8.498.10".into(),
            accession_number: Some("A24-118734".into()),
            modality: Some("DX".into()),
            source: "dicom://XRAY1".into(),
            ..Default::default()
        },
        impression: impression.into(),
        findings,
        heatmap: heat,
        timings: Timings {
            total_ms: 1843.0,
            ..Default::default()
        },
        model_id: "cxr-gru-v3".into(),
        bundle_hash: "0".repeat(64),
        generated_at: "2026-11-29T19:42:07Z".into(),
    }
}

fn status() -> Status {
    Status::new("", 0).with_outbox(Outbox::Synced)
}

const LONG: &str = "Moderate cardiomegaly, increased since the prior examination. Moderate \
    right and small left pleural effusions with adjacent compressive atelectasis. Patchy \
    airspace opacity in the right lower lobe, which may represent pneumonia in the \
    appropriate clinical setting. Mild pulmonary vascular congestion without frank \
    interstitial edema. No pneumothorax. Degenerative changes of the thoracic spine. \
    Recommend follow-up radiograph after treatment to document resolution of the \
    right basilar opacity.";

/// Every observation flagged, as the impression composer words them (hedged
/// near the threshold, definite above its band).
fn many_flags() -> Report {
    report(
        "Cardiomegaly. Pleural effusion. Possible pulmonary edema. Possible atelectasis. \
         Findings consistent with pneumonia. Possible consolidation. Possible pulmonary \
         opacity. Pneumothorax cannot be excluded. Possible pulmonary nodule or mass.",
        vec![
            finding(Observation::Cardiomegaly, 0.93),
            finding(Observation::PleuralEffusion, 0.88),
            finding(Observation::Edema, 0.74),
            finding(Observation::Atelectasis, 0.69),
            finding(Observation::Pneumonia, 0.81),
            finding(Observation::Consolidation, 0.62),
            finding(Observation::LungOpacity, 0.58),
            finding(Observation::Pneumothorax, 0.53),
            finding(Observation::LungLesion, 0.51),
            finding(Observation::NoFinding, 0.02),
        ],
        Some(heatmap(7.0, 9.0)),
    )
}

/// The screens under test, by golden file name.
fn screens() -> Vec<(&'static str, Screen)> {
    let img = radiograph();
    let normal = report(
        "No acute cardiopulmonary abnormality. Heart size is normal. Lungs are clear.",
        vec![
            finding(Observation::NoFinding, 0.91),
            finding(Observation::Cardiomegaly, 0.12),
        ],
        Some(heatmap(8.0, 8.0)),
    );
    let several = report(
        "Cardiomegaly with bilateral pleural effusions. Right basilar opacity, possibly pneumonia.",
        vec![
            finding(Observation::Cardiomegaly, 0.88),
            finding(Observation::PleuralEffusion, 0.71),
            finding(Observation::Pneumonia, 0.58),
            finding(Observation::Pneumothorax, 0.04),
        ],
        Some(heatmap(9.0, 10.5)),
    );
    // A bundle with a calibration: every finding carries a probability, and the
    // screen names the numbers so.
    let mut calibrated = several.clone();
    for f in &mut calibrated.findings {
        f.probability = Some(f.score * 0.6);
    }
    let long_findings = vec![
        finding(Observation::Cardiomegaly, 0.93),
        finding(Observation::PleuralEffusion, 0.81),
        finding(Observation::Atelectasis, 0.66),
        finding(Observation::Pneumonia, 0.61),
        finding(Observation::Edema, 0.55),
    ];
    let long = report(LONG, long_findings, Some(heatmap(5.0, 11.0)));
    let busy = Status::new("cxr-gru-v3", 3).with_outbox(Outbox::Pending(2));
    vec![
        (
            "idle",
            Screen::idle(Status::new("cxr-gru-v3", 0).with_outbox(Outbox::Synced)),
        ),
        (
            "processing",
            Screen::processing(&normal.study, Some(&img), busy),
        ),
        ("normal", Screen::result(&normal, Some(&img), status())),
        (
            "several_findings",
            Screen::result(&several, Some(&img), status()),
        ),
        (
            "calibrated_probabilities",
            Screen::result(&calibrated, Some(&img), status()),
        ),
        ("long_page1", Screen::result(&long, Some(&img), status())),
        (
            "long_page2",
            Screen::result(&long, Some(&img), status()).with_page(1),
        ),
        (
            "many_flags_page1",
            Screen::result(&many_flags(), Some(&img), status()),
        ),
        (
            "many_flags_page2",
            Screen::result(&many_flags(), Some(&img), status()).with_page(1),
        ),
        (
            "many_flags_page3",
            Screen::result(&many_flags(), Some(&img), status()).with_page(2),
        ),
        (
            "error",
            Screen::error(
                "Cannot read the model bundle /var/lib/cxr-edge/model: manifest.json is missing. \
                 Reinstall the model bundle.",
                Status::new("", 1).with_error("model bundle missing"),
            ),
        ),
        (
            "not_chest_film",
            Screen::not_chest_film(&normal.study, Some(&img), Status::new("cxr-gru-v3", 0)),
        ),
    ]
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.png"))
}

/// Compares `actual` with the golden PNG pixel by pixel. `UPDATE_GOLDEN=1`
/// rewrites the goldens that differ (only those, so `git status` lists what
/// changed) and names each one: a person looks at every one of them before it
/// is committed (`tests/golden/README.md`).
fn check_golden(name: &str, actual: &image::RgbImage) {
    let path = golden_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        let same = image::open(&path).is_ok_and(|old| old.to_rgb8() == *actual);
        if !same {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            actual.save(&path).unwrap();
            eprintln!("rewrote {}: look at it before committing", path.display());
        }
        return;
    }
    let expected = image::open(&path)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with UPDATE_GOLDEN=1 to create)",
                path.display()
            )
        })
        .to_rgb8();
    assert_eq!(expected.dimensions(), actual.dimensions(), "{name}: size");
    let differing = expected
        .pixels()
        .zip(actual.pixels())
        .filter(|(a, b)| a != b)
        .count();
    if differing > 0 {
        let out = std::env::temp_dir().join(format!("cxr-edge-screen-{name}.png"));
        actual.save(&out).unwrap();
        panic!(
            "{name}: {differing} pixels differ from {}; actual written to {}",
            path.display(),
            out.display()
        );
    }
}

fn colour(screen: &Screen) -> Canvas<Rgb565> {
    sink::render(screen, Layout::Colour)
}

#[test]
fn golden_colour_screens() {
    for (name, screen) in screens() {
        check_golden(name, &colour(&screen).to_rgb_image());
    }
}

#[test]
fn golden_mono_screens() {
    for (name, screen) in screens() {
        if name.starts_with("many_flags") || name == "processing" {
            continue;
        }
        check_golden(
            &format!("mono_{name}"),
            &sink::render(&screen, Layout::Mono).to_rgb_image(),
        );
    }
    // The OLED takes more pages for the same result.
    let many = Screen::result(&many_flags(), Some(&radiograph()), status());
    for page in 0..screen::page_count_mono(&many) {
        check_golden(
            &format!("mono_many_flags_page{}", page + 1),
            &sink::render(&many.clone().with_page(page), Layout::Mono).to_rgb_image(),
        );
    }
}

/// The text of every page of `screen` in `layout`, one string per page.
fn all_pages(screen: &Screen, layout: Layout) -> Vec<String> {
    (0..sink::page_count(screen, layout))
        .map(|page| {
            let s = screen.clone().with_page(page);
            match layout {
                Layout::Colour => screen::page_text(&s),
                Layout::Mono => screen::page_text_mono(&s),
            }
            .join("\n")
        })
        .collect()
}

#[test]
fn every_flagged_finding_and_every_word_is_on_some_page() {
    let report = many_flags();
    let many = Screen::result(&report, None, status());
    assert_eq!(many.labels.len(), 9, "all nine observations flagged");
    for layout in [Layout::Colour, Layout::Mono] {
        let pages = all_pages(&many, layout);
        assert!(pages.len() > 1, "{layout:?}: {pages:?}");
        for label in &many.labels {
            let row = format!("{} {}", label.name, screen::score_text(label.score));
            let shown = pages
                .iter()
                .filter(|p| {
                    p.lines()
                        .any(|l| l.split_whitespace().eq(row.split_whitespace()))
                })
                .count();
            assert_eq!(shown, 1, "{layout:?}: {row:?} on one page: {pages:#?}");
        }
        // The impression, read page after page, is the whole impression.
        let is_label_row = |l: &str| {
            many.labels.iter().any(|x| {
                let row = format!("{} {}", x.name, screen::score_text(x.score));
                l.split_whitespace().eq(row.split_whitespace())
            })
        };
        let mut read: Vec<&str> = Vec::new();
        for page in &pages {
            let lines: Vec<&str> = page.lines().collect();
            let body = match layout {
                Layout::Colour => {
                    let at = lines.iter().position(|l| *l == "IMPRESSION").unwrap();
                    &lines[at + 1..lines.len() - 1]
                }
                Layout::Mono => &lines[..lines.len() - 1],
            };
            read.extend(body.iter().copied().filter(|l| {
                !(l.starts_with("page ")
                    || l.starts_with("impression: pages")
                    || *l == "Flagged: model score"
                    || is_label_row(l))
            }));
        }
        let words: Vec<&str> = report.impression.split_whitespace().collect();
        let read_words: Vec<&str> = read.iter().flat_map(|l| l.split_whitespace()).collect();
        assert_eq!(read_words, words, "{layout:?}: {pages:#?}");
        for (i, page) in pages.iter().enumerate() {
            let disclaimer = match layout {
                Layout::Colour => screen::DISCLAIMER,
                Layout::Mono => screen::DISCLAIMER_SHORT,
            };
            assert!(page.contains(disclaimer), "{layout:?} page {i}: {page}");
            assert!(!page.contains('%'), "{layout:?} page {i}: {page}");
        }
    }
    let colour = all_pages(&many, Layout::Colour);
    assert!(colour[0].contains("1-4 of 9\nMODEL SCORE"), "{}", colour[0]);
    assert!(colour[0].contains("page 1/3"), "{}", colour[0]);
    let mono = all_pages(&many, Layout::Mono);
    assert!(mono[0].starts_with("Flagged: model score"), "{}", mono[0]);
}

#[test]
fn every_result_says_what_it_is_and_refusals_show_no_result() {
    for (name, s) in screens() {
        let colour = screen::page_text(&s).join("\n");
        let mono = screen::page_text_mono(&s).join("\n");
        if s.state == ScreenState::Result {
            assert!(colour.contains(screen::DISCLAIMER), "{name}: {colour}");
            assert!(mono.contains(screen::DISCLAIMER_SHORT), "{name}: {mono}");
            // The numbers are named as what they are.
            let heading = if s.calibrated {
                "PROBABILITY"
            } else {
                "MODEL SCORE"
            };
            assert!(colour.contains(heading) || s.labels.is_empty(), "{name}");
        } else {
            assert!(
                colour.is_empty() && mono.is_empty(),
                "{name}: {colour}{mono}"
            );
        }
    }
    let normal = Screen::result(
        &report("No acute cardiopulmonary abnormality.", vec![], None),
        None,
        status(),
    );
    assert_eq!(
        screen::page_text_mono(&normal),
        [
            "No flagged findings",
            "No acute",
            "cardiopulmonary",
            "abnormality.",
            "Not a diagnosis"
        ]
    );
    assert_eq!(screen::page_count(&normal), 1);
}

#[test]
fn long_impression_pages_and_wraps_around() {
    let all = screens();
    let long = &all.iter().find(|(n, _)| *n == "long_page1").unwrap().1;
    let pages = screen::page_count(long);
    assert!(pages >= 2, "{pages} pages");
    assert_eq!(
        screen::page_count(&all[2].1),
        1,
        "the normal study fits on one page"
    );
    let first = colour(long);
    let second = colour(&long.clone().with_page(1));
    assert_ne!(first, second, "page 2 shows other text");
    assert_eq!(
        colour(&long.clone().with_page(pages)),
        first,
        "pages wrap around"
    );
    let mut next = long.clone();
    next.next_page(pages);
    assert_eq!(next.page, 1);
    next.previous_page(pages);
    next.previous_page(pages);
    assert_eq!(next.page, pages - 1, "before the first page: the last");
    next.next_page(pages);
    assert_eq!(next.page, 0, "after the last page: the first");
    assert!(
        screen::page_count_mono(long) > pages,
        "the OLED needs more pages"
    );
}

#[test]
fn result_screen_carries_the_report() {
    let all = screens();
    let several = &all
        .iter()
        .find(|(n, _)| *n == "several_findings")
        .unwrap()
        .1;
    assert_eq!(several.state, ScreenState::Result);
    assert_eq!(several.study.as_str(), "A24-118734");
    assert_eq!(several.time.as_str(), "19:42");
    let names: Vec<&str> = several.labels.iter().map(|l| l.name).collect();
    assert_eq!(names, ["Cardiomegaly", "Pleural effusion", "Pneumonia"]);
    assert_eq!(several.status.model_id.as_str(), "cxr-gru-v3");
    assert_eq!(several.status.latency_ms, Some(1843));
    // A huge impression is cut, not rejected.
    let huge = report(&"word ".repeat(2000), vec![], None);
    let s = Screen::result(&huge, None, status());
    assert!(s.impression.ends_with("..."));
    assert_eq!(s.impression.len(), screen::IMPRESSION_CAP);
}

#[test]
fn render_png_writes_what_the_panel_shows() {
    let dir = tempfile::tempdir().unwrap();
    let (_, screen) = screens().swap_remove(3);
    let path = dir.path().join("out.png");
    screen::render_png(&screen, &path).unwrap();
    let written = image::open(&path).unwrap().to_rgb8();
    assert_eq!(written, colour(&screen).to_rgb_image());
    let mut png = PngSink::new(dir.path().join("mono.png"), Layout::Mono);
    png.show(&screen).unwrap();
    assert_eq!(
        image::open(dir.path().join("mono.png")).unwrap().width(),
        128
    );
    let bad = screen::render_png(&screen, &dir.path().join("missing/dir/out.png")).unwrap_err();
    assert!(bad.to_string().contains("missing/dir/out.png"), "{bad}");
}

/// Top-left 64×64 of a mono screen as drawn on a `MockDisplay`.
fn mono_mock(screen: &Screen) -> MockDisplay<BinaryColor> {
    let mut mock = MockDisplay::new();
    mock.set_allow_out_of_bounds_drawing(true);
    mock.set_allow_overdraw(true);
    screen::draw_screen_mono(screen, &mut mock).unwrap();
    mock
}

#[test]
fn mono_header_widget_pattern() {
    let error = Screen::error("x", Status::default());
    let mock = mono_mock(&error);
    // The inverted header row with "ERROR" in dark 6×10 letters.
    let header: Vec<String> = (0..11)
        .map(|y| {
            (0..34)
                .map(|x| match mock.get_pixel(Point::new(x, y)) {
                    Some(BinaryColor::On) => '#',
                    _ => '.',
                })
                .collect()
        })
        .collect();
    let expected = [
        "##################################",
        "##################################",
        "#.....#....##....###...##....#####",
        "#.#####.###.#.###.#.###.#.###.####",
        "#.#####.###.#.###.#.###.#.###.####",
        "#....##....##....##.###.#....#####",
        "#.#####.#.###.#.###.###.#.#.######",
        "#.#####.##.##.##.##.###.#.##.#####",
        "#.....#.###.#.###.##...##.###.####",
        "##################################",
        "##################################",
    ];
    assert_eq!(header, expected, "\n{}", header.join("\n"));
}

#[test]
fn colour_header_and_labels_widget() {
    let all = screens();
    let several = &all
        .iter()
        .find(|(n, _)| *n == "several_findings")
        .unwrap()
        .1;
    let mut mock: MockDisplay<Rgb565> = MockDisplay::new();
    mock.set_allow_out_of_bounds_drawing(true);
    mock.set_allow_overdraw(true);
    screen::draw_screen(several, &mut mock).unwrap();
    // Header background is one colour across the top-left block, with white text on it.
    let header_bg = mock.get_pixel(Point::new(0, 0)).unwrap();
    let text = mock.map(|c| {
        if c == header_bg {
            BinaryColor::Off
        } else {
            BinaryColor::On
        }
    });
    let lit_in_header = (0..64)
        .flat_map(|x| (0..24).map(move |y| Point::new(x, y)))
        .filter(|&p| text.get_pixel(p) == Some(BinaryColor::On))
        .count();
    assert!(
        lit_in_header > 60,
        "study id drawn in the header ({lit_in_header} px)"
    );
    // High-scoring finding label is red, the moderate one amber.
    let canvas = colour(several);
    let first = canvas.get(107 + 60, 50 + 1).unwrap();
    let second = canvas.get(107 + 60, 69 + 1).unwrap();
    assert!(first.r() > 20 && first.g() < 20, "red label: {first:?}");
    assert!(
        second.r() > 25 && second.g() > 30 && second.b() < 8,
        "amber label: {second:?}"
    );
}

mod fake_panel {
    //! A fake SPI device and DC pin that decode the MIPI-DCS stream the real
    //! `mipidsi` driver sends (CASET, RASET, RAMWR) into panel memory.

    use super::*;
    use embedded_hal::spi::Operation;

    pub const CASET: u8 = 0x2a;
    pub const RASET: u8 = 0x2b;
    pub const RAMWR: u8 = 0x2c;

    #[derive(Default)]
    pub struct Panel {
        pub dc_high: bool,
        pub command: u8,
        pub args: Vec<u8>,
        pub commands: Vec<u8>,
        pub window: (u16, u16, u16, u16),
        pub cursor: (u16, u16),
        pub pending: Option<u8>,
        pub memory: Vec<u16>,
        pub largest_write: usize,
    }

    impl Panel {
        pub fn new() -> Rc<RefCell<Panel>> {
            Rc::new(RefCell::new(Panel {
                memory: vec![0; 240 * 320],
                ..Default::default()
            }))
        }

        fn byte(&mut self, b: u8) {
            if !self.dc_high {
                self.command = b;
                self.commands.push(b);
                self.args.clear();
                self.pending = None;
                if b == RAMWR {
                    self.cursor = (self.window.0, self.window.2);
                }
                return;
            }
            match self.command {
                RAMWR => match self.pending.take() {
                    None => self.pending = Some(b),
                    Some(hi) => {
                        let (x, y) = self.cursor;
                        if (x as usize) < 240 && (y as usize) < 320 {
                            self.memory[y as usize * 240 + x as usize] =
                                u16::from_be_bytes([hi, b]);
                        }
                        self.cursor = if x >= self.window.1 {
                            (self.window.0, y + 1)
                        } else {
                            (x + 1, y)
                        };
                    }
                },
                CASET | RASET => {
                    self.args.push(b);
                    if self.args.len() == 4 {
                        let a = u16::from_be_bytes([self.args[0], self.args[1]]);
                        let e = u16::from_be_bytes([self.args[2], self.args[3]]);
                        if self.command == CASET {
                            (self.window.0, self.window.1) = (a, e);
                        } else {
                            (self.window.2, self.window.3) = (a, e);
                        }
                    }
                }
                _ => self.args.push(b),
            }
        }
    }

    pub struct Spi(pub Rc<RefCell<Panel>>);
    pub struct Dc(pub Rc<RefCell<Panel>>);
    pub struct NoDelay;

    impl embedded_hal::spi::ErrorType for Spi {
        type Error = core::convert::Infallible;
    }

    impl embedded_hal::spi::SpiDevice for Spi {
        fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Self::Error> {
            let mut p = self.0.borrow_mut();
            for op in operations {
                if let Operation::Write(bytes) = op {
                    p.largest_write = p.largest_write.max(bytes.len());
                    for &b in bytes.iter() {
                        p.byte(b);
                    }
                }
            }
            Ok(())
        }
    }

    impl embedded_hal::digital::ErrorType for Dc {
        type Error = core::convert::Infallible;
    }

    impl embedded_hal::digital::OutputPin for Dc {
        fn set_low(&mut self) -> Result<(), Self::Error> {
            self.0.borrow_mut().dc_high = false;
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Self::Error> {
            self.0.borrow_mut().dc_high = true;
            Ok(())
        }
    }

    impl embedded_hal::delay::DelayNs for NoDelay {
        fn delay_ns(&mut self, _: u32) {}
    }
}

fn panel_matches(panel: &fake_panel::Panel, canvas: &Canvas<Rgb565>) -> usize {
    canvas
        .pixels()
        .iter()
        .zip(&panel.memory)
        .filter(|(c, &m)| c.into_storage() != m)
        .count()
}

#[test]
fn mipidsi_st7789_stream_matches_in_memory_render() {
    use mipidsi::interface::SpiInterface;
    use mipidsi::options::ColorInversion;

    for (name, screen) in screens() {
        let expected = colour(&screen);
        // Path 1: the sink's way, one blit of the rendered canvas.
        // Path 2: the layout drawn straight onto the driver.
        for direct in [false, true] {
            let panel = fake_panel::Panel::new();
            let mut buffer = [0u8; 4096];
            let di = SpiInterface::new(
                fake_panel::Spi(panel.clone()),
                fake_panel::Dc(panel.clone()),
                &mut buffer,
            );
            let mut display = mipidsi::Builder::new(mipidsi::models::ST7789, di)
                .display_size(240, 320)
                .invert_colors(ColorInversion::Inverted)
                .init(&mut fake_panel::NoDelay)
                .unwrap();
            if direct {
                screen::draw_screen(&screen, &mut display).unwrap();
            } else {
                expected.blit(&mut display).unwrap();
            }
            let p = panel.borrow();
            assert!(
                p.commands.contains(&0x21),
                "INVON sent for an inverted ST7789"
            );
            assert!(
                p.largest_write <= 4096,
                "SPI write of {} bytes",
                p.largest_write
            );
            assert_eq!(
                panel_matches(&p, &expected),
                0,
                "{name} (direct: {direct}): pixels differ"
            );
        }
    }
}

#[test]
fn framebuffer_target_over_a_vec_with_padded_stride() {
    let (_, screen) = screens().swap_remove(3);
    let expected = colour(&screen);
    let stride = 240 * 2 + 64;
    let mut bytes = vec![0xaau8; stride * 320];
    let mut fb = FramebufferSink {
        buffer: &mut bytes[..],
        width: 240,
        height: 320,
        stride,
        format: FbFormat::Rgb565,
        layout: Layout::Colour,
        device: "vec".into(),
    };
    fb.show(&screen).unwrap();
    let target = FbTarget::new(&mut bytes, 240, 320, stride, FbFormat::Rgb565, "vec").unwrap();
    for y in 0..320 {
        for x in 0..240 {
            assert_eq!(target.get(x, y), expected.get(x, y), "({x}, {y})");
        }
    }
    assert_eq!(bytes[240 * 2], 0xaa, "padding after a line is left alone");
    let too_small = FbTarget::new(
        &mut bytes[..100],
        240,
        320,
        stride,
        FbFormat::Rgb565,
        "/dev/fb9",
    )
    .err()
    .unwrap();
    assert!(too_small.to_string().contains("/dev/fb9"), "{too_small}");
}

#[test]
fn framebuffer_over_a_mapped_file_xrgb8888_scaled() {
    let (_, screen) = screens().swap_remove(2);
    let expected = colour(&screen);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fb0");
    // A 480×720 32-bit framebuffer: the 240×320 screen is drawn 2×, centred vertically.
    let (w, h, stride) = (480u32, 720u32, 480 * 4);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    file.set_len((stride * h as usize) as u64).unwrap();
    let map = unsafe { memmap2::MmapMut::map_mut(&file) }.unwrap();
    let mut fb = FramebufferSink {
        buffer: map,
        width: w,
        height: h,
        stride,
        format: FbFormat::Xrgb8888,
        layout: Layout::Colour,
        device: path.display().to_string(),
    };
    fb.show(&screen).unwrap();
    fb.buffer.flush().unwrap();
    drop(fb);
    let bytes = std::fs::read(&path).unwrap();
    let oy = (720 - 640) / 2;
    let mut differing = 0;
    for y in 0..h {
        for x in 0..w {
            let at = y as usize * stride + x as usize * 4;
            let got = [bytes[at + 2], bytes[at + 1], bytes[at]];
            let want = if y < oy || y >= oy + 640 {
                Rgb888::BLACK
            } else {
                expected.get(x / 2, (y - oy) / 2).unwrap().into()
            };
            differing += usize::from(got != [want.r(), want.g(), want.b()]);
        }
    }
    assert_eq!(differing, 0);
}

#[test]
fn display_config_names_what_stops_a_panel_from_opening() {
    let dir = tempfile::tempdir().unwrap();
    let spi = dir.path().join("spidev9.9");
    let cfg = sink::DisplayConfig {
        kind: sink::DisplayKind::St7789,
        spi: spi.clone(),
        ..Default::default()
    };
    let err = cfg.open().err().expect("no panel can open here");
    if cfg!(feature = "hardware") {
        // The drivers are built in: the error names the missing SPI device.
        assert!(err.to_string().contains(&*spi.to_string_lossy()), "{err}");
    } else {
        assert!(err.to_string().contains("hardware"), "{err}");
    }
    let none = sink::DisplayConfig::default().open();
    assert!(none.is_ok());
}

#[test]
fn board_configs_parse_as_serve_configs() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("board");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let config = cxr_edge::serve::ServeConfig::parse(&text, &path.display().to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        let d = &config.display;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains("st7789") {
            assert_eq!(d.kind, sink::DisplayKind::St7789, "{name}");
            assert_eq!((d.width, d.height, d.dc), (240, 320, 25), "{name}");
            assert!(d.invert_colors, "{name}");
        } else {
            assert_eq!(d.kind, sink::DisplayKind::Ssd1306, "{name}");
            assert_eq!((d.layout, d.i2c_address), (Layout::Mono, 0x3c), "{name}");
        }
        seen += 1;
    }
    assert_eq!(seen, 4, "two boards × two displays");
}

/// A display that keeps every screen it was given.
#[derive(Clone, Default)]
struct Shown(Rc<RefCell<Vec<Screen>>>);

impl Sink for Shown {
    fn show(&mut self, screen: &Screen) -> Result<(), sink::SinkError> {
        self.0.borrow_mut().push(screen.clone());
        Ok(())
    }
}

/// Buttons pressed on cue: each poll takes the next press queued.
struct Pressed(Rc<RefCell<std::collections::VecDeque<Button>>>);

impl ButtonSource for Pressed {
    fn poll(&mut self) -> Option<Button> {
        self.0.borrow_mut().pop_front()
    }
}

#[test]
fn serve_turns_result_pages_on_a_timer_and_on_buttons() {
    use std::time::{Duration, Instant};

    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "store = {:?}\nmin_free_bytes = 0\npoll_ms = 10\n[watch]\ndir = {:?}\n\
         [display]\npage_ms = 4000\n[buttons]\nnext_page = 5\nprevious_page = 6\n",
        tmp.path().join("store"),
        tmp.path().join("drop"),
    );
    let config = cxr_edge::serve::ServeConfig::parse(&text, "unit.toml").unwrap();
    assert_eq!(config.display.page_ms, 4000);
    assert_eq!(
        (config.buttons.next_page, config.buttons.previous_page),
        (Some(5), Some(6))
    );
    let film = cxr_edge::input::synth::SynthCr::new(812, 300, 260);
    let key = film.sop_instance_uid.clone();
    cxr_edge::store::Store::open(
        tmp.path().join("store"),
        cxr_edge::store::StoreOptions { min_free_bytes: 0 },
    )
    .unwrap()
    .accept(&key, &film.to_bytes(), "dcm")
    .unwrap();

    let shown = Shown::default();
    let analyser = |r: &cxr_edge::input::Radiograph| -> Result<Report, String> {
        let mut report = many_flags();
        report.study = r.info.clone();
        Ok(report)
    };
    let mut server =
        cxr_edge::serve::Server::start(&config, analyser, Box::new(shown.clone())).unwrap();
    let presses = Rc::new(RefCell::new(std::collections::VecDeque::new()));
    server.set_buttons(Box::new(Pressed(presses.clone())));

    let before = Instant::now();
    let outcomes = server.step();
    let after = Instant::now();
    assert!(
        matches!(outcomes.as_slice(), [(k, cxr_edge::serve::Outcome::Reported(_))] if *k == key),
        "{outcomes:?}"
    );
    let ms = Duration::from_millis;
    // The clock is passed in: the first turn comes a whole period after the
    // result went up, and each later one a period after the one before.
    assert_eq!(server.turn_pages(before + ms(3999)), None);
    let t1 = after + ms(4000);
    assert_eq!(server.turn_pages(t1), Some(1));
    assert_eq!(server.turn_pages(t1 + ms(3999)), None);
    assert_eq!(server.turn_pages(t1 + ms(4000)), Some(2));
    let t3 = t1 + ms(8000);
    assert_eq!(
        server.turn_pages(t3),
        Some(0),
        "after the last page, the first"
    );
    // Buttons turn at once, both ways, without waiting for the timer.
    presses
        .borrow_mut()
        .extend([Button::NextPage, Button::PreviousPage, Button::PreviousPage]);
    assert_eq!(server.turn_pages(t3), Some(1));
    assert_eq!(server.turn_pages(t3), Some(0));
    assert_eq!(
        server.turn_pages(t3),
        Some(2),
        "before the first page, the last"
    );
    assert_eq!(
        server.turn_pages(t3 + ms(3999)),
        None,
        "a press restarts the timer"
    );

    let results: Vec<Screen> = shown
        .0
        .borrow()
        .iter()
        .filter(|s| s.state == ScreenState::Result)
        .cloned()
        .collect();
    let pages: Vec<usize> = results.iter().map(|s| s.page).collect();
    assert_eq!(pages, [0, 1, 2, 0, 1, 0, 2]);
    // What the unit showed in turn holds every flagged finding.
    let seen: String = results
        .iter()
        .map(|s| screen::page_text(s).join("\n"))
        .collect();
    for label in &results[0].labels {
        let row = format!("{} {}", label.name, screen::score_text(label.score));
        assert!(seen.contains(&row), "{row} never shown");
    }
}

#[test]
fn buttons_need_the_hardware_build_and_are_optional() {
    let none = sink::ButtonsConfig::default().open().unwrap();
    assert!(none.is_none(), "no [buttons]: timed pages only");
    let wanted = sink::ButtonsConfig {
        gpiochip: Some("/nonexistent/gpiochip9".into()),
        next_page: Some(5),
        previous_page: None,
    };
    let err = wanted.open().err().expect("no GPIO chip here");
    if cfg!(feature = "hardware") {
        assert!(err.to_string().contains("/nonexistent/gpiochip9"), "{err}");
    } else {
        assert!(err.to_string().contains("hardware"), "{err}");
    }
}

/// A redraw replaces the screen file in one rename: a reader that opened the
/// old screen still reads it whole (an in-place rewrite would truncate it
/// under the reader), the new file is a complete PNG readable by others, and
/// no temporary file is left beside it.
#[test]
fn a_redraw_replaces_the_png_whole() {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("screen.png");
    screen::render_png(&Screen::idle(Status::default()), &path).unwrap();
    let old = std::fs::read(&path).unwrap();
    let mut reader = std::fs::File::open(&path).unwrap();
    let refused = Screen::error("a film that is not a chest radiograph", Status::default());
    screen::render_png(&refused, &path).unwrap();
    let mut seen = Vec::new();
    reader.read_to_end(&mut seen).unwrap();
    assert_eq!(seen, old, "the open screen changed under its reader");
    let new = image::open(&path).unwrap().to_rgb8();
    assert_ne!(std::fs::read(&path).unwrap(), old);
    assert_eq!((new.width(), new.height()), (screen::WIDTH, screen::HEIGHT));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["screen.png"]);
}
