//! Instance keys as file names.
//!
//! Keys are SOP Instance UIDs (`1.2.840…`, at most 64 characters) or content
//! hashes (`sha256:<hex>`). They come from the network, so they must never be
//! able to name a path outside the store. The encoding keeps `[A-Za-z0-9_-]` and
//! inner dots, escapes everything else as `~XX`, and is reversible, so a restart
//! can recover each pending key from the file name alone without a side file
//! that could disagree with it.

use super::StoreError;

/// Longest accepted key; far above a UID (64) or `sha256:<hex>` (71), and short
/// enough that the escaped name fits in a 255-byte file name.
pub const MAX_KEY_LEN: usize = 80;

/// Encode `key` into a file-name stem, or refuse it.
pub fn encode(key: &str) -> Result<String, StoreError> {
    let invalid = |reason| StoreError::InvalidKey {
        key: key.chars().take(100).collect(),
        reason,
    };
    if key.is_empty() {
        return Err(invalid("empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(invalid("longer than 80 bytes"));
    }
    let mut out = String::with_capacity(key.len() * 3);
    for (i, b) in key.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
    }
    Ok(out)
}

/// Inverse of [`encode`]; `None` for a name this module did not produce.
pub fn decode(stem: &str) -> Option<String> {
    let bytes = stem.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'~' {
            let hex = stem.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let key = String::from_utf8(out).ok()?;
    (encode(&key).ok()? == stem).then_some(key)
}

/// Validate an instance file extension (`dcm`, `png`, …).
pub fn check_ext(ext: &str) -> Result<(), StoreError> {
    if !ext.is_empty() && ext.len() <= 8 && ext.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            name: ext.chars().take(100).collect(),
            reason: "extension must be 1-8 ASCII letters or digits",
        })
    }
}

/// Validate an output file name: a plain name, no directory part, not hidden.
pub fn check_output_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            name: name.chars().take(100).collect(),
            reason: "output name must be a plain, non-hidden file name",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_stay_readable_and_everything_round_trips() {
        let uid = "1.2.840.113619.2.55.3.604688119.969.1268071029.320";
        assert_eq!(encode(uid).unwrap(), uid);
        for key in [
            uid,
            "sha256:00ff",
            "../../etc/passwd",
            ".hidden",
            "a/b\\c",
            "é",
        ] {
            let stem = encode(key).unwrap();
            assert!(!stem.contains('/') && !stem.starts_with('.'), "{stem}");
            assert_eq!(decode(&stem).as_deref(), Some(key));
        }
    }

    #[test]
    fn bad_keys_and_foreign_names_are_refused() {
        assert!(encode("").is_err());
        assert!(encode(&"1".repeat(81)).is_err());
        assert_eq!(decode("~zz"), None);
        assert_eq!(decode("~2"), None);
        // Not canonical: '~41' is 'A', which encode keeps plain.
        assert_eq!(decode("~41"), None);
    }
}
