//! The unit's TOML configuration for `serve`. Parsed into plain data with serde,
//! then checked once ([`ServeConfig::check`]) before anything starts.
//!
//! ```toml
//! store = "/var/lib/cxr-edge"     # inbox (received) + outbox (reports), crash-safe
//! threads = 2                      # model threads
//! precision = "fp32"               # artefact to run (default: the bundle's choice for this CPU)
//! force = false                    # read films that fail the chest-film checks
//! max_attempts = 3                 # refuse a film after this many crashed attempts
//! retry_max_ms = 60000             # longest wait between retries of a lasting fault
//!
//! [thresholds]                     # optional: this unit's flag thresholds, replacing the
//! pneumothorax = 0.2               # bundle's; in what the screen shows (calibrated
//! cardiomegaly = 0.5               # probability, or model score without a calibration)
//!
//! [dicom]                          # see crate::scp::ScpConfig
//! ae_title = "CXR-EDGE"            # called AE title the X-ray unit must use
//! bind = "192.168.50.1:11112"      # the address on the X-ray unit's link (default 0.0.0.0:11112)
//! allowed_calling_ae_titles = ["XRAY-1"]       # empty or absent: any title
//! allowed_peers = ["192.168.50.2", "10.1.0.0/16"]  # empty or absent: any address
//! max_associations = 4             # more at once are rejected (transient)
//! idle_timeout_s = 60              # longest wait for the request and each next PDU
//! association_timeout_s = 1800     # longest association
//! max_instance_bytes = 150994944   # larger C-STOREs answered A700 (default 144 MiB)
//! max_pdu_length = 16384
//! # [dicom.tls]                    # DICOM over TLS only (build with the `tls` feature)
//! # cert = "/etc/cxr-edge/tls/unit.pem"
//! # key = "/etc/cxr-edge/tls/unit.key"
//! # client_ca = "/etc/cxr-edge/tls/xray-ca.pem"   # optional: require client certificates
//!
//! [watch]
//! dir = "/srv/cxr-drop"            # PNG, JPEG or DICOM files dropped here
//! settle_ms = 1000                 # ignore files modified more recently
//!
//! [display]
//! kind = "png"                     # see crate::sink::DisplayConfig
//! path = "/run/cxr-edge/screen.png"
//! page_ms = 4000                   # a result with several pages turns a page this often (0: never)
//!
//! [buttons]                        # optional, needs the `hardware` feature
//! next_page = 5                    # GPIO line of a push button to ground
//! previous_page = 6
//!
//! [retention]                      # absent: every study is kept for ever
//! max_age_days = 90                # remove finished studies received longer ago
//! max_bytes = 20_000_000_000       # … or while the store holds more than this
//! keep_last = 100                  # never remove the newest 100 finished studies
//! when_full = true                 # at the free-space margin, remove the oldest
//!                                  # finished studies instead of refusing new ones
//!
//! [[forward]]                      # one table per DICOM peer; none: nothing is sent
//! name = "pacs"                    # the queue's name (store's forward/pacs/, `cxr-edge status`)
//! ae_title = "PACS"                # the peer's called AE title
//! host = "10.1.0.20"
//! port = 104
//! calling_ae_title = "CXR-EDGE"    # ours (default CXR-EDGE)
//! send_image = false               # also the received image, as received
//! send_screen = false              # also an RGB Secondary Capture of the result screen
//! timeout_s = 30                   # connect, and each network read or write
//! retry_first_ms = 5000            # wait after a failed try, doubling …
//! retry_max_ms = 300000            # … up to this
//! park_after = 10                  # park a study refused this often in a row with a
//!                                  # status that may change (A7xx, 0110)
//! ```
//!
//! Retention removes only finished studies (reported or refused; instance,
//! report and records together), oldest first, never one still pending or held
//! for delivery (`Store::hold`), waiting in the forwarding queue or parked there.
//! It runs on every pass of the loop, at most `store::PRUNE_BATCH` studies a
//! pass, and, with `when_full`, whenever an instance would leave less than
//! `min_free_bytes` free.
//!
//! Forwarding (`crate::forward`): each DICOM study is queued for every
//! `[[forward]]` peer before its report is completed, and a thread of its own
//! sends the Basic Text SR (plus the image and the screen capture when asked)
//! by C-STORE, retrying with backoff while the peer is unreachable or busy and
//! parking a study the peer refuses for good (`forward/<name>/parked/<key>.txt`
//! holds the reason; move it to `../queued/` and restart to send it again).
//! Studies from the watched folder that are not DICOM have no SR and are not
//! forwarded. `cxr-edge status --config <this file>` shows each queue.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::forward::ForwardConfig;
use crate::input::ValidateOptions;
use crate::scp::ScpConfig;
use crate::sink::{ButtonsConfig, DisplayConfig};

/// `[watch]`: the watched folder source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    pub dir: PathBuf,
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
}

fn default_settle_ms() -> u64 {
    1000
}

impl WatchConfig {
    pub fn settle(&self) -> Duration {
        Duration::from_millis(self.settle_ms)
    }
}

/// `[retention]`: when finished studies are removed from the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Remove finished studies received more than this many days ago.
    #[serde(default)]
    pub max_age_days: Option<f64>,
    /// Remove the oldest finished studies while the store (instances plus
    /// reports) holds more than this many bytes.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Never remove the newest this many finished studies.
    #[serde(default)]
    pub keep_last: usize,
    /// At the free-space margin, remove the oldest finished studies instead of
    /// refusing new instances.
    #[serde(default = "default_when_full")]
    pub when_full: bool,
}

fn default_when_full() -> bool {
    true
}

impl RetentionConfig {
    /// The store's policy.
    pub fn policy(&self) -> crate::store::Retention {
        crate::store::Retention {
            max_age: self
                .max_age_days
                .map(|d| Duration::from_secs_f64(d * 86_400.0)),
            max_bytes: self.max_bytes,
            keep_last: self.keep_last,
            when_full: self.when_full,
        }
    }

    fn check(&self) -> Result<(), String> {
        match self.max_age_days {
            Some(d) if !(d.is_finite() && d > 0.0 && d < 1e6) => Err(format!(
                "retention.max_age_days = {d} must be a number of days above 0"
            )),
            _ if self.max_bytes == Some(0) => {
                Err("retention.max_bytes must be above 0 (omit it for no size limit)".into())
            }
            _ => Ok(()),
        }
    }
}

/// The whole `serve` configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Store root: `inbox/` holds what was acknowledged, `outbox/` the reports.
    pub store: PathBuf,
    /// Model bundle folder; default: the one `report` would use.
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// Threads for the model (studies are processed one at a time).
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Artefact precision to run (`fp32`, `int8` or `f16`); default: the one the
    /// bundle's manifest names for this CPU.
    #[serde(default)]
    pub precision: Option<crate::bundle::Precision>,
    /// Flag thresholds of this unit by observation key (e.g. `pneumothorax`),
    /// replacing the manifest's; each in `[0, 1]`, in the units the screen shows.
    #[serde(default)]
    pub thresholds: std::collections::BTreeMap<crate::Observation, f32>,
    /// Free bytes the store keeps in reserve before refusing new instances.
    #[serde(default = "default_min_free")]
    pub min_free_bytes: u64,
    /// Read films that fail the chest-film checks (never the size limits).
    #[serde(default)]
    pub force: bool,
    /// How often the loop looks at the watched folder, milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Attempts at one study that may end in a crash, a kill or a hang before
    /// the study is refused instead of tried again.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Longest wait between two tries of something that keeps failing (a
    /// missing watched folder, a report that cannot be written), milliseconds;
    /// the waits start at `poll_ms` and double up to this.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// DICOM receiver; absent: no receiver.
    #[serde(default)]
    pub dicom: Option<ScpConfig>,
    #[serde(default)]
    pub watch: Option<WatchConfig>,
    #[serde(default)]
    pub display: DisplayConfig,
    /// Push buttons that page through a result; absent: the pages turn on a timer only.
    #[serde(default)]
    pub buttons: ButtonsConfig,
    /// Retention of finished studies; absent: everything is kept.
    #[serde(default)]
    pub retention: Option<RetentionConfig>,
    /// DICOM peers every reported study is forwarded to (`[[forward]]` tables).
    #[serde(default)]
    pub forward: Vec<ForwardConfig>,
}

fn default_threads() -> usize {
    1
}
fn default_min_free() -> u64 {
    crate::store::StoreOptions::default().min_free_bytes
}
fn default_poll_ms() -> u64 {
    500
}
fn default_max_attempts() -> u32 {
    3
}
fn default_retry_max_ms() -> u64 {
    60_000
}

/// A configuration file that cannot be used, naming the file.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: String },
}

impl ServeConfig {
    /// Read, parse and check a configuration file.
    pub fn load(path: &Path) -> Result<ServeConfig, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: name.clone(),
            source,
        })?;
        Self::parse(&text, &name)
    }

    /// Parse and check configuration text; `name` labels errors.
    pub fn parse(text: &str, name: &str) -> Result<ServeConfig, ConfigError> {
        let config: ServeConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: name.to_string(),
            source,
        })?;
        config.check().map_err(|problem| ConfigError::Invalid {
            path: name.to_string(),
            problem,
        })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.threads == 0 {
            return Err("threads must be at least 1".into());
        }
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        for (o, t) in &self.thresholds {
            if !(0.0..=1.0).contains(t) {
                return Err(format!("[thresholds] {} = {t}: must be in [0, 1]", o.key()));
            }
        }
        if let Some(d) = &self.dicom {
            d.check()?;
        }
        if let Some(r) = &self.retention {
            r.check()?;
        }
        crate::forward::config::check_all(&self.forward)?;
        if self.dicom.is_none() && self.watch.is_none() {
            return Err("nothing to serve: configure [dicom], [watch] or both".into());
        }
        Ok(())
    }

    /// The store's retention policy (the default keeps everything).
    pub fn retention_policy(&self) -> crate::store::Retention {
        self.retention
            .as_ref()
            .map(RetentionConfig::policy)
            .unwrap_or_default()
    }

    /// The input checks the configuration asks for.
    pub fn validate_options(&self) -> ValidateOptions {
        ValidateOptions {
            force: self.force,
            ..ValidateOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let text = r#"
            store = "/var/lib/cxr-edge"
            threads = 2
            precision = "int8"
            [dicom]
            ae_title = "CXR-EDGE"
            bind = "0.0.0.0:11112"
            [watch]
            dir = "/srv/cxr-drop"
            [display]
            kind = "png"
            path = "/run/cxr-edge/screen.png"
        "#;
        let c = ServeConfig::parse(text, "unit.toml").unwrap();
        assert_eq!(c.dicom.as_ref().unwrap().bind.port(), 11112);
        assert_eq!(c.watch.as_ref().unwrap().settle_ms, 1000);
        assert_eq!(c.threads, 2);
        assert_eq!((c.max_attempts, c.retry_max_ms), (3, 60_000));
        assert_eq!(c.precision, Some(crate::bundle::Precision::Int8));
        let e =
            ServeConfig::parse("store = \"/x\"\nprecision = \"int4\"", "unit.toml").unwrap_err();
        assert!(e.to_string().contains("int4"), "{e}");
    }

    #[test]
    fn unit_thresholds_are_named_and_checked() {
        let base = "store = \"/x\"\n[watch]\ndir = \"/d\"\n";
        let c = ServeConfig::parse(
            &format!("{base}[thresholds]\npneumothorax = 0.2\n"),
            "u.toml",
        )
        .unwrap();
        assert_eq!(c.thresholds[&crate::Observation::Pneumothorax], 0.2);
        let e = ServeConfig::parse(
            &format!("{base}[thresholds]\npneumothorax = 1.5\n"),
            "u.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("pneumothorax = 1.5"), "{e}");
        let e = ServeConfig::parse(
            &format!("{base}[thresholds]\npneumonitis = 0.5\n"),
            "u.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("pneumonitis"), "{e}");
    }

    #[test]
    fn retention_is_optional_and_checked() {
        let base = "store = \"/x\"\n[watch]\ndir = \"/d\"\n";
        let c = ServeConfig::parse(base, "unit.toml").unwrap();
        assert_eq!(c.retention_policy(), crate::store::Retention::default());
        let text = format!("{base}[retention]\nmax_age_days = 0.5\nkeep_last = 3\n");
        let r = ServeConfig::parse(&text, "unit.toml")
            .unwrap()
            .retention_policy();
        assert_eq!(r.max_age, Some(Duration::from_secs(43_200)));
        assert_eq!((r.max_bytes, r.keep_last, r.when_full), (None, 3, true));
        for bad in [
            "max_age_days = -1",
            "max_age_days = nan",
            "max_bytes = 0",
            "max_days = 3",
        ] {
            let e = ServeConfig::parse(&format!("{base}[retention]\n{bad}\n"), "unit.toml")
                .unwrap_err();
            let named = bad.split(' ').next().unwrap();
            assert!(e.to_string().contains(named), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_files_are_named() {
        let e = ServeConfig::parse("store = 3", "unit.toml").unwrap_err();
        assert!(e.to_string().starts_with("unit.toml:"), "{e}");
        let e = ServeConfig::parse("store = \"/x\"", "unit.toml").unwrap_err();
        assert!(e.to_string().contains("nothing to serve"), "{e}");
        let e = ServeConfig::parse(
            "store = \"/x\"\n[dicom]\nae_title = \"WAY-TOO-LONG-AE-TITLE\"",
            "unit.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("ae_title"), "{e}");
        let e = ServeConfig::parse(
            "store = \"/x\"\nmax_attempts = 0\n[watch]\ndir = \"/d\"",
            "unit.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("max_attempts"), "{e}");
    }
}
