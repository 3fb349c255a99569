//! WSPCloseSocket and WSPDuplicateSocket: the linger table applied, references counted.

use std::sync::Arc;

use lingerstack_stack::{CloseMode, StackError};

use crate::callback::{in_callback, run_callback};
use crate::error::{WsaError, WsaResult};
use crate::linger::close_mode;
use crate::provider::Provider;
use crate::socket::Shared;

/// What WSPDuplicateSocket fills in: enough for WSPSocket(FROM_PROTOCOL_INFO) to find the
/// socket again (`provider_reserved`, WSAPROTOCOL_INFOW's dwProviderReserved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtocolInfo {
    /// Address family (Windows value).
    pub family: i32,
    /// The underlying socket.
    pub provider_reserved: u64,
}

impl Provider {
    /// WSPCloseSocket: release descriptor `s`; the last reference closes the socket as its
    /// linger setting and blocking mode say (close-semantics.md).
    pub fn close_socket(&self, s: usize) -> WsaResult<()> {
        let Some((shared, mode)) = self.claim_close(s)? else {
            // C19: other descriptors keep the socket; nothing is sent or aborted.
            return Ok(());
        };
        let result = self.live()?.stack.close(shared.id, mode);
        match result {
            Err(StackError::WouldBlock) => {
                // C07: nothing changes; the descriptor stays fully usable. Events that came
                // while the close was being tried are recorded now.
                let mut actions = Vec::new();
                {
                    let mut st = shared.lock();
                    st.closing = false;
                    let ready = st.ready;
                    st.reg.update(&ready, &mut actions);
                }
                for action in actions {
                    run_callback(|| action.run());
                }
                Err(WsaError::WOULDBLOCK)
            }
            Err(StackError::NetworkDown) => {
                // C22: the descriptor is released all the same.
                self.remove_descriptor(s, &shared, true);
                Err(WsaError::NETDOWN)
            }
            result => {
                self.remove_descriptor(s, &shared, true);
                log::debug!("closesocket({s:#x}) {mode:?} -> {result:?}");
                result.map(|_| ()).map_err(WsaError::from)
            }
        }
    }

    /// Decide, under the table lock, what closing `s` does: drop one reference (`None`), or
    /// close the socket by the returned mode. Two threads closing descriptors of one socket
    /// at once cannot both take the last reference.
    fn claim_close(&self, s: usize) -> WsaResult<Option<(Arc<Shared>, CloseMode)>> {
        let mut table = self.table()?;
        let shared = table.by_handle.get(&s).cloned().ok_or(WsaError::NOTSOCK)?;
        let mut st = shared.lock();
        if st.blocking_close {
            return Err(WsaError::INPROGRESS);
        }
        if st.closing {
            // Another thread is closing the last reference right now. Its close may still
            // fail (WSAEWOULDBLOCK) and leave the descriptor open, so this one is not told
            // WSAENOTSOCK: it is busy, as during a blocking close (C20).
            return Err(WsaError::INPROGRESS);
        }
        if st.refs > 1 {
            st.refs -= 1;
            table.by_handle.remove(&s);
            drop((st, table));
            self.release_handle(s);
            return Ok(None);
        }
        let mode = close_mode(st.linger, st.nonblocking, st.send_shut);
        if matches!(mode, CloseMode::Linger { .. }) {
            if in_callback() {
                // C21: a close that would block cannot run inside a provider callback.
                return Err(WsaError::INPROGRESS);
            }
            st.blocking_close = true;
        }
        // C18: from here on nothing is recorded or posted for this socket.
        st.closing = true;
        drop(st);
        Ok(Some((shared, mode)))
    }

    /// WSPDuplicateSocket: a protocol info from which WSPSocket makes another descriptor of
    /// the same socket.
    pub fn duplicate_socket(&self, s: usize) -> WsaResult<ProtocolInfo> {
        let shared = self.descriptor(s)?;
        Ok(ProtocolInfo {
            family: shared.family,
            provider_reserved: shared.id.0,
        })
    }

    /// WSPSocket(FROM_PROTOCOL_INFO, ...): a new descriptor for the socket `info` names.
    pub fn socket_from_info(&self, info: &ProtocolInfo) -> WsaResult<usize> {
        let shared = self.by_key(info.provider_reserved)?;
        {
            let mut st = shared.lock();
            if st.closing {
                return Err(WsaError::INVAL);
            }
            st.refs += 1;
        }
        self.add_descriptor(&shared)
            .inspect_err(|_| shared.lock().refs -= 1)
    }

    /// Is `s` a descriptor of the same socket as `t`?
    pub fn same_socket(&self, s: usize, t: usize) -> WsaResult<bool> {
        Ok(Arc::ptr_eq(&self.lookup(s)?, &self.lookup(t)?))
    }
}
