//! Who may associate: our called AE title, the allow-list of calling AE
//! titles and of peer addresses, checked by dicom-ul during negotiation so a
//! refused peer gets the standard A-ASSOCIATE-RJ; and a log of refusals that
//! says each refusal once, not once per attempt.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Instant;

use dicom_ul::association::server::AccessControl;
use dicom_ul::pdu::{AssociationRJServiceUserReason, UserIdentity};
use serde::{Deserialize, Serialize};

use super::ScpConfig;
use crate::retry::REMIND_EVERY;

/// One allowed peer address or network: `192.168.50.2`, `192.168.50.0/24`,
/// `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerNet {
    addr: IpAddr,
    prefix: u8,
}

impl PeerNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8, bits: u8) -> bool {
    let shift = u32::from(bits - prefix);
    prefix == 0 || (a >> shift) == (b >> shift)
}

impl FromStr for PeerNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("{s:?} is not an IP address or network (192.168.50.2, 192.168.50.0/24)");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(bad)?,
            None => bits,
        };
        Ok(PeerNet { addr, prefix })
    }
}

impl TryFrom<String> for PeerNet {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<PeerNet> for String {
    fn from(n: PeerNet) -> String {
        n.to_string()
    }
}

impl fmt::Display for PeerNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = if self.addr.is_ipv4() { 32 } else { 128 };
        match self.prefix == bits {
            true => write!(f, "{}", self.addr),
            false => write!(f, "{}/{}", self.addr, self.prefix),
        }
    }
}

/// Whether a peer address may connect at all (empty list: any).
pub(super) fn peer_allowed(config: &ScpConfig, ip: IpAddr) -> bool {
    config.allowed_peers.is_empty() || config.allowed_peers.iter().any(|n| n.contains(ip))
}

/// dicom-ul's access check for one association: the called AE title must be
/// ours, the calling one on the allow-list when there is one.
pub(super) struct Gate<'a> {
    pub config: &'a ScpConfig,
    pub peer: String,
    pub log: &'a PeerLog,
}

impl AccessControl for Gate<'_> {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let calling = calling_ae_title.trim();
        let called = called_ae_title.trim();
        let allowed = &self.config.allowed_calling_ae_titles;
        let (reason, why) = if called != this_ae_title.trim() {
            (
                AssociationRJServiceUserReason::CalledAETitleNotRecognized,
                "association refused: called AE title is not ours",
            )
        } else if !allowed.is_empty() && !allowed.iter().any(|a| a.trim() == calling) {
            (
                AssociationRJServiceUserReason::CallingAETitleNotRecognized,
                "association refused: calling AE title not on the allow-list",
            )
        } else {
            return Ok(());
        };
        self.log.warn(&self.peer, (calling, called), why, "");
        Err(reason)
    }
}

/// Most distinct refusals remembered; past it they are counted together.
const REMEMBERED: usize = 256;

/// Logs a refusal, or an association's failure, the first time a (peer,
/// titles, what) is seen and then at most once per [`REMIND_EVERY`] with the
/// count since, so a peer retrying every second, or a scan of the port,
/// cannot flood the log. `what` is stable (it names the fault); `detail`
/// (an error's text) is logged with it but not compared.
#[derive(Default)]
pub struct PeerLog {
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl PeerLog {
    pub fn warn(&self, peer: &str, (calling, called): (&str, &str), what: &str, detail: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = format!("{peer} {calling} {called} {what}");
        if seen.len() >= REMEMBERED && !seen.contains_key(&key) {
            key = format!("(more peers) {what}");
        }
        let now = Instant::now();
        let entry = seen.entry(key).or_insert((now - REMIND_EVERY * 2, 0));
        entry.1 += 1;
        if now.duration_since(entry.0) >= REMIND_EVERY {
            let repeats = entry.1 - 1;
            *entry = (now, 0);
            tracing::warn!(peer, calling, called, repeats, detail, "{what}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_prefix() {
        let net: PeerNet = "192.168.50.0/24".parse().unwrap();
        assert!(net.contains("192.168.50.7".parse().unwrap()));
        assert!(net.contains("::ffff:192.168.50.7".parse().unwrap()));
        assert!(!net.contains("192.168.51.7".parse().unwrap()));
        let one: PeerNet = "10.0.0.2".parse().unwrap();
        assert!(one.contains("10.0.0.2".parse().unwrap()));
        assert!(!one.contains("10.0.0.3".parse().unwrap()));
        let any: PeerNet = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("8.8.8.8".parse().unwrap()));
        let v6: PeerNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.2".parse().unwrap()));
        assert_eq!(net.to_string(), "192.168.50.0/24");
        assert_eq!(one.to_string(), "10.0.0.2");
    }

    #[test]
    fn bad_networks_are_named() {
        for bad in ["192.168.50.0/33", "xray", "10.0.0.0/", "::/129"] {
            let e = bad.parse::<PeerNet>().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
