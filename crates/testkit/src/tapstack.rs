//! A lingerstack engine on the TAP of a [`TapNet`], configured to match its addresses.

use std::io;

use lingerstack_stack::DeviceOptions;
use lingerstack_stack::{Cidr, SocketEvent, Stack, StackConfig};
use lingerstack_tap::TapLink;

use crate::tapnet::{LINK_UP_TIMEOUT, TapNet};

/// The engine configuration for `net`: the stack's MAC and addresses, IPv4 and IPv6.
pub fn stack_config(net: &TapNet) -> StackConfig {
    StackConfig {
        mac: net.stack_mac(),
        ipv4: Some(Cidr {
            addr: net.stack_v4(),
            prefix: net.prefix_len_v4(),
        }),
        ipv6: Some(Cidr {
            addr: net.stack_v6(),
            prefix: net.prefix_len_v6(),
        }),
        ..StackConfig::default()
    }
}

/// Open the TAP of `net` from inside its namespace (a TAP fd then works from any thread), with
/// offloads as [`crate::offload`] says.
pub fn open_link(net: &TapNet) -> io::Result<TapLink> {
    let name = net.tap_name().to_string();
    net.ns()
        .run(move || TapLink::open_with(&name, crate::tap_options()))
}

/// Open the TAP of `net` from inside its namespace (offloads as [`crate::offload`] says), wait
/// for its link, and start an engine on it with `config` (start from [`stack_config`]).
pub fn start_stack(
    net: &TapNet,
    config: StackConfig,
    options: DeviceOptions,
    events: Option<crossbeam_channel::Sender<SocketEvent>>,
) -> io::Result<Stack> {
    let link = open_link(net)?;
    let stack = Stack::start(config, Box::new(link), options, events)?;
    net.wait_link_up(LINK_UP_TIMEOUT)?;
    Ok(stack)
}
