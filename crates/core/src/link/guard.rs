//! The segment guard: device middleware that holds inbound TCP segments to RFC 5961 before
//! smoltcp sees them, and keeps listening ports from answering a SYN with a RST when their
//! slots are busy.
//!
//! smoltcp 0.14 closes a connection on any in-window RST, lets a listening socket on the same
//! port answer a SYN that belongs to an established connection, resets a SYN that finds no
//! free listening socket, and ignores a SYN for a tuple in TIME-WAIT. The guard fixes each of
//! these without touching smoltcp: it watches every segment in both directions, keeps a small
//! record of each connection's sequence state, and for every inbound segment decides to pass
//! it, drop it, hold it until the engine has acted, or turn it into a *probe*.
//!
//! A probe is the segment rewritten into a bare ACK whose sequence number lies behind the
//! receive window. smoltcp answers such a segment with an ACK carrying its true `RCV.NXT` and
//! `SND.NXT`, which is exactly RFC 5961's challenge ACK, and it rate-limits those per socket
//! (one a second), never with a global counter (the side channel of CVE-2016-5696).
//!
//! The record of `RCV.NXT` is learned from the stack's own segments (each carries it as its
//! acknowledgement number) and advanced by in-order data as it arrives, so it is exact unless
//! smoltcp dropped data it had room for; a wrong guess costs one challenge round trip, never a
//! reset the RFC forbids.
//!
//! The guard also prompts smoltcp to retransmit a lost segment at once (`recover`), because
//! smoltcp's own timeout climbs to a minute under heavy loss.

mod recover;

use std::collections::{HashMap, VecDeque};

use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpEndpoint, IpProtocol, Ipv4Packet, Ipv6Packet,
    TcpPacket, TcpSeqNumber,
};

/// How far behind `RCV.NXT` a probe's sequence number is put: out of any window smoltcp
/// could have (its windows start at `RCV.NXT`), whatever the error of our record.
const PROBE_BEHIND: u32 = 1 << 20;
/// Most frames held for the engine at once; beyond that a held SYN is dropped (the client
/// retransmits it).
const MAX_HELD: usize = 1024;
/// Most connection records; beyond that new connections go unguarded (and are counted).
const MAX_TRACKS: usize = 1 << 16;
/// Most remembered SYN options waiting for the stack's SYN-ACK.
const MAX_PENDING_SYNS: usize = 4096;
/// smoltcp's fixed TIME-WAIT: a record in TIME-WAIT is forgotten after it.
const TIME_WAIT: Duration = Duration::from_secs(10);
/// Largest window a peer can offer (65535 << 14): the bound of the ACK-value check when the
/// peer's scale is unknown.
const MAX_WINDOW: u32 = 65535 << 14;
/// Room for the headers of a peer's segment kept as the pattern of prompted ACKs: Ethernet,
/// IPv4 with options or IPv6, and the 20 bytes of a TCP header without options.
const TEMPLATE_LEN: usize = 14 + 60 + 20;

/// A connection's addresses, from the stack's side.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Tuple {
    /// The stack's address and port.
    pub local: IpEndpoint,
    /// The peer's address and port.
    pub remote: IpEndpoint,
}

/// What the guard decided for one inbound frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GuardVerdict {
    /// Deliver it (possibly rewritten in place) with this many bytes.
    Pass(usize),
    /// Drop it.
    Drop,
    /// Keep it until the engine has acted; it comes back from [`SegmentGuard::next_released`].
    Hold,
}

/// What the guard did, for status pages and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuardCounters {
    /// In-window RSTs whose sequence number was not `RCV.NXT`: answered with a challenge ACK.
    pub rst_challenged: u64,
    /// RSTs outside the receive window: dropped.
    pub rst_dropped: u64,
    /// SYNs on synchronized connections: answered with a challenge ACK.
    pub syn_challenged: u64,
    /// Segments whose ACK value was unacceptable (RFC 5961 section 5): challenge ACK.
    pub ack_challenged: u64,
    /// Segments whose old but acceptable ACK value was raised to `SND.UNA` so smoltcp takes
    /// their data.
    pub ack_raised: u64,
    /// SYNs held until a listening slot was free.
    pub syn_held: u64,
    /// SYNs dropped because the listen queue stayed full (the client retransmits).
    pub syn_dropped: u64,
    /// Half-open connections evicted to make room for new SYNs.
    pub half_open_evicted: u64,
    /// TIME-WAIT connections ended early by a new SYN (RFC 6191).
    pub time_wait_reused: u64,
    /// Duplicate ACKs shown to smoltcp with the window it knew, so they count towards a fast
    /// retransmit.
    pub dup_ack_window_kept: u64,
    /// Retransmitted SYNs for a connection already half-open: dropped.
    pub syn_duplicate: u64,
    /// Lost segments smoltcp was prompted to retransmit at once (duplicate ACKs shown to it
    /// on the peer's SACK evidence or after `SND.UNA` stood still).
    pub retransmit_prompts: u64,
    /// New ACK values on segments outside our receive window, which smoltcp drops whole:
    /// shown to it again on a bare ACK at `RCV.NXT` (RFC 9293 3.10.7.4 accepts valid ACKs
    /// even when the window is zero).
    pub acks_salvaged: u64,
    /// Connections the guard could not record (table full).
    pub untracked: u64,
}

/// Where a connection stands, as far as the guard can tell from its segments.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// We answered a SYN (sent SYN-ACK); the peer's ISN + 1 is `rcv_nxt`.
    SynReceived,
    /// We sent a SYN.
    SynSent,
    /// Past the handshake.
    Synchronized,
    /// Both FINs done and we closed first: the socket waits out TIME-WAIT.
    TimeWait { since: Instant },
}

/// The guard's record of one connection.
#[derive(Clone, Debug)]
struct Track {
    phase: Phase,
    /// Next sequence number expected from the peer.
    rcv_nxt: u32,
    /// Our last advertised window, in bytes.
    rcv_wnd: u32,
    /// Oldest of our bytes the peer has not acknowledged, as far as we saw.
    snd_una: u32,
    /// Next sequence number we will send.
    snd_nxt: u32,
    /// Largest window the peer offered.
    max_snd_wnd: u32,
    /// The window field of the peer's last segment passed to smoltcp.
    peer_window: Option<u16>,
    /// Window scale we announced (applies once both sides announced one).
    our_scale: Option<u8>,
    /// Window scale the peer announced.
    their_scale: Option<u8>,
    /// Sequence number of our FIN, once sent.
    our_fin: Option<u32>,
    our_fin_acked: bool,
    /// The peer's FIN arrived (in order).
    their_fin: bool,
    /// Their FIN came before ours: we end in LAST-ACK, not TIME-WAIT.
    their_fin_first: bool,
    /// Loss recovery: when to prompt smoltcp to retransmit.
    rec: recover::Recovery,
    /// Our largest segment so far: a flight no longer than this is a single segment.
    max_seg: u32,
    /// The headers of the peer's last segment, the pattern of prompted ACKs.
    template: Option<Template>,
}

/// The headers of one of the peer's segments (up to [`TEMPLATE_LEN`] bytes) and its facts.
#[derive(Clone, Copy, Debug)]
struct Template {
    bytes: [u8; TEMPLATE_LEN],
    seg: Seg,
}

impl Track {
    fn new(phase: Phase, snd_nxt: u32) -> Track {
        Track {
            phase,
            rcv_nxt: 0,
            rcv_wnd: 0,
            snd_una: snd_nxt.wrapping_sub(1),
            snd_nxt,
            max_snd_wnd: 0,
            peer_window: None,
            our_scale: None,
            their_scale: None,
            our_fin: None,
            our_fin_acked: false,
            their_fin: false,
            their_fin_first: false,
            rec: recover::Recovery::default(),
            max_seg: 0,
            template: None,
        }
    }

    /// Bytes of ours (not only our FIN) wait for the peer's ACK.
    fn payload_outstanding(&self) -> bool {
        let flight = self.snd_nxt.wrapping_sub(self.snd_una);
        let fin = u32::from(self.our_fin.is_some() && !self.our_fin_acked);
        flight > fin
    }

    /// When the guard should next prompt a retransmission without fresh evidence. Never for a
    /// FIN alone (smoltcp's fast retransmit resends only data, and would leave the FIN without
    /// a timer) or into a shut window (smoltcp's persist timer's business).
    fn prompt_due(&self) -> Option<Instant> {
        if self.phase != Phase::Synchronized
            || !self.payload_outstanding()
            || matches!(self.peer_window, None | Some(0))
            || self.template.is_none()
        {
            return None;
        }
        // A FIN riding on the last segment takes one more sequence number, not a segment.
        let single = self.snd_nxt.wrapping_sub(self.snd_una) <= self.max_seg + 1;
        self.rec.due(self.snd_una, single)
    }

    fn scaling(&self) -> bool {
        self.our_scale.is_some() && self.their_scale.is_some()
    }

    /// A pure ACK repeating `SND.UNA` while data is outstanding, whose new window differs from
    /// the last one though the last one was far from limiting (less than half of it in flight).
    fn is_duplicate_ack(&self, seg: &Seg) -> bool {
        let Some(last) = self.peer_window else {
            return false;
        };
        let flight = self.snd_nxt.wrapping_sub(self.snd_una);
        let known = u64::from(last) << self.their_shift();
        seg.payload == 0
            && !seg.fin
            && seg.ack == Some(self.snd_una)
            && flight > 0
            && seg.window != last
            && u64::from(flight) * 2 < known
    }

    /// The peer's window scale in force (0 without scaling).
    fn their_shift(&self) -> u8 {
        if self.scaling() {
            self.their_scale.unwrap_or(0).min(14)
        } else {
            0
        }
    }

    /// The lowest acceptable ACK value (RFC 5961 section 5: SND.UNA - MAX.SND.WND).
    fn ack_floor(&self) -> u32 {
        let window = if self.max_snd_wnd == 0 {
            MAX_WINDOW
        } else {
            self.max_snd_wnd
        };
        self.snd_una.wrapping_sub(window)
    }
}

/// The TCP facts of one segment the guard decides on.
#[derive(Clone, Copy, Debug)]
struct Seg {
    tuple: Tuple,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    rst: bool,
    fin: bool,
    payload: u32,
    window: u16,
    scale: Option<u8>,
    /// Where the IP header starts, and whether it is IPv4.
    ip_at: usize,
    v4: bool,
    /// Where the TCP header starts.
    tcp_at: usize,
    /// The right edge of the highest SACK block (the peer holds our bytes up to it).
    sack_top: Option<u32>,
}

/// A frame kept for the engine, and the listening port it waits for.
struct Held {
    frame: Vec<u8>,
    port: u16,
}

/// The guard: connection records, listening ports, held frames and requests for the engine.
#[derive(Default)]
pub(crate) struct SegmentGuard {
    tracks: HashMap<Tuple, Track>,
    /// Window scale of SYNs passed to a listener, until the stack's SYN-ACK.
    pending_syns: HashMap<Tuple, Option<u8>>,
    /// Listening ports and how many free listening sockets each has left in this poll.
    listening: HashMap<u16, usize>,
    held: Vec<Held>,
    released: VecDeque<Vec<u8>>,
    /// TIME-WAIT connections a new SYN wants ended.
    retire: Vec<Tuple>,
    /// A SYN reached a listening port since the engine last looked.
    listener_activity: bool,
    counters: GuardCounters,
    /// Prompted ACKs on their way to smoltcp.
    prompts: VecDeque<Vec<u8>>,
    /// No connection's prompt is due before this (a lower bound; `None`: none due).
    next_prompt: Option<Instant>,
}

impl SegmentGuard {
    /// What the guard did so far.
    pub(crate) fn counters(&self) -> &GuardCounters {
        &self.counters
    }

    /// Decide the fate of an inbound frame, which may be rewritten in place. `again`: the
    /// frame was held once already and must not be held again.
    pub(crate) fn inbound(&mut self, frame: &mut [u8], again: bool, now: Instant) -> GuardVerdict {
        let len = frame.len();
        let Some(seg) = parse(frame, Direction::In) else {
            return GuardVerdict::Pass(len);
        };
        let Some(track) = self.tracks.get(&seg.tuple).cloned() else {
            return self.unknown(frame, &seg, again);
        };
        match track.phase {
            Phase::SynSent => self.syn_sent(frame, &seg, now),
            Phase::SynReceived if seg.rst => self.rst(frame, &seg, &track),
            Phase::SynReceived => self.syn_received(frame, &seg, now),
            Phase::Synchronized => self.synchronized(frame, &seg, &track, now),
            Phase::TimeWait { .. } => self.time_wait(frame, &seg, &track, again),
        }
    }

    /// A segment of no connection we know: the listener rules for a SYN.
    fn unknown(&mut self, frame: &[u8], seg: &Seg, again: bool) -> GuardVerdict {
        let len = frame.len();
        if !seg.syn || seg.ack.is_some() || seg.rst {
            return GuardVerdict::Pass(len);
        }
        let port = seg.tuple.local.port;
        let Some(free) = self.listening.get_mut(&port) else {
            // No listener: smoltcp's RST is the right answer.
            return GuardVerdict::Pass(len);
        };
        self.listener_activity = true;
        if *free > 0 {
            *free -= 1;
            if self.pending_syns.len() >= MAX_PENDING_SYNS {
                self.pending_syns.clear();
            }
            self.pending_syns.insert(seg.tuple, seg.scale);
            return GuardVerdict::Pass(len);
        }
        // No free slot now: a SYN is never answered with a RST for that. Hold it for the
        // engine to make room, or drop it and let the client retransmit.
        if again || self.held.len() >= MAX_HELD {
            self.counters.syn_dropped += 1;
            return GuardVerdict::Drop;
        }
        self.counters.syn_held += 1;
        self.hold(frame, port);
        GuardVerdict::Hold
    }

    fn hold(&mut self, frame: &[u8], port: u16) {
        self.held.push(Held {
            frame: frame.to_vec(),
            port,
        });
    }

    /// We sent a SYN: smoltcp checks the answer itself; note the peer's ISN and scale.
    fn syn_sent(&mut self, frame: &[u8], seg: &Seg, now: Instant) -> GuardVerdict {
        let len = frame.len();
        if let Some(t) = self.tracks.get_mut(&seg.tuple)
            && seg.syn
            && !seg.rst
            && seg.ack == Some(t.snd_nxt)
        {
            t.rcv_nxt = seg.seq.wrapping_add(1);
            t.their_scale = seg.scale;
            t.snd_una = t.snd_nxt;
            t.phase = Phase::Synchronized;
            t.peer_window = Some(seg.window);
            t.keep_template(frame, seg);
            t.rec.on_ack(t.snd_una, false, false, now);
        } else if seg.rst && self.tracks.get(&seg.tuple).map(|t| t.snd_nxt) == seg.ack {
            self.tracks.remove(&seg.tuple);
        }
        GuardVerdict::Pass(len)
    }

    /// We answered a SYN with SYN-ACK.
    fn syn_received(&mut self, frame: &[u8], seg: &Seg, now: Instant) -> GuardVerdict {
        let len = frame.len();
        let Some(t) = self.tracks.get_mut(&seg.tuple) else {
            return GuardVerdict::Pass(len);
        };
        if seg.syn {
            // The peer retransmitted its SYN (our SYN-ACK is on its way or lost and will be
            // retransmitted); another listening socket must not take it as a new connection.
            self.counters.syn_duplicate += 1;
            return GuardVerdict::Drop;
        }
        if seg.ack == Some(t.snd_nxt) && !seg.rst {
            t.snd_una = t.snd_nxt;
            t.phase = Phase::Synchronized;
            t.advance(seg);
            t.keep_template(frame, seg);
            t.rec.on_ack(t.snd_una, false, false, now);
        }
        GuardVerdict::Pass(len)
    }

    /// RFC 5961 on a synchronized connection.
    fn synchronized(
        &mut self,
        frame: &mut [u8],
        seg: &Seg,
        t: &Track,
        now: Instant,
    ) -> GuardVerdict {
        if seg.rst {
            return self.rst(frame, seg, t);
        }
        if seg.syn {
            self.counters.syn_challenged += 1;
            return self.probe(frame, seg, t);
        }
        let Some(ack) = seg.ack else {
            // smoltcp drops a segment without ACK itself.
            return GuardVerdict::Pass(frame.len());
        };
        if seq_gt(ack, t.snd_nxt) || seq_lt(ack, t.ack_floor()) {
            if !checksum_ok(frame, seg) {
                return GuardVerdict::Pass(frame.len());
            }
            self.counters.ack_challenged += 1;
            return self.probe(frame, seg, t);
        }
        let carries = seg.payload > 0 || seg.fin;
        let mut shown_window = seg.window;
        if seq_lt(ack, t.snd_una) && carries && checksum_ok(frame, seg) {
            // An old but acceptable ACK (reordering): smoltcp would drop the whole segment
            // with its data; give it the newest ACK value the peer already sent. (A reordered
            // old pure ACK says nothing new: smoltcp ignores it as it is.)
            rewrite_ack(frame, seg, t.snd_una);
            self.counters.ack_raised += 1;
        } else if t.is_duplicate_ack(seg) && checksum_ok(frame, seg) {
            // smoltcp counts a duplicate ACK only if the window is unchanged, and Linux opens
            // its window in nearly every ACK, so smoltcp never fast-retransmits to it and waits
            // out a 1 s timeout per loss. While the window is far from limiting the sender,
            // show the window smoltcp already knows.
            if let Some(window) = t.peer_window {
                rewrite_window(frame, seg, window);
                shown_window = window;
                self.counters.dup_ack_window_kept += 1;
            }
        }
        let outside = t.outside_window(seg);
        let track = self.tracks.get_mut(&seg.tuple).expect("tracked");
        let una = track.snd_una;
        track.advance(seg);
        // The window smoltcp now knows.
        track.peer_window = Some(shown_window);
        track.keep_template(frame, seg);
        let moved = track.snd_una != una;
        if moved
            && outside
            && let Some(template) = track.template
        {
            // smoltcp drops the whole segment, its ACK too; a zero window then deadlocks (our
            // data is never seen acknowledged, so the application never reads).
            let ack = prompted_ack(&template, track.rcv_nxt, track.snd_una, shown_window);
            self.prompts.push_back(ack);
            self.counters.acks_salvaged += 1;
        }
        track
            .rec
            .on_ack(track.snd_una, moved, track.payload_outstanding(), now);
        let lost = seg.payload == 0
            && !seg.fin
            && seg.ack == Some(track.snd_una)
            && seg.sack_top.is_some_and(|top| seq_gt(top, track.snd_una))
            && track.rec.evidence_allows(track.snd_una, now);
        if track.settle_fins(now) {
            self.tracks.remove(&seg.tuple);
            return GuardVerdict::Pass(frame.len());
        }
        if lost {
            self.prompt(&seg.tuple, now);
        }
        self.note_due(&seg.tuple);
        GuardVerdict::Pass(frame.len())
    }

    /// Fold a connection's next prompt into the guard's earliest one.
    fn note_due(&mut self, tuple: &Tuple) {
        if let Some(due) = self.tracks.get(tuple).and_then(Track::prompt_due) {
            self.next_prompt = Some(self.next_prompt.map_or(due, |n| n.min(due)));
        }
    }

    /// Show smoltcp the duplicate ACKs that start its fast retransmit of the segment at
    /// `SND.UNA` (see `recover`): a window update that resets its duplicate count, then four
    /// duplicates with the window it knows.
    fn prompt(&mut self, tuple: &Tuple, now: Instant) {
        let Some(t) = self.tracks.get_mut(tuple) else {
            return;
        };
        let (Some(template), Some(window)) = (t.template, t.peer_window) else {
            return;
        };
        if window == 0 || !t.payload_outstanding() {
            return;
        }
        let other = if window > 1 { window - 1 } else { window + 1 };
        for shown in [other, window, window, window, window] {
            self.prompts
                .push_back(prompted_ack(&template, t.rcv_nxt, t.snd_una, shown));
        }
        t.rec.prompted(t.snd_una, now);
        self.counters.retransmit_prompts += 1;
    }

    /// Prompt every connection whose prompt is due at `now`.
    fn prompt_due(&mut self, now: Instant) {
        if self.next_prompt.is_none_or(|n| now < n) {
            return;
        }
        let due: Vec<Tuple> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.prompt_due().is_some_and(|d| d <= now))
            .map(|(tuple, _)| *tuple)
            .collect();
        for tuple in &due {
            self.prompt(tuple, now);
        }
        self.next_prompt = self.tracks.values().filter_map(Track::prompt_due).min();
    }

    /// The next prompted ACK for smoltcp, prompting first every connection due at `now`.
    pub(crate) fn next_prompt(&mut self, now: Instant) -> Option<Vec<u8>> {
        self.prompt_due(now);
        self.prompts.pop_front()
    }

    /// A RST: only one at exactly RCV.NXT resets; others in the window are challenged, the
    /// rest dropped (RFC 5961 section 3.2).
    fn rst(&mut self, frame: &mut [u8], seg: &Seg, t: &Track) -> GuardVerdict {
        if seg.seq == t.rcv_nxt {
            self.tracks.remove(&seg.tuple);
            return GuardVerdict::Pass(frame.len());
        }
        let window = t.rcv_wnd.max(1);
        if seg.seq.wrapping_sub(t.rcv_nxt) < window {
            self.counters.rst_challenged += 1;
            return self.probe(frame, seg, t);
        }
        self.counters.rst_dropped += 1;
        GuardVerdict::Drop
    }

    /// TIME-WAIT: a SYN above the old connection's last sequence number ends it (RFC 6191,
    /// as Linux does); any other SYN or a RST not at RCV.NXT gets a challenge ACK.
    fn time_wait(&mut self, frame: &mut [u8], seg: &Seg, t: &Track, again: bool) -> GuardVerdict {
        if seg.rst {
            return self.rst(frame, seg, t);
        }
        if !seg.syn {
            return GuardVerdict::Pass(frame.len());
        }
        let fresh = seg.ack.is_none() && seq_gt(seg.seq, t.rcv_nxt);
        if fresh && !again && self.held.len() < MAX_HELD && checksum_ok(frame, seg) {
            self.retire.push(seg.tuple);
            self.hold(frame, seg.tuple.local.port);
            return GuardVerdict::Hold;
        }
        self.counters.syn_challenged += 1;
        self.probe(frame, seg, t)
    }

    /// Rewrite the segment into a challenge-drawing probe (see the module docs).
    fn probe(&mut self, frame: &mut [u8], seg: &Seg, t: &Track) -> GuardVerdict {
        let seq = t.rcv_nxt.wrapping_sub(PROBE_BEHIND);
        GuardVerdict::Pass(rewrite_probe(frame, seg, seq, t.snd_nxt))
    }

    /// Learn from a frame the stack sends at `now`.
    pub(crate) fn outbound(&mut self, frame: &[u8], now: Instant) {
        let Some(seg) = parse(frame, Direction::Out) else {
            return;
        };
        if seg.rst {
            self.tracks.remove(&seg.tuple);
            return;
        }
        if seg.syn {
            self.syn_out(&seg, now);
            return;
        }
        let Some(t) = self.tracks.get_mut(&seg.tuple) else {
            return;
        };
        let end = seg
            .seq
            .wrapping_add(seg.payload)
            .wrapping_add(u32::from(seg.fin));
        if seg.payload > 0 && t.phase == Phase::Synchronized {
            t.max_seg = t.max_seg.max(seg.payload);
            let was_idle = !t.payload_outstanding();
            t.rec.on_send(end, seq_gt(end, t.snd_nxt), was_idle, now);
        }
        if seq_gt(end, t.snd_nxt) {
            t.snd_nxt = end;
        }
        if seg.fin && t.our_fin.is_none() {
            t.our_fin = Some(seg.seq.wrapping_add(seg.payload));
            t.their_fin_first = t.their_fin;
        }
        if let Some(ack) = seg.ack {
            t.rcv_nxt = ack;
            let shift = if t.scaling() {
                t.our_scale.unwrap_or(0)
            } else {
                0
            };
            t.rcv_wnd = u32::from(seg.window) << shift.min(14);
            if t.phase == Phase::SynSent {
                t.phase = Phase::Synchronized;
            }
        }
        let tuple = seg.tuple;
        self.note_due(&tuple);
    }

    /// Our SYN or SYN-ACK starts a record.
    fn syn_out(&mut self, seg: &Seg, now: Instant) {
        if self.tracks.len() >= MAX_TRACKS && !self.tracks.contains_key(&seg.tuple) {
            self.counters.untracked += 1;
            return;
        }
        let snd_nxt = seg.seq.wrapping_add(1);
        // A retransmitted SYN-ACK finds the peer's SYN options taken already by the first:
        // keep the scale the record has (losing it made every scaled window look 1,000 times
        // smaller, so old ACKs of reordered data were challenged and their data discarded).
        let again = self
            .tracks
            .get(&seg.tuple)
            .filter(|t| t.phase == Phase::SynReceived && t.snd_nxt == snd_nxt)
            .and_then(|t| t.their_scale);
        let mut t = match seg.ack {
            Some(ack) => {
                let mut t = Track::new(Phase::SynReceived, snd_nxt);
                t.rcv_nxt = ack;
                t.their_scale = self.pending_syns.remove(&seg.tuple).flatten().or(again);
                t
            }
            None => Track::new(Phase::SynSent, snd_nxt),
        };
        t.our_scale = seg.scale;
        t.rcv_wnd = u32::from(seg.window);
        // The handshake gives the first round-trip sample (a resent SYN times the resend).
        t.rec.on_send(snd_nxt, true, false, now);
        self.tracks.insert(seg.tuple, t);
    }

    /// The engine freed the socket of `tuple`: forget it.
    pub(crate) fn forget(&mut self, tuple: &Tuple) {
        self.tracks.remove(tuple);
    }

    /// Forget TIME-WAIT records older than smoltcp's TIME-WAIT.
    pub(crate) fn expire(&mut self, now: Instant) {
        self.tracks.retain(|_, t| match t.phase {
            Phase::TimeWait { since } => now < since + TIME_WAIT,
            _ => true,
        });
    }

    /// The listening ports and their free listening sockets, as the engine just set them.
    pub(crate) fn set_listening(&mut self, ports: impl Iterator<Item = (u16, usize)>) {
        self.listening.clear();
        self.listening.extend(ports);
    }

    /// A new listening port and its free listening sockets, before the next tending.
    pub(crate) fn set_port_free(&mut self, port: u16, free: usize) {
        self.listening.insert(port, free);
    }

    /// True (once) if a SYN reached a listening port since the last call.
    pub(crate) fn take_listener_activity(&mut self) -> bool {
        std::mem::take(&mut self.listener_activity)
    }

    /// How many held SYNs wait for each port.
    pub(crate) fn demand(&self) -> HashMap<u16, usize> {
        let mut demand = HashMap::new();
        for h in &self.held {
            *demand.entry(h.port).or_default() += 1;
        }
        demand
    }

    /// TIME-WAIT connections that new SYNs want ended.
    pub(crate) fn take_retire(&mut self) -> Vec<Tuple> {
        std::mem::take(&mut self.retire)
    }

    /// Count an eviction or a TIME-WAIT reuse the engine carried out.
    pub(crate) fn note_evicted(&mut self) {
        self.counters.half_open_evicted += 1;
    }

    /// Count a TIME-WAIT connection ended by a new SYN.
    pub(crate) fn note_reused(&mut self) {
        self.counters.time_wait_reused += 1;
    }

    /// The engine has acted: give the held frames back for delivery. True if there were any.
    pub(crate) fn release_held(&mut self) -> bool {
        let any = !self.held.is_empty();
        self.released.extend(self.held.drain(..).map(|h| h.frame));
        any
    }

    /// The next released frame; it goes through [`SegmentGuard::inbound`] again, marked as
    /// held once already.
    pub(crate) fn next_released(&mut self) -> Option<Vec<u8>> {
        self.released.pop_front()
    }

    /// When the guard next needs the clock: at once for prompted ACKs not yet delivered,
    /// else when the earliest prompt may be due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        if self.prompts.is_empty() {
            self.next_prompt
        } else {
            Some(Instant::ZERO)
        }
    }
}

impl Track {
    /// Does the segment lie outside our receive window (RFC 9293 3.10.7.4), so that smoltcp
    /// drops it without looking at its ACK?
    fn outside_window(&self, seg: &Seg) -> bool {
        let len = seg.payload + u32::from(seg.fin);
        let offset = |seq: u32| seq.wrapping_sub(self.rcv_nxt);
        if self.rcv_wnd == 0 {
            return len > 0 || seg.seq != self.rcv_nxt;
        }
        let first_in = offset(seg.seq) < self.rcv_wnd;
        let last_in = len > 0 && offset(seg.seq.wrapping_add(len - 1)) < self.rcv_wnd;
        !(first_in || last_in)
    }

    /// Keep the headers of the peer's segment as the pattern of prompted ACKs.
    fn keep_template(&mut self, frame: &[u8], seg: &Seg) {
        let len = seg.tcp_at + 20;
        if len <= TEMPLATE_LEN && frame.len() >= len {
            let mut bytes = [0; TEMPLATE_LEN];
            bytes[..len].copy_from_slice(&frame[..len]);
            self.template = Some(Template { bytes, seg: *seg });
        }
    }

    /// In-order data and FIN from the peer move `rcv_nxt`; its ACK moves `snd_una`.
    fn advance(&mut self, seg: &Seg) {
        if let Some(ack) = seg.ack
            && seq_gt(ack, self.snd_una)
            && !seq_gt(ack, self.snd_nxt)
        {
            self.snd_una = ack;
        }
        let window = u32::from(seg.window) << self.their_shift();
        self.max_snd_wnd = self.max_snd_wnd.max(window);
        self.peer_window = Some(seg.window);
        if let (Some(fin), Some(ack)) = (self.our_fin, seg.ack)
            && seq_gt(ack, fin)
        {
            self.our_fin_acked = true;
        }
        if seg.seq != self.rcv_nxt || self.their_fin {
            return;
        }
        // smoltcp takes in-order bytes up to the window it advertised.
        let taken = seg.payload.min(self.rcv_wnd);
        self.rcv_nxt = self.rcv_nxt.wrapping_add(taken);
        self.rcv_wnd -= taken;
        if seg.fin && taken == seg.payload {
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            self.their_fin = true;
        }
    }

    /// Both FINs done: TIME-WAIT if we closed first. True when the connection is gone (we
    /// closed second, so smoltcp freed it at the ACK of our FIN).
    fn settle_fins(&mut self, now: Instant) -> bool {
        if !(self.their_fin && self.our_fin_acked) {
            return false;
        }
        if self.their_fin_first {
            return true;
        }
        self.phase = Phase::TimeWait { since: now };
        false
    }
}

/// Which way a frame goes: it decides which end of the tuple is ours.
#[derive(Clone, Copy, PartialEq)]
enum Direction {
    In,
    Out,
}

/// The TCP facts of an Ethernet frame carrying an unfragmented IPv4 or IPv6 TCP segment
/// (IPv6 without extension headers); `None` for anything else, which the guard leaves alone.
fn parse(frame: &[u8], dir: Direction) -> Option<Seg> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip_at = EthernetFrame::<&[u8]>::header_len();
    let (src, dst, tcp_at, tcp_end, v4) = match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            if ip.next_header() != IpProtocol::Tcp || ip.more_frags() || ip.frag_offset() != 0 {
                return None;
            }
            let at = ip_at + usize::from(ip.header_len());
            let end = ip_at + usize::from(ip.total_len());
            (
                IpAddress::Ipv4(ip.src_addr()),
                IpAddress::Ipv4(ip.dst_addr()),
                at,
                end,
                true,
            )
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            if ip.next_header() != IpProtocol::Tcp {
                return None;
            }
            let at = ip_at + 40;
            let end = at + usize::from(ip.payload_len());
            (
                IpAddress::Ipv6(ip.src_addr()),
                IpAddress::Ipv6(ip.dst_addr()),
                at,
                end,
                false,
            )
        }
        _ => return None,
    };
    let tcp = TcpPacket::new_checked(frame.get(tcp_at..tcp_end)?).ok()?;
    let (source, dest) = (
        IpEndpoint::new(src, tcp.src_port()),
        IpEndpoint::new(dst, tcp.dst_port()),
    );
    let tuple = match dir {
        Direction::In => Tuple {
            local: dest,
            remote: source,
        },
        Direction::Out => Tuple {
            local: source,
            remote: dest,
        },
    };
    let options = (tcp.header_len() > 20)
        .then(|| tcp.options_summary().ok())
        .flatten();
    let scale = options
        .as_ref()
        .filter(|_| tcp.syn())
        .and_then(|o| o.window_scale);
    let sack_top = options.as_ref().and_then(|o| {
        o.sack_ranges
            .iter()
            .flatten()
            .map(|&(_, right)| right)
            .reduce(|a, b| if seq_gt(b, a) { b } else { a })
    });
    Some(Seg {
        tuple,
        seq: tcp.seq_number().0 as u32,
        ack: tcp.ack().then(|| tcp.ack_number().0 as u32),
        syn: tcp.syn(),
        rst: tcp.rst(),
        fin: tcp.fin(),
        payload: tcp.payload().len() as u32,
        window: tcp.window_len(),
        scale,
        ip_at,
        v4,
        tcp_at,
        sack_top,
    })
}

/// A bare ACK in the peer's name, built on `template`: sequence number `seq`, ACK value `ack`,
/// window field `window`.
fn prompted_ack(template: &Template, seq: u32, ack: u32, window: u16) -> Vec<u8> {
    let seg = &template.seg;
    let mut frame = template.bytes[..seg.tcp_at + 20].to_vec();
    let len = rewrite_probe(&mut frame, seg, seq, ack);
    frame.truncate(len);
    rewrite_window(&mut frame, seg, window);
    frame
}

/// Does the segment's TCP checksum hold? (Decisions that change state trust only those.)
fn checksum_ok(frame: &[u8], seg: &Seg) -> bool {
    let end = seg.tcp_at + tcp_len(frame, seg);
    let Some(bytes) = frame.get(seg.tcp_at..end) else {
        return false;
    };
    TcpPacket::new_unchecked(bytes).verify_checksum(&seg.tuple.remote.addr, &seg.tuple.local.addr)
}

/// Length of the TCP segment (header and payload) as the IP header says.
fn tcp_len(frame: &[u8], seg: &Seg) -> usize {
    let ip = &frame[seg.ip_at..];
    if seg.v4 {
        let ip = Ipv4Packet::new_unchecked(ip);
        usize::from(ip.total_len()) - usize::from(ip.header_len())
    } else {
        usize::from(Ipv6Packet::new_unchecked(ip).payload_len())
    }
}

/// Turn the segment into a bare ACK (no options, no payload) with `seq` and `ack`, fixing the
/// IP length and both checksums. Returns the new frame length.
fn rewrite_probe(frame: &mut [u8], seg: &Seg, seq: u32, ack: u32) -> usize {
    const TCP_HEADER: usize = 20;
    let tcp_end = seg.tcp_at + TCP_HEADER;
    {
        let mut tcp = TcpPacket::new_unchecked(&mut frame[seg.tcp_at..tcp_end]);
        tcp.clear_flags();
        tcp.set_ack(true);
        tcp.set_header_len(TCP_HEADER as u8);
        tcp.set_seq_number(TcpSeqNumber(seq as i32));
        tcp.set_ack_number(TcpSeqNumber(ack as i32));
        tcp.set_urgent_at(0);
        tcp.fill_checksum(&seg.tuple.remote.addr, &seg.tuple.local.addr);
    }
    let ip = &mut frame[seg.ip_at..];
    if seg.v4 {
        let mut ip = Ipv4Packet::new_unchecked(ip);
        let header = usize::from(ip.header_len());
        ip.set_total_len((header + TCP_HEADER) as u16);
        ip.fill_checksum();
    } else {
        Ipv6Packet::new_unchecked(ip).set_payload_len(TCP_HEADER as u16);
    }
    tcp_end
}

/// Replace the segment's ACK value and fix its checksum.
fn rewrite_ack(frame: &mut [u8], seg: &Seg, ack: u32) {
    let end = seg.tcp_at + tcp_len(frame, seg);
    let mut tcp = TcpPacket::new_unchecked(&mut frame[seg.tcp_at..end]);
    tcp.set_ack_number(TcpSeqNumber(ack as i32));
    tcp.fill_checksum(&seg.tuple.remote.addr, &seg.tuple.local.addr);
}

/// Replace the segment's window field and fix its checksum.
fn rewrite_window(frame: &mut [u8], seg: &Seg, window: u16) {
    let end = seg.tcp_at + tcp_len(frame, seg);
    let mut tcp = TcpPacket::new_unchecked(&mut frame[seg.tcp_at..end]);
    tcp.set_window_len(window);
    tcp.fill_checksum(&seg.tuple.remote.addr, &seg.tuple.local.addr);
}

/// `a` after `b` in sequence space.
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// `a` before `b` in sequence space.
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[cfg(test)]
mod tests;
