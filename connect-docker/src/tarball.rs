//! Tar through the `tar` crate: build contexts written in memory, and the Engine's archives (`docker save`,
//! a container's directory) read entry by entry as they stream. The crate is synchronous, so an archive is
//! read on a blocking thread through [`SyncIoBridge`]: an image's archive is gigabytes, which must not stall
//! the runtime. Sizes past 8 GiB are written in the GNU base-256 form, long paths as GNU long names.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::SyncIoBridge;

/// What a build context entry holds.
#[derive(Debug, Clone)]
enum Item {
    File { data: Vec<u8>, mode: u32 },
    Symlink { target: String },
}

/// A build context's entries, written as one archive when it is sent (contexts are small and held in memory).
#[derive(Debug, Default, Clone)]
pub(crate) struct TarWriter {
    entries: Vec<(String, Item)>,
}

/// A regular file's header: owned by root, no timestamp, so the same files make the same context.
pub(crate) fn file_header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h
}

impl TarWriter {
    pub(crate) fn file(&mut self, name: &str, data: &[u8], mode: u32) -> io::Result<()> {
        check_name(name)?;
        self.entries.push((
            name.to_string(),
            Item::File {
                data: data.to_vec(),
                mode,
            },
        ));
        Ok(())
    }

    /// A symbolic link kept as a link, as `docker build` sends one: `COPY` then copies the link itself.
    pub(crate) fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        check_name(name)?;
        self.entries.push((
            name.to_string(),
            Item::Symlink {
                target: target.to_string(),
            },
        ));
        Ok(())
    }

    pub(crate) fn finish(self) -> io::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, item) in self.entries {
            match item {
                Item::File { data, mode } => {
                    let mut header = file_header(data.len() as u64, mode);
                    builder.append_data(&mut header, &name, data.as_slice())?;
                }
                Item::Symlink { target } => {
                    let mut header = tar::Header::new_gnu();
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    header.set_mode(0o777);
                    header.set_mtime(0);
                    builder.append_link(&mut header, &name, &target)?;
                }
            }
        }
        builder.into_inner()
    }
}

/// A context path is relative and stays inside the context.
fn check_name(name: &str) -> io::Result<()> {
    let escapes = name.split('/').any(|part| part == "..");
    if name.is_empty() || name.starts_with('/') || escapes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a relative path inside the context"),
        ));
    }
    Ok(())
}

/// Whether an entry is a regular file (what carries a layer or a manifest).
pub(crate) fn is_file<R: io::Read>(entry: &tar::Entry<'_, R>) -> bool {
    entry.header().entry_type().is_file()
}

/// The entry's path as the archive names it (after GNU long names and PAX records).
pub(crate) fn path_of<R: io::Read>(entry: &tar::Entry<'_, R>) -> io::Result<String> {
    Ok(entry.path()?.to_string_lossy().into_owned())
}

/// Runs `read` over the archive `reader` streams, on a blocking thread.
pub(crate) async fn read_archive<R, T>(
    reader: R,
    read: impl FnOnce(&mut tar::Archive<SyncIoBridge<R>>) -> io::Result<T> + Send + 'static,
) -> io::Result<T>
where
    R: AsyncRead + Unpin + Send + 'static,
    T: Send + 'static,
{
    let bridge = SyncIoBridge::new(reader);
    tokio::task::spawn_blocking(move || read(&mut tar::Archive::new(bridge)))
        .await
        .map_err(io::Error::other)?
}

/// A writer that counts what passes through it.
#[derive(Debug)]
pub(crate) struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: io::Write> io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The archive being written to a sink, with the count of its bytes.
pub(crate) type SinkBuilder<W> = tar::Builder<Counted<SyncIoBridge<W>>>;

/// Runs `copy` from the archive `reader` streams into an archive written to `sink`, on a blocking thread;
/// the archive is ended and the sink shut down once `copy` returns. Also returns the bytes written.
pub(crate) async fn rewrite_archive<R, W, T>(
    reader: R,
    sink: W,
    copy: impl FnOnce(&mut tar::Archive<SyncIoBridge<R>>, &mut SinkBuilder<W>) -> io::Result<T> + Send + 'static,
) -> io::Result<(T, u64)>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
    T: Send + 'static,
{
    let bridge_in = SyncIoBridge::new(reader);
    let bridge_out = SyncIoBridge::new(sink);
    tokio::task::spawn_blocking(move || {
        let mut archive = tar::Archive::new(bridge_in);
        let mut builder = tar::Builder::new(Counted {
            inner: bridge_out,
            bytes: 0,
        });
        let out = copy(&mut archive, &mut builder)?;
        let mut sink = builder.into_inner()?;
        sink.inner.shutdown()?;
        Ok((out, sink.bytes))
    })
    .await
    .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[tokio::test]
    async fn writes_what_it_reads_with_long_names_and_links() {
        let mut w = TarWriter::default();
        w.file("Dockerfile", b"FROM scratch\n", 0o644).expect("file");
        let long = format!("{}/{}", "d".repeat(220), "app");
        w.file(&long, &[7u8; 1000], 0o755).expect("long name");
        w.symlink("current", "d/app").expect("link");
        let tar = w.finish().expect("archive");
        let entries = read_archive(std::io::Cursor::new(tar), |archive| {
            let mut out = Vec::new();
            for entry in archive.entries()? {
                let mut entry = entry?;
                let link = entry.link_name()?.map(|l| l.to_string_lossy().into_owned());
                let mut data = Vec::new();
                entry.read_to_end(&mut data)?;
                out.push((path_of(&entry)?, entry.header().mode()?, link, data));
            }
            Ok(out)
        })
        .await
        .expect("read");
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].0, "Dockerfile");
        assert_eq!(entries[0].3, b"FROM scratch\n");
        assert_eq!((&entries[1].0, entries[1].1), (&long, 0o755));
        assert_eq!(entries[1].3, vec![7u8; 1000]);
        assert_eq!(entries[2].0, "current");
        assert_eq!(entries[2].2.as_deref(), Some("d/app"));
    }

    #[test]
    fn refuses_paths_outside_the_context() {
        let mut w = TarWriter::default();
        for bad in ["", "/etc/passwd", "../x", "a/../../x"] {
            assert!(w.file(bad, b"", 0o644).is_err(), "{bad:?}");
        }
        assert!(w.symlink("../up", "x").is_err());
    }

    /// A header of 9 GiB (past ustar's 8 GiB octal field) round-trips, read from a stream whose content
    /// is generated as it is read and never reached: the reader stops at the header.
    #[tokio::test]
    async fn sizes_past_eight_gib_round_trip() {
        const SIZE: u64 = 9 << 30;
        let mut header = file_header(SIZE, 0o644);
        header.set_path("blobs/sha256/big").expect("path");
        header.set_cksum();
        assert_eq!(header.size().expect("size"), SIZE);
        let stream = std::io::Cursor::new(header.as_bytes().to_vec()).chain(std::io::repeat(0).take(SIZE));
        let (path, size) = tokio::task::spawn_blocking(move || {
            let mut archive = tar::Archive::new(stream);
            let mut entries = archive.entries()?;
            let entry = entries.next().ok_or_else(|| io::Error::other("no entry"))??;
            Ok::<_, io::Error>((path_of(&entry)?, entry.size()))
        })
        .await
        .expect("task")
        .expect("read");
        assert_eq!((path.as_str(), size), ("blobs/sha256/big", SIZE));
    }
}
