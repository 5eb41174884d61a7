//! Small, rarely-called file helpers (metadata, checkpoints). Not on the hot path.
use std::io::Write;
use std::path::Path;

/// Replaces `path` with `contents` atomically: write a temp file, fsync it, rename it over
/// `path`, fsync the directory. A crash leaves either the old or the new file, never a mix
/// (and perhaps the temp file, named `path` with `.tmp` appended).
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir =
        path.parent().ok_or_else(|| std::io::Error::other(format!("{} has no parent directory", path.display())))?;
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(".tmp");
    let temp = std::path::PathBuf::from(temp_name);
    {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

const DIRECT_IO_PROBE_FILE: &str = ".direct-io-probe";

/// Writes the small file `prime_direct_io` reads. Call once, before the executors start
/// (several executors creating it at once would race).
pub fn create_direct_io_probe(data_dir: &Path) -> std::io::Result<()> {
    let probe = data_dir.join(DIRECT_IO_PROBE_FILE);
    if std::fs::metadata(&probe).map(|meta| meta.len()).unwrap_or(0) < crate::limits::DMA_BLOCK_BYTES {
        std::fs::create_dir_all(data_dir)?;
        write_atomic(&probe, &[0x5a; crate::limits::DMA_BLOCK_BYTES as usize])?;
    }
    Ok(())
}

/// Makes sure the first direct-I/O file this executor opens is a non-empty one that is read,
/// working around glommio's polled-I/O probe (see shared/GLOMMIO.md, trap 1): if the first DMA
/// file an executor opens is empty and read-write, every later DMA read on the device fails
/// with EOPNOTSUPP. Call on each executor before opening any other DMA file, after
/// `create_direct_io_probe`.
pub async fn prime_direct_io(data_dir: &Path) -> std::io::Result<()> {
    let file = glommio::io::DmaFile::open(data_dir.join(DIRECT_IO_PROBE_FILE)).await?;
    let read = file.read_at_aligned(0, crate::limits::DMA_BLOCK_BYTES as usize).await?;
    file.close().await?;
    if read.len() != crate::limits::DMA_BLOCK_BYTES as usize {
        return Err(std::io::Error::other("direct I/O probe read came back short"));
    }
    Ok(())
}
