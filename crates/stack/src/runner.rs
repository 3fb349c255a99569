//! The thin runner around the engine: one thread with mio, the link's fd (or its wake hook), a
//! waker for commands, and the monotonic clock. It hands the engine what arrived and the time,
//! and delivers the answers and events the engine hands back.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant as StdInstant;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use lingerstack_core::{Engine, Instant, Request, SocketEvent};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::command::{Command, Responder};

/// Token of the command waker.
pub(crate) const WAKER: Token = Token(0);
/// Token of the link's readiness.
pub(crate) const LINK: Token = Token(1);

/// Most commands applied before the engine polls again, so a flood of calls cannot starve
/// the network.
const COMMAND_BATCH: usize = 256;

/// How long the engine keeps polling (commands and the link, without sleeping) after a wake
/// that found work, before it sleeps in the kernel. A command or frame that arrives within it
/// costs neither side a wake-up; the price is up to this much CPU after each burst of work.
/// `LINGERSTACK_BUSY_POLL_US` overrides it (0: never busy-poll).
const BUSY_POLL: std::time::Duration = std::time::Duration::from_micros(50);

fn busy_poll_time() -> std::time::Duration {
    std::env::var("LINGERSTACK_BUSY_POLL_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(BUSY_POLL, std::time::Duration::from_micros)
}

/// The engine's clock: microseconds since the runner started.
struct Clock(StdInstant);

impl Clock {
    fn now(&self) -> Instant {
        Instant::from_micros(self.0.elapsed().as_micros() as i64)
    }

    fn until(&self, at: Instant) -> std::time::Duration {
        let now = self.now();
        if at <= now {
            std::time::Duration::ZERO
        } else {
            (at - now).into()
        }
    }
}

/// How application threads wake the engine after sending a command: a mio waker, rung only
/// when the engine may be asleep, so callers of a busy engine make no system call.
pub(crate) struct Doorbell {
    waker: Arc<Waker>,
    asleep: AtomicBool,
}

impl Doorbell {
    /// Wake the engine if it may be waiting. Call after the command is in the channel.
    pub(crate) fn ring(&self) {
        if self.asleep.swap(false, Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }
}

/// The engine as the runner drives it: answers go to responders.
pub(crate) type RunEngine = Engine<Responder>;

/// Where the runner sends what the engine hands back.
struct Outlets {
    events: Option<Sender<SocketEvent>>,
}

impl Outlets {
    /// Deliver the engine's answers and readiness changes.
    fn deliver(&self, engine: &mut RunEngine) {
        for (reply, outcome) in engine.drain_answers() {
            reply.send(outcome);
        }
        if let Some(sink) = &self.events {
            for event in engine.drain_events() {
                let _ = sink.send(event);
            }
        }
    }
}

/// Let the link wake the poll: register its file descriptor, or give it a hook that rings
/// the poll's waker (mio allows one waker per poll, so commands and frames share it; the
/// engine reads its link after every wake-up).
fn register_link(engine: &mut RunEngine, poll: &Poll, waker: &Arc<Waker>) -> io::Result<()> {
    let link = engine.link_mut();
    match link.fd() {
        Some(fd) => poll
            .registry()
            .register(&mut SourceFd(&fd), LINK, Interest::READABLE),
        None => {
            let waker = waker.clone();
            link.set_wake(Arc::new(move || {
                let _ = waker.wake();
            }));
            Ok(())
        }
    }
}

/// Start the engine's thread. Returns the doorbell and the thread's handle.
pub(crate) fn spawn(
    mut engine: RunEngine,
    commands: Receiver<Command>,
    events: Option<Sender<SocketEvent>>,
    origin: StdInstant,
) -> io::Result<(Arc<Doorbell>, JoinHandle<()>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    register_link(&mut engine, &poll, &waker)?;
    if events.is_some() {
        engine.enable_events();
    }
    let outlets = Outlets { events };
    let doorbell = Arc::new(Doorbell {
        waker,
        asleep: AtomicBool::new(false),
    });
    let bell = doorbell.clone();
    let thread = std::thread::Builder::new()
        .name("lingerstack-engine".into())
        .spawn(move || run(engine, poll, commands, &bell, &outlets, Clock(origin)))?;
    Ok((doorbell, thread))
}

fn run(
    mut engine: RunEngine,
    mut poll: Poll,
    commands: Receiver<Command>,
    doorbell: &Doorbell,
    outlets: &Outlets,
    clock: Clock,
) {
    let mut events = Events::with_capacity(16);
    let mut orphaned = false;
    let busy_poll = busy_poll_time();
    let mut active = false;
    loop {
        let mut timeout = engine.poll_at(clock.now()).map(|at| clock.until(at));
        if active && !busy_poll.is_zero() && timeout != Some(std::time::Duration::ZERO) {
            // Busy-poll: look for commands (an atomic load) and, now and then, the link (a
            // zero-timeout poll) before paying for a sleep and a wake-up.
            let until = StdInstant::now() + busy_poll.min(timeout.unwrap_or(busy_poll));
            let mut spins = 0u32;
            loop {
                if !commands.is_empty() {
                    timeout = Some(std::time::Duration::ZERO);
                    break;
                }
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(8) {
                    if poll
                        .poll(&mut events, Some(std::time::Duration::ZERO))
                        .is_ok_and(|()| !events.is_empty())
                    {
                        timeout = Some(std::time::Duration::ZERO);
                        break;
                    }
                    if StdInstant::now() >= until {
                        break;
                    }
                }
                // Yield rather than spin: on a busy machine the application or the peer may
                // be waiting for this CPU.
                std::thread::yield_now();
            }
        }
        // Announce the sleep, then look once more: a command sent before the announcement
        // rang no bell, so it must not wait for the timeout.
        doorbell.asleep.store(true, Ordering::SeqCst);
        if !commands.is_empty() {
            timeout = Some(std::time::Duration::ZERO);
        }
        let polled = poll.poll(&mut events, timeout);
        doorbell.asleep.store(false, Ordering::SeqCst);
        if let Err(e) = polled
            && e.kind() != io::ErrorKind::Interrupted
        {
            log::error!("engine poll failed: {e}");
            break;
        }
        let frames = engine.frames();
        let mut handled = 0;
        for _ in 0..COMMAND_BATCH {
            match commands.try_recv() {
                Ok(Command { request, reply }) => {
                    handled += 1;
                    engine.handle(request, reply, clock.now());
                    // Answer at once: a caller spinning for a quick answer gets it now.
                    outlets.deliver(&mut engine);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if !orphaned {
                        // Every handle is gone: close what is left as a stop would.
                        orphaned = true;
                        let (tx, _rx) = crossbeam_channel::bounded(1);
                        let grace = std::time::Duration::from_secs(2);
                        engine.handle(Request::Stop { grace }, Responder::new(tx, 0), clock.now());
                    }
                    break;
                }
            }
        }
        engine.poll(clock.now());
        outlets.deliver(&mut engine);
        active = handled > 0 || engine.frames() != frames;
        if engine.is_stopped() {
            break;
        }
    }
    // Answer whatever arrived in the meantime so no caller hangs.
    while let Ok(Command { request, reply }) = commands.try_recv() {
        engine.handle(request, reply, clock.now());
    }
    outlets.deliver(&mut engine);
    log::debug!("engine thread exits");
}
