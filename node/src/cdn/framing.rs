//! Frames on CDN streams: `u32 LE length ‖ SCALE message`, and raw bodies.
//!
//! A reader checks the announced length against the message type's limit
//! before reading a byte of the body, so a peer can never make it buffer
//! more than one bounded message; chunk bodies are read straight into a
//! buffer of the size the (bounded) header announced. Every read and write
//! has a deadline, so a peer that stalls costs a task for at most that long.

use cachecash_cdn::codec::WireMessage;
use cachecash_cdn::error::DecodeError;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use parity_scale_codec::Encode;
use std::time::Duration;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the stream between messages.
    #[error("the peer closed the stream")]
    Closed,
    /// The stream failed.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer announced a message over the type's limit.
    #[error("the peer announced a {message} of {got} bytes, over the limit of {limit}")]
    TooLarge {
        /// Message type.
        message: &'static str,
        /// Announced length.
        got: usize,
        /// Limit.
        limit: usize,
    },
    /// The message did not decode.
    #[error(transparent)]
    Malformed(#[from] DecodeError),
    /// No progress within the deadline.
    #[error("the peer did not answer within {0:?}")]
    Timeout(Duration),
}

impl FrameError {
    /// Whether the peer broke the protocol (as opposed to going away or
    /// being slow): malformed or oversized data, which earns a ban.
    pub fn is_violation(&self) -> bool {
        matches!(self, FrameError::TooLarge { .. } | FrameError::Malformed(_))
    }
}

async fn with_deadline<T>(
    deadline: Duration,
    f: impl std::future::Future<Output = Result<T, FrameError>>,
) -> Result<T, FrameError> {
    tokio::time::timeout(deadline, f)
        .await
        .map_err(|_| FrameError::Timeout(deadline))?
}

/// Writes one message and flushes.
pub async fn write_msg<W, T>(io: &mut W, msg: &T, deadline: Duration) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Encode,
{
    let body = msg.encode();
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge {
        message: "outgoing message",
        got: body.len(),
        limit: u32::MAX as usize,
    })?;
    with_deadline(deadline, async {
        io.write_all(&len.to_le_bytes()).await?;
        io.write_all(&body).await?;
        io.flush().await?;
        Ok(())
    })
    .await
}

/// Reads one message of type `T`, bounded by `T::MAX_BYTES`.
pub async fn read_msg<R, T>(io: &mut R, deadline: Duration) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: WireMessage,
{
    with_deadline(deadline, async {
        let mut len = [0u8; 4];
        match io.read_exact(&mut len).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(FrameError::Closed);
            }
            Err(e) => return Err(e.into()),
        }
        let len = usize::try_from(u32::from_le_bytes(len)).unwrap_or(usize::MAX);
        if len > T::MAX_BYTES {
            return Err(FrameError::TooLarge {
                message: T::NAME,
                got: len,
                limit: T::MAX_BYTES,
            });
        }
        let mut body = vec![0u8; len];
        io.read_exact(&mut body).await?;
        Ok(cachecash_cdn::decode_bounded::<T>(&body)?)
    })
    .await
}

/// Reads exactly `buf.len()` raw bytes (a chunk body).
pub async fn read_body<R>(io: &mut R, buf: &mut [u8], deadline: Duration) -> Result<(), FrameError>
where
    R: AsyncRead + Unpin,
{
    with_deadline(deadline, async {
        io.read_exact(buf).await?;
        Ok(())
    })
    .await
}

/// Writes raw bytes (a chunk body) and flushes.
pub async fn write_body<W>(io: &mut W, buf: &[u8], deadline: Duration) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
{
    with_deadline(deadline, async {
        io.write_all(buf).await?;
        io.flush().await?;
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachecash_cdn::messages::{ChunkReply, OfferReply};
    use futures::io::Cursor;

    const T: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn messages_round_trip_through_frames() {
        let mut buf = Cursor::new(Vec::new());
        write_msg(&mut buf, &OfferReply::Refused(b"no".to_vec()), T)
            .await
            .unwrap();
        write_msg(&mut buf, &ChunkReply::Data { len: 7 }, T)
            .await
            .unwrap();
        buf.set_position(0);
        let a: OfferReply = read_msg(&mut buf, T).await.unwrap();
        let b: ChunkReply = read_msg(&mut buf, T).await.unwrap();
        assert_eq!(a, OfferReply::Refused(b"no".to_vec()));
        assert_eq!(b, ChunkReply::Data { len: 7 });
        let end = read_msg::<_, OfferReply>(&mut buf, T).await;
        assert!(matches!(end, Err(FrameError::Closed)));
    }

    #[tokio::test]
    async fn an_oversized_announcement_is_refused_before_reading_the_body() {
        let mut bytes = (u32::MAX).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        let err = read_msg::<_, OfferReply>(&mut Cursor::new(bytes), T)
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
        assert!(err.is_violation());
    }

    #[tokio::test]
    async fn garbage_is_malformed_and_a_cut_stream_is_an_io_error() {
        let mut bytes = 3u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[9, 9, 9]);
        let err = read_msg::<_, OfferReply>(&mut Cursor::new(bytes), T)
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");
        let mut cut = 10u32.to_le_bytes().to_vec();
        cut.extend_from_slice(&[0; 3]);
        let err = read_msg::<_, OfferReply>(&mut Cursor::new(cut), T)
            .await
            .unwrap_err();
        assert!(
            matches!(err, FrameError::Io(_)) && !err.is_violation(),
            "{err}"
        );
    }
}
