//! WebHDFS request parsing (`tdfs_http::query`): the method, the URI path
//! under `/webhdfs/v1` and the query string, as the gateway receives them
//! from anyone who can reach its port. Besides "no panic", checks that a
//! parsed request is consistent, that the parameters survive the query
//! string a redirect is built from, and that path encoding round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tdfs_http::query::{fs_path, parse_request, percent_decode, percent_encode_path, Op, Params};

const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "PATCH"];

/// Parameter names the gateway reads.
const NAMES: [&str; 16] = [
    "op",
    "user.name",
    "doas",
    "overwrite",
    "permission",
    "offset",
    "length",
    "destination",
    "replication",
    "blocksize",
    "buffersize",
    "recursive",
    "owner",
    "group",
    "modificationtime",
    "accesstime",
];

fn use_params(p: &Params) {
    let _ = p.user();
    let _ = p.permission();
    for n in NAMES {
        let _ = p.bool(n, false);
        let _ = p.num(n, 10);
        let _ = p.num(n, 8);
        let _ = p.time(n);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    let method = METHODS[(ctl & 7) as usize % METHODS.len()];
    let (raw_path, query) = s.split_once('?').unwrap_or((s, ""));
    // Most inputs get the prefix for free, so the fuzzer works past it.
    let uri_path = if ctl & 8 == 0 {
        format!("/webhdfs/v1{raw_path}")
    } else {
        raw_path.to_string()
    };

    // Encoding then decoding a path gives it back.
    let enc = percent_encode_path(raw_path);
    assert_eq!(percent_decode(&enc, false).expect("decodes"), raw_path);
    assert_eq!(percent_decode(&enc, true).expect("decodes"), raw_path);

    if let Ok(p) = fs_path(&uri_path) {
        assert!(p.starts_with('/'), "{p:?}");
        assert!(!p.contains('\0'));
        let _ = tdfs_proto::path::normalize(&p);
    }
    if let Ok(params) = Params::parse(query) {
        use_params(&params);
    }

    let Ok(req) = parse_request(method, &uri_path, query) else {
        return;
    };
    assert_eq!(req.op.method(), method);
    assert_eq!(Op::parse(method, req.op.name()).expect("own name"), req.op);
    assert!(req.path.starts_with('/') && !req.path.contains('\0'));
    use_params(&req.params);
    // The query string of a redirect carries the same parameters.
    let q = req.params.to_query(req.op);
    if q.len() <= 64 * 1024 {
        let again = Params::parse(&q).expect("own query string parses");
        assert_eq!(again.get("op"), Some(req.op.name()));
        for n in NAMES.iter().filter(|n| **n != "op") {
            assert_eq!(again.get(n), req.params.get(n), "{n} in {q:?}");
        }
        let back = parse_request(method, &uri_path, &q).expect("redirect parses");
        assert_eq!(back.op, req.op);
        assert_eq!(back.path, req.path);
    }
});
