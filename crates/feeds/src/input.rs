//! Transparent decompression: gzip and zip reports are unwrapped before parsing, with a cap
//! on the decompressed size so a compression bomb is an error, not an out-of-memory kill.

use crate::FeedError;
use bytes::Bytes;
use std::io::Read;

/// Default cap on the decompressed size of one report.
pub const DEFAULT_LIMIT: u64 = 2 << 30;

/// One report inside an input: its name (the file name, or the member name inside a zip)
/// and its bytes.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub data: Bytes,
}

fn read_limited(r: impl Read, what: &str, limit: u64) -> Result<Vec<u8>, FeedError> {
    let mut out = Vec::new();
    let n = r
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|source| FeedError::Decompress { what: what.to_string(), source })?;
    if n as u64 > limit {
        return Err(FeedError::TooLarge { what: what.to_string(), limit });
    }
    Ok(out)
}

/// Unwraps gzip (by magic bytes) and zip (every file member); anything else is returned as
/// is. The name loses its `.gz` suffix so detection sees the inner file name.
pub fn decode(name: &str, data: Bytes, limit: u64) -> Result<Vec<Member>, FeedError> {
    if data.starts_with(&[0x1f, 0x8b]) {
        let inner = read_limited(flate2::read::MultiGzDecoder::new(&data[..]), name, limit)?;
        let inner_name = name.strip_suffix(".gz").or_else(|| name.strip_suffix(".gzip")).unwrap_or(name);
        return decode(inner_name, Bytes::from(inner), limit);
    }
    if data.starts_with(b"PK\x03\x04") {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&data[..])).map_err(|e| {
            FeedError::Decompress { what: name.to_string(), source: std::io::Error::other(e) }
        })?;
        let mut out = Vec::new();
        let mut total = 0u64;
        for i in 0..archive.len() {
            let file = archive.by_index(i).map_err(|e| FeedError::Decompress {
                what: name.to_string(),
                source: std::io::Error::other(e),
            })?;
            if file.is_dir() {
                continue;
            }
            let member = match file.name() {
                Ok(n) => n.to_string(),
                Err(_) => format!("member-{i}"),
            };
            let what = format!("{name}:{member}");
            let bytes = read_limited(file, &what, limit - total.min(limit))?;
            total += bytes.len() as u64;
            out.push(Member { name: member, data: Bytes::from(bytes) });
        }
        return Ok(out);
    }
    Ok(vec![Member { name: name.to_string(), data }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_is_unwrapped_and_renamed() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"hello\n").unwrap();
        let gz = Bytes::from(enc.finish().unwrap());
        let m = decode("2024-01-01-event4_sinkhole-x.csv.gz", gz, 100).unwrap();
        assert_eq!(m[0].name, "2024-01-01-event4_sinkhole-x.csv");
        assert_eq!(&m[0].data[..], b"hello\n");
    }

    #[test]
    fn bomb_is_refused() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 10_000]).unwrap();
        let gz = Bytes::from(enc.finish().unwrap());
        assert!(matches!(decode("x.gz", gz, 1000), Err(FeedError::TooLarge { .. })));
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&[7u8; 5000]).unwrap();
        let gz = enc.finish().unwrap();
        assert!(decode("x.gz", Bytes::copy_from_slice(&gz[..gz.len() / 2]), 1 << 20).is_err());
    }

    #[test]
    fn zip_members_are_listed() {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            w.start_file("a.txt", zip::write::SimpleFileOptions::default()).unwrap();
            w.write_all(b"1.2.3.4\n").unwrap();
            w.finish().unwrap();
        }
        let m = decode("x.zip", Bytes::from(buf.into_inner()), 1 << 20).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "a.txt");
    }
}
