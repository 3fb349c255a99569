//! The guard's rules, one segment at a time, on frames built by `seg!`.

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetFrame, IpAddress, Ipv4Address, Ipv4Packet, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};

use super::*;

const STACK: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
const PEER: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const PORT: u16 = 80;
const PEER_PORT: u16 = 5000;
/// Our ISN and the peer's.
const ISS: u32 = 1000;
const IRS: u32 = 5000;
const WINDOW: u16 = 4096;

/// Which way a test frame goes.
#[derive(Clone, Copy)]
enum Way {
    /// Peer to stack.
    In,
    /// Stack to peer.
    Out,
}

/// `seg!(In, "SA", seq, ack)` / `seg!(Out, "F", seq, ack, b"data")`: a frame with the
/// flags named by letters (S, A, R, F, P), `ack` None or Some, and an optional payload.
macro_rules! seg {
    ($way:expr, $flags:expr, $seq:expr, $ack:expr) => {
        build($way, $flags, $seq, $ack, &[], PEER_PORT)
    };
    ($way:expr, $flags:expr, $seq:expr, $ack:expr, $payload:expr) => {
        build($way, $flags, $seq, $ack, $payload, PEER_PORT)
    };
}

fn build(way: Way, flags: &str, seq: u32, ack: Option<u32>, payload: &[u8], peer: u16) -> Vec<u8> {
    build_with(way, flags, seq, ack, payload, peer, WINDOW, None)
}

/// A pure ACK from the peer with its window field and a SACK block.
fn ack_in(ack: u32, window: u16, sack: Option<(u32, u32)>) -> Vec<u8> {
    build_with(
        Way::In,
        "A",
        IRS + 1,
        Some(ack),
        &[],
        PEER_PORT,
        window,
        sack,
    )
}

#[allow(clippy::too_many_arguments)]
fn build_with(
    way: Way,
    flags: &str,
    seq: u32,
    ack: Option<u32>,
    payload: &[u8],
    peer: u16,
    window: u16,
    sack: Option<(u32, u32)>,
) -> Vec<u8> {
    let control = match (
        flags.contains('S'),
        flags.contains('R'),
        flags.contains('F'),
    ) {
        (true, _, _) => TcpControl::Syn,
        (_, true, _) => TcpControl::Rst,
        (_, _, true) => TcpControl::Fin,
        _ if flags.contains('P') => TcpControl::Psh,
        _ => TcpControl::None,
    };
    let (src, dst, src_port, dst_port) = match way {
        Way::In => (PEER, STACK, peer, PORT),
        Way::Out => (STACK, PEER, PORT, peer),
    };
    let tcp = TcpRepr {
        src_port,
        dst_port,
        control,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: window,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [sack, None, None],
        timestamp: None,
        payload,
    };
    crate::link::test_frame::ipv4_tcp_frame(src, dst, &tcp)
}

/// The TCP facts of a frame the guard let through, checksum verified.
fn read(frame: &[u8]) -> (TcpControl, u32, Option<u32>, usize) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum(), "IPv4 checksum");
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    let repr = TcpRepr::parse(
        &tcp,
        &IpAddress::Ipv4(ip.src_addr()),
        &IpAddress::Ipv4(ip.dst_addr()),
        &ChecksumCapabilities::default(),
    )
    .expect("valid TCP with a good checksum");
    (
        repr.control,
        repr.seq_number.0 as u32,
        repr.ack_number.map(|a| a.0 as u32),
        repr.payload.len(),
    )
}

fn inbound(guard: &mut SegmentGuard, mut frame: Vec<u8>) -> (GuardVerdict, Vec<u8>) {
    let verdict = guard.inbound(&mut frame, false, Instant::from_secs(1));
    if let GuardVerdict::Pass(len) = verdict {
        frame.truncate(len);
    }
    (verdict, frame)
}

/// A connection past its handshake: we answered the peer's SYN, the peer acknowledged.
fn established() -> SegmentGuard {
    let mut guard = SegmentGuard::default();
    guard.outbound(
        &seg!(Way::Out, "SA", ISS, Some(IRS + 1)),
        Instant::from_secs(1),
    );
    let (verdict, _) = inbound(&mut guard, seg!(Way::In, "A", IRS + 1, Some(ISS + 1)));
    assert!(matches!(verdict, GuardVerdict::Pass(_)));
    guard
}

/// Assert the frame was turned into a challenge-drawing probe.
fn assert_probe(verdict: GuardVerdict, frame: &[u8], rcv_nxt: u32, snd_nxt: u32) {
    assert!(matches!(verdict, GuardVerdict::Pass(_)), "{verdict:?}");
    let (control, seq, ack, payload) = read(frame);
    assert_eq!(control, TcpControl::None, "a bare ACK");
    assert_eq!(seq, rcv_nxt.wrapping_sub(PROBE_BEHIND), "behind the window");
    assert_eq!(ack, Some(snd_nxt));
    assert_eq!(payload, 0);
}

#[test]
fn rst_at_rcv_nxt_passes_and_ends_the_record() {
    let mut guard = established();
    let rst = seg!(Way::In, "R", IRS + 1, None);
    let (verdict, frame) = inbound(&mut guard, rst.clone());
    assert_eq!(verdict, GuardVerdict::Pass(rst.len()));
    assert_eq!(frame, rst, "untouched");
    assert!(guard.tracks.is_empty());
}

#[test]
fn rst_in_window_not_at_rcv_nxt_becomes_a_probe() {
    let mut guard = established();
    let (verdict, frame) = inbound(&mut guard, seg!(Way::In, "RA", IRS + 100, Some(ISS + 1)));
    assert_probe(verdict, &frame, IRS + 1, ISS + 1);
    assert_eq!(guard.counters().rst_challenged, 1);
    assert_eq!(guard.tracks.len(), 1, "the connection lives on");
}

#[test]
fn rst_outside_the_window_is_dropped() {
    let mut guard = established();
    let far = IRS + 1 + u32::from(WINDOW) + 10;
    let (verdict, _) = inbound(&mut guard, seg!(Way::In, "R", far, None));
    assert_eq!(verdict, GuardVerdict::Drop);
    let (verdict, _) = inbound(&mut guard, seg!(Way::In, "R", IRS - 10, None));
    assert_eq!(verdict, GuardVerdict::Drop);
    assert_eq!(guard.counters().rst_dropped, 2);
}

#[test]
fn syn_on_a_synchronized_connection_becomes_a_probe() {
    let mut guard = established();
    let (verdict, frame) = inbound(&mut guard, seg!(Way::In, "S", 777, None));
    assert_probe(verdict, &frame, IRS + 1, ISS + 1);
    assert_eq!(guard.counters().syn_challenged, 1);
}

#[test]
fn in_order_data_moves_rcv_nxt_so_the_next_exact_rst_passes() {
    let mut guard = established();
    let (verdict, _) = inbound(
        &mut guard,
        seg!(Way::In, "PA", IRS + 1, Some(ISS + 1), b"hello"),
    );
    assert!(matches!(verdict, GuardVerdict::Pass(_)));
    // The old RCV.NXT now lies behind the window: dropped.
    let (verdict, _) = inbound(&mut guard, seg!(Way::In, "R", IRS + 1, None));
    assert_eq!(verdict, GuardVerdict::Drop);
    let (verdict, frame) = inbound(&mut guard, seg!(Way::In, "R", IRS + 7, None));
    assert_probe(verdict, &frame, IRS + 6, ISS + 1);
    let (verdict, _) = inbound(&mut guard, seg!(Way::In, "R", IRS + 6, None));
    assert!(matches!(verdict, GuardVerdict::Pass(_)));
}

#[test]
fn the_stacks_ack_resynchronises_rcv_nxt() {
    let mut guard = established();
    // smoltcp took more than the guard saw (say a hole was filled): its ACK says so.
    guard.outbound(
        &seg!(Way::Out, "A", ISS + 1, Some(IRS + 301)),
        Instant::from_secs(1),
    );
    let (verdict, _) = inbound(&mut guard, seg!(Way::In, "R", IRS + 301, None));
    assert!(matches!(verdict, GuardVerdict::Pass(_)));
}

#[test]
fn ack_beyond_snd_nxt_becomes_a_probe_and_its_data_is_not_delivered() {
    let mut guard = established();
    let evil = seg!(Way::In, "PA", IRS + 1, Some(ISS + 5000), b"evil");
    let (verdict, frame) = inbound(&mut guard, evil);
    assert_probe(verdict, &frame, IRS + 1, ISS + 1);
    assert_eq!(guard.counters().ack_challenged, 1);
}

#[test]
fn ack_far_below_snd_una_becomes_a_probe() {
    let mut guard = established();
    // The peer offered 4096 bytes: an ACK more than that below SND.UNA is unacceptable.
    let (verdict, frame) = inbound(
        &mut guard,
        seg!(Way::In, "A", IRS + 1, Some(ISS.wrapping_sub(10_000))),
    );
    assert_probe(verdict, &frame, IRS + 1, ISS + 1);
}

#[test]
fn old_but_acceptable_ack_is_raised_so_the_data_counts() {
    let mut guard = established();
    guard.outbound(
        &seg!(Way::Out, "PA", ISS + 1, Some(IRS + 1), &[0; 100]),
        Instant::from_secs(1),
    );
    let (_, _) = inbound(&mut guard, seg!(Way::In, "A", IRS + 1, Some(ISS + 101)));
    // Reordered: data carrying an older ACK value.
    let (verdict, frame) = inbound(
        &mut guard,
        seg!(Way::In, "PA", IRS + 1, Some(ISS + 51), b"x"),
    );
    assert!(matches!(verdict, GuardVerdict::Pass(_)));
    let (_, seq, ack, payload) = read(&frame);
    assert_eq!((seq, ack, payload), (IRS + 1, Some(ISS + 101), 1));
    assert_eq!(guard.counters().ack_raised, 1);
}

#[test]
fn a_bad_checksum_is_left_for_smoltcp_to_drop() {
    let mut guard = established();
    let mut evil = seg!(Way::In, "PA", IRS + 1, Some(ISS + 5000), b"evil");
    let last = evil.len() - 1;
    evil[last] ^= 0xff;
    let (verdict, frame) = inbound(&mut guard, evil.clone());
    assert_eq!(verdict, GuardVerdict::Pass(evil.len()));
    assert_eq!(frame, evil);
}

#[test]
fn syn_to_a_full_listener_is_held_then_dropped_never_reset() {
    let mut guard = SegmentGuard::default();
    guard.set_listening([(PORT, 1)].into_iter());
    let first = build(Way::In, "S", 1, None, &[], 6000);
    let second = build(Way::In, "S", 2, None, &[], 6001);
    assert!(matches!(
        inbound(&mut guard, first).0,
        GuardVerdict::Pass(_)
    ));
    assert_eq!(inbound(&mut guard, second.clone()).0, GuardVerdict::Hold);
    assert!(guard.take_listener_activity());
    assert_eq!(guard.demand().get(&PORT), Some(&1));
    // The engine found no room: the released SYN meets a full port again and is dropped.
    guard.set_listening([(PORT, 0)].into_iter());
    assert!(guard.release_held());
    let mut again = guard.next_released().expect("released");
    assert_eq!(again, second);
    assert_eq!(
        guard.inbound(&mut again, true, Instant::ZERO),
        GuardVerdict::Drop
    );
    assert_eq!(guard.counters().syn_dropped, 1);
}

#[test]
fn a_port_added_between_tendings_holds_syns_beyond_its_free_slots() {
    let mut guard = SegmentGuard::default();
    guard.set_listening([(PORT + 1, 3)].into_iter());
    // A new listener, announced before the engine tends every listener again.
    guard.set_port_free(PORT, 1);
    let first = build(Way::In, "S", 1, None, &[], 6000);
    let second = build(Way::In, "S", 2, None, &[], 6001);
    assert!(matches!(
        inbound(&mut guard, first).0,
        GuardVerdict::Pass(_)
    ));
    assert_eq!(inbound(&mut guard, second).0, GuardVerdict::Hold);
    // The other port keeps its own count.
    assert_eq!(guard.listening.get(&(PORT + 1)), Some(&3));
}

#[test]
fn syn_to_a_port_with_no_listener_passes_for_smoltcp_to_reset() {
    let mut guard = SegmentGuard::default();
    let syn = seg!(Way::In, "S", 1, None);
    assert_eq!(
        inbound(&mut guard, syn.clone()).0,
        GuardVerdict::Pass(syn.len())
    );
}

#[test]
fn retransmitted_syn_of_a_half_open_connection_is_dropped() {
    let mut guard = SegmentGuard::default();
    guard.outbound(
        &seg!(Way::Out, "SA", ISS, Some(IRS + 1)),
        Instant::from_secs(1),
    );
    let (verdict, _) = inbound(&mut guard, seg!(Way::In, "S", IRS, None));
    assert_eq!(verdict, GuardVerdict::Drop);
}

/// We close first: our FIN, the peer's ACK and FIN, our ACK: TIME-WAIT.
fn time_wait() -> SegmentGuard {
    let mut guard = established();
    guard.outbound(
        &seg!(Way::Out, "FA", ISS + 1, Some(IRS + 1)),
        Instant::from_secs(1),
    );
    inbound(&mut guard, seg!(Way::In, "A", IRS + 1, Some(ISS + 2)));
    inbound(&mut guard, seg!(Way::In, "FA", IRS + 1, Some(ISS + 2)));
    guard.outbound(
        &seg!(Way::Out, "A", ISS + 2, Some(IRS + 2)),
        Instant::from_secs(1),
    );
    let track = guard.tracks.values().next().expect("tracked");
    assert!(matches!(track.phase, Phase::TimeWait { .. }), "{track:?}");
    guard
}

#[test]
fn syn_above_a_time_wait_connection_ends_it() {
    let mut guard = time_wait();
    let (verdict, _) = inbound(&mut guard, seg!(Way::In, "S", IRS + 100_000, None));
    assert_eq!(verdict, GuardVerdict::Hold);
    let retire = guard.take_retire();
    assert_eq!(retire.len(), 1);
    assert_eq!(retire[0].remote.port, PEER_PORT);
}

#[test]
fn old_syn_for_a_time_wait_connection_becomes_a_probe() {
    let mut guard = time_wait();
    let (verdict, frame) = inbound(&mut guard, seg!(Way::In, "S", IRS - 5, None));
    assert_probe(verdict, &frame, IRS + 2, ISS + 2);
    assert!(guard.take_retire().is_empty());
}

#[test]
fn time_wait_records_expire() {
    let mut guard = time_wait();
    guard.expire(Instant::from_secs(5));
    assert_eq!(guard.tracks.len(), 1);
    guard.expire(Instant::from_secs(12));
    assert!(guard.tracks.is_empty());
}

#[test]
fn closing_second_forgets_the_connection_at_the_ack_of_our_fin() {
    let mut guard = established();
    inbound(&mut guard, seg!(Way::In, "FA", IRS + 1, Some(ISS + 1)));
    guard.outbound(
        &seg!(Way::Out, "FA", ISS + 1, Some(IRS + 2)),
        Instant::from_secs(1),
    );
    inbound(&mut guard, seg!(Way::In, "A", IRS + 2, Some(ISS + 2)));
    assert!(guard.tracks.is_empty());
}

#[test]
fn our_rst_ends_the_record() {
    let mut guard = established();
    guard.outbound(
        &seg!(Way::Out, "RA", ISS + 1, Some(IRS + 1)),
        Instant::from_secs(1),
    );
    assert!(guard.tracks.is_empty());
}

#[test]
fn active_open_is_synchronized_by_the_syn_ack() {
    let mut guard = SegmentGuard::default();
    guard.outbound(&seg!(Way::Out, "S", ISS, None), Instant::from_secs(1));
    inbound(&mut guard, seg!(Way::In, "SA", IRS, Some(ISS + 1)));
    let (verdict, frame) = inbound(&mut guard, seg!(Way::In, "R", IRS + 50, None));
    assert_probe(verdict, &frame, IRS + 1, ISS + 1);
}

#[test]
fn garbage_and_other_protocols_pass_untouched() {
    let mut guard = established();
    for junk in [vec![], vec![0u8; 13], vec![0xff; 60], {
        let mut f = seg!(Way::In, "R", IRS + 50, None);
        f.truncate(40); // cut inside the TCP header
        f
    }] {
        let (verdict, frame) = inbound(&mut guard, junk.clone());
        assert_eq!(verdict, GuardVerdict::Pass(junk.len()));
        assert_eq!(frame, junk);
    }
}

// ---------------------------------------------------------------------------------------
// Prompted retransmission and salvaged ACKs
// ---------------------------------------------------------------------------------------

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms as i64)
}

/// `established()` with three segments of 100 bytes of ours in flight, sent at 1 s.
fn in_flight() -> SegmentGuard {
    let mut guard = established();
    for i in 0..3 {
        let seq = ISS + 1 + 100 * i;
        guard.outbound(
            &seg!(Way::Out, "PA", seq, Some(IRS + 1), &[7; 100]),
            at(1000),
        );
    }
    guard
}

/// Every prompted ACK waiting at `now`: (seq, ack, window) each, checksums verified.
fn prompts(guard: &mut SegmentGuard, now: Instant) -> Vec<(u32, Option<u32>, u16)> {
    let mut out = Vec::new();
    while let Some(frame) = guard.next_prompt(now) {
        let (control, seq, ack, payload) = read(&frame);
        assert_eq!((control, payload), (TcpControl::None, 0), "a bare ACK");
        let window = TcpPacket::new_checked(&frame[34..]).unwrap().window_len();
        out.push((seq, ack, window));
    }
    out
}

/// The prompt for the segment at `una`: a window update, then four duplicates.
fn prompt_for(una: u32) -> Vec<(u32, Option<u32>, u16)> {
    let mut want = vec![(IRS + 1, Some(una), WINDOW - 1)];
    want.extend([(IRS + 1, Some(una), WINDOW); 4]);
    want
}

#[test]
fn a_sack_above_snd_una_prompts_one_fast_retransmit() {
    let mut guard = in_flight();
    // The first segment was lost: the peer holds the second and says so.
    let sack = Some((ISS + 101, ISS + 201));
    let verdict = guard.inbound(&mut ack_in(ISS + 1, WINDOW, sack), false, at(1001));
    assert_eq!(
        verdict,
        GuardVerdict::Pass(66),
        "the peer's ACK itself goes on unchanged"
    );
    assert_eq!(
        guard.next_due(),
        Some(Instant::ZERO),
        "prompts wait for delivery"
    );
    assert_eq!(prompts(&mut guard, at(1001)), prompt_for(ISS + 1));
    assert_eq!(guard.counters().retransmit_prompts, 1);
    // More evidence for the same segment: its retransmission is on its way.
    let sack = Some((ISS + 101, ISS + 301));
    guard.inbound(&mut ack_in(ISS + 1, WINDOW, sack), false, at(1002));
    assert_eq!(prompts(&mut guard, at(1002)), vec![]);
    // A partial ACK with the third segment still SACKed: the next hole, at once.
    let sack = Some((ISS + 201, ISS + 301));
    guard.inbound(&mut ack_in(ISS + 101, WINDOW, sack), false, at(1003));
    assert_eq!(prompts(&mut guard, at(1003)), prompt_for(ISS + 101));
}

#[test]
fn no_prompt_without_sack_evidence_before_the_timer() {
    let mut guard = in_flight();
    guard.inbound(&mut ack_in(ISS + 1, WINDOW, None), false, at(1001));
    assert_eq!(prompts(&mut guard, at(1001)), vec![]);
    assert_eq!(guard.counters().retransmit_prompts, 0);
}

#[test]
fn a_stall_is_prompted_after_two_round_trips_and_the_prompts_back_off() {
    // The handshake took no time: two round trips are the 10 ms floor.
    let mut guard = in_flight();
    assert_eq!(guard.next_due(), Some(at(1010)));
    assert_eq!(prompts(&mut guard, at(1009)), vec![]);
    assert_eq!(prompts(&mut guard, at(1010)), prompt_for(ISS + 1));
    assert_eq!(guard.next_due(), Some(at(1020)));
    assert_eq!(prompts(&mut guard, at(1020)), prompt_for(ISS + 1));
    assert_eq!(guard.next_due(), Some(at(1040)), "doubled");
    // Everything acknowledged: nothing more to prompt.
    guard.inbound(&mut ack_in(ISS + 301, WINDOW, None), false, at(1500));
    assert_eq!(prompts(&mut guard, at(5000)), vec![]);
    assert_eq!(
        guard.next_due(),
        None,
        "the earliest prompt is recomputed when due"
    );
}

#[test]
fn no_prompt_for_a_lone_fin_or_into_a_shut_window() {
    let mut guard = in_flight();
    guard.inbound(&mut ack_in(ISS + 301, WINDOW, None), false, at(1001));
    guard.outbound(&seg!(Way::Out, "FA", ISS + 301, Some(IRS + 1)), at(1002));
    assert_eq!(
        prompts(&mut guard, at(9000)),
        vec![],
        "only our FIN is outstanding"
    );
    assert_eq!(guard.next_due(), None);

    let mut guard = in_flight();
    guard.inbound(&mut ack_in(ISS + 101, 0, None), false, at(1001));
    assert_eq!(
        prompts(&mut guard, at(9000)),
        vec![],
        "the peer's window is shut"
    );
    assert_eq!(guard.next_due(), None);
}

#[test]
fn an_ack_outside_a_shut_window_is_salvaged_on_a_bare_ack() {
    let mut guard = in_flight();
    // We advertise a zero window.
    let shut = build_with(
        Way::Out,
        "A",
        ISS + 301,
        Some(IRS + 1),
        &[],
        PEER_PORT,
        0,
        None,
    );
    guard.outbound(&shut, at(1000));
    // The peer's segment lies beyond it (a window probe's bytes), with a new ACK value.
    let mut probe = seg!(Way::In, "PA", IRS + 5, Some(ISS + 201), b"abcd");
    let len = probe.len();
    assert_eq!(
        guard.inbound(&mut probe, false, at(1001)),
        GuardVerdict::Pass(len)
    );
    let mut want = vec![(IRS + 1, Some(ISS + 201), WINDOW)];
    // The third segment is still out and the timer is not due: nothing else.
    assert_eq!(prompts(&mut guard, at(1001)), std::mem::take(&mut want));
    assert_eq!(guard.counters().acks_salvaged, 1);
    // An in-window segment is left to smoltcp alone.
    let mut ok = seg!(Way::In, "A", IRS + 1, Some(ISS + 301));
    guard.inbound(&mut ok, false, at(1002));
    assert_eq!(prompts(&mut guard, at(1002)), want);
}

#[test]
fn a_retransmitted_syn_ack_keeps_the_peers_window_scale() {
    let mut guard = SegmentGuard::default();
    guard.set_listening([(PORT, 1)].into_iter());
    let mut syn = seg!(Way::In, "S", IRS, None);
    // The peer's SYN announces scale 7 (the option is appended by hand: NOP + WSCALE).
    let tcp_at = 34;
    let mut tcp = TcpPacket::new_checked(&syn[tcp_at..])
        .unwrap()
        .into_inner()
        .to_vec();
    tcp.splice(20..20, [1, 3, 3, 7]);
    tcp[12] = 6 << 4;
    syn.truncate(tcp_at);
    syn.extend_from_slice(&tcp);
    let total = (syn.len() - 14) as u16;
    syn[16..18].copy_from_slice(&total.to_be_bytes());
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut syn[14..]);
        ip.fill_checksum();
        let mut tcp = TcpPacket::new_unchecked(ip.payload_mut());
        tcp.fill_checksum(&IpAddress::Ipv4(PEER), &IpAddress::Ipv4(STACK));
    }
    assert!(matches!(inbound(&mut guard, syn).0, GuardVerdict::Pass(_)));
    // Our SYN-ACK (also scaled) is lost and sent again.
    let mut syn_ack = seg!(Way::Out, "SA", ISS, Some(IRS + 1));
    let mut tcp = syn_ack[tcp_at..].to_vec();
    tcp.splice(20..20, [1, 3, 3, 7]);
    tcp[12] = 6 << 4;
    syn_ack.truncate(tcp_at);
    syn_ack.extend_from_slice(&tcp);
    let total = (syn_ack.len() - 14) as u16;
    syn_ack[16..18].copy_from_slice(&total.to_be_bytes());
    guard.outbound(&syn_ack, at(0));
    guard.outbound(&syn_ack, at(1000));
    let track = &guard.tracks[&guard.tracks.keys().next().copied().unwrap()];
    assert_eq!((track.our_scale, track.their_scale), (Some(7), Some(7)));
}

#[test]
fn a_single_segment_allows_for_a_delayed_ack() {
    let mut guard = established();
    let data = seg!(Way::Out, "PA", ISS + 1, Some(IRS + 1), &[7; 100]);
    guard.outbound(&data, at(1000));
    assert_eq!(
        guard.next_due(),
        Some(at(1210)),
        "10 ms and 200 ms of delayed ACK"
    );
    assert_eq!(prompts(&mut guard, at(1209)), vec![]);
    assert_eq!(prompts(&mut guard, at(1210)), prompt_for(ISS + 1));
}
