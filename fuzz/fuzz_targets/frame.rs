//! The frame decoder: `tdfs_proto::codec` (`frame_len`, `decode`) and
//! `tdfs_rpc::frame::read_frame` over an in-memory stream, then the frame
//! bodies decoded as the envelopes a server and a client read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tdfs_fuzz::{block_on, MemStream};
use tdfs_proto::codec::{decode, frame_len, HEADER_LEN, MAX_FRAME_LEN};
use tdfs_proto::meta::{Request, Response};
use tdfs_rpc::frame::read_frame;
use tdfs_rpc::{Envelope, Reply};

const LIMITS: [usize; 6] = [0, 1, 16, 1024, 1 << 20, MAX_FRAME_LEN];

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let max = LIMITS[(ctl & 7) as usize % LIMITS.len()];
    let piece = 1 + (ctl >> 3) as usize * 7;

    // The header check on its own.
    if let Some(h) = rest.first_chunk::<HEADER_LEN>() {
        if let Ok(len) = frame_len(*h, max) {
            assert!(len <= max);
        }
    }

    // Whole bodies, without a frame around them.
    let _ = decode::<Request>(rest);
    let _ = decode::<Envelope<Request>>(rest);
    let _ = decode::<Reply<Response>>(rest);

    // A stream of frames, delivered in pieces.
    block_on(async {
        let mut s = MemStream::new(rest, piece);
        for _ in 0..64 {
            match read_frame(&mut s, max).await {
                Ok(Some(body)) => {
                    assert!(body.len() <= max, "frame of {} > {max}", body.len());
                    if let Ok(env) = decode::<Envelope<Request>>(&body) {
                        let _ = tdfs_proto::codec::encode(&env.body).expect("re-encode");
                    }
                    let _ = decode::<Reply<Response>>(&body);
                }
                Ok(None) | Err(_) => break,
            }
        }
    });
});
