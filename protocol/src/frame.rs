//! Length-prefixed framing: every Kafka request and response is an `i32` byte count followed by
//! that many bytes.
//!
//! The decoder is sans-IO: the connection reads socket bytes into a `BytesMut` and asks
//! [`FrameDecoder::decode`] for complete frames. The size is checked against the limit *before*
//! any buffer is grown for the frame body, so a hostile size prefix costs nothing.

use bytes::{Buf, Bytes, BytesMut};

/// Bytes in the size prefix of every frame.
pub const SIZE_PREFIX_LEN: usize = 4;

/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// A frame that can never be accepted; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The size prefix is negative.
    #[error("invalid frame size {size}")]
    NegativeSize {
        /// The size prefix as sent.
        size: i32,
    },
    /// The size prefix exceeds the configured maximum.
    #[error(
        "frame of {size} bytes is larger than the maximum of {max_bytes} bytes (socket.request.max.bytes)"
    )]
    TooLarge {
        /// The size prefix as sent.
        size: usize,
        /// The configured maximum.
        max_bytes: usize,
    },
}

/// Splits a byte stream into frames of at most `max_frame_bytes` bytes each.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
}

impl FrameDecoder {
    /// A decoder that rejects frames larger than `max_frame_bytes` (the body, without the prefix).
    pub fn new(max_frame_bytes: usize) -> Self {
        Self { max_frame_bytes }
    }

    /// The configured maximum frame size in bytes.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Takes the next complete frame body off the front of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed. Once the size prefix has been read and
    /// accepted, `buf` reserves room for the rest of the frame so that the caller's next read can
    /// fill it without repeated reallocation; nothing is reserved for a rejected size.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(size) = self.peek_size(buf)? else {
            return Ok(None);
        };
        let total = SIZE_PREFIX_LEN + size;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        buf.advance(SIZE_PREFIX_LEN);
        Ok(Some(buf.split_to(size).freeze()))
    }

    /// The body size announced by the prefix at the front of `buf`, validated, if the prefix is
    /// complete.
    pub fn peek_size(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = buf.get(..SIZE_PREFIX_LEN) else {
            return Ok(None);
        };
        let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let size = usize::try_from(size).map_err(|_| FrameError::NegativeSize { size })?;
        if size > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                size,
                max_bytes: self.max_frame_bytes,
            });
        }
        Ok(Some(size))
    }
}

/// Prepends the size prefix to `body`, producing one wire frame.
pub fn encode_frame(body: &[u8]) -> Result<Bytes, FrameError> {
    let size = i32::try_from(body.len()).map_err(|_| FrameError::TooLarge {
        size: body.len(),
        max_bytes: i32::MAX as usize,
    })?;
    let mut out = BytesMut::with_capacity(SIZE_PREFIX_LEN + body.len());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(body);
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_prefix_and_then_the_body() {
        let decoder = FrameDecoder::new(16);
        let mut buf = BytesMut::from(&[0u8, 0, 0][..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&[3, b'a', b'b']);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert!(
            buf.capacity() >= 7,
            "room reserved for the rest of the frame"
        );
        buf.extend_from_slice(b"cX");
        assert_eq!(
            decoder.decode(&mut buf),
            Ok(Some(Bytes::from_static(b"abc")))
        );
        assert_eq!(&buf[..], b"X");
    }

    #[test]
    fn rejects_oversized_frames_before_reserving() {
        let decoder = FrameDecoder::new(16);
        let mut buf = BytesMut::from(&17i32.to_be_bytes()[..]);
        let capacity = buf.capacity();
        assert_eq!(
            decoder.decode(&mut buf),
            Err(FrameError::TooLarge {
                size: 17,
                max_bytes: 16
            })
        );
        assert_eq!(buf.capacity(), capacity);
    }

    #[test]
    fn rejects_negative_sizes() {
        let decoder = FrameDecoder::new(16);
        let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Err(FrameError::NegativeSize { size: -1 })
        );
    }

    #[test]
    fn accepts_an_empty_frame_and_the_exact_maximum() {
        let decoder = FrameDecoder::new(2);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&0i32.to_be_bytes());
        buf.extend_from_slice(&2i32.to_be_bytes());
        buf.extend_from_slice(b"hi");
        assert_eq!(decoder.decode(&mut buf), Ok(Some(Bytes::new())));
        assert_eq!(
            decoder.decode(&mut buf),
            Ok(Some(Bytes::from_static(b"hi")))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn encode_frame_prefixes_the_length() {
        let frame = encode_frame(b"xyz").unwrap();
        assert_eq!(&frame[..], &[0, 0, 0, 3, b'x', b'y', b'z']);
    }
}
