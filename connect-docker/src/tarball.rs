//! Just enough of the tar format to read `docker save`'s stream entry by entry and to write build contexts
//! and the rewritten manifest: ustar headers, GNU long names and PAX path records.

use tokio::io::{AsyncRead, AsyncReadExt};

pub(crate) const BLOCK: usize = 512;

/// One header block for a regular file (`typeflag` `0`) or directory (`5`). Names longer than 100 bytes are
/// split into ustar's prefix and name where possible.
pub(crate) fn header(name: &str, size: u64, mode: u32, typeflag: u8) -> std::io::Result<[u8; BLOCK]> {
    let mut h = [0u8; BLOCK];
    let (prefix, short) = if name.len() <= 100 {
        ("", name)
    } else {
        let split = name
            .char_indices()
            .filter(|(i, c)| *c == '/' && *i <= 155 && name.len() - i - 1 <= 100)
            .map(|(i, _)| i)
            .next()
            .ok_or_else(|| std::io::Error::other(format!("path too long for a tar header: {name}")))?;
        (&name[..split], &name[split + 1..])
    };
    h[..short.len()].copy_from_slice(short.as_bytes());
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0);
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    octal(&mut h[148..155], sum);
    Ok(h)
}

fn octal(field: &mut [u8], value: u64) {
    let s = format!("{value:0width$o}", width = field.len() - 1);
    let bytes = s.as_bytes();
    let width = field.len() - 1;
    let start = bytes.len().saturating_sub(width);
    field[..width].copy_from_slice(&bytes[start..]);
    field[width] = 0;
}

/// Zero bytes that pad `size` to a whole block.
pub(crate) fn padding(size: u64) -> usize {
    (BLOCK - (size % BLOCK as u64) as usize) % BLOCK
}

/// A whole archive in memory: for build contexts, which are small.
#[derive(Debug, Default, Clone)]
pub(crate) struct TarWriter {
    buf: Vec<u8>,
}

impl TarWriter {
    pub(crate) fn file(&mut self, name: &str, data: &[u8], mode: u32) -> std::io::Result<()> {
        self.buf
            .extend_from_slice(&header(name, data.len() as u64, mode, b'0')?);
        self.buf.extend_from_slice(data);
        self.buf.resize(self.buf.len() + padding(data.len() as u64), 0);
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf.resize(self.buf.len() + 2 * BLOCK, 0);
        self.buf
    }
}

/// An entry's header as read: the raw blocks to copy through unchanged and what they say.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The path, after long-name and PAX records.
    pub name: String,
    /// The content's length.
    pub size: u64,
    /// `0`/NUL file, `5` directory, ...
    pub typeflag: u8,
    /// The raw bytes of any extension records and the header itself, in order.
    pub raw_header: Vec<u8>,
}

/// Reads a tar stream entry by entry; the caller reads or skips each entry's content.
pub(crate) struct TarReader<R> {
    inner: R,
    remaining: u64,
    pad: usize,
}

fn parse_size(field: &[u8]) -> std::io::Result<u64> {
    if field[0] & 0x80 != 0 {
        // Base-256, for sizes past 8 GiB.
        let mut v: u64 = 0;
        for b in &field[1..] {
            v = v
                .checked_mul(256)
                .ok_or_else(|| std::io::Error::other("tar size overflows"))?
                + u64::from(*b);
        }
        return Ok(v);
    }
    let s: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect::<String>();
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8).map_err(|_| std::io::Error::other(format!("bad tar size field {s:?}")))
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

impl<R: AsyncRead + Unpin> TarReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        TarReader {
            inner,
            remaining: 0,
            pad: 0,
        }
    }

    /// The next entry, skipping what is left of the current one; `None` at the end of the archive.
    pub(crate) async fn next_entry(&mut self) -> std::io::Result<Option<Entry>> {
        self.skip_rest().await?;
        let mut raw = Vec::new();
        let mut name_override: Option<String> = None;
        loop {
            let mut h = [0u8; BLOCK];
            match self.inner.read_exact(&mut h).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && raw.is_empty() => return Ok(None),
                Err(e) => return Err(e),
            }
            if h.iter().all(|b| *b == 0) {
                return Ok(None);
            }
            let size = parse_size(&h[124..136])?;
            let typeflag = h[156];
            raw.extend_from_slice(&h);
            match typeflag {
                b'L' | b'x' | b'g' => {
                    let len = usize::try_from(size)
                        .map_err(|_| std::io::Error::other("tar extension too large"))?;
                    if len > 1 << 20 {
                        return Err(std::io::Error::other("tar extension record larger than 1 MiB"));
                    }
                    let mut data = vec![0u8; len + padding(size)];
                    self.inner.read_exact(&mut data).await?;
                    if typeflag == b'L' {
                        name_override = Some(cstr(&data[..len]));
                    } else if typeflag == b'x'
                        && let Some(p) = pax_path(&data[..len])
                    {
                        name_override = Some(p);
                    }
                    raw.extend_from_slice(&data);
                }
                _ => {
                    let name = name_override.take().unwrap_or_else(|| {
                        let short = cstr(&h[0..100]);
                        let prefix = if &h[257..262] == b"ustar" {
                            cstr(&h[345..500])
                        } else {
                            String::new()
                        };
                        if prefix.is_empty() {
                            short
                        } else {
                            format!("{prefix}/{short}")
                        }
                    });
                    self.remaining = size;
                    self.pad = padding(size);
                    return Ok(Some(Entry {
                        name,
                        size,
                        typeflag,
                        raw_header: raw,
                    }));
                }
            }
        }
    }

    /// Reads up to `buf.len()` bytes of the current entry's content; 0 at its end.
    pub(crate) async fn read_content(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the image stream ended inside an entry",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }

    /// Reads the whole content of the current (small) entry.
    pub(crate) async fn read_all(&mut self, limit: u64) -> std::io::Result<Vec<u8>> {
        if self.remaining > limit {
            return Err(std::io::Error::other(format!("entry larger than {limit} bytes")));
        }
        let mut out = vec![0u8; usize::try_from(self.remaining).unwrap_or(0)];
        self.inner.read_exact(&mut out).await?;
        self.remaining = 0;
        Ok(out)
    }

    async fn skip_rest(&mut self) -> std::io::Result<()> {
        let mut scratch = [0u8; 64 * 1024];
        while self.remaining > 0 {
            let n = self.read_content(&mut scratch).await?;
            debug_assert!(n > 0);
        }
        if self.pad > 0 {
            let pad = self.pad;
            self.inner.read_exact(&mut scratch[..pad]).await?;
            self.pad = 0;
        }
        Ok(())
    }
}

fn pax_path(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let mut rest: &str = &text;
    while !rest.is_empty() {
        let (len, _) = rest.split_once(' ')?;
        let n: usize = len.parse().ok()?;
        let record = rest.get(..n)?;
        rest = &rest[n..];
        let kv = record.split_once(' ')?.1.trim_end_matches('\n');
        if let Some(p) = kv.strip_prefix("path=") {
            return Some(p.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_what_it_reads() {
        let mut w = TarWriter::default();
        w.file("Dockerfile", b"FROM scratch\n", 0o644).expect("file");
        let long = format!("{}/{}", "d".repeat(120), "app");
        w.file(&long, &[7u8; 1000], 0o755).expect("long name");
        let tar = w.finish();
        let mut r = TarReader::new(std::io::Cursor::new(tar));
        let e = r.next_entry().await.expect("read").expect("entry");
        assert_eq!((e.name.as_str(), e.size), ("Dockerfile", 13));
        assert_eq!(r.read_all(100).await.expect("content"), b"FROM scratch\n");
        let e = r.next_entry().await.expect("read").expect("entry");
        assert_eq!((e.name, e.size), (long, 1000));
        assert!(r.next_entry().await.expect("read").is_none());
    }
}
