//! The workspace's one pcap writer: the engine's pcap middleware (every frame it sends and
//! receives), the daemon's capture and the test kit's kernel-side captures all write through
//! [`PcapSink`].
//!
//! The classic pcap format is two fixed headers, so it is written directly (a buffered file
//! that can be flushed and reopened on SIGHUP), with nanosecond timestamps. The sink reads no
//! clock: the engine stamps a frame with its own `now` on top of the wall-clock time its
//! driver said that engine time 0 was ([`PcapSink::with_epoch`]); other writers pass the time
//! they captured a frame at.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use smoltcp::time::Instant;

/// Classic pcap magic for nanosecond timestamps.
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// LINKTYPE_ETHERNET.
const LINKTYPE_ETHERNET: u32 = 1;
/// Largest frame recorded whole.
const SNAPLEN: u32 = 262_144;

/// Writes frames to a pcap file (Ethernet link type, nanosecond timestamps).
pub struct PcapSink {
    path: PathBuf,
    writer: Option<BufWriter<File>>,
    /// The wall-clock time of engine time 0 (the UNIX epoch until a driver says otherwise).
    epoch: SystemTime,
}

impl PcapSink {
    /// Create (truncate) the file and write the pcap header.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let mut sink = PcapSink {
            path: path.to_path_buf(),
            writer: None,
            epoch: SystemTime::UNIX_EPOCH,
        };
        sink.reopen()?;
        Ok(sink)
    }

    /// Stamp the engine's frames as if engine time 0 were `epoch` (the runtime passes the
    /// wall-clock time at which its engine clock starts).
    pub fn with_epoch(mut self, epoch: SystemTime) -> Self {
        self.epoch = epoch;
        self
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
        header.extend_from_slice(&MAGIC_NANOS.to_le_bytes());
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

    /// Append one frame the engine moved at engine time `now`.
    pub fn write(&mut self, frame: &[u8], now: Instant) {
        let since = Duration::from_micros(now.total_micros().max(0) as u64);
        self.record(self.epoch + since, frame.len(), frame);
    }

    /// Append one frame captured at `time` whose length on the wire was `orig_len` (`data` may
    /// be shorter: a capture truncates). A write error disables the sink (logged once).
    pub fn record(&mut self, time: SystemTime, orig_len: usize, data: &[u8]) {
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        let ts = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let kept = data.len().min(SNAPLEN as usize);
        let mut record = [0u8; 16];
        record[0..4].copy_from_slice(&(ts.as_secs() as u32).to_le_bytes());
        record[4..8].copy_from_slice(&ts.subsec_nanos().to_le_bytes());
        record[8..12].copy_from_slice(&(kept as u32).to_le_bytes());
        record[12..16].copy_from_slice(&(orig_len.max(kept) as u32).to_le_bytes());
        let result = writer
            .write_all(&record)
            .and_then(|()| writer.write_all(&data[..kept]));
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
