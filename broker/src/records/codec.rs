//! Streaming decompression of a batch's records, with bounded memory.
//!
//! Kafka's codecs: gzip (possibly several members), snappy (xerial-framed as the Java client
//! writes it, or raw as librdkafka writes it), lz4 (frame format) and zstd. Everything but raw
//! snappy streams; raw snappy announces its uncompressed length up front, which is checked
//! against snappy's maximum expansion before anything is allocated, so a hostile batch cannot
//! make the broker allocate more than a small multiple of its own size.

use std::io::{self, Read};

use shoal_storage::Compression;

/// xerial snappy-java stream header: magic, version 1, compatible version 1.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
/// A snappy element expands at most 64 bytes from 3 bytes; anything claiming more is corrupt.
const SNAPPY_MAX_EXPANSION: usize = 22;

/// A reader over the records section of a batch (`compressed` is the bytes after the header).
pub fn records_reader(
    compression: Compression,
    compressed: &[u8],
) -> io::Result<Box<dyn Read + '_>> {
    Ok(match compression {
        Compression::None => Box::new(compressed),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(compressed)),
        Compression::Lz4 => Box::new(lz4::Decoder::new(compressed)?),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(compressed)?),
        Compression::Snappy => {
            if compressed.len() >= XERIAL_HEADER_LEN && compressed[..8] == XERIAL_MAGIC[..] {
                Box::new(XerialSnappy {
                    input: &compressed[XERIAL_HEADER_LEN..],
                    block: Vec::new(),
                    pos: 0,
                })
            } else {
                Box::new(io::Cursor::new(raw_snappy(compressed)?))
            }
        }
    })
}

fn corrupt(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn raw_snappy(block: &[u8]) -> io::Result<Vec<u8>> {
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt(format!("snappy: {e}")))?;
    if len
        > block
            .len()
            .saturating_mul(SNAPPY_MAX_EXPANSION)
            .saturating_add(64)
    {
        return Err(corrupt(format!(
            "snappy block of {} bytes claims {len} uncompressed bytes",
            block.len()
        )));
    }
    snap::raw::Decoder::new()
        .decompress_vec(block)
        .map_err(|e| corrupt(format!("snappy: {e}")))
}

/// snappy-java's framing: `[u32 length][raw snappy block]` repeated, decoded block by block.
struct XerialSnappy<'a> {
    input: &'a [u8],
    block: Vec<u8>,
    pos: usize,
}

impl Read for XerialSnappy<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.block.len() {
            if self.input.is_empty() {
                return Ok(0);
            }
            let Some((len, rest)) = self.input.split_first_chunk::<4>() else {
                return Err(corrupt("truncated snappy-java block length"));
            };
            let len = u32::from_be_bytes(*len) as usize;
            let block = rest
                .get(..len)
                .ok_or_else(|| corrupt("truncated snappy-java block"))?;
            self.block = raw_snappy(block)?;
            self.pos = 0;
            self.input = &rest[len..];
        }
        let n = out.len().min(self.block.len() - self.pos);
        out[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(compression: Compression, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        records_reader(compression, data)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn every_codec_round_trips() {
        let plain: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        assert_eq!(read_all(Compression::Gzip, &gz.finish().unwrap()), plain);

        let mut lz = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        lz.write_all(&plain).unwrap();
        assert_eq!(read_all(Compression::Lz4, &lz.finish().0), plain);

        let zs = zstd::stream::encode_all(&plain[..], 3).unwrap();
        assert_eq!(read_all(Compression::Zstd, &zs), plain);

        let raw = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
        assert_eq!(read_all(Compression::Snappy, &raw), plain);

        let mut framed = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        for chunk in plain.chunks(32 * 1024) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(&block);
        }
        assert_eq!(read_all(Compression::Snappy, &framed), plain);
    }

    #[test]
    fn snappy_length_bombs_are_refused_before_allocating() {
        // A varint claiming 4 GiB followed by nothing.
        let bomb = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(records_reader(Compression::Snappy, &bomb).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in [
            Compression::Gzip,
            Compression::Lz4,
            Compression::Zstd,
            Compression::Snappy,
        ] {
            let mut out = Vec::new();
            let result = records_reader(codec, b"definitely not compressed data")
                .and_then(|mut r| r.read_to_end(&mut out));
            assert!(result.is_err(), "{codec:?}");
        }
    }
}
