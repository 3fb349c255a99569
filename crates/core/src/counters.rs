//! Counters the engine keeps and a caller can read at any time.

use std::collections::BTreeMap;

use crate::link::GuardCounters;

/// Frame, byte, drop and socket counters of one engine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames received from the link.
    pub rx_frames: u64,
    /// Bytes received from the link.
    pub rx_bytes: u64,
    /// Frames sent to the link.
    pub tx_frames: u64,
    /// Bytes sent to the link.
    pub tx_bytes: u64,
    /// Outgoing frames the link could not take (queue full).
    pub tx_dropped_full: u64,
    /// Incoming frames dropped by the fault middleware.
    pub rx_dropped_fault: u64,
    /// Outgoing frames dropped by the fault middleware.
    pub tx_dropped_fault: u64,
    /// Incoming frames the fault middleware delivered twice.
    pub rx_duplicated_fault: u64,
    /// Outgoing frames the fault middleware sent twice.
    pub tx_duplicated_fault: u64,
    /// Incoming frames the fault middleware held back behind later ones.
    pub rx_reordered_fault: u64,
    /// Outgoing frames the fault middleware held back behind later ones.
    pub tx_reordered_fault: u64,
    /// Incoming frames too large for the receive buffer.
    pub rx_dropped_oversize: u64,
    /// Incoming frames whose TCP or UDP checksum was wrong, dropped by the device (with
    /// offloads on, smoltcp leaves that check to it).
    pub rx_dropped_checksum: u64,
    /// Incoming TCP super-segments: frames longer than the MTU allows, from a link with
    /// offloads.
    pub rx_super_segments: u64,
    /// Outgoing TCP super-segments, marked for the link to cut at the connection's MSS.
    pub tx_super_segments: u64,
    /// Connections reset by us (abort, unread data, linger timeout, deadline).
    pub resets_sent: u64,
    /// Connections reset by the peer.
    pub resets_received: u64,
    /// Graceful closes that finished.
    pub graceful_closes: u64,
    /// Sockets currently in smoltcp's set, by TCP state name.
    pub sockets_by_state: BTreeMap<&'static str, usize>,
    /// Descriptors (socket ids) the engine currently holds for applications.
    pub open_ids: usize,
    /// What the segment guard did (RFC 5961 challenges, held and dropped SYNs, evictions).
    pub guard: GuardCounters,
}
