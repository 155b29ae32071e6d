//! Kafka's record codecs, for the cleaner: it decompresses a batch's records to filter them and
//! recompresses the survivors with the batch's original codec.
//!
//! gzip (possibly several members), snappy (xerial-framed as the Java client writes it, or raw
//! as librdkafka writes it; the cleaner writes xerial framing, which every client reads), lz4
//! (frame format with independent blocks and no content checksum, as Kafka's
//! `KafkaLZ4BlockOutputStream` writes it) and zstd. Decompression is bounded: a batch claiming
//! more than the caller's limit is refused.

use std::io::{self, Read, Write};

use crate::record_batch::Compression;

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
/// snappy-java's default block size.
const XERIAL_BLOCK: usize = 32 * 1024;

fn corrupt(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn read_bounded(mut r: impl Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.by_ref().take(limit as u64 + 1).read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(corrupt(format!(
            "records decompress to more than {limit} bytes"
        )));
    }
    Ok(out)
}

fn raw_snappy(block: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt(format!("snappy: {e}")))?;
    if len > limit {
        return Err(corrupt(format!(
            "snappy block claims {len} bytes, more than {limit}"
        )));
    }
    snap::raw::Decoder::new()
        .decompress_vec(block)
        .map_err(|e| corrupt(format!("snappy: {e}")))
}

/// Decompresses a batch's records section (the bytes after the header), at most `limit` bytes.
pub(crate) fn decompress(codec: Compression, data: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    match codec {
        Compression::None => {
            if data.len() > limit {
                return Err(corrupt(format!("records exceed {limit} bytes")));
            }
            Ok(data.to_vec())
        }
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(data), limit),
        Compression::Lz4 => read_bounded(lz4::Decoder::new(data)?, limit),
        Compression::Zstd => read_bounded(zstd::stream::read::Decoder::with_buffer(data)?, limit),
        Compression::Snappy => {
            if data.len() >= XERIAL_HEADER_LEN && data[..8] == XERIAL_MAGIC[..] {
                let mut out = Vec::new();
                let mut input = &data[XERIAL_HEADER_LEN..];
                while !input.is_empty() {
                    let Some((len, rest)) = input.split_first_chunk::<4>() else {
                        return Err(corrupt("truncated snappy-java block length"));
                    };
                    let len = u32::from_be_bytes(*len) as usize;
                    let block = rest
                        .get(..len)
                        .ok_or_else(|| corrupt("truncated snappy-java block"))?;
                    let room = limit.saturating_sub(out.len());
                    out.extend_from_slice(&raw_snappy(block, room)?);
                    input = &rest[len..];
                }
                Ok(out)
            } else {
                raw_snappy(data, limit)
            }
        }
    }
}

/// Compresses records with `codec` in the form Kafka's Java producer writes.
pub(crate) fn compress(codec: Compression, data: &[u8]) -> io::Result<Vec<u8>> {
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data)?;
            e.finish()
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + data.len() / 2 + 16);
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut enc = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK) {
                let block = enc
                    .compress_vec(chunk)
                    .map_err(|e| io::Error::other(format!("snappy: {e}")))?;
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            let mut e = lz4::EncoderBuilder::new()
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(Vec::new())?;
            e.write_all(data)?;
            let (out, r) = e.finish();
            r.map(|()| out)
        }
        Compression::Zstd => zstd::encode_all(data, 3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips_and_decompression_is_bounded() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let packed = compress(codec, &data).unwrap();
            assert_eq!(
                decompress(codec, &packed, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
            assert!(
                decompress(codec, &packed, data.len() - 1).is_err(),
                "{codec:?}"
            );
        }
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, data.len()).unwrap(),
            data
        );
        assert!(decompress(Compression::Gzip, b"not gzip", 100).is_err());
    }
}
