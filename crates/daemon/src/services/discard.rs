//! Discard (RFC 863): every byte received is thrown away, until the client closes its side.

use lingerstack_stack::tokio::TcpStream;
use tokio::io::AsyncReadExt;

use super::{CHUNK, Conn, Ending};

/// Serve one discard connection.
pub async fn serve(conn: &Conn, stream: &mut TcpStream) -> Ending {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return Ending::Finished("client closed (FIN)"),
            Ok(n) => conn.count_in(n),
            Err(e) => return Ending::Failed(e),
        }
    }
}
