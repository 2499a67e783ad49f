//! Which Unix user owns a TCP socket on this host, read from
//! `/proc/net/tcp` and `/proc/net/tcp6` (Linux): a local API server uses it
//! to answer only its owner, and the CLI to refuse a local server that is not
//! its own. Elsewhere nothing is known (None).

use std::net::{IpAddr, SocketAddr};

/// The kernel's `TCP_LISTEN` state in those files.
const LISTEN: &str = "0A";

/// The owner (uid) of the socket whose own address is `local` and whose
/// peer is `remote`: for a connection the server accepted, pass the peer's
/// address as `local` to learn who connected. An IPv4 address also matches
/// its IPv4-mapped IPv6 form, as a dual-stack client socket (gRPC's, for
/// one) shows it.
pub fn connection_owner(local: SocketAddr, remote: SocketAddr) -> Option<u32> {
    let (locals, remotes) = (spellings(local), spellings(remote));
    // A table read while other sockets come and go can miss a line (the
    // kernel writes it out in pieces): look again before giving up.
    (0..3).find_map(|_| {
        [false, true].into_iter().find_map(|v6| {
            find_socket(v6, |s| locals.contains(&s.local) && remotes.contains(&s.remote)).map(|s| s.uid)
        })
    })
}

/// The owner of the socket listening on `port` of a loopback or wildcard address.
pub fn listener_owner(port: u16) -> Option<u32> {
    let candidates: Vec<String> = ["127.0.0.1", "0.0.0.0", "::1", "::"]
        .iter()
        .map(|ip| proc_address(SocketAddr::new(ip.parse().expect("an address"), port)))
        .collect();
    [false, true]
        .into_iter()
        .find_map(|v6| find_socket(v6, |s| s.state == LISTEN && candidates.contains(&s.local)).map(|s| s.uid))
}

/// The (effective) uid this process runs as: the owner of `/proc/self`.
pub fn own_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|meta| meta.uid())
}

struct Socket {
    local: String,
    remote: String,
    state: String,
    uid: u32,
}

/// How `address` can appear in those files: as itself and, for IPv4, in
/// its IPv4-mapped IPv6 form.
fn spellings(address: SocketAddr) -> Vec<String> {
    let mut spellings = vec![proc_address(address)];
    if let IpAddr::V4(ip) = address.ip() {
        spellings.push(proc_address(SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), address.port())));
    }
    spellings
}

/// The first socket of one of the two tables that `wanted` accepts. The
/// table is read line by line and no further than needed: the kernel writes
/// it out afresh for every read, so a host with many sockets makes a whole
/// read slow (listening sockets come first).
fn find_socket(v6: bool, wanted: impl Fn(&Socket) -> bool) -> Option<Socket> {
    use std::io::BufRead as _;
    let table = if v6 { "/proc/net/tcp6" } else { "/proc/net/tcp" };
    let file = std::fs::File::open(table).ok()?;
    std::io::BufReader::with_capacity(64 * 1024, file).lines().skip(1).map_while(Result::ok).find_map(
        |line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let socket = Socket {
                local: fields.get(1)?.to_string(),
                remote: fields.get(2)?.to_string(),
                state: fields.get(3)?.to_string(),
                uid: fields.get(7)?.parse().ok()?,
            };
            wanted(&socket).then_some(socket)
        },
    )
}

/// `address` as those files spell it: the address as the kernel's 32-bit
/// words in host byte order, in hex, then `:` and the port in hex.
fn proc_address(address: SocketAddr) -> String {
    let words: Vec<u32> = match address.ip() {
        IpAddr::V4(ip) => vec![u32::from_ne_bytes(ip.octets())],
        IpAddr::V6(ip) => {
            let octets = ip.octets();
            octets.chunks(4).map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect()
        }
    };
    let ip: String = words.iter().map(|w| format!("{w:08X}")).collect();
    format!("{ip}:{:04X}", address.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_spelled_as_the_kernel_does() {
        let expected = if cfg!(target_endian = "little") { "0100007F:1F90" } else { "7F000001:1F90" };
        assert_eq!(proc_address("127.0.0.1:8080".parse().unwrap()), expected);
        assert_eq!(proc_address("[::1]:80".parse().unwrap()).len(), 32 + 5);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_owner_of_our_own_listener_and_connection_is_us() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = own_uid().unwrap();
        assert_eq!(listener_owner(port), Some(me));
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_accepted, peer) = listener.accept().unwrap();
        assert_eq!(connection_owner(peer, listener.local_addr().unwrap()), Some(me));
        drop(client);
    }

    /// A dual-stack client: an IPv6 socket reaching an IPv4 listener through
    /// an IPv4-mapped address; the server sees a plain IPv4 peer.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_owner_of_a_dual_stack_connection_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mapped = SocketAddr::new(IpAddr::V6(std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped()), port);
        let Ok(client) = std::net::TcpStream::connect(mapped) else {
            return; // no IPv6 at all here: nothing dual-stack can connect either
        };
        let (_accepted, peer) = listener.accept().unwrap();
        assert!(peer.is_ipv4(), "{peer}");
        assert_eq!(connection_owner(peer, listener.local_addr().unwrap()), own_uid());
        drop(client);
    }
}
