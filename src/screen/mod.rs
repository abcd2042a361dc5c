//! What the small display beside the X-ray unit shows.
//!
//! A [`Screen`] is plain data built once from a [`Report`] (or a state such as
//! "waiting"), with every text in a fixed-capacity `heapless` string so that the
//! drawing code never allocates text and a pathological report cannot blow up
//! the layout. Two pure drawing functions turn it into pixels on any
//! embedded-graphics `DrawTarget`: [`draw_screen`] for 240×320 colour panels and
//! [`draw_screen_mono`] for 128×64 SSD1306 OLEDs. The SPI panel, the Linux
//! framebuffer, the PNG file and `MockDisplay` therefore all get the same pixels
//! (see [`crate::sink`]).
//!
//! Every result screen says that it is decision support, not a diagnosis, and
//! labels its numbers as what they are: calibrated probabilities where the
//! bundle carries a calibration, otherwise model scores (two decimals, never a
//! percentage). A
//! result that does not fit one screen has pages, so every flagged finding and
//! the whole impression can be read; [`page_text`] and [`page_text_mono`] give
//! the text a page shows, and [`Rotation`] times the page turns of `serve`.

mod canvas;
mod colour;
mod mono;
mod pages;
mod thumb;

use std::path::Path;

use heapless::String;

use crate::preprocess::Gray16;
use crate::report::{Report, StudyInfo};

pub use canvas::Canvas;
pub use colour::{draw_screen, page_count, page_text, HEIGHT, WIDTH};
pub use mono::{draw_screen_mono, page_count_mono, page_text_mono, MONO_HEIGHT, MONO_WIDTH};
pub use pages::{score_text, Rotation, DISCLAIMER, DISCLAIMER_SHORT};
pub use thumb::Thumbnail;

/// Capacity of the impression text; longer impressions are cut with "...".
pub const IMPRESSION_CAP: usize = 1024;
/// Most flagged findings a screen carries (there are nine observations).
pub const MAX_LABELS: usize = 9;
/// Side of the radiograph thumbnail on the colour layout, pixels.
pub const THUMB_SIDE: u32 = 96;

/// Which screen is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenState {
    /// Nothing to show: waiting for the next image.
    Idle,
    /// An image arrived and the model is running.
    Processing,
    /// A report is ready.
    Result,
    /// Something went wrong with the last image or the unit itself.
    Error,
    /// The image was rejected as not a frontal chest radiograph.
    NotChestFilm,
}

/// State of the outbox that forwards reports to the hospital systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outbox {
    /// No forwarding configured.
    #[default]
    Off,
    /// Everything delivered.
    Synced,
    /// Reports waiting to be delivered (normal after a network outage).
    Pending(u32),
    /// Delivery keeps failing; someone should look.
    Failing(u32),
}

/// One flagged finding as a label.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub name: &'static str,
    /// Score in `[0, 1]`.
    pub score: f32,
    pub threshold: f32,
}

/// The status line at the bottom of every screen.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    pub model_id: String<24>,
    /// End-to-end time of the last study, milliseconds.
    pub latency_ms: Option<u32>,
    /// Images waiting to be processed.
    pub queue_len: u32,
    pub outbox: Outbox,
    /// Last error worth telling the operator, empty when none.
    pub last_error: String<64>,
}

impl Status {
    /// A status line with the given model id and queue length.
    pub fn new(model_id: &str, queue_len: u32) -> Self {
        Status {
            model_id: fit(model_id),
            queue_len,
            ..Status::default()
        }
    }

    /// Sets the last error (cut to fit).
    pub fn with_error(mut self, error: &str) -> Self {
        self.last_error = fit(error);
        self
    }

    pub fn with_outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = outbox;
        self
    }
}

/// Everything one screen shows; see the module doc.
#[derive(Debug, Clone, PartialEq)]
pub struct Screen {
    pub state: ScreenState,
    /// Short study identification for the header (accession number or a short key).
    pub study: String<16>,
    /// Time for the header, `HH:MM` (UTC, from the report).
    pub time: String<8>,
    pub impression: String<IMPRESSION_CAP>,
    /// Flagged findings, highest score first.
    pub labels: heapless::Vec<Label, MAX_LABELS>,
    /// Message for the error, processing and not-a-chest-film screens.
    pub message: String<192>,
    pub thumbnail: Option<Thumbnail>,
    pub status: Status,
    /// Page of a result requested; wraps around the page count of the layout.
    pub page: usize,
    /// The labels' numbers are calibrated probabilities (the bundle carries a
    /// calibration), not model scores; the screen names them so.
    pub calibrated: bool,
}

impl Screen {
    fn blank(state: ScreenState, status: Status) -> Self {
        Screen {
            state,
            study: String::new(),
            time: String::new(),
            impression: String::new(),
            labels: heapless::Vec::new(),
            message: String::new(),
            thumbnail: None,
            status,
            page: 0,
            calibrated: false,
        }
    }

    /// What the labels' numbers are, as a heading.
    pub fn score_heading(&self) -> &'static str {
        if self.calibrated {
            "probability"
        } else {
            "model score"
        }
    }

    /// The waiting screen.
    pub fn idle(status: Status) -> Self {
        Screen::blank(ScreenState::Idle, status)
    }

    /// An image is being analysed; the thumbnail shows which one.
    pub fn processing(study: &StudyInfo, image: Option<&Gray16>, status: Status) -> Self {
        let mut s = Screen::blank(ScreenState::Processing, status);
        s.study = short_study_id(study);
        s.thumbnail = image.map(|img| Thumbnail::new(img, None, THUMB_SIDE));
        s
    }

    /// The result of one study. `image` is the radiograph the report was made
    /// from; the report's heat map is drawn over its thumbnail. The status line's
    /// model id and latency are taken from the report when the caller left them empty.
    pub fn result(report: &Report, image: Option<&Gray16>, mut status: Status) -> Self {
        if status.model_id.is_empty() {
            status.model_id = fit(&report.model_id);
        }
        if status.latency_ms.is_none() && report.timings.total_ms.is_finite() {
            status.latency_ms = Some(report.timings.total_ms.clamp(0.0, u32::MAX as f64) as u32);
        }
        let mut s = Screen::blank(ScreenState::Result, status);
        s.study = short_study_id(&report.study);
        s.time = header_time(&report.generated_at);
        s.impression = fit(report.impression.trim());
        s.calibrated = report.findings.iter().all(|f| f.probability.is_some());
        for f in report.flagged() {
            // At most nine findings exist, so this never drops one.
            let shown = if s.calibrated { f.probability } else { None };
            let _ = s.labels.push(Label {
                name: f.observation.display_name(),
                score: shown.unwrap_or(f.score).clamp(0.0, 1.0),
                threshold: f.threshold,
            });
        }
        // With nothing flagged a hot spot would suggest an abnormality that the
        // report does not claim, so the heat map is only drawn over flagged studies.
        let heat = report.heatmap.as_ref().filter(|_| !s.labels.is_empty());
        s.thumbnail = image.map(|img| Thumbnail::new(img, heat, THUMB_SIDE));
        s
    }

    /// Something failed; `message` says what, in words the operator can act on.
    pub fn error(message: &str, status: Status) -> Self {
        let mut s = Screen::blank(ScreenState::Error, status);
        s.message = fit(message);
        s
    }

    /// The image was not accepted as a frontal chest radiograph.
    pub fn not_chest_film(study: &StudyInfo, image: Option<&Gray16>, status: Status) -> Self {
        let mut s = Screen::blank(ScreenState::NotChestFilm, status);
        s.study = short_study_id(study);
        s.thumbnail = image.map(|img| Thumbnail::new(img, None, THUMB_SIDE));
        s.message =
            fit("No report was made for this image. Send a frontal (PA/AP) chest radiograph.");
        s
    }

    /// Shows page `page` of a result (wrapping around).
    pub fn with_page(mut self, page: usize) -> Self {
        self.page = page;
        self
    }

    /// Turns to the next page of `pages` (after the last: the first).
    pub fn next_page(&mut self, pages: usize) {
        self.page = (self.page % pages.max(1) + 1) % pages.max(1);
    }

    /// Turns to the previous page of `pages` (before the first: the last).
    pub fn previous_page(&mut self, pages: usize) {
        let pages = pages.max(1);
        self.page = (self.page % pages + pages - 1) % pages;
    }
}

/// Renders the 240×320 colour layout into a PNG file (`cxr-edge report --screen`).
pub fn render_png(screen: &Screen, path: &Path) -> Result<(), ScreenError> {
    let mut canvas = Canvas::new(WIDTH, HEIGHT, colour::BACKGROUND);
    // Drawing into a Vec cannot fail.
    let Ok(()) = draw_screen(screen, &mut canvas);
    canvas.save_png(path)
}

/// Errors of the screen module.
#[derive(Debug, thiserror::Error)]
pub enum ScreenError {
    #[error("cannot write screen image {path}: {source}")]
    WritePng {
        path: std::path::PathBuf,
        #[source]
        source: image::ImageError,
    },
}

/// Copies `text` into a fixed-capacity string, replacing characters the
/// embedded fonts lack (non-ASCII, control characters) and cutting with "..."
/// when it does not fit.
pub fn fit<const N: usize>(text: &str) -> String<N> {
    let mut out = String::new();
    let total = text.chars().count();
    let room = if total > N { N.saturating_sub(3) } else { N };
    for c in text.chars().take(room) {
        let c = match c {
            '\n' | '\t' => ' ',
            c if c.is_ascii() && !c.is_ascii_control() => c,
            _ => '?',
        };
        let _ = out.push(c);
    }
    if total > N {
        let _ = out.push_str(&"..."[..N.min(3)]);
    }
    out
}

/// Short study identification: the accession number, else the end of the instance key.
fn short_study_id(study: &StudyInfo) -> String<16> {
    if let Some(acc) = study
        .accession_number
        .as_deref()
        .filter(|a| !a.trim().is_empty())
    {
        return fit(acc.trim());
    }
    let key = study.instance_key.rsplit(':').next().unwrap_or("");
    let tail: std::string::String = {
        let chars: Vec<char> = key.chars().collect();
        chars[chars.len().saturating_sub(8)..].iter().collect()
    };
    let mut s: String<16> = String::new();
    if !tail.is_empty() {
        let _ = s.push('#');
        s.push_str(fit::<15>(&tail).as_str()).ok();
    }
    s
}

/// `HH:MM` from an RFC 3339 time (`2026-11-29T19:40:35Z`), empty when malformed.
fn header_time(rfc3339: &str) -> String<8> {
    let t = rfc3339.get(11..16).unwrap_or("");
    let ok = t.len() == 5
        && t.as_bytes()[2] == b':'
        && t.bytes()
            .enumerate()
            .all(|(i, b)| i == 2 || b.is_ascii_digit());
    if ok {
        fit(t)
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_cuts_and_replaces() {
        let s: String<8> = fit("Pleural effusion");
        assert_eq!(s.as_str(), "Pleur...");
        let s: String<8> = fit("a\u{e9}b\nc");
        assert_eq!(s.as_str(), "a?b c");
    }

    #[test]
    fn header_time_and_study_id() {
        assert_eq!(header_time("2026-11-29T19:40:35Z").as_str(), "19:40");
        assert_eq!(header_time("garbage").as_str(), "");
        let study = StudyInfo {
            instance_key: "sha256:0123456789abcdef".into(),
            ..Default::default()
        };
        assert_eq!(short_study_id(&study).as_str(), "#89abcdef");
        let study = StudyInfo {
            accession_number: Some(" A1234 ".into()),
            ..study
        };
        assert_eq!(short_study_id(&study).as_str(), "A1234");
    }
}
