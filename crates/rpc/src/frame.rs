//! Reading and writing length-prefixed frames on async streams.

use std::time::Duration;
use tdfs_proto::codec::{frame_len, HEADER_LEN};
use tdfs_proto::FsError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long the rest of a frame may take once its header has arrived; a peer
/// that stalls mid-frame is cut off.
pub const FRAME_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads one frame body. `Ok(None)` means the peer closed cleanly between
/// frames. The announced length is checked against `max` before allocating.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FsError> {
    let mut header = [0u8; HEADER_LEN];
    match r.read_exact(&mut header[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let body = async {
        r.read_exact(&mut header[1..]).await?;
        let len = frame_len(header, max)?;
        let mut buf = vec![0u8; len];
        r.read_exact(&mut buf).await?;
        Ok::<_, FsError>(buf)
    };
    match tokio::time::timeout(FRAME_BODY_TIMEOUT, body).await {
        Ok(r) => r.map(Some),
        Err(_) => Err(FsError::Protocol(
            "peer stalled in the middle of a frame".into(),
        )),
    }
}

/// Writes one complete frame (as built by `codec::encode_frame`).
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> Result<(), FsError> {
    w.write_all(frame).await?;
    Ok(())
}
