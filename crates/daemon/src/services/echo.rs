//! Echo (RFC 862): every byte received is sent back, until the client closes its side.

use std::sync::Arc;

use lingerstack_stack::Wait;

use super::{CHUNK, Conn, Shared};

/// Serve one echo connection.
pub fn serve(shared: Arc<Shared>, conn: Arc<Conn>) {
    let stack = &shared.stack;
    loop {
        match stack.recv(conn.id, CHUNK, Wait::Block(None)) {
            Ok(data) if data.is_empty() => {
                conn.finish(&shared, "client closed (FIN), every byte echoed");
                return;
            }
            Ok(data) => {
                conn.count_in(data.len());
                match stack.send(conn.id, &data, Wait::Block(None)) {
                    Ok(n) => conn.count_out(n),
                    Err(f) => {
                        conn.count_out(f.bytes);
                        conn.failed(&shared, f.error);
                        return;
                    }
                }
            }
            Err(e) => {
                conn.failed(&shared, e);
                return;
            }
        }
    }
}
