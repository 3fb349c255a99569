//! The engine on a virtual clock, shared by packetdrill's two threads.
//!
//! One mutex guards the engine and everything around it; one condition variable wakes the
//! threads that wait (a blocking call on packetdrill's syscall thread, `netdev_receive` on its
//! main thread) whenever the engine answered a call or sent a packet. A waiting thread sleeps on
//! it, as packetdrill requires (it moves on only once the syscall thread shows state `S`), and
//! wakes by itself when the next engine timer falls due in real time.
//!
//! While a thread holds the lock the clock stands still ([`Locked`], clock.rs): the stack's work
//! takes no virtual time, so a reply is stamped with, and packetdrill reads afterwards, the
//! very time of the packet that caused it, however slow the build or busy the machine.
//!
//! The engine's time trails the clock: before anything happens at clock time `t`, every timer
//! due by `t` is run at its own virtual time ([`State::run_until`]), so a retransmission or a
//! linger timeout leaves with the time it was due, whenever the shim got to it.
//!
//! A blocking call can end while the main thread jumps the clock past that moment (a usleep to
//! the script's next event). packetdrill reads the clock on the call's thread right after the
//! call returns to time its end, so the shim keeps the moment the call really ended for that
//! thread and its next clock read returns it ([`Shim::end_call_at`]).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use lingerstack_core::link::{FrameQueues, Medium, QueueLink};
use lingerstack_core::{Cidr, Engine, Instant, Outcome, Request, StackConfig};

use crate::clock::Clock;
use crate::errno::{Errno, Res};
use crate::flags::Flags;
use crate::ready::ReadyTimes;
use crate::sockets::Sockets;

/// Longest a waiting thread sleeps before it looks at the clock again.
const NAP: Duration = Duration::from_millis(20);
/// How long `netdev_receive` waits in real time for a packet when the engine has no timer
/// ahead (nothing can come but what another thread's call sends): then it gives up.
const RECEIVE_GIVE_UP: Duration = Duration::from_secs(3);
/// Timer steps in one catch-up before the shim stops trusting the engine's wake-up times.
const MAX_STEPS: usize = 100_000;

/// The address an active open uses when nothing told the shim its own (packetdrill accepts any
/// source address for a connection the stack opens).
fn placeholder_local(v4: bool) -> IpAddr {
    if v4 {
        IpAddr::from([192, 168, 0, 2])
    } else {
        IpAddr::from([0xfd3d, 0xfa7b, 0xd17d, 0, 0, 0, 0, 2])
    }
}

/// The addresses the shim knows, per IP version: from the flags, or learnt.
#[derive(Default)]
struct Known {
    local: [Option<IpAddr>; 2],
    remote: [Option<IpAddr>; 2],
}

fn family(ip: IpAddr) -> usize {
    usize::from(ip.is_ipv6())
}

/// Everything behind the shim's one lock.
pub(crate) struct State {
    engine: Engine<u64>,
    wire: FrameQueues,
    /// The engine's time, virtual microseconds (never ahead of the clock).
    engine_now: i64,
    /// Packets the stack sent and packetdrill has not taken, with their virtual send times.
    outbound: VecDeque<(Vec<u8>, i64)>,
    /// Answers not yet taken by their callers, by token, with the virtual time they came.
    answers: HashMap<u64, (Outcome, i64)>,
    /// When each socket's readiness bits turned on (for poll).
    pub(crate) ready_times: ReadyTimes,
    next_token: u64,
    /// Deadlines of shim-side waits (a poll with a timeout), by token, virtual microseconds.
    deadlines: HashMap<u64, i64>,
    known: Known,
    /// The socket table: descriptors and their Linux-side settings.
    pub(crate) sockets: Sockets,
}

/// The shim: its state, the clock and the condition variable of its waiters.
pub(crate) struct Shim {
    state: Mutex<State>,
    wake: Condvar,
    pub(crate) clock: Clock,
    /// The end of a blocking call, by the thread (gettid) that made it, for that thread's next
    /// clock read; `ends_pending` says whether there are any (gettimeofday's fast path).
    ends: Mutex<HashMap<libc::pid_t, i64>>,
    ends_pending: AtomicBool,
}

/// The state, locked, with the clock frozen until it is let go (clock.rs: the shim's own work
/// takes no virtual time).
pub(crate) struct Locked<'a> {
    /// Always `Some` but inside [`Shim::sleep`], which lends the guard to the condvar.
    guard: Option<MutexGuard<'a, State>>,
    clock: &'a Clock,
}

impl<'a> Locked<'a> {
    fn new(guard: MutexGuard<'a, State>, clock: &'a Clock) -> Locked<'a> {
        clock.freeze();
        Locked {
            guard: Some(guard),
            clock,
        }
    }

    /// Let the clock run and hand out the guard (to wait on the condvar with it).
    fn release(mut self) -> MutexGuard<'a, State> {
        self.clock.thaw();
        self.guard.take().expect("a Locked holds its guard")
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if self.guard.is_some() {
            self.clock.thaw();
        }
    }
}

impl Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.guard.as_ref().expect("a Locked holds its guard")
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.guard.as_mut().expect("a Locked holds its guard")
    }
}

fn instant(t: i64) -> Instant {
    Instant::from_micros(t)
}

impl Shim {
    /// An engine on an IP link with the flags' addresses (those not given are learnt later).
    pub(crate) fn new(flags: &Flags) -> std::io::Result<Shim> {
        let (link, wire) = QueueLink::with_medium(flags.mtu, Medium::Ip);
        let mut config = StackConfig {
            // Fixed: the same script gives the same ports and sequence numbers every run.
            random_seed: Some(0x6c69_6e67_6572),
            ..StackConfig::default()
        };
        match flags.local {
            Some(IpAddr::V4(addr)) => config.ipv4 = Some(Cidr { addr, prefix: 24 }),
            Some(IpAddr::V6(addr)) => config.ipv6 = Some(Cidr { addr, prefix: 64 }),
            None => {}
        }
        let mut engine = Engine::new(config, Box::new(link), Default::default(), instant(0))?;
        // Readiness changes, with their times, for poll (ready.rs).
        engine.enable_events();
        let mut state = State {
            engine,
            wire,
            engine_now: 0,
            outbound: VecDeque::new(),
            answers: HashMap::new(),
            ready_times: ReadyTimes::default(),
            next_token: 1,
            deadlines: HashMap::new(),
            known: Known::default(),
            sockets: Sockets::default(),
        };
        if let Some(local) = flags.local {
            state.known.local[family(local)] = Some(local);
        }
        if let Some(remote) = flags.remote {
            state.learn_remote(remote);
        }
        if let Some(local) = flags.local {
            state.route(family(local));
        }
        Ok(Shim {
            state: Mutex::new(state),
            wake: Condvar::new(),
            clock: Clock::new(),
            ends: Mutex::new(HashMap::new()),
            ends_pending: AtomicBool::new(false),
        })
    }

    /// The state, caught up with the clock (every timer due by now has run); the clock stands
    /// still until it is let go.
    pub(crate) fn lock(&self) -> Locked<'_> {
        // A new call: an end time kept for this thread's clock read is stale now.
        self.take_end_time();
        // A panic while the lock was held (caught at the C boundary) leaves the engine as it
        // was between two calls: still usable.
        let guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = Locked::new(guard, &self.clock);
        self.catch_up(&mut st);
        st
    }

    /// Run the engine's timers up to the clock's now; wake the waiters if anything happened.
    pub(crate) fn catch_up(&self, st: &mut State) {
        if st.run_until(self.clock.now()) {
            self.wake.notify_all();
        }
    }

    /// Apply `request` and return its answer, waiting (asleep) as long as the engine holds it.
    pub(crate) fn call<'a>(
        &'a self,
        mut st: Locked<'a>,
        request: Request,
    ) -> (Locked<'a>, Outcome) {
        let token = st.token();
        let now = instant(st.engine_now);
        st.engine.handle(request, token, now);
        self.catch_up(&mut st);
        let mut slept = false;
        loop {
            if let Some((outcome, at)) = st.answers.remove(&token) {
                if slept {
                    self.end_call_at(at);
                }
                return (st, outcome);
            }
            st = self.sleep(st, None);
            slept = true;
        }
    }

    /// A blocking call of this thread ended at virtual time `at`: this thread's next clock read
    /// says `at` (if the clock has moved past it), as if it had read the clock at once.
    pub(crate) fn end_call_at(&self, at: i64) {
        if at >= self.clock.now() {
            return;
        }
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        self.ends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tid, at);
        self.ends_pending.store(true, Ordering::Release);
    }

    /// The end time kept for this thread, taken (once).
    pub(crate) fn take_end_time(&self) -> Option<i64> {
        if !self.ends_pending.load(Ordering::Acquire) {
            return None;
        }
        let mut ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: gettid has no preconditions.
        let at = ends.remove(&unsafe { libc::gettid() });
        self.ends_pending.store(!ends.is_empty(), Ordering::Release);
        at
    }

    /// What gettimeofday says on this thread: the end of its last blocking call if one is
    /// kept, else the clock.
    pub(crate) fn time_for_this_thread(&self) -> i64 {
        self.take_end_time().unwrap_or_else(|| self.clock.now())
    }

    /// Sleep until woken or the next deadline (the engine's, or `until`) falls due in real
    /// time, then catch up with the clock.
    pub(crate) fn sleep<'a>(&'a self, mut st: Locked<'a>, until: Option<i64>) -> Locked<'a> {
        let next = [st.next_due(), until].into_iter().flatten().min();
        let nap = match next {
            Some(t) => {
                let ahead = u64::try_from(t - self.clock.now()).unwrap_or(0);
                Duration::from_micros(ahead).clamp(Duration::from_micros(100), NAP)
            }
            None => NAP,
        };
        // Time runs while nobody works in the shim.
        let guard = self
            .wake
            .wait_timeout(st.release(), nap)
            .map(|(guard, _)| guard)
            .unwrap_or_else(|e| e.into_inner().0);
        let mut st = Locked::new(guard, &self.clock);
        self.catch_up(&mut st);
        st
    }

    /// netdev_send: one inbound IP packet, processed before this returns.
    pub(crate) fn inject(&self, packet: &[u8]) -> Res<()> {
        let mut st = self.lock();
        if let Some((src, dst)) = ip_addresses(packet) {
            st.learn_from_inbound(src, dst);
        }
        st.wire.feed(packet);
        let now = st.engine_now;
        st.poll_at_now(now);
        self.catch_up(&mut st);
        self.wake.notify_all();
        Ok(())
    }

    /// netdev_receive: the oldest packet the stack sent and its virtual send time. When none
    /// waits, virtual time jumps to the engine's next timer; with no timer at all it waits for
    /// another thread's call to send one, and gives up (`None`) after a while.
    pub(crate) fn next_outbound(&self) -> Option<(Vec<u8>, i64)> {
        let mut st = self.lock();
        let started = std::time::Instant::now();
        loop {
            if let Some(sent) = st.outbound.pop_front() {
                return Some(sent);
            }
            match st.next_due() {
                Some(t) if t > self.clock.now() => {
                    self.clock.jump_to(t);
                    self.catch_up(&mut st);
                    // A poll waiting for this moment on the other thread returns now.
                    self.wake.notify_all();
                }
                // No timer ahead (or one that stays due without sending anything): only
                // another thread's call can make a packet now.
                _ if started.elapsed() > RECEIVE_GIVE_UP => return None,
                _ => st = self.sleep(st, None),
            }
        }
    }

    /// usleep: jump the clock and run what falls due on the way.
    pub(crate) fn sleep_virtual(&self, usecs: u32) {
        let mut st = self.lock();
        self.clock.jump_to(self.clock.now() + i64::from(usecs));
        self.catch_up(&mut st);
        // A poll whose timeout the jump passed returns now, not at its next nap.
        self.wake.notify_all();
    }

    /// Register a shim-side deadline (a poll's timeout) so that jumps stop at it; the token
    /// removes it with [`State::forget_deadline`].
    pub(crate) fn add_deadline(&self, st: &mut State, at: i64) -> u64 {
        let token = st.token();
        st.deadlines.insert(token, at);
        token
    }

    /// Wake every waiter (a descriptor changed under them).
    pub(crate) fn notify(&self) {
        self.wake.notify_all();
    }
}

impl State {
    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// The engine's time now, virtual microseconds.
    pub(crate) fn now(&self) -> i64 {
        self.engine_now
    }

    /// Forget a deadline added by [`Shim::add_deadline`].
    pub(crate) fn forget_deadline(&mut self, token: u64) {
        self.deadlines.remove(&token);
    }

    /// Apply a request the engine answers at once (no waiting), and return its answer.
    pub(crate) fn call_now(&mut self, request: Request) -> Outcome {
        let token = self.token();
        let now = instant(self.engine_now);
        self.engine.handle(request, token, now);
        self.poll_at_now(self.engine_now);
        self.answers
            .remove(&token)
            .map(|(o, _)| o)
            .unwrap_or_else(|| {
                // Every request this is used for is answered at once; a parked one would be a bug.
                Err(lingerstack_core::StackError::InvalidState.into())
            })
    }

    /// The earliest deadline: the engine's next timer or a shim-side one.
    fn next_due(&mut self) -> Option<i64> {
        let engine = self
            .engine
            .poll_at(instant(self.engine_now))
            .map(|t| t.total_micros());
        engine
            .into_iter()
            .chain(self.deadlines.values().copied())
            .min()
    }

    /// Fire every engine timer due by `target` at its own time, then poll at `target`. True
    /// when the engine answered something or sent a packet.
    fn run_until(&mut self, target: i64) -> bool {
        let mut happened = false;
        let mut stuck = 0;
        for _ in 0..MAX_STEPS {
            let due = self.engine.poll_at(instant(self.engine_now));
            let Some(at) = due.map(|t| t.total_micros()).filter(|&t| t <= target) else {
                break;
            };
            if at <= self.engine_now {
                // Due now and still due after the poll: allow a few rounds, then move on.
                stuck += 1;
                if stuck > 8 {
                    break;
                }
            } else {
                stuck = 0;
            }
            happened |= self.poll_at_now(at.max(self.engine_now));
        }
        happened | self.poll_at_now(target.max(self.engine_now))
    }

    /// Poll the engine at `t` and collect its answers and packets. True when there were any.
    fn poll_at_now(&mut self, t: i64) -> bool {
        self.engine_now = t;
        self.engine.poll(instant(t));
        let before = (self.answers.len(), self.outbound.len());
        let answers = self
            .engine
            .drain_answers()
            .map(|(token, o)| (token, (o, t)));
        self.answers.extend(answers);
        for packet in self.wire.take_sent() {
            self.outbound.push_back((packet, t));
        }
        for event in self.engine.drain_events() {
            self.ready_times.record(event.id, &event.ready, t);
        }
        before != (self.answers.len(), self.outbound.len())
    }

    /// Make `ip` the stack's own address of its family if it has none yet (bind without
    /// flags). False when the family already has another address.
    pub(crate) fn learn_local(&mut self, ip: IpAddr) -> bool {
        let f = family(ip);
        match self.known.local[f] {
            Some(known) => known == ip,
            None => {
                if self
                    .engine
                    .add_address(ip, if f == 0 { 24 } else { 64 })
                    .is_err()
                {
                    return false;
                }
                self.known.local[f] = Some(ip);
                self.route(f);
                true
            }
        }
    }

    /// The peer of a connect: packetdrill's side, unless known already. Gives the family an
    /// address of its own if it has none.
    pub(crate) fn learn_peer(&mut self, ip: IpAddr) {
        if self.known.remote[family(ip)].is_none() {
            self.learn_remote(ip);
        }
        if self.known.local[family(ip)].is_none() {
            self.learn_local(placeholder_local(ip.is_ipv4()));
        }
    }

    fn learn_from_inbound(&mut self, src: IpAddr, dst: IpAddr) {
        if self.known.local[family(dst)].is_none() {
            self.learn_local(dst);
        }
        if self.known.remote[family(src)].is_none() {
            self.learn_remote(src);
        }
    }

    fn learn_remote(&mut self, ip: IpAddr) {
        self.known.remote[family(ip)] = Some(ip);
        self.route(family(ip));
    }

    /// Route everything of a family out of the link: through packetdrill's address, or while
    /// that is unknown through the stack's own (an IP link has no next hop to resolve).
    fn route(&mut self, f: usize) {
        if let Some(via) = self.known.remote[f].or(self.known.local[f]) {
            // The route table has room for one route per family; nothing else adds routes.
            let _ = self.engine.set_default_route(via);
        }
    }
}

/// Source and destination of an IPv4 or IPv6 packet.
fn ip_addresses(packet: &[u8]) -> Option<(IpAddr, IpAddr)> {
    use smoltcp::wire::{Ipv4Packet, Ipv6Packet};
    match packet.first()? >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(packet).ok()?;
            Some((ip.src_addr().into(), ip.dst_addr().into()))
        }
        6 => {
            let ip = Ipv6Packet::new_checked(packet).ok()?;
            Some((ip.src_addr().into(), ip.dst_addr().into()))
        }
        _ => None,
    }
}

/// The errno of an outcome's failure, for calls that only need to know it failed.
pub(crate) fn errno_of(outcome: Outcome) -> Res<lingerstack_core::Done> {
    outcome.map_err(|f| Errno::from(f.error))
}
