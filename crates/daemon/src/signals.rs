//! Signals: SIGTERM and SIGINT stop the daemon (a second one exits at once), SIGHUP reopens
//! the pcap and log files. Handlers only record the signal (signal-hook's self-pipe); a thread
//! turns them into [`Event`]s for the daemon's main loop.

use std::io;

use crossbeam_channel::Sender;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// What a signal asks the daemon to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Stop: drain and exit (the signal's name).
    Stop(&'static str),
    /// Reopen the pcap and log files.
    Reopen,
}

/// Install the handlers and start the thread that forwards them to `events`.
///
/// `on_exit_now` runs before the process exits on a second stop signal (flush what can be
/// flushed); the exit status is then 128 + the signal number, as a shell reports it.
pub fn install(events: Sender<Event>) -> io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut stops = 0u32;
            for sig in signals.forever() {
                let name = match sig {
                    SIGTERM => "SIGTERM",
                    SIGINT => "SIGINT",
                    _ => "SIGHUP",
                };
                if sig == SIGHUP {
                    let _ = events.send(Event::Reopen);
                    continue;
                }
                stops += 1;
                if stops == 1 {
                    let _ = events.send(Event::Stop(name));
                } else {
                    log::warn!("second stop signal ({name}): exiting at once, without draining");
                    std::process::exit(128 + sig);
                }
            }
        })?;
    Ok(())
}
