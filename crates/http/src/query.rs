//! Parsing a WebHDFS request line: the file system path under `/webhdfs/v1`
//! and the query parameters, as Hadoop reads them (parameter names are
//! case-insensitive, `op` values too, booleans parse as `true`/`false` in any
//! case, unknown parameters are ignored).

use crate::error::WebError;
use std::collections::HashMap;

/// The URL prefix of the REST API.
pub const PREFIX: &str = "/webhdfs/v1";

pub use crate::op::Op;

/// A parsed WebHDFS request: the op, the file system path and the
/// parameters (names lower-cased, values percent-decoded).
#[derive(Clone, Debug)]
pub struct WebRequest {
    pub op: Op,
    pub path: String,
    pub params: Params,
}

/// Parses the method, the URI path and the raw query string of a request.
pub fn parse_request(method: &str, uri_path: &str, query: &str) -> Result<WebRequest, WebError> {
    let path = fs_path(uri_path)?;
    let params = Params::parse(query)?;
    let op = match params.get("op") {
        Some(o) => Op::parse(method, o)?,
        None => return Err(WebError::illegal("Missing webhdfs parameter \"op\"")),
    };
    Ok(WebRequest { op, path, params })
}

/// The file system path of a `/webhdfs/v1/...` URI path, percent-decoded.
pub fn fs_path(uri_path: &str) -> Result<String, WebError> {
    let rest = uri_path
        .strip_prefix(PREFIX)
        .ok_or_else(|| WebError::illegal(format!("not a WebHDFS path: {uri_path}")))?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err(WebError::illegal(format!("not a WebHDFS path: {uri_path}")));
    }
    let decoded = percent_decode(rest, false)?;
    if decoded.is_empty() {
        return Ok("/".into());
    }
    // Validated as the namespace would (absolute, no `.`/`..` or empty
    // component, bounded), so a bad path fails before any redirect.
    tdfs_proto::path::components(&decoded)?;
    Ok(decoded)
}

/// Decodes `%XX` escapes (and `+` as a space in query strings).
pub fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, WebError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| WebError::illegal(format!("bad percent escape in {s:?}")))?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| WebError::illegal(format!("{s:?} is not UTF-8")))
}

/// Encodes a path for a URL (keeps `/` and unreserved characters).
pub fn percent_encode_path(p: &str) -> String {
    let mut s = String::with_capacity(p.len());
    for &c in p.as_bytes() {
        if c.is_ascii_alphanumeric() || b"/-_.~".contains(&c) {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

/// Query parameters, names lower-cased, each with every value it was
/// given (GETXATTRS repeats `xattr.name`); [`get`](Params::get) is the first.
#[derive(Clone, Debug, Default)]
pub struct Params(HashMap<String, Vec<String>>);

/// Longest query string accepted.
const MAX_QUERY: usize = 64 * 1024;

impl Params {
    pub fn parse(query: &str) -> Result<Params, WebError> {
        if query.len() > MAX_QUERY {
            return Err(WebError::illegal("query string too long"));
        }
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let k = percent_decode(k, true)?.to_ascii_lowercase();
            let v = percent_decode(v, true)?;
            m.entry(k).or_default().push(v);
        }
        Ok(Params(m))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.first()).map(|s| s.as_str())
    }

    /// Every value of a repeated parameter, in order.
    pub fn all(&self, name: &str) -> &[String] {
        self.0.get(name).map_or(&[], |v| v.as_slice())
    }

    /// A parameter Hadoop requires for `op` (`validateOpParams`).
    pub fn required(&self, name: &str, op: Op) -> Result<&str, WebError> {
        self.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            WebError::illegal(format!(
                "Required param {name} for op: {} is null or empty",
                op.name()
            ))
        })
    }

    /// The caller, as Hadoop's simple authentication names it.
    pub fn user(&self) -> Option<&str> {
        self.get("doas")
            .or_else(|| self.get("user.name"))
            .filter(|u| !u.is_empty())
    }

    /// A boolean parameter: `true`/`false` in any case; absent means `default`.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, WebError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(WebError::illegal(format!(
                "Invalid value for webhdfs parameter \"{name}\": Failed to parse \"{v}\" as a boolean"
            ))),
        }
    }

    /// An integer parameter in `radix`; absent (or Hadoop's "-1" default for
    /// some) means `None`.
    pub fn num(&self, name: &str, radix: u32) -> Result<Option<u64>, WebError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => u64::from_str_radix(v.trim(), radix).map(Some).map_err(|_| {
                WebError::illegal(format!(
                    "Invalid value for webhdfs parameter \"{name}\": Failed to parse \"{v}\""
                ))
            }),
        }
    }

    /// A signed integer where -1 means "unset" (SETTIMES).
    pub fn time(&self, name: &str) -> Result<Option<u64>, WebError> {
        match self.get(name) {
            None | Some("") | Some("-1") => Ok(None),
            Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
                WebError::illegal(format!(
                    "Invalid value for webhdfs parameter \"{name}\": Failed to parse \"{v}\""
                ))
            }),
        }
    }

    /// A replication factor (1..=65535).
    pub fn replication(&self) -> Result<Option<u16>, WebError> {
        match self.num("replication", 10)? {
            None => Ok(None),
            Some(r) if r >= 1 && r <= u16::MAX as u64 => Ok(Some(r as u16)),
            Some(r) => Err(WebError::illegal(format!(
                "Invalid value for webhdfs parameter \"replication\": {r}"
            ))),
        }
    }

    /// A permission in octal (at most 0o1777).
    pub fn permission(&self) -> Result<Option<u16>, WebError> {
        match self.num("permission", 8)? {
            None => Ok(None),
            Some(m) if m <= 0o1777 => Ok(Some(m as u16)),
            Some(m) => Err(WebError::illegal(format!(
                "Invalid value for webhdfs parameter \"permission\": {m:o} is out of range"
            ))),
        }
    }

    /// The parameters again as a query string (for a redirect), `op` first.
    pub fn to_query(&self, op: Op) -> String {
        let mut keys: Vec<&String> = self.0.keys().filter(|k| k.as_str() != "op").collect();
        keys.sort();
        let mut q = format!("op={}", op.name());
        for k in keys {
            for v in &self.0[k] {
                q.push('&');
                q.push_str(&percent_encode_path(k));
                q.push('=');
                q.push_str(&percent_encode_path(v));
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hadoop_style_requests() {
        let r = parse_request(
            "PUT",
            "/webhdfs/v1/a%20b/c",
            "OP=create&Overwrite=True&user.name=alice&permission=640&junk=1",
        )
        .unwrap();
        assert_eq!(r.op, Op::Create);
        assert_eq!(r.path, "/a b/c");
        assert!(r.params.bool("overwrite", false).unwrap());
        assert_eq!(r.params.user(), Some("alice"));
        assert_eq!(r.params.permission().unwrap(), Some(0o640));
        assert_eq!(
            parse_request("GET", "/webhdfs/v1", "op=liststatus")
                .unwrap()
                .path,
            "/"
        );
    }

    #[test]
    fn rejects_bad_requests_with_400() {
        for (m, p, q) in [
            ("GET", "/webhdfs/v1/x", "op=NOSUCHOP"),
            ("GET", "/webhdfs/v1/x", ""),
            ("PUT", "/webhdfs/v1/x", "op=OPEN"),
            ("GET", "/webhdfs/v1/x%zz", "op=OPEN"),
            ("GET", "/webhdfs/v1/x%ff", "op=OPEN"),
            ("GET", "/webhdfsx", "op=OPEN"),
        ] {
            let e = parse_request(m, p, q).unwrap_err();
            assert_eq!(e.status, 400, "{m} {p}?{q}");
        }
        let p = Params::parse("XATTR.NAME=user.a&xattr.name=user.b&op=x").unwrap();
        assert_eq!(p.all("xattr.name"), ["user.a", "user.b"]);
        assert_eq!(p.get("xattr.name"), Some("user.a"));
        assert!(p
            .to_query(Op::GetXAttrs)
            .ends_with("xattr.name=user.a&xattr.name=user.b"));
        assert!(p.required("encoding", Op::GetXAttrs).is_err());
        let p = Params::parse("overwrite=maybe&permission=99999").unwrap();
        assert!(p.bool("overwrite", false).is_err());
        assert!(p.permission().is_err());
    }
}
