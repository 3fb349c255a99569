//! lingerstack-tap: the TAP link driver of lingerstack.
//!
//! [`TapLink`] opens a TAP device (Ethernet frames, no packet-info header), non-blocking, and
//! implements the engine's `Link` contract: one frame per `recv`/`send`, the descriptor
//! registered with mio for readability, and a counter for every frame that is not delivered.
//! The engine owns the frame buffers and the smoltcp device around the link.
//!
//! # Offloads
//!
//! By default the TAP is opened with the virtio-net header (`IFF_VNET_HDR`,
//! `TUNSETVNETHDRSZ` 12) and checksum and TCP segmentation offloads (`TUNSETOFFLOAD` with
//! `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`): the kernel then hands over and takes TCP
//! super-segments of up to 64 KiB with partial checksums, one system call each, and cuts them
//! to the MSS only where a real wire needs it. A kernel that refuses the offloads leaves the
//! link with plain frames (logged once); [`TapOptions::offload`] `false` opens it plain.
//!
//! All `unsafe` code (the interface ioctls, `readv(2)` and `poll(2)`) lives in the private `sys`
//! module.
//!
//! # Namespaces
//!
//! The device is created (or attached to) in the network namespace of the thread that calls
//! [`TapLink::open`]; the socket used for the MTU and flag ioctls is made there too and kept, so
//! the link can then be used and reconfigured from any thread.
//!
//! # When the device goes away
//!
//! See [`TapLink::is_gone`] for what the kernel does when the TAP is deleted while it is open.

#![deny(missing_docs)]

mod sys;
#[cfg(test)]
mod tests;

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use lingerstack_core::link::Link;
use lingerstack_core::link::vnet::VNET_HDR_LEN;

/// The offloads asked of the kernel: checksums, TCP segmentation for IPv4 and IPv6.
const OFFLOADS: libc::c_uint = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;

/// How to open a [`TapLink`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapOptions {
    /// Open with the virtio-net header and ask for checksum and TCP segmentation offloads
    /// (default `true`). `false`: plain frames of at most the MTU, one per system call.
    pub offload: bool,
}

impl Default for TapOptions {
    fn default() -> Self {
        TapOptions { offload: true }
    }
}

/// Length of an Ethernet header without VLAN tag: a frame is at most MTU + this many bytes.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// Counters of one [`TapLink`], all since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TapCounters {
    /// Frames read from the device and handed to the engine.
    pub rx_frames: u64,
    /// Frames written to the device.
    pub tx_frames: u64,
    /// Bytes of the frames in `rx_frames`.
    pub rx_bytes: u64,
    /// Bytes of the frames in `tx_frames`.
    pub tx_bytes: u64,
    /// Frames not written because the device could not take them now (`EAGAIN`/`ENOBUFS`).
    pub tx_dropped_full: u64,
    /// Frames not written because the device is administratively down (`EIO`).
    pub tx_dropped_down: u64,
    /// Failed reads, plus frames dropped because they did not fit the receive buffer.
    pub rx_errors: u64,
    /// Failed writes (other than `tx_dropped_full`) and short writes.
    pub tx_errors: u64,
}

/// A TAP network device used as the engine's Ethernet link.
///
/// Non-blocking: `Link::recv` and `Link::send` never wait. It is `Send`, so it
/// can be opened on one thread (inside a network namespace) and driven from another.
#[derive(Debug)]
pub struct TapLink {
    /// The `/dev/net/tun` descriptor attached to the device.
    fd: OwnedFd,
    /// The device's name as the kernel reported it.
    name: String,
    /// Frames carry a virtio-net header.
    vnet: bool,
    /// The offloads the kernel accepted (`TUN_F_*`), 0 for none.
    offloads: libc::c_uint,
    /// `AF_INET` datagram socket for the interface ioctls, in the device's namespace.
    ctl: OwnedFd,
    mtu: usize,
    ifindex: u32,
    counters: TapCounters,
    /// The last read or write error that was not "try again", as (kind, errno).
    last_error: Option<(io::ErrorKind, Option<i32>)>,
}

impl TapLink {
    /// Attaches to the TAP device `name`, creating it if it does not exist, and brings it up.
    ///
    /// `TUNSETIFF` either creates a new device (removed again when this link is dropped) or
    /// attaches to an existing one such as a persistent TAP made with
    /// `ip tuntap add mode tap name <name>` (which stays). Attaching fails with `EBUSY` when
    /// another process already has the (single-queue) device open, and with `EINVAL` when
    /// `name` is a device of another kind.
    ///
    /// The link is set non-blocking, `IFF_UP` is set (`SIOCGIFFLAGS`/`SIOCSIFFLAGS`) and the MTU
    /// is read (`SIOCGIFMTU`). Needs `CAP_NET_ADMIN`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when `name` is empty, longer than 15 bytes (`IFNAMSIZ - 1`; the kernel
    /// would truncate it silently) or contains a NUL byte; otherwise the OS error of the failing
    /// step (`ENOENT` without /dev/net/tun, `EPERM` without the capability, ...).
    pub fn open(name: &str) -> io::Result<TapLink> {
        TapLink::open_with(name, TapOptions::default())
    }

    /// [`TapLink::open`] with options: `offload` asks for the virtio-net header and the
    /// offloads; a kernel that refuses them gives a link with plain frames (logged once).
    ///
    /// # Errors
    ///
    /// As [`TapLink::open`].
    pub fn open_with(name: &str, options: TapOptions) -> io::Result<TapLink> {
        let wanted = if options.offload { OFFLOADS } else { 0 };
        TapLink::open_asking(name, wanted)
    }

    /// Open asking for the offload bits `wanted` (0: plain). Tests pass bits the kernel
    /// refuses to see the fallback.
    fn open_asking(name: &str, wanted: libc::c_uint) -> io::Result<TapLink> {
        if name.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TAP device name is empty",
            ));
        }
        if name.len() > sys::MAX_NAME_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "TAP device name {name:?} is {} bytes long; the maximum is {}",
                    name.len(),
                    sys::MAX_NAME_LEN
                ),
            ));
        }
        if name.as_bytes().contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TAP device name contains a NUL byte",
            ));
        }
        let (fd, real, offloads) = open_offloaded(name, wanted)?;
        let ctl = sys::ioctl_socket()?;
        // The kernel may have chosen the name (a `%d` pattern): `real` is the one it reports.
        sys::set_up(ctl.as_fd(), &real)?;
        let mtu = sys::get_mtu(ctl.as_fd(), &real)?;
        let ifindex = sys::get_ifindex(ctl.as_fd(), &real)?;
        log::debug!("tap {real}: open, ifindex {ifindex}, mtu {mtu}, offloads {offloads:#x}");
        Ok(TapLink {
            fd,
            name: real,
            vnet: offloads != 0,
            offloads,
            ctl,
            mtu,
            ifindex,
            counters: TapCounters::default(),
            last_error: None,
        })
    }

    /// The device's name as the kernel reports it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the kernel hands over and takes super-segments and partial checksums now.
    pub fn offload(&self) -> bool {
        self.offloads != 0
    }

    /// The interface index the device had when it was opened.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The IP MTU read at open time or set by [`set_mtu`](Self::set_mtu) (frames are up to
    /// [`ETHERNET_HEADER_LEN`] bytes longer).
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// Sets the device's MTU (`SIOCSIFMTU`) and reads it back; [`mtu`](Self::mtu) then returns
    /// the value the kernel reports.
    ///
    /// The engine sizes its frame buffers from the MTU when it takes the link, so call this
    /// before handing the link over.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a value that does not fit a C `int`, else the ioctl's error (`EINVAL`
    /// outside 68..=65521 for a TAP, `EPERM` without `CAP_NET_ADMIN`, `ENODEV` if it is gone).
    pub fn set_mtu(&mut self, mtu: usize) -> io::Result<()> {
        sys::set_mtu(self.ctl.as_fd(), self.name(), mtu)?;
        self.mtu = sys::get_mtu(self.ctl.as_fd(), self.name())?;
        Ok(())
    }

    /// Re-reads the MTU from the device (someone may have changed it with `ip link`).
    pub fn refresh_mtu(&mut self) -> io::Result<usize> {
        self.mtu = sys::get_mtu(self.ctl.as_fd(), self.name())?;
        Ok(self.mtu)
    }

    /// Whether the device is up (`IFF_UP`), as the kernel reports it now.
    pub fn is_up(&self) -> io::Result<bool> {
        let flags = sys::get_flags(self.ctl.as_fd(), self.name())?;
        Ok(flags & libc::IFF_UP as libc::c_short != 0)
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> TapCounters {
        self.counters
    }

    /// The last read or write error other than "try again", if any (rebuilt from its errno).
    pub fn last_error(&self) -> Option<io::Error> {
        self.last_error.map(|(kind, errno)| match errno {
            Some(errno) => io::Error::from_raw_os_error(errno),
            None => io::Error::from(kind),
        })
    }

    /// Whether the device behind the descriptor has been removed.
    ///
    /// What the kernel does when a TAP is deleted (`ip link del`) while it is open, as observed
    /// on Linux 6.18 (and as `drivers/net/tun.c` reads): the descriptor stays open but is
    /// detached from the device. From then on
    ///
    /// - `read` fails with `EBADFD` ("File descriptor in bad state", errno 77) at once, also
    ///   when frames were queued (the queue is purged);
    /// - `write` fails with `EBADFD`;
    /// - `poll` reports `POLLERR` (and no `POLLIN`), so epoll wakes the mio loop with an error
    ///   event (`is_error()` true, `is_readable()` false) although only readability was
    ///   registered;
    /// - the name is free again and may be taken by a new device, so looking the name up is
    ///   not a reliable test.
    ///
    /// `Link::recv` therefore returns that `EBADFD` as an `Err` on its next call: the engine
    /// needs no extra check as long as it calls `recv` after every wake-up, error events
    /// included. This method does not read: it reports a remembered `EBADFD`/`ENODEV`/`ENXIO`
    /// from `recv`/`send`, or else asks `poll(2)`, without waiting, whether the descriptor
    /// reports `POLLERR`/`POLLHUP`/`POLLNVAL`, which the TAP driver does exactly when the
    /// descriptor is detached or the device is being unregistered.
    ///
    /// Not "gone": a device that is only set down (`ip link set down`): reads return `EAGAIN`,
    /// writes `EIO` (a counted drop, see `Link::send`), and it works again once up. Nor does
    /// deleting the namespace's name (`ip netns del`) while the link is open remove anything:
    /// the open TAP holds a reference to its namespace, which lives on, unnamed, with the
    /// device in it, until the link is dropped.
    pub fn is_gone(&self) -> bool {
        if let Some((_, Some(errno))) = self.last_error
            && is_gone_errno(errno)
        {
            return true;
        }
        match sys::poll_now(self.fd.as_raw_fd(), libc::POLLIN) {
            Ok(revents) => revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0,
            Err(_) => true,
        }
    }

    fn remember(&mut self, err: &io::Error) {
        self.last_error = Some((err.kind(), err.raw_os_error()));
    }
}

/// Open the TAP asking for the offloads `wanted`: the descriptor, the real name and the
/// offloads granted. Any refusal on the way ends in a plain TAP, with one log line.
fn open_offloaded(name: &str, wanted: libc::c_uint) -> io::Result<(OwnedFd, String, libc::c_uint)> {
    if wanted == 0 {
        let (fd, real) = sys::open_tap(name, false)?;
        return Ok((fd, real, 0));
    }
    let refused = match sys::open_tap(name, true) {
        Ok((fd, real)) => {
            let granted = sys::set_vnet_header(fd.as_fd(), VNET_HDR_LEN)
                .and_then(|()| sys::set_offload(fd.as_fd(), wanted));
            match granted {
                Ok(()) => return Ok((fd, real, wanted)),
                // The descriptor is dropped (a device it created goes with it) and the TAP
                // opened again without the header.
                Err(e) => e,
            }
        }
        Err(e) => e,
    };
    log::warn!("tap {name}: offloads refused ({refused}), using plain frames");
    let (fd, real) = sys::open_tap(name, false)?;
    Ok((fd, real, 0))
}

/// Errno values that mean the device behind the descriptor is gone.
fn is_gone_errno(errno: i32) -> bool {
    errno == libc::EBADFD || errno == libc::ENODEV || errno == libc::ENXIO
}

impl AsRawFd for TapLink {
    /// The TAP descriptor (the same as [`Link::fd`]).
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Link for TapLink {
    /// Reads one frame. `EAGAIN` is `Ok(None)` (also while the device is down), `EINTR` is
    /// retried; a frame longer than `buf` (the device's MTU was raised behind the engine's
    /// back) is dropped, counted in `rx_errors`, and the next frame is read; any other error
    /// is counted, remembered ([`TapLink::last_error`]) and returned (`EBADFD` once the device has been deleted, see [`TapLink::is_gone`]).
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match sys::read_frame(self.fd.as_raw_fd(), buf) {
                Ok(n) if n > buf.len() => {
                    // The spare byte after `buf` was written: the frame did not fit.
                    self.counters.rx_errors += 1;
                    log::warn!(
                        "tap {}: dropped a frame longer than the {}-byte buffer",
                        self.name(),
                        buf.len()
                    );
                }
                Ok(n) => {
                    self.counters.rx_frames += 1;
                    self.counters.rx_bytes += n as u64;
                    return Ok(Some(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.counters.rx_errors += 1;
                    self.remember(&e);
                    log::warn!("tap {}: read failed: {e}", self.name());
                    return Err(e);
                }
            }
        }
    }

    /// Writes one frame. `EAGAIN`/`ENOBUFS` is `Ok(false)` counted in `tx_dropped_full`;
    /// `EIO`, which the TAP driver returns while the device is administratively down
    /// (`ip link set down`), is `Ok(false)` counted in `tx_dropped_down` (the device may come
    /// back up, and a down Linux interface drops too); `EINTR` is retried; any other error
    /// (`EBADFD` once the device is deleted) is counted in `tx_errors`, remembered and
    /// returned.
    fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        loop {
            match sys::write_frame(self.fd.as_raw_fd(), frame) {
                Ok(n) => {
                    if n != frame.len() {
                        self.counters.tx_errors += 1;
                        log::warn!(
                            "tap {}: short write, {n} of {} bytes",
                            self.name(),
                            frame.len()
                        );
                    } else {
                        self.counters.tx_frames += 1;
                        self.counters.tx_bytes += n as u64;
                    }
                    return Ok(true);
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.raw_os_error() == Some(libc::ENOBUFS) =>
                {
                    self.counters.tx_dropped_full += 1;
                    return Ok(false);
                }
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                    if self.counters.tx_dropped_down == 0 {
                        log::info!("tap {}: device is down, dropping frames", self.name());
                    }
                    self.counters.tx_dropped_down += 1;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.counters.tx_errors += 1;
                    self.remember(&e);
                    log::warn!("tap {}: write failed: {e}", self.name());
                    return Err(e);
                }
            }
        }
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    /// The TAP descriptor: the runtime polls it for readability (edge-triggered with mio: the
    /// engine reads until `Ok(None)`). A deleted device shows as an error event.
    fn fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn describe(&self) -> String {
        format!("tap {}", self.name())
    }

    /// With the virtio-net header, frames read and written start with it (opened with
    /// offloads that the kernel accepted).
    fn vnet_header(&self) -> bool {
        self.vnet
    }

    /// `TUNSETOFFLOAD` with the offloads granted at open, or none. A failure leaves them as
    /// they were (logged).
    fn set_offload(&mut self, on: bool) -> bool {
        if !self.vnet {
            return false;
        }
        let flags = if on { OFFLOADS } else { 0 };
        if flags != self.offloads {
            match sys::set_offload(self.fd.as_fd(), flags) {
                Ok(()) => self.offloads = flags,
                Err(e) => log::warn!("tap {}: TUNSETOFFLOAD {flags:#x}: {e}", self.name),
            }
        }
        self.offloads != 0
    }
}
