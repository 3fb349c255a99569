//! `--so_flags`: `local=IP,remote=IP,mtu=N`, comma-separated.

use std::net::IpAddr;

/// What the flags say; every field may be absent (then the shim learns it, or takes a
/// default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    /// The stack's own address.
    pub(crate) local: Option<IpAddr>,
    /// packetdrill's side: where everything not local is routed.
    pub(crate) remote: Option<IpAddr>,
    /// The IP MTU of the link.
    pub(crate) mtu: usize,
}

/// The MTU when none is given: Ethernet's.
pub(crate) const DEFAULT_MTU: usize = 1500;

impl Flags {
    /// Parse the flags string (`None`: packetdrill passed no `--so_flags`). An unknown key, a
    /// bad value, a repeated key or mixed IP versions is an error that names the culprit.
    pub(crate) fn parse(text: Option<&str>) -> Result<Flags, String> {
        let mut flags = Flags {
            mtu: DEFAULT_MTU,
            ..Flags::default()
        };
        let mut seen = Vec::new();
        for item in text.unwrap_or("").split(',').map(str::trim) {
            if item.is_empty() {
                continue;
            }
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not key=value"))?;
            if seen.contains(&key) {
                return Err(format!("`{key}` given twice"));
            }
            seen.push(key);
            let address = || {
                value
                    .parse::<IpAddr>()
                    .map_err(|_| format!("`{value}` is not an IP address (in `{item}`)"))
            };
            match key {
                "local" => flags.local = Some(address()?),
                "remote" => flags.remote = Some(address()?),
                "mtu" => {
                    flags.mtu = value
                        .parse()
                        .ok()
                        .filter(|m| (68..=65535).contains(m))
                        .ok_or_else(|| format!("`{value}` is not an MTU in 68..=65535"))?
                }
                _ => return Err(format!("unknown key `{key}` (known: local, remote, mtu)")),
            }
        }
        if let (Some(l), Some(r)) = (flags.local, flags.remote)
            && l.is_ipv4() != r.is_ipv4()
        {
            return Err(format!(
                "local {l} and remote {r} are of different IP versions"
            ));
        }
        let v6 = flags.local.iter().chain(&flags.remote).any(IpAddr::is_ipv6);
        if v6 && flags.mtu < 1280 {
            return Err(format!("mtu {} is below IPv6's minimum of 1280", flags.mtu));
        }
        Ok(flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_and_empty_flags_give_the_defaults() {
        assert_eq!(Flags::parse(None).unwrap().mtu, DEFAULT_MTU);
        assert_eq!(Flags::parse(Some("")).unwrap(), Flags::parse(None).unwrap());
    }

    #[test]
    fn all_keys() {
        let f = Flags::parse(Some("local=192.168.0.1, remote=192.0.2.1,mtu=1400")).unwrap();
        assert_eq!(f.local, Some("192.168.0.1".parse().unwrap()));
        assert_eq!(f.remote, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(f.mtu, 1400);
        let f = Flags::parse(Some("local=fd3d:fa7b:d17d::1,remote=2001:db8::1")).unwrap();
        assert!(f.local.unwrap().is_ipv6());
    }

    #[test]
    fn bad_flags_are_named() {
        for (text, culprit) in [
            ("colour=red", "colour"),
            ("local=1.2.3", "1.2.3"),
            ("mtu=9", "9"),
            ("mtu=x", "x"),
            ("local", "local"),
            ("mtu=1400,mtu=1400", "mtu"),
            ("local=10.0.0.1,remote=2001:db8::1", "different"),
            ("local=2001:db8::2,mtu=1000", "1280"),
        ] {
            let e = Flags::parse(Some(text)).unwrap_err();
            assert!(e.contains(culprit), "{text}: {e}");
        }
    }
}
