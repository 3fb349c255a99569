//! Pcap middleware: every frame the engine sends and receives, written to a file.
//!
//! This is the stack's own account, useful for debugging; tests take their evidence from a
//! capture on the kernel side instead. The classic pcap format is two fixed headers, so it is
//! written directly (a buffered file that can be flushed and reopened on SIGHUP).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Classic pcap magic for microsecond timestamps.
const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// LINKTYPE_ETHERNET.
const LINKTYPE_ETHERNET: u32 = 1;
/// Largest frame recorded whole.
const SNAPLEN: u32 = 262_144;

/// Writes frames to a pcap file (Ethernet link type, microsecond timestamps).
pub struct PcapSink {
    path: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl PcapSink {
    /// Create (truncate) the file and write the pcap header.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let mut sink = PcapSink {
            path: path.to_path_buf(),
            writer: None,
        };
        sink.reopen()?;
        Ok(sink)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Close the file and start a new one at the same path (after log rotation, SIGHUP).
    pub fn reopen(&mut self) -> std::io::Result<()> {
        self.flush();
        self.writer = None;
        let mut file = BufWriter::new(File::create(&self.path)?);
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&MAGIC_MICROS.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&SNAPLEN.to_le_bytes());
        header.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        file.write_all(&header)?;
        self.writer = Some(file);
        Ok(())
    }

    /// Append one frame stamped with the wall clock. A write error disables the sink (logged once).
    pub fn write(&mut self, frame: &[u8]) {
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        let ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let kept = frame.len().min(SNAPLEN as usize);
        let mut record = [0u8; 16];
        record[0..4].copy_from_slice(&(ts.as_secs() as u32).to_le_bytes());
        record[4..8].copy_from_slice(&ts.subsec_micros().to_le_bytes());
        record[8..12].copy_from_slice(&(kept as u32).to_le_bytes());
        record[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        let result = writer
            .write_all(&record)
            .and_then(|()| writer.write_all(&frame[..kept]));
        if let Err(e) = result {
            log::warn!(
                "pcap {}: write failed, capture stopped: {e}",
                self.path.display()
            );
            self.writer = None;
        }
    }

    /// Push buffered frames to the file.
    pub fn flush(&mut self) {
        if let Some(writer) = self.writer.as_mut() {
            let _ = writer.flush();
        }
    }
}

impl Drop for PcapSink {
    fn drop(&mut self) {
        self.flush();
    }
}
