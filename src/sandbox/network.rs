//! `--network sandbox`: gVisor's own network stack over a network namespace
//! the supervisor prepares, and published ports.
//!
//! With `--network none` the supervisor still moves into a network
//! namespace of its own, for runsc's control socket (see [`prepare`]).
//!
//! Without published ports the sandbox gets a fresh namespace with only
//! loopback (or, when nucleus was started in a namespace other than the
//! host's, that one: `ip netns exec NS nucleus run …`).
//!
//! With `-p` (or `--ready-tcp`) the supervisor makes two namespaces of its
//! own and a veth pair between them: the sandbox's end (`eth0`,
//! 169.254.77.2/30) is taken over by gVisor's netstack; nucleus's end
//! (169.254.77.1/30) stays in a namespace only nucleus's forwarding threads
//! enter. Connections accepted on the host address (bound before anything
//! else, so a busy port fails the run at once) are copied to the port
//! inside. The host's own network is never touched, two runs never collide,
//! and everything goes away with the supervisor, SIGKILL included.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use nix::sched::{setns, unshare, CloneFlags};

use super::netlink::{link_index, Rtnetlink};
use crate::plan::NetworkPlan;
use crate::request::PortMapping;
use crate::{Error, Result};

pub const NUCLEUS_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 77, 1);
pub const SANDBOX_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 77, 2);
const PREFIX: u8 = 30;
const SANDBOX_LINK: &str = "eth0";
const NUCLEUS_LINK: &str = "nucleus0";

/// Host sockets for `-p`, bound by `nucleus run` before anything else.
pub fn bind_published(ports: &[PortMapping]) -> Result<Vec<(PortMapping, TcpListener)>> {
    ports
        .iter()
        .map(|p| {
            let address = SocketAddr::new(p.host_ip, p.host_port);
            TcpListener::bind(address).map(|l| (*p, l)).map_err(|e| {
                Error::invalid("--publish", format!("cannot listen on {address}: {e} (is the port in use?)"))
            })
        })
        .collect()
}

/// Whether this process is in the host's network namespace (init's).
pub fn in_host_network_namespace() -> bool {
    let ns = |pid: &str| std::fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| (m.dev(), m.ino()));
    // If init's namespace cannot be read, assume the worst.
    ns("1").ok().is_none_or(|init| ns("self").ok() == Some(init))
}

/// The namespace holding nucleus's end of the sandbox's link.
pub struct Link {
    namespace: OwnedFd,
}

/// Moves the (single-threaded) supervisor into the sandbox's network
/// namespace, as the plan says. `in_host_namespace` must have been judged
/// before /proc was replaced by the sandbox's.
pub fn prepare(plan: &NetworkPlan, in_host_namespace: bool) -> Result<Option<Link>> {
    match plan {
        // runsc's control socket is an abstract socket named after the
        // container, and lives in the network namespace runsc starts in:
        // in the host's, two runs of one name under different state roots
        // (two services, two test runs) would collide. The sandbox itself
        // gets a namespace of its own from runsc either way.
        NetworkPlan::None => {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::setup("create a network namespace", e))?;
            Ok(None)
        }
        NetworkPlan::Host => Ok(None),
        NetworkPlan::Sandbox { .. } if plan.needs_link() => prepare_link().map(Some),
        NetworkPlan::Sandbox { .. } if in_host_namespace => {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::setup("create a network namespace", e))?;
            loopback_up()?;
            Ok(None)
        }
        NetworkPlan::Sandbox { .. } => Ok(None),
    }
}

fn current_namespace() -> Result<OwnedFd> {
    std::fs::File::open("/proc/thread-self/ns/net")
        .map(OwnedFd::from)
        .map_err(|e| Error::setup("open a network namespace", e))
}

fn loopback_up() -> Result<()> {
    let step = |e| Error::setup("bring up loopback", e);
    Rtnetlink::open().and_then(|mut rt| rt.set_up(link_index("lo")?)).map_err(step)
}

fn prepare_link() -> Result<Link> {
    let step = |what: &'static str| move |e: std::io::Error| Error::setup(what, e);
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::setup("create nucleus's network namespace", e))?;
    loopback_up()?;
    let nucleus_ns = current_namespace()?;
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::setup("create the sandbox's network namespace", e))?;
    let sandbox_ns = current_namespace()?;
    loopback_up()?;
    let mut rt = Rtnetlink::open().map_err(step("talk to the kernel's network configuration"))?;
    rt.add_veth(SANDBOX_LINK, NUCLEUS_LINK, std::os::fd::AsFd::as_fd(&nucleus_ns))
        .map_err(step("create the sandbox's link"))?;
    let index = link_index(SANDBOX_LINK).map_err(step("find the sandbox's link"))?;
    rt.add_address(index, SANDBOX_ADDRESS, PREFIX).map_err(step("address the sandbox's link"))?;
    rt.set_up(index).map_err(step("bring up the sandbox's link"))?;
    rt.add_default_route(NUCLEUS_ADDRESS).map_err(step("route the sandbox's traffic"))?;
    setns(&nucleus_ns, CloneFlags::CLONE_NEWNET).map_err(|e| Error::setup("enter nucleus's network namespace", e))?;
    let configured = Rtnetlink::open().and_then(|mut rt| {
        let index = link_index(NUCLEUS_LINK)?;
        rt.add_address(index, NUCLEUS_ADDRESS, PREFIX)?;
        rt.set_up(index)
    });
    setns(&sandbox_ns, CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::setup("return to the sandbox's network namespace", e))?;
    configured.map_err(step("configure nucleus's end of the link"))?;
    Ok(Link { namespace: nucleus_ns })
}

impl Link {
    /// Forwards every connection accepted on each listener to its port
    /// inside the sandbox, until the process ends.
    pub fn forward(&self, listeners: Vec<(PortMapping, TcpListener)>) -> Result<()> {
        for (mapping, listener) in listeners {
            let namespace = self.namespace.try_clone().map_err(|e| Error::setup("duplicate a namespace", e))?;
            std::thread::spawn(move || {
                // Sockets are made in the namespace of the thread that makes
                // them: connections to the sandbox start from nucleus's end.
                if setns(&namespace, CloneFlags::CLONE_NEWNET).is_err() {
                    return;
                }
                for client in listener.incoming().flatten() {
                    std::thread::spawn(move || forward_one(client, mapping.port));
                }
            });
        }
        Ok(())
    }

    /// Calls `ready` once `port` inside accepts a connection; gives up when
    /// `give_up` says so.
    pub fn when_accepting(
        &self,
        port: u16,
        give_up: impl Fn() -> bool + Send + 'static,
        ready: impl FnOnce() + Send + 'static,
    ) {
        let Ok(namespace) = self.namespace.try_clone() else { return };
        std::thread::spawn(move || {
            if setns(&namespace, CloneFlags::CLONE_NEWNET).is_err() {
                return;
            }
            let target = SocketAddr::from((SANDBOX_ADDRESS, port));
            while !give_up() {
                if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
                    return ready();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
    }
}

fn forward_one(client: TcpStream, port: u16) {
    let Ok(upstream) = TcpStream::connect((SANDBOX_ADDRESS, port)) else { return };
    let (Ok(client_reader), Ok(upstream_reader)) = (client.try_clone(), upstream.try_clone()) else { return };
    let down = std::thread::spawn(move || pump(upstream_reader, client));
    pump(client_reader, upstream);
    let _ = down.join();
}

/// Copies until EOF, then passes the EOF on.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
