//! WSPStartup and WSPCleanup: one provider run at a time, started by the first WSPStartup and
//! ended by its matching last WSPCleanup (calls nest), and the exported completion hook.

#![allow(non_snake_case)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use wsp::consts::*;
use wsp::error::{WsaError, WsaResult};
use wsp::{HandleSource, Provider, ProviderConfig};

use crate::config::EnvConfig;
use crate::procs;
use crate::raw;
use crate::types::*;
use crate::upcalls::{ClientHandles, OwnHandles, Pending, Upcalls, set_hook};

/// One provider run: from the first WSPStartup to the last WSPCleanup.
pub(crate) struct Run {
    pub(crate) provider: Provider,
    pub(crate) up: Arc<Upcalls>,
    /// The protocol the client loaded us for, with our flags filled in.
    pub(crate) protocol: WSAPROTOCOL_INFOW,
    pub(crate) pending: Arc<Pending>,
    /// WSPStartup calls not yet matched by a WSPCleanup (changed under the RUN lock).
    starts: AtomicUsize,
}

static RUN: Mutex<Option<Arc<Run>>> = Mutex::new(None);

fn run_lock() -> MutexGuard<'static, Option<Arc<Run>>> {
    RUN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The current run, or WSANOTINITIALISED.
pub(crate) fn current() -> WsaResult<Arc<Run>> {
    run_lock().clone().ok_or(WsaError::NOTINITIALISED)
}

/// XP1_GUARANTEED_DELIVERY | XP1_GUARANTEED_ORDER | XP1_GRACEFUL_CLOSE.
pub const SERVICE_FLAGS: u32 = 0x2 | 0x4 | 0x8;
/// PFL_MATCHES_PROTOCOL_ZERO.
pub const PROVIDER_FLAGS: u32 = 0x8;
/// lingerstack's provider GUID: {6c696e67-6572-7374-6163-6b2d77737021} ("lingerstack-wsp!").
pub const PROVIDER_ID: GUID = GUID {
    Data1: 0x6c69_6e67,
    Data2: 0x6572,
    Data3: 0x7374,
    Data4: [0x61, 0x63, 0x6b, 0x2d, 0x77, 0x73, 0x70, 0x21],
};

fn utf16<const N: usize>(text: &str) -> [u16; N] {
    let mut out = [0u16; N];
    for (d, s) in out.iter_mut().zip(text.encode_utf16().take(N - 1)) {
        *d = s;
    }
    out
}

/// Our fields of a WSAPROTOCOL_INFOW, around the client's.
fn fill_protocol(mut info: WSAPROTOCOL_INFOW) -> WSAPROTOCOL_INFOW {
    info.dwServiceFlags1 = SERVICE_FLAGS;
    info.dwServiceFlags2 = 0;
    info.dwServiceFlags3 = 0;
    info.dwServiceFlags4 = 0;
    info.dwProviderFlags = PROVIDER_FLAGS;
    info.ProviderId = PROVIDER_ID;
    info.ProtocolChain = WSAPROTOCOLCHAIN {
        ChainLen: 1,
        ChainEntries: [0; MAX_PROTOCOL_CHAIN],
    };
    info.iVersion = 2;
    info.iMaxSockAddr = if info.iAddressFamily == AF_INET6 {
        size_of::<SOCKADDR_IN6>() as i32
    } else {
        size_of::<SOCKADDR_IN>() as i32
    };
    info.iMinSockAddr = info.iMaxSockAddr;
    info.iSocketType = SOCK_STREAM;
    info.iProtocol = IPPROTO_TCP;
    info.iProtocolMaxOffset = 0;
    info.iNetworkByteOrder = 0; // BIGENDIAN
    info.iSecurityScheme = 0; // SECURITY_PROTOCOL_NONE
    info.dwMessageSize = 0; // a stream
    info.dwProviderReserved = 0;
    info.szProtocol = utf16("lingerstack TCP/IP");
    info
}

fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("warn");
    let _ = env_logger::Builder::from_env(env).try_init();
}

/// WSPStartup: start the provider (or, when it already runs, count one more start), copy the
/// client's upcall table, fill the proc table. Returns 0 or a Winsock error code.
///
/// Version 2.2 (`MAKEWORD(2, 2)`) or above; below: WSAVERNOTSUPPORTED. A network that cannot be
/// brought up from the environment: WSASYSNOTREADY, with a log line naming the variable.
///
/// # Safety
///
/// Every pointer is NULL or valid as Windows' WSPStartup documents it, for the call.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn WSPStartup(
    wVersionRequested: WORD,
    lpWSPData: *mut WSPDATA,
    lpProtocolInfo: *mut WSAPROTOCOL_INFOW,
    UpcallTable: WSPUPCALLTABLE,
    lpProcTable: *mut WSPPROC_TABLE,
) -> i32 {
    match std::panic::catch_unwind(|| {
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        unsafe {
            startup(
                wVersionRequested,
                lpWSPData,
                lpProtocolInfo,
                UpcallTable,
                lpProcTable,
            )
        }
    }) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => e.0,
        Err(_) => {
            log::error!("WSPStartup panicked");
            WSASYSNOTREADY
        }
    }
}

/// # Safety
///
/// every pointer is NULL or valid as WSPStartup documents it, for the call.
#[allow(non_snake_case)]
unsafe fn startup(
    version: WORD,
    lpWSPData: *mut WSPDATA,
    lpProtocolInfo: *mut WSAPROTOCOL_INFOW,
    upcalls: WSPUPCALLTABLE,
    lpProcTable: *mut WSPPROC_TABLE,
) -> WsaResult<()> {
    init_logging();
    let (major, minor) = (version & 0xff, version >> 8);
    if (major, minor) < (2, 2) {
        return Err(WsaError::VERNOTSUPPORTED);
    }
    if lpWSPData.is_null() || lpProcTable.is_null() {
        return Err(WsaError::FAULT);
    }
    // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
    let info = unsafe { raw::read(lpProtocolInfo as *const WSAPROTOCOL_INFOW) }?;
    if !matches!(info.iAddressFamily, AF_INET | AF_INET6)
        || info.iSocketType != SOCK_STREAM
        || !matches!(info.iProtocol, 0 | IPPROTO_TCP)
    {
        log::error!(
            "WSPStartup: protocol {}/{}/{} is not TCP (2 or 23 / 1 / 6)",
            info.iAddressFamily,
            info.iSocketType,
            info.iProtocol
        );
        return Err(WsaError::INVAL);
    }
    let mut guard = run_lock();
    match guard.as_mut() {
        Some(run) => {
            // Nested: the running provider, one more cleanup to come.
            run.starts.fetch_add(1, Ordering::SeqCst);
        }
        None => {
            let env = EnvConfig::from_env().map_err(|e| {
                log::error!("WSPStartup: bad configuration: {e}");
                WsaError::SYSNOTREADY
            })?;
            let device = env.device().map_err(|e| {
                log::error!("WSPStartup: {e}");
                WsaError::SYSNOTREADY
            })?;
            let link = env.link().map_err(|e| {
                log::error!("WSPStartup: network not available: {e}");
                WsaError::SYSNOTREADY
            })?;
            let up = Arc::new(Upcalls {
                table: upcalls,
                catalog: info.dwCatalogEntryId,
            });
            let handles: Arc<dyn HandleSource> = if upcalls.lpWPUCreateSocketHandle.is_some()
                && upcalls.lpWPUCloseSocketHandle.is_some()
            {
                Arc::new(ClientHandles(up.clone()))
            } else {
                Arc::new(OwnHandles)
            };
            let config = ProviderConfig {
                device,
                handles: Some(handles),
                ..ProviderConfig::new(env.stack())
            };
            let provider = Provider::startup(config, link)?;
            log::info!(
                "WSPStartup: provider up on {} ({:?} {:?})",
                env.iface
                    .as_deref()
                    .unwrap_or("the in-process loopback network"),
                env.v4,
                env.v6
            );
            *guard = Some(Arc::new(Run {
                provider,
                up,
                protocol: fill_protocol(info),
                pending: Arc::default(),
                starts: AtomicUsize::new(1),
            }));
        }
    }
    let protocol = guard.as_ref().map(|r| r.protocol).expect("run present");
    drop(guard);
    let mut back = protocol;
    back.iAddressFamily = info.iAddressFamily;
    back.dwCatalogEntryId = info.dwCatalogEntryId;
    // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
    unsafe { raw::write(lpProtocolInfo, fill_protocol(back)) }?;
    // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
    unsafe {
        raw::write(
            lpWSPData,
            WSPDATA {
                wVersion: 0x0202,
                wHighVersion: 0x0202,
                szDescription: utf16("lingerstack: a user-space TCP/IP stack on smoltcp"),
            },
        )
    }?;
    // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
    unsafe { raw::write_table(lpProcTable, procs::table()) }
}

/// WSPCleanup: one start fewer; the last one stops the provider (close-semantics.md C23).
pub(crate) fn cleanup() -> WsaResult<()> {
    let last = {
        let mut guard = run_lock();
        let run = guard.as_mut().ok_or(WsaError::NOTINITIALISED)?;
        if run.starts.fetch_sub(1, Ordering::SeqCst) > 1 {
            None
        } else {
            guard.take()
        }
    };
    if let Some(run) = last {
        let result = run.provider.cleanup();
        run.pending.clear();
        result?;
    }
    Ok(())
}

/// Install the completion hook for overlapped operations that name neither an event nor a
/// completion routine (WPUCompleteOverlappedRequest's part); NULL removes it.
#[unsafe(no_mangle)]
pub extern "system" fn LingerstackSetCompletionHook(hook: CompletionHook) {
    let _ = std::panic::catch_unwind(|| set_hook(hook));
}
