//! Extended attributes: names with their namespace prefix (`user.`,
//! `trusted.`, `system.`, `security.`, `raw.`), HDFS's limits, and Hadoop's
//! value encodings (`XAttrCodec`: `"text"`, `0x` hex, `0s` base64), shared
//! by the namespace, the shell and WebHDFS.

use crate::FsError;
use serde::{Deserialize, Serialize};

/// Extended attributes an inode holds at most
/// (`dfs.namenode.fs-limits.max-xattrs-per-inode`).
pub const MAX_XATTRS_PER_INODE: usize = 32;
/// Largest name (without its prefix) plus value, in bytes
/// (`dfs.namenode.fs-limits.max-xattr-size`).
pub const MAX_XATTR_SIZE: usize = 16384;

/// The namespaces HDFS defines, each with its own access rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum XAttrNs {
    /// Governed by the inode's permissions.
    User,
    /// Superuser only.
    Trusted,
    /// Reserved for the file system itself: no user may read or write it.
    System,
    /// Reserved; only `security.hdfs.unreadable.by.superuser` may be set.
    Security,
    /// Reserved; visible only through `/.reserved/raw`, which tdfs has not.
    Raw,
}

impl XAttrNs {
    pub fn prefix(self) -> &'static str {
        match self {
            XAttrNs::User => "user.",
            XAttrNs::Trusted => "trusted.",
            XAttrNs::System => "system.",
            XAttrNs::Security => "security.",
            XAttrNs::Raw => "raw.",
        }
    }
}

/// The one `security.` attribute users may set.
pub const UNREADABLE_BY_SUPERUSER: &str = "hdfs.unreadable.by.superuser";

/// Splits `user.foo` into its namespace and the name after the prefix.
/// The prefix matches in any case, as HDFS's `XAttrHelper.buildXAttr`.
pub fn split_name(full: &str) -> Result<(XAttrNs, &str), FsError> {
    let dot = full
        .find('.')
        .filter(|&i| i > 0 && i + 1 < full.len())
        .ok_or_else(|| {
            FsError::InvalidArgument(format!(
                "An XAttr name must be prefixed with user/trusted/security/system/raw, followed by a '.': {full:?}"
            ))
        })?;
    let ns = match full[..dot].to_ascii_lowercase().as_str() {
        "user" => XAttrNs::User,
        "trusted" => XAttrNs::Trusted,
        "system" => XAttrNs::System,
        "security" => XAttrNs::Security,
        "raw" => XAttrNs::Raw,
        _ => {
            return Err(FsError::InvalidArgument(format!(
                "An XAttr name must be prefixed with user/trusted/security/system/raw, followed by a '.': {full:?}"
            )))
        }
    };
    let name = &full[dot + 1..];
    if name.contains('\0') {
        return Err(FsError::InvalidArgument(
            "an XAttr name cannot hold NUL".into(),
        ));
    }
    Ok((ns, name))
}

/// An extended attribute with its full (prefixed) name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct XAttr {
    pub name: String,
    pub value: Vec<u8>,
}

/// SETXATTR's flags: create a new attribute, replace an existing one, or
/// (both) either.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct XAttrFlags {
    pub create: bool,
    pub replace: bool,
}

impl XAttrFlags {
    pub const EITHER: XAttrFlags = XAttrFlags {
        create: true,
        replace: true,
    };

    /// Parses WebHDFS's `flag` (`CREATE`, `REPLACE`, or both comma-separated).
    pub fn parse(s: &str) -> Result<XAttrFlags, FsError> {
        let mut f = XAttrFlags {
            create: false,
            replace: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.to_ascii_uppercase().as_str() {
                "CREATE" => f.create = true,
                "REPLACE" => f.replace = true,
                _ => return Err(FsError::InvalidArgument(format!("bad xattr flag {part:?}"))),
            }
        }
        if !f.create && !f.replace {
            return Ok(XAttrFlags::EITHER);
        }
        Ok(f)
    }
}

/// How a value is written out (Hadoop's `XAttrCodec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Text,
    Hex,
    Base64,
}

impl Encoding {
    pub fn parse(s: &str) -> Result<Encoding, FsError> {
        match s.to_ascii_uppercase().as_str() {
            "TEXT" => Ok(Encoding::Text),
            "HEX" => Ok(Encoding::Hex),
            "BASE64" => Ok(Encoding::Base64),
            _ => Err(FsError::InvalidArgument(format!(
                "Invalid/unsupported encoding option specified: {s}"
            ))),
        }
    }
}

/// Encodes a value: `"text"`, `0x68656c6c6f` or `0saGVsbG8=`.
pub fn encode_value(v: &[u8], e: Encoding) -> String {
    match e {
        Encoding::Text => format!("\"{}\"", String::from_utf8_lossy(v)),
        Encoding::Hex => {
            let mut s = String::from("0x");
            for b in v {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
        Encoding::Base64 => format!("0s{}", base64(v)),
    }
}

/// Decodes a value as Hadoop does: quoted text, `0x` hex, `0s` base64,
/// else the string's own bytes.
pub fn decode_value(s: &str) -> Result<Vec<u8>, FsError> {
    if s.len() >= 2 {
        let prefix = &s.as_bytes()[..2];
        if s.starts_with('"') && s.ends_with('"') {
            return Ok(s.as_bytes()[1..s.len() - 1].to_vec());
        }
        if prefix.eq_ignore_ascii_case(b"0x") {
            return unhex(&s[2..]);
        }
        if prefix.eq_ignore_ascii_case(b"0s") {
            return unbase64(&s[2..]);
        }
    }
    Ok(s.as_bytes().to_vec())
}

fn unhex(s: &str) -> Result<Vec<u8>, FsError> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err(FsError::InvalidArgument(format!(
            "odd number of hex digits in {s:?}"
        )));
    }
    b.chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| FsError::InvalidArgument(format!("bad hex value {s:?}")))
        })
        .collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, no line breaks.
pub fn base64(v: &[u8]) -> String {
    let mut out = String::with_capacity(v.len().div_ceil(3) * 4);
    for c in v.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(s: &str) -> Result<Vec<u8>, FsError> {
    let bad = || FsError::InvalidArgument(format!("bad base64 value {s:?}"));
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = B64.iter().position(|&b| b == c).ok_or_else(bad)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codecs_follow_hadoop() {
        assert_eq!(split_name("user.a.b").unwrap(), (XAttrNs::User, "a.b"));
        assert_eq!(split_name("TRUSTED.x").unwrap().0, XAttrNs::Trusted);
        for bad in ["a", "user.", ".x", "other.x"] {
            assert!(split_name(bad).is_err(), "{bad}");
        }
        for v in [&b""[..], b"h", b"he", b"hel", b"hello world", &[0, 255, 7]] {
            assert_eq!(decode_value(&encode_value(v, Encoding::Hex)).unwrap(), v);
            assert_eq!(decode_value(&encode_value(v, Encoding::Base64)).unwrap(), v);
        }
        assert_eq!(encode_value(b"hello", Encoding::Base64), "0saGVsbG8=");
        assert_eq!(encode_value(b"hello", Encoding::Text), "\"hello\"");
        assert_eq!(decode_value("\"quoted\"").unwrap(), b"quoted");
        assert_eq!(decode_value("0X0a0B").unwrap(), vec![10, 11]);
        assert_eq!(decode_value("plain").unwrap(), b"plain");
        assert!(decode_value("0xzz").is_err());
        assert!(!XAttrFlags::parse("CREATE").unwrap().replace);
        assert_eq!(XAttrFlags::parse("").unwrap(), XAttrFlags::EITHER);
    }
}
