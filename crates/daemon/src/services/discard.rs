//! Discard (RFC 863): every byte received is thrown away, until the client closes its side.

use std::sync::Arc;

use lingerstack_stack::Wait;

use super::{CHUNK, Conn, Shared};

/// Serve one discard connection.
pub fn serve(shared: Arc<Shared>, conn: Arc<Conn>) {
    loop {
        match shared.stack.recv(conn.id, CHUNK, Wait::Block(None)) {
            Ok(data) if data.is_empty() => {
                conn.finish(&shared, "client closed (FIN)");
                return;
            }
            Ok(data) => conn.count_in(data.len()),
            Err(e) => {
                conn.failed(&shared, e);
                return;
            }
        }
    }
}
