//! Echo (RFC 862): every byte received is sent back, until the client closes its side.

use lingerstack_stack::tokio::TcpStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{CHUNK, Conn, Ending};

/// The buffer an echo connection starts with: small, so that ten thousand idle connections
/// cost little; it grows to [`CHUNK`] once a read fills it.
const FIRST_BUFFER: usize = 512;

/// Serve one echo connection.
pub async fn serve(conn: &Conn, stream: &mut TcpStream) -> Ending {
    let mut buf = vec![0u8; FIRST_BUFFER];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return Ending::Finished("client closed (FIN), every byte echoed"),
            Ok(n) => {
                conn.count_in(n);
                if let Err(e) = stream.write_all(&buf[..n]).await {
                    return Ending::Failed(e);
                }
                conn.count_out(n);
                if n == buf.len() && buf.len() < CHUNK {
                    buf.resize(CHUNK, 0);
                }
            }
            Err(e) => return Ending::Failed(e),
        }
    }
}
