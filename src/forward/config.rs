//! `[[forward]]`: one table per DICOM peer that gets each study (see the
//! module doc of `crate::serve` config for the example).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One forwarding destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// Names the queue (`forward/<name>/` in the store) and the destination in
    /// logs and `cxr-edge status`: 1–32 ASCII letters, digits, `-`, `_`.
    pub name: String,
    /// The peer's called AE title.
    pub ae_title: String,
    pub host: String,
    pub port: u16,
    /// Our calling AE title.
    #[serde(default = "default_calling")]
    pub calling_ae_title: String,
    /// Also send the received image (as received, in its transfer syntax).
    #[serde(default)]
    pub send_image: bool,
    /// Also send an RGB Secondary Capture of the result screen.
    #[serde(default)]
    pub send_screen: bool,
    /// Longest wait for the connection and for each network read or write, seconds.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
    /// First wait after a failed try, milliseconds; it doubles up to `retry_max_ms`.
    #[serde(default = "default_retry_first_ms")]
    pub retry_first_ms: u64,
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Park a study after this many refusals in a row with a status that may
    /// change (out of resources, processing failure); see `deliver.rs`.
    #[serde(default = "default_park_after")]
    pub park_after: u32,
}

fn default_calling() -> String {
    "CXR-EDGE".into()
}
fn default_timeout_s() -> u64 {
    30
}
fn default_retry_first_ms() -> u64 {
    5_000
}
fn default_retry_max_ms() -> u64 {
    300_000
}
fn default_park_after() -> u32 {
    10
}

impl ForwardConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s)
    }

    /// `AE@host:port`, for logs and the status command.
    pub fn address(&self) -> String {
        format!("{}@{}:{}", self.ae_title.trim(), self.host, self.port)
    }

    /// Refuse values forwarding cannot run with, naming the table and key.
    pub fn check(&self) -> Result<(), String> {
        let at = format!("forward {:?}", self.name);
        crate::store::check_dest(&self.name).map_err(|e| format!("forward.name: {e}"))?;
        crate::scp::check_ae_title(&format!("{at}: ae_title"), &self.ae_title)?;
        crate::scp::check_ae_title(&format!("{at}: calling_ae_title"), &self.calling_ae_title)?;
        if self.host.trim().is_empty() {
            return Err(format!("{at}: host must not be empty"));
        }
        if self.port == 0 {
            return Err(format!("{at}: port must be 1–65535"));
        }
        if !(1..=3600).contains(&self.timeout_s) {
            return Err(format!("{at}: timeout_s must be 1–3600 seconds"));
        }
        if self.retry_first_ms == 0 || self.retry_max_ms < self.retry_first_ms {
            return Err(format!(
                "{at}: retry_first_ms must be above 0 and retry_max_ms at least retry_first_ms"
            ));
        }
        if self.park_after == 0 {
            return Err(format!("{at}: park_after must be at least 1"));
        }
        Ok(())
    }
}

/// Check every table and that no two share a name.
pub fn check_all(dests: &[ForwardConfig]) -> Result<(), String> {
    for (i, d) in dests.iter().enumerate() {
        d.check()?;
        if dests[..i].iter().any(|e| e.name == d.name) {
            return Err(format!(
                "forward {:?}: two destinations with this name",
                d.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::serve::ServeConfig;

    const BASE: &str = "store = \"/x\"\n[watch]\ndir = \"/d\"\n";

    fn parse(tables: &str) -> Result<ServeConfig, String> {
        ServeConfig::parse(&format!("{BASE}{tables}"), "unit.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn a_destination_needs_only_name_title_host_and_port() {
        let c = parse(
            "[[forward]]\nname = \"pacs\"\nae_title = \"PACS\"\nhost = \"10.0.0.5\"\nport = 104\n",
        )
        .unwrap();
        let f = &c.forward[0];
        assert_eq!(f.address(), "PACS@10.0.0.5:104");
        assert_eq!(f.calling_ae_title, "CXR-EDGE");
        assert!(!f.send_image && !f.send_screen);
        assert_eq!(
            (f.timeout_s, f.retry_first_ms, f.retry_max_ms, f.park_after),
            (30, 5_000, 300_000, 10)
        );
        assert!(
            parse("").unwrap().forward.is_empty(),
            "no table: no forwarding"
        );
    }

    #[test]
    fn bad_destinations_are_named() {
        let ok = "name = \"pacs\"\nae_title = \"PACS\"\nhost = \"h\"\nport = 104\n";
        for (bad, named) in [
            (
                "name = \"../up\"\nae_title = \"PACS\"\nhost = \"h\"\nport = 104\n",
                "forward.name",
            ),
            (
                "name = \"p\"\nae_title = \"A-TITLE-FAR-TOO-LONG\"\nhost = \"h\"\nport = 104\n",
                "ae_title",
            ),
            (
                "name = \"p\"\nae_title = \"PACS\"\nhost = \" \"\nport = 104\n",
                "host",
            ),
            (
                "name = \"p\"\nae_title = \"PACS\"\nhost = \"h\"\nport = 0\n",
                "port",
            ),
            (
                "name = \"p\"\nae_title = \"PACS\"\nhost = \"h\"\nport = 70000\n",
                "port",
            ),
            (&format!("{ok}timeout_s = 0\n"), "timeout_s"),
            (
                &format!("{ok}retry_first_ms = 10\nretry_max_ms = 5\n"),
                "retry_max_ms",
            ),
            (&format!("{ok}park_after = 0\n"), "park_after"),
            (
                &format!("{ok}calling_ae_title = \"\"\n"),
                "calling_ae_title",
            ),
            (&format!("{ok}send_sr = true\n"), "send_sr"),
            ("name = \"p\"\nhost = \"h\"\nport = 104\n", "ae_title"),
        ] {
            let e = parse(&format!("[[forward]]\n{bad}")).unwrap_err();
            assert!(
                e.starts_with("unit.toml:") && e.contains(named),
                "{bad}: {e}"
            );
        }
        let e = parse(&format!("[[forward]]\n{ok}[[forward]]\n{ok}")).unwrap_err();
        assert!(e.contains("two destinations"), "{e}");
    }
}
