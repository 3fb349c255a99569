//! Character generator (RFC 864): lines of 72 printable ASCII characters, each starting one
//! character further along the 95 printable characters, sent until the client closes its side
//! or resets. Whatever the client sends is thrown away.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;

use lingerstack_stack::tokio::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{CHUNK, Conn, Ending};

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

/// What happened first on a chargen connection.
enum Event {
    /// Bytes from the client (thrown away); 0 is its FIN.
    Read(usize),
    /// Bytes of the pattern sent.
    Wrote(usize),
}

/// Serve one chargen connection: send the pattern while watching for the client's FIN.
pub async fn serve(conn: &Conn, stream: &mut TcpStream) -> Ending {
    let period = pattern();
    let twice = [period.as_slice(), period.as_slice()].concat();
    let mut input = vec![0u8; CHUNK];
    let mut offset = 0;
    loop {
        let chunk = &twice[offset..offset + period.len()];
        // Reading first: the client's FIN ends the service even while the window is shut.
        let event = poll_fn(|cx| {
            let mut rb = ReadBuf::new(&mut input);
            match Pin::new(&mut *stream).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(Event::Read(rb.filled().len()))),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
            Pin::new(&mut *stream)
                .poll_write(cx, chunk)
                .map_ok(Event::Wrote)
        })
        .await;
        match event {
            Ok(Event::Read(0)) => return Ending::Finished("client closed (FIN)"),
            Ok(Event::Read(n)) => conn.count_in(n),
            Ok(Event::Wrote(n)) => {
                conn.count_out(n);
                offset = (offset + n) % period.len();
            }
            Err(e) => return Ending::Failed(e),
        }
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
