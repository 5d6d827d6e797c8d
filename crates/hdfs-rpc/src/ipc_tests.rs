use super::*;
use crate::proto::hdfs::GetFileInfoRequestProto;

fn strip_len(f: &[u8]) -> Bytes {
    let n = u32::from_be_bytes(f[..4].try_into().unwrap()) as usize;
    assert_eq!(n, f.len() - 4, "length prefix covers the frame");
    Bytes::copy_from_slice(&f[4..])
}

#[test]
fn preamble_accepts_simple_auth_only() {
    assert_eq!(
        parse_preamble(b"hrpc\x09\x00\x00"),
        Ok(Preamble {
            version: 9,
            service_class: 0,
            auth: 0
        })
    );
    assert_eq!(
        parse_preamble(b"hrpc\x08\x00\x00"),
        Err(IpcError::Version(8))
    );
    assert_eq!(
        parse_preamble(b"hrpc\x09\x00\xdf"),
        Err(IpcError::Auth(-33))
    );
    assert_eq!(
        parse_preamble(b"GET / H"),
        Err(IpcError::BadMagic(*b"GET "))
    );
}

#[test]
fn frame_lengths_are_capped_before_allocation() {
    assert_eq!(frame_len(100u32.to_be_bytes()), Ok(100));
    assert_eq!(frame_len((MAX_FRAME as u32).to_be_bytes()), Ok(MAX_FRAME));
    assert_eq!(
        frame_len((MAX_FRAME as u32 + 1).to_be_bytes()),
        Err(IpcError::Oversized(MAX_FRAME as u64 + 1))
    );
    // Negative as Java reads it.
    assert!(frame_len(0xffff_ffffu32.to_be_bytes()).is_err());
}

#[test]
fn context_round_trip() {
    let hello = client_hello("alice", &[7; 16]);
    assert_eq!(&hello[..7], b"hrpc\x09\x00\x00");
    let ctx = parse_context(strip_len(&hello[7..])).unwrap();
    assert_eq!(ctx.user, "alice");
    assert_eq!(ctx.protocol, CLIENT_PROTOCOL);
    assert_eq!(ctx.client_id, vec![7; 16]);
}

#[test]
fn context_must_come_first_and_name_a_user() {
    let req = GetFileInfoRequestProto { src: "/".into() };
    let f = call_frame(0, &[1; 16], "getFileInfo", &req);
    assert!(matches!(
        parse_context(strip_len(&f)),
        Err(IpcError::Header(_))
    ));
    let nobody = frame(&[
        &request_header(CONNECTION_CONTEXT_CALL_ID, &[1; 16], -1),
        &IpcConnectionContextProto::default(),
    ]);
    assert!(matches!(
        parse_context(strip_len(&nobody)),
        Err(IpcError::Header(_))
    ));
}

#[test]
fn call_round_trip_and_ping() {
    let req = GetFileInfoRequestProto { src: "/a".into() };
    let f = call_frame(42, &[3; 16], "getFileInfo", &req);
    let Frame::Call(c) = parse_call(strip_len(&f)).unwrap() else {
        panic!("a call")
    };
    assert_eq!(c.header.call_id, 42);
    assert_eq!(c.method.method_name, "getFileInfo");
    assert_eq!(c.method.declaring_class_protocol_name, CLIENT_PROTOCOL);
    let mut body = c.body;
    assert_eq!(
        take_delimited::<GetFileInfoRequestProto>(&mut body, "req").unwrap(),
        req
    );
    let ping = frame(&[&request_header(PING_CALL_ID, &[3; 16], -1)]);
    assert_eq!(parse_call(strip_len(&ping)).unwrap(), Frame::Ping);
}

#[test]
fn truncated_and_garbage_frames_are_errors() {
    let req = GetFileInfoRequestProto { src: "/abc".into() };
    let f = call_frame(1, &[3; 16], "getFileInfo", &req);
    let body = strip_len(&f);
    // Every cut inside the two headers fails to parse; none panics.
    for cut in 0..body.len() {
        let r = parse_call(body.slice(..cut));
        if let Ok(Frame::Call(c)) = r {
            // Cut inside the request itself: the method handler refuses it.
            let mut b = c.body;
            assert!(take_delimited::<GetFileInfoRequestProto>(&mut b, "req").is_err());
        }
    }
    for garbage in [
        &b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"[..],
        b"\x05abc",
        b"",
    ] {
        assert!(parse_call(Bytes::copy_from_slice(garbage)).is_err());
    }
    // A varint length claiming more than the frame holds.
    assert!(parse_call(Bytes::from_static(b"\xff\xff\xff\x7f\x00")).is_err());
}

#[test]
fn writable_rpc_and_negative_call_ids_are_refused() {
    let mut h = request_header(1, &[1; 16], 0);
    h.rpc_kind = Some(RpcKindProto::RpcWritable as i32);
    assert!(matches!(
        parse_call(strip_len(&frame(&[&h]))),
        Err(IpcError::Header(_))
    ));
    let h = request_header(-7, &[1; 16], 0);
    assert!(matches!(
        parse_call(strip_len(&frame(&[&h]))),
        Err(IpcError::Header(_))
    ));
}

#[test]
fn replies_echo_the_call_and_carry_errors() {
    let to = ReplyTo {
        call_id: 9,
        client_id: vec![5; 16],
        retry_count: Some(2),
        state_id: Some(77),
    };
    let ok = encode_reply(&to, &Outcome::Success(vec![0x02, 0x08, 0x01]));
    let (h, body) = parse_reply(strip_len(&ok)).unwrap();
    assert_eq!((h.call_id, h.status), (9, RpcStatusProto::Success as i32));
    assert_eq!(
        (h.client_id, h.retry_count, h.state_id),
        (Some(vec![5; 16]), Some(2), Some(77))
    );
    assert_eq!(&body[..], &[0x02, 0x08, 0x01]);
    let err = Outcome::Failure {
        fatal: false,
        class: "java.io.FileNotFoundException".into(),
        message: "File does not exist: /x".into(),
        code: RpcErrorCodeProto::ErrorApplication,
    };
    let (h, body) = parse_reply(strip_len(&encode_reply(&to, &err))).unwrap();
    assert_eq!(h.status, RpcStatusProto::Error as i32);
    assert_eq!(
        h.exception_class_name.as_deref(),
        Some("java.io.FileNotFoundException")
    );
    assert!(body.is_empty());
    let fatal = fatal_reply(&IpcError::Version(7), None);
    let (h, _) = parse_reply(strip_len(&fatal)).unwrap();
    assert_eq!(h.status, RpcStatusProto::Fatal as i32);
    assert_eq!(
        h.error_detail,
        Some(RpcErrorCodeProto::FatalVersionMismatch as i32)
    );
    assert_eq!(h.call_id, INVALID_CALL_ID as u32);
}
