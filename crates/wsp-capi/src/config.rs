//! WSPStartup's network, from the environment (wsp-abi.md, "Configuration without code"), and
//! the links it brings up: a TAP device (optionally opened inside a named network namespace), or
//! with no interface named, [`MemoryLink::looped`]: an Ethernet cable from the engine back to itself, so a
//! program can connect to its own listener without privileges.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use lingerstack_stack::DeviceOptions;
use lingerstack_stack::link::{Link, MemoryLink, PcapSink};
use lingerstack_stack::{Cidr, StackConfig};

use crate::raw;

/// A TAP device name.
pub const IFACE: &str = "LINGERSTACK_IFACE";
/// A network namespace (under /run/netns) to open the TAP in.
pub const NETNS: &str = "LINGERSTACK_NETNS";
/// Addresses in CIDR notation, comma separated (one IPv4, one IPv6).
pub const ADDR: &str = "LINGERSTACK_ADDR";
/// Default gateways, comma separated (one IPv4, one IPv6).
pub const GATEWAY: &str = "LINGERSTACK_GATEWAY";
/// The stack's MAC address, `02:00:00:00:00:02`.
pub const MAC: &str = "LINGERSTACK_MAC";
/// Write every frame to this pcap file.
pub const PCAP: &str = "LINGERSTACK_PCAP";
/// `off` (or `0`): plain frames on the TAP, no TCP segmentation or checksum offloads; `on`
/// (or `1`, or unset): offloads where the kernel accepts them.
pub const OFFLOAD: &str = "LINGERSTACK_OFFLOAD";

/// The in-memory network's address when LINGERSTACK_ADDR is unset.
pub const LOOP_DEFAULT_V4: Cidr<Ipv4Addr> = Cidr {
    addr: Ipv4Addr::new(127, 0, 0, 1),
    prefix: 8,
};
/// The MAC when LINGERSTACK_MAC is unset (locally administered, unicast).
pub const DEFAULT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// A variable with a bad value: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable's name.
    pub var: &'static str,
    /// What is wrong with it.
    pub why: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.var, self.why)
    }
}

/// The network WSPStartup brings up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvConfig {
    /// TAP device; `None`: the in-memory loopback network.
    pub iface: Option<String>,
    /// Namespace to open the TAP in.
    pub netns: Option<String>,
    /// IPv4 address.
    pub v4: Option<Cidr<Ipv4Addr>>,
    /// IPv6 address.
    pub v6: Option<Cidr<Ipv6Addr>>,
    /// IPv4 gateway.
    pub gw4: Option<Ipv4Addr>,
    /// IPv6 gateway.
    pub gw6: Option<Ipv6Addr>,
    /// The stack's MAC.
    pub mac: [u8; 6],
    /// Pcap file.
    pub pcap: Option<PathBuf>,
    /// Use the TAP's offloads.
    pub offload: bool,
}

fn bad(var: &'static str, why: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        why: why.into(),
    }
}

impl EnvConfig {
    /// Read the process environment.
    pub fn from_env() -> Result<EnvConfig, ConfigError> {
        EnvConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read variables through `get` (`None`: unset). An empty value counts as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<EnvConfig, ConfigError> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let iface = get(IFACE);
        if let Some(name) = &iface
            && (name.len() > 15 || name.contains(['/', '\0', ' ']))
        {
            return Err(bad(
                IFACE,
                format!("{name:?} is not a TAP device name (at most 15 bytes, no '/' or spaces)"),
            ));
        }
        let netns = get(NETNS);
        if let Some(ns) = &netns {
            if iface.is_none() {
                return Err(bad(
                    NETNS,
                    "is set but LINGERSTACK_IFACE is not (a namespace only applies to a TAP)",
                ));
            }
            if ns == "." || ns == ".." || ns.contains(['/', '\0']) {
                return Err(bad(
                    NETNS,
                    format!("{ns:?} is not a namespace name under /run/netns"),
                ));
            }
        }
        let (mut v4, mut v6) = (None, None);
        if let Some(list) = get(ADDR) {
            for item in list.split(',').map(str::trim) {
                let (addr, prefix) = item
                    .split_once('/')
                    .ok_or_else(|| bad(ADDR, format!("{item:?} is not CIDR (address/prefix)")))?;
                let addr: IpAddr = addr
                    .parse()
                    .map_err(|_| bad(ADDR, format!("{addr:?} is not an IP address")))?;
                let prefix: u8 = prefix
                    .parse()
                    .map_err(|_| bad(ADDR, format!("{prefix:?} is not a prefix length")))?;
                match addr {
                    IpAddr::V4(a)
                        if prefix <= 32
                            && v4.is_none()
                            && !a.is_unspecified()
                            && !a.is_multicast()
                            && !a.is_broadcast() =>
                    {
                        v4 = Some(Cidr { addr: a, prefix })
                    }
                    IpAddr::V6(a)
                        if prefix <= 128
                            && v6.is_none()
                            && !a.is_unspecified()
                            && !a.is_multicast() =>
                    {
                        v6 = Some(Cidr { addr: a, prefix })
                    }
                    _ => {
                        return Err(bad(
                            ADDR,
                            format!(
                                "{item:?}: a bad prefix, a non-unicast address, or a second address of that family"
                            ),
                        ));
                    }
                }
            }
        } else if iface.is_some() {
            return Err(bad(
                ADDR,
                "is required with LINGERSTACK_IFACE (e.g. 10.200.0.2/24)",
            ));
        } else {
            v4 = Some(LOOP_DEFAULT_V4);
        }
        let (mut gw4, mut gw6) = (None, None);
        if let Some(list) = get(GATEWAY) {
            for item in list.split(',').map(str::trim) {
                match item.parse::<IpAddr>() {
                    Ok(IpAddr::V4(a)) if gw4.is_none() && v4.is_some() => gw4 = Some(a),
                    Ok(IpAddr::V6(a)) if gw6.is_none() && v6.is_some() => gw6 = Some(a),
                    _ => {
                        return Err(bad(
                            GATEWAY,
                            format!(
                                "{item:?}: not an address, a second gateway of a family, or a family with no address in LINGERSTACK_ADDR"
                            ),
                        ));
                    }
                }
            }
        }
        let mac = match get(MAC) {
            None => DEFAULT_MAC,
            Some(text) => parse_mac(&text).ok_or_else(|| {
                bad(
                    MAC,
                    format!("{text:?} is not a unicast MAC such as 02:00:00:00:00:02"),
                )
            })?,
        };
        let pcap = get(PCAP).map(PathBuf::from);
        let offload = match get(OFFLOAD).as_deref() {
            None | Some("on" | "1") => true,
            Some("off" | "0") => false,
            Some(other) => {
                return Err(bad(OFFLOAD, format!("{other:?} is neither on nor off")));
            }
        };
        Ok(EnvConfig {
            iface,
            netns,
            v4,
            v6,
            gw4,
            gw6,
            mac,
            pcap,
            offload,
        })
    }

    /// The engine's configuration.
    pub fn stack(&self) -> StackConfig {
        StackConfig {
            mac: self.mac,
            ipv4: self.v4,
            ipv6: self.v6,
            gateway_v4: self.gw4,
            gateway_v6: self.gw6,
            ..StackConfig::default()
        }
    }

    /// The device middleware (the pcap file).
    pub fn device(&self) -> Result<DeviceOptions, ConfigError> {
        let mut options = DeviceOptions::default();
        if let Some(path) = &self.pcap {
            let sink = PcapSink::create(path)
                .map_err(|e| bad(PCAP, format!("cannot create {}: {e}", path.display())))?;
            options.pcap = Some(sink);
        }
        Ok(options)
    }

    /// Bring the link up: the TAP (inside the namespace, if named), or the loopback cable.
    pub fn link(&self) -> Result<Box<dyn Link>, ConfigError> {
        let Some(iface) = &self.iface else {
            return Ok(Box::new(MemoryLink::looped(1500)));
        };
        let options = lingerstack_tap::TapOptions {
            offload: self.offload,
        };
        let open = || lingerstack_tap::TapLink::open_with(iface, options);
        let link = match &self.netns {
            None => open().map_err(|e| bad(IFACE, format!("cannot open TAP {iface:?}: {e}")))?,
            Some(ns) => {
                let path = PathBuf::from("/run/netns").join(ns);
                let file = std::fs::File::open(&path)
                    .map_err(|e| bad(NETNS, format!("cannot open {}: {e}", path.display())))?;
                // Namespaces are per thread: enter it on a thread of our own, open the TAP
                // there; the descriptor then works from any thread.
                std::thread::scope(|s| {
                    s.spawn(|| {
                        raw::enter_netns(&file).map_err(|e| {
                            bad(NETNS, format!("setns into {}: {e}", path.display()))
                        })?;
                        open().map_err(|e| {
                            bad(
                                IFACE,
                                format!("cannot open TAP {iface:?} in namespace {ns:?}: {e}"),
                            )
                        })
                    })
                    .join()
                    .unwrap_or_else(|_| Err(bad(IFACE, "the thread opening the TAP panicked")))
                })?
            }
        };
        Ok(Box::new(link))
    }
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split([':', '-']);
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    if parts.next().is_some() || mac[0] & 1 != 0 || mac == [0; 6] {
        return None;
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<EnvConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_set_is_the_loopback_network() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.iface, None);
        assert_eq!(c.v4, Some(LOOP_DEFAULT_V4));
        assert_eq!(c.mac, DEFAULT_MAC);
    }

    #[test]
    fn full_tap_configuration() {
        let c = parse(&[
            (IFACE, "lsk1t"),
            (NETNS, "lsk1"),
            (ADDR, "10.200.0.2/24, fd00:200::2/64"),
            (GATEWAY, "10.200.0.1,fd00:200::1"),
            (MAC, "02:00:00:00:00:07"),
            (PCAP, "/tmp/x.pcap"),
        ])
        .unwrap();
        assert_eq!(c.iface.as_deref(), Some("lsk1t"));
        assert_eq!(c.v4.unwrap().prefix, 24);
        assert_eq!(
            c.v6.unwrap().addr,
            "fd00:200::2".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(c.gw4, Some(Ipv4Addr::new(10, 200, 0, 1)));
        assert_eq!(c.mac, [2, 0, 0, 0, 0, 7]);
        assert!(c.offload, "offloads are on unless turned off");
        assert!(!parse(&[(OFFLOAD, "off")]).unwrap().offload);
        assert!(!parse(&[(OFFLOAD, "0")]).unwrap().offload);
        assert!(parse(&[(OFFLOAD, "on")]).unwrap().offload);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[(ADDR, "10.0.0.1")], ADDR),
            (&[(ADDR, "10.0.0.1/33")], ADDR),
            (&[(ADDR, "nonsense/8")], ADDR),
            (&[(ADDR, "10.0.0.1/8,10.0.0.2/8")], ADDR),
            (&[(IFACE, "a-very-long-interface-name")], IFACE),
            (&[(IFACE, "tap0")], ADDR),
            (&[(NETNS, "x")], NETNS),
            (
                &[(IFACE, "tap0"), (NETNS, "../x"), (ADDR, "10.0.0.1/8")],
                NETNS,
            ),
            (&[(MAC, "01:00:00:00:00:01")], MAC),
            (&[(MAC, "zz")], MAC),
            (&[(GATEWAY, "fd00::1")], GATEWAY),
            (&[(OFFLOAD, "maybe")], OFFLOAD),
        ];
        for (vars, var) in cases {
            assert_eq!(parse(vars).unwrap_err().var, *var, "{vars:?}");
        }
    }
}
