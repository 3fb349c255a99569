//! The linger table: which close a socket's linger setting and blocking mode ask for.

use std::time::Duration;

use lingerstack_stack::CloseMode;

/// `struct linger` as Windows defines it: `l_onoff`, then `l_linger` in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Linger {
    /// Non-zero: linger on.
    pub onoff: u16,
    /// Seconds to linger (kept when `onoff` is cleared).
    pub linger: u16,
}

impl Linger {
    /// Parse the 4-byte option value (native byte order, as the C struct is laid out).
    pub fn from_bytes(b: [u8; 4]) -> Linger {
        Linger {
            onoff: u16::from_ne_bytes([b[0], b[1]]),
            linger: u16::from_ne_bytes([b[2], b[3]]),
        }
    }

    /// The 4-byte option value.
    pub fn to_bytes(self) -> [u8; 4] {
        let [a, b] = self.onoff.to_ne_bytes();
        let [c, d] = self.linger.to_ne_bytes();
        [a, b, c, d]
    }
}

/// The close that the linger table asks for (close-semantics.md, "The linger table").
///
/// `send_shut` is true when the application already called shutdown(SD_SEND): closure is
/// then under way and the close completes it in the background, reset `l_linger` seconds
/// later if unfinished (row C11).
pub fn close_mode(linger: Linger, nonblocking: bool, send_shut: bool) -> CloseMode {
    let seconds = Duration::from_secs(u64::from(linger.linger));
    match (linger.onoff != 0, linger.linger) {
        (false, _) => CloseMode::Graceful { deadline: None },
        (true, 0) => CloseMode::Abort,
        (true, _) if send_shut && nonblocking => CloseMode::Graceful {
            deadline: Some(seconds),
        },
        (true, _) if nonblocking => CloseMode::LingerNonBlocking { deadline: None },
        (true, _) => CloseMode::Linger { timeout: seconds },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows() {
        let off = Linger {
            onoff: 0,
            linger: 30,
        };
        let hard = Linger {
            onoff: 1,
            linger: 0,
        };
        let n = Linger {
            onoff: 1,
            linger: 3,
        };
        assert_eq!(
            close_mode(off, false, false),
            CloseMode::Graceful { deadline: None }
        );
        assert_eq!(
            close_mode(off, true, false),
            CloseMode::Graceful { deadline: None }
        );
        assert_eq!(close_mode(hard, false, false), CloseMode::Abort);
        assert_eq!(close_mode(hard, true, true), CloseMode::Abort);
        assert_eq!(
            close_mode(n, false, false),
            CloseMode::Linger {
                timeout: Duration::from_secs(3)
            }
        );
        assert_eq!(
            close_mode(n, true, false),
            CloseMode::LingerNonBlocking { deadline: None }
        );
        // C11: after shutdown(SD_SEND) the non-blocking close finishes in the background.
        assert_eq!(
            close_mode(n, true, true),
            CloseMode::Graceful {
                deadline: Some(Duration::from_secs(3))
            }
        );
    }

    #[test]
    fn bytes_round_trip() {
        let l = Linger {
            onoff: 5,
            linger: 189,
        };
        assert_eq!(Linger::from_bytes(l.to_bytes()), l);
    }
}
