//! Compressed XVAs, as upstream handles them: an export asked for with
//! `use_compression=true|gzip` is gzip-compressed and `use_compression=zstd` zstd-compressed
//! (any other value, or none, leaves it plain); an import is recognised as compressed by its
//! first bytes (the zstd frame magic, else the gzip magic) and decompressed while it is spooled.
//! Both directions stream through `std::io::Write` adapters, so memory stays bounded.
use std::io::{Result, Write};

/// A compression algorithm of an XVA stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// gzip (RFC 1952).
    Gzip,
    /// Zstandard.
    Zstd,
}

/// The zstd frame magic number, as it appears on the wire.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// The gzip member magic.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// How many leading bytes `sniff` needs to decide.
pub const SNIFF_LEN: usize = ZSTD_MAGIC.len();

impl Algorithm {
    /// The algorithm a `use_compression` query value asks for, as upstream reads it.
    pub fn from_query(value: Option<&str>) -> Option<Self> {
        match value? {
            "true" | "gzip" => Some(Self::Gzip),
            "zstd" => Some(Self::Zstd),
            _ => None,
        }
    }

    /// The algorithm a stream starting with `head` is compressed with, if any.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        if head.starts_with(&ZSTD_MAGIC) {
            Some(Self::Zstd)
        } else if head.starts_with(&GZIP_MAGIC) {
            Some(Self::Gzip)
        } else {
            None
        }
    }
}

/// A writer that compresses what it is given into `W` (or passes it through).
pub enum Encoder<W: Write> {
    /// No compression.
    Plain(W),
    /// gzip.
    Gzip(flate2::write::GzEncoder<W>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Starts compressing into `out` with `algorithm`.
    pub fn new(algorithm: Option<Algorithm>, out: W) -> Result<Self> {
        Ok(match algorithm {
            None => Self::Plain(out),
            Some(Algorithm::Gzip) => Self::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::default(),
            )),
            Some(Algorithm::Zstd) => Self::Zstd(zstd::stream::write::Encoder::new(out, 0)?),
        })
    }

    /// Writes the compressed stream's trailer and gives the inner writer back.
    pub fn finish(self) -> Result<W> {
        match self {
            Self::Plain(w) => Ok(w),
            Self::Gzip(e) => e.finish(),
            Self::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, data: &[u8]) -> Result<usize> {
        match self {
            Self::Plain(w) => w.write(data),
            Self::Gzip(e) => e.write(data),
            Self::Zstd(e) => e.write(data),
        }
    }

    fn flush(&mut self) -> Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Gzip(e) => e.flush(),
            Self::Zstd(e) => e.flush(),
        }
    }
}

/// A writer that decompresses what it is given into `W` (or passes it through).
pub enum Decoder<W: Write> {
    /// Not compressed.
    Plain(W),
    /// gzip.
    Gzip(flate2::write::GzDecoder<W>),
    /// zstd.
    Zstd(zstd::stream::write::Decoder<'static, W>),
}

impl<W: Write> Decoder<W> {
    /// Starts decompressing `algorithm` into `out`.
    pub fn new(algorithm: Option<Algorithm>, out: W) -> Result<Self> {
        Ok(match algorithm {
            None => Self::Plain(out),
            Some(Algorithm::Gzip) => Self::Gzip(flate2::write::GzDecoder::new(out)),
            Some(Algorithm::Zstd) => Self::Zstd(zstd::stream::write::Decoder::new(out)?),
        })
    }

    /// Flushes what is decoded and gives the inner writer back.
    pub fn finish(self) -> Result<W> {
        match self {
            Self::Plain(w) => Ok(w),
            Self::Gzip(d) => d.finish(),
            Self::Zstd(mut d) => {
                d.flush()?;
                Ok(d.into_inner())
            }
        }
    }
}

impl<W: Write> Write for Decoder<W> {
    fn write(&mut self, data: &[u8]) -> Result<usize> {
        match self {
            Self::Plain(w) => w.write(data),
            Self::Gzip(d) => d.write(data),
            Self::Zstd(d) => d.write(data),
        }
    }

    fn flush(&mut self) -> Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Gzip(d) => d.flush(),
            Self::Zstd(d) => d.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_read_as_upstream_reads_them() {
        assert_eq!(Algorithm::from_query(Some("true")), Some(Algorithm::Gzip));
        assert_eq!(Algorithm::from_query(Some("gzip")), Some(Algorithm::Gzip));
        assert_eq!(Algorithm::from_query(Some("zstd")), Some(Algorithm::Zstd));
        assert_eq!(Algorithm::from_query(Some("false")), None);
        assert_eq!(Algorithm::from_query(None), None);
    }

    #[test]
    fn each_algorithm_round_trips_and_is_recognised_by_its_magic() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for alg in [None, Some(Algorithm::Gzip), Some(Algorithm::Zstd)] {
            let mut enc = Encoder::new(alg, Vec::new()).unwrap();
            enc.write_all(&data).unwrap();
            let packed = enc.finish().unwrap();
            assert_eq!(Algorithm::sniff(&packed[..SNIFF_LEN]), alg);
            if alg.is_some() {
                assert!(packed.len() < data.len() / 4, "{alg:?} did not compress");
            }
            let mut dec = Decoder::new(alg, Vec::new()).unwrap();
            for piece in packed.chunks(777) {
                dec.write_all(piece).unwrap();
            }
            assert_eq!(dec.finish().unwrap(), data);
        }
    }

    #[test]
    fn a_tar_is_not_mistaken_for_a_compressed_stream() {
        assert_eq!(Algorithm::sniff(b"ova.xml\0\0\0"), None);
    }
}
