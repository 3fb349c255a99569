//! Character generator (RFC 864): lines of 72 printable ASCII characters, each starting one
//! character further along the 95 printable characters, sent until the client closes its side
//! or resets. Whatever the client sends is thrown away.

use std::sync::Arc;
use std::time::Duration;

use lingerstack_stack::{StackError, Wait};

use super::{CHUNK, Conn, Shared};

/// Characters per line (RFC 864's suggestion), without the CR LF.
pub const LINE: usize = 72;
/// The printable ASCII characters, space to tilde.
const PRINTABLE: std::ops::RangeInclusive<u8> = b' '..=b'~';

/// One full period of the pattern: 95 lines of 72 characters and CR LF each.
pub fn pattern() -> Vec<u8> {
    let chars: Vec<u8> = PRINTABLE.collect();
    let mut out = Vec::with_capacity(chars.len() * (LINE + 2));
    for start in 0..chars.len() {
        for i in 0..LINE {
            out.push(chars[(start + i) % chars.len()]);
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// How long one send may wait before the loop checks for the client's FIN again.
const SEND_SLICE: Duration = Duration::from_millis(100);

/// Serve one chargen connection.
pub fn serve(shared: Arc<Shared>, conn: Arc<Conn>) {
    let stack = &shared.stack;
    let period = pattern();
    let twice = [period.as_slice(), period.as_slice()].concat();
    let mut offset = 0;
    loop {
        // Input is thrown away; end of stream ends the service.
        loop {
            match stack.recv(conn.id, CHUNK, Wait::No) {
                Ok(data) if data.is_empty() => {
                    conn.finish(&shared, "client closed (FIN)");
                    return;
                }
                Ok(data) => conn.count_in(data.len()),
                Err(StackError::WouldBlock) => break,
                Err(e) => {
                    conn.failed(&shared, e);
                    return;
                }
            }
        }
        let chunk = &twice[offset..offset + period.len()];
        let sent = match stack.send(conn.id, chunk, Wait::Block(Some(SEND_SLICE))) {
            Ok(n) => n,
            Err(f) if matches!(f.error, StackError::TimedOut | StackError::WouldBlock) => f.bytes,
            Err(f) => {
                conn.count_out(f.bytes);
                conn.failed(&shared, f.error);
                return;
            }
        };
        conn.count_out(sent);
        offset = (offset + sent) % period.len();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pattern_lines_rotate() {
        let p = super::pattern();
        assert_eq!(p.len(), 95 * 74);
        assert_eq!(&p[..3], b" !\"");
        assert_eq!(&p[74..77], b"!\"#");
        assert_eq!(&p[72..74], b"\r\n");
    }
}
