//! `[dicom]`: the receiver's settings, and the check run once at load.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::allow::PeerNet;

/// Receiver settings (part of the `serve` configuration). Every limit here
/// bounds what one peer can make the unit hold: at most `max_associations`
/// associations, each buffering at most `max_instance_bytes`, each gone after
/// `association_timeout_s`, or sooner when the peer stalls for
/// `idle_timeout_s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScpConfig {
    /// Our AE title; associations calling another title are rejected
    /// (A-ASSOCIATE-RJ, called AE title not recognized).
    pub ae_title: String,
    /// Address to listen on: the address of the interface the X-ray unit is
    /// on (board/README.md says why not 0.0.0.0); port 0 picks a free port.
    pub bind: SocketAddr,
    /// Largest PDU we accept and announce, bytes; a peer declaring a longer
    /// one is aborted before anything is allocated for it.
    pub max_pdu_length: u32,
    /// ARTIM-style: how long the peer may take to deliver the association
    /// request and then each next PDU, seconds. A silent peer and one
    /// dribbling a byte at a time are both dropped after it.
    pub idle_timeout_s: u64,
    /// Longest an association may last from connect to release, seconds.
    pub association_timeout_s: u64,
    /// Associations served at once; the next one is rejected at once
    /// (A-ASSOCIATE-RJ transient, local limit exceeded).
    pub max_associations: usize,
    /// Largest instance (data set) a C-STORE may carry, bytes; a larger one is
    /// not kept in memory beyond this and is answered with status A700.
    pub max_instance_bytes: u64,
    /// Calling AE titles allowed to associate; empty: any title.
    pub allowed_calling_ae_titles: Vec<String>,
    /// Peer addresses allowed to connect, as `192.168.50.2` or
    /// `192.168.50.0/24` (IPv6 too); empty: any address.
    pub allowed_peers: Vec<PeerNet>,
    /// `[dicom.tls]`: the port speaks DICOM over TLS only (builds with the
    /// `tls` feature); absent: plain TCP.
    pub tls: Option<TlsConfig>,
}

/// `[dicom.tls]`: PEM files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Our certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates a sender's client certificate must chain to; absent:
    /// no client certificate asked for (the allow-list still applies).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

impl Default for ScpConfig {
    fn default() -> Self {
        ScpConfig {
            ae_title: "CXR-EDGE".into(),
            bind: SocketAddr::from(([0, 0, 0, 0], 11112)),
            max_pdu_length: 16_384,
            idle_timeout_s: 60,
            association_timeout_s: 1800,
            max_associations: 4,
            max_instance_bytes: crate::input::ValidateOptions::default().max_input_bytes,
            allowed_calling_ae_titles: Vec::new(),
            allowed_peers: Vec::new(),
            tls: None,
        }
    }
}

/// The PDU lengths dicom-ul can negotiate (its MINIMUM_PDU_SIZE and a
/// generous upper bound: larger PDUs only cost memory here).
const PDU_LENGTHS: std::ops::RangeInclusive<u32> = 1018..=1 << 20;

pub(crate) fn check_ae_title(key: &str, title: &str) -> Result<(), String> {
    let t = title.trim();
    if t.is_empty() || t.len() > 16 || !t.is_ascii() || t.contains('\\') {
        return Err(format!(
            "{key} {title:?} must be 1–16 ASCII characters without a backslash"
        ));
    }
    Ok(())
}

impl ScpConfig {
    /// Refuse values the receiver cannot run with, naming the key.
    pub fn check(&self) -> Result<(), String> {
        check_ae_title("dicom.ae_title", &self.ae_title)?;
        for t in &self.allowed_calling_ae_titles {
            check_ae_title("dicom.allowed_calling_ae_titles entry", t)?;
        }
        if !PDU_LENGTHS.contains(&self.max_pdu_length) {
            return Err(format!(
                "dicom.max_pdu_length {} must be within {}..={}",
                self.max_pdu_length,
                PDU_LENGTHS.start(),
                PDU_LENGTHS.end()
            ));
        }
        if self.idle_timeout_s == 0 || self.association_timeout_s == 0 {
            return Err(
                "dicom.idle_timeout_s and dicom.association_timeout_s must be at least 1".into(),
            );
        }
        if self.max_associations == 0 {
            return Err("dicom.max_associations must be at least 1".into());
        }
        if self.max_instance_bytes == 0 {
            return Err("dicom.max_instance_bytes must be at least 1".into());
        }
        if self.tls.is_some() && !cfg!(feature = "tls") {
            return Err("dicom.tls: this build has no TLS support (cargo feature `tls`)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::serve::ServeConfig;

    fn parse(dicom: &str) -> Result<ServeConfig, String> {
        ServeConfig::parse(&format!("store = \"/x\"\n[dicom]\n{dicom}"), "unit.toml")
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_keys_parse() {
        let c = parse(
            r#"ae_title = "CXR-EDGE"
               bind = "192.168.50.1:11112"
               allowed_calling_ae_titles = ["XRAY-1"]
               allowed_peers = ["192.168.50.2", "10.1.0.0/16"]
               max_associations = 4
               idle_timeout_s = 60
               association_timeout_s = 1800
               max_instance_bytes = 150994944
               max_pdu_length = 16384"#,
        )
        .unwrap();
        let d = c.dicom.unwrap();
        assert_eq!(d.allowed_calling_ae_titles, ["XRAY-1"]);
        assert!(d.allowed_peers[1].contains("10.1.200.3".parse().unwrap()));
        assert_eq!((d.max_associations, d.association_timeout_s), (4, 1800));
        assert_eq!(
            super::ScpConfig::default().max_instance_bytes,
            crate::input::ValidateOptions::default().max_input_bytes
        );
    }

    #[test]
    fn bad_values_are_named() {
        for (text, named) in [
            ("allowed_peers = [\"192.168.50.0/33\"]", "192.168.50.0/33"),
            (
                "allowed_calling_ae_titles = [\"\"]",
                "allowed_calling_ae_titles",
            ),
            ("max_associations = 0", "max_associations"),
            ("idle_timeout_s = 0", "idle_timeout_s"),
            ("max_instance_bytes = 0", "max_instance_bytes"),
            ("max_pdu_length = 100", "max_pdu_length"),
            ("ae_title = \"WAY-TOO-LONG-AE-TITLE\"", "ae_title"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                e.starts_with("unit.toml") && e.contains(named),
                "{text}: {e}"
            );
        }
    }
}
