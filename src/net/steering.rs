//! Shard-affine connections: a follower's replica fetcher on shard `s` reaches the leader's
//! shard `s`, which owns the partitions it fetches (brokers with the same `shard.count` place a
//! partition on the same shard index, `runtime::placement`), so its reads and long polls never
//! hop cores.
//!
//! Every shard listens on every client port with SO_REUSEPORT, in shard order, so shard `i`'s
//! socket is the `i`-th of each port's group; a classic BPF program attached to the group
//! (SO_ATTACH_REUSEPORT_CBPF) picks the socket by a hash of the connection's source port
//! (`shard_of_port`: multiplicative, as Linux hands out ports of one parity to connect() and
//! a plain modulo would put them all on even shards). The fetcher binds a source port that
//! hashes to its own shard before connecting. Other clients' ports spread evenly, as the
//! kernel's hash would spread them; if the program picks no socket, the kernel falls back to
//! its hash.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::time::Duration;

use glommio::net::{TcpListener, TcpStream};

/// `SO_ATTACH_REUSEPORT_CBPF` (asm-generic/socket.h; the same on every Linux architecture
/// Flink builds for).
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;
/// Offset of the network header for classic BPF loads (`SKF_NET_OFF`).
const NET: u32 = (-0x0010_0000i32) as u32;
// Classic BPF opcodes (linux/filter.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const H: u16 = 0x08;
const B: u16 = 0x10;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MSH: u16 = 0xa0;
const RSH: u16 = 0x70;
const MOD: u16 = 0x90;
const MUL: u16 = 0x20;
/// The multiplier of `shard_of_port` (Knuth's, 2^32 / golden ratio).
const HASH_MULTIPLIER: u32 = 0x9E37_79B1;
const JEQ: u16 = 0x10;
const JA: u16 = 0x00;
const RET_A: u16 = 0x10;
/// Attempts at a free source port of the wanted residue before connecting without one.
const PORT_ATTEMPTS: usize = 32;

fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The shard a connection from source `port` is steered to: what `program` computes.
pub fn shard_of_port(port: u16, shards: u32) -> u32 {
    (u32::from(port).wrapping_mul(HASH_MULTIPLIER) >> 16) % shards.max(1)
}

/// The program: `shard_of_port` of the TCP source port (IPv4 with its header length, or IPv6).
fn program(shards: u32) -> [libc::sock_filter; 11] {
    [
        op(LD | B | ABS, 0, 0, NET),          // A = first byte of the IP header
        op(ALU | RSH, 0, 0, 4),               // A = IP version
        op(JMP | JEQ, 3, 0, 6),               // IPv6: to 6
        op(LDX | B | MSH, 0, 0, NET),         // X = IPv4 header length
        op(LD | H | IND, 0, 0, NET),          // A = source port after it
        op(JMP | JA, 0, 0, 1),                // to 7
        op(LD | H | ABS, 0, 0, NET + 40),     // A = source port after the IPv6 header
        op(ALU | MUL, 0, 0, HASH_MULTIPLIER), // A = A * multiplier (mod 2^32)
        op(ALU | RSH, 0, 0, 16),              // A = A >> 16
        op(ALU | MOD, 0, 0, shards),          // A = A mod shards
        op(RET | RET_A, 0, 0, 0),             // the socket at index A
    ]
}

/// A listener on `host:port` with SO_REUSEPORT, as glommio's `TcpListener::bind` makes one
/// (without its panic on a host that does not resolve). With `steer`, its port's group is
/// steered by source port over that many shards (see the module); a group needs it once.
pub fn bind_listener(host: &str, port: u16, steer: Option<usize>) -> io::Result<TcpListener> {
    let address = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host has no address"))?;
    let fd = tcp_socket(address)?;
    set(
        &fd,
        libc::SOL_SOCKET,
        libc::SO_REUSEPORT,
        &1 as &libc::c_int,
    )?;
    let (local, local_len) = sockaddr(address);
    // SAFETY: `local` holds a sockaddr of `local_len` bytes.
    if unsafe { libc::bind(fd.as_raw_fd(), std::ptr::addr_of!(*local).cast(), local_len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a bound socket of ours.
    if unsafe { libc::listen(fd.as_raw_fd(), 1024) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if let Some(shards) = steer {
        if let Err(error) = steer_by_source_port(&fd, shards) {
            // The kernel's hash spreads connections instead: replica fetches may then be
            // served through another shard.
            tracing::warn!("cannot steer connections on {host}:{port} to shards: {error}");
        }
    }
    // SAFETY: a bound, listening socket, handed over whole.
    Ok(unsafe { TcpListener::from_raw_fd(fd.into_raw_fd()) })
}

/// Steers the connections of `listener`'s SO_REUSEPORT group by source port over `shards`
/// sockets (see the module).
fn steer_by_source_port(listener: &OwnedFd, shards: usize) -> io::Result<()> {
    let shards = u32::try_from(shards).map_err(|_| io::ErrorKind::InvalidInput)?;
    if shards < 2 {
        return Ok(());
    }
    let mut filter = program(shards);
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // `program` points at `filter`, which outlives the call; the kernel copies it.
    set(
        listener,
        libc::SOL_SOCKET,
        SO_ATTACH_REUSEPORT_CBPF,
        &program,
    )
}

/// Connects to `address` from a source port that the listener's steering maps to shard `shard`
/// of `shards` (see the module), within `timeout`. The blocking connect runs on a short-lived
/// thread (glommio's io_uring connect takes no source address).
pub async fn connect_to_shard(
    address: &str,
    shard: usize,
    shards: usize,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let address = address.to_string();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos())
        ^ (shard as u32).wrapping_mul(0x9E37_79B9);
    // A thread of its own, not the executor's blocking thread: a connect to a host that is down
    // waits out the timeout, and the storage work queued there must not wait behind it.
    let (answer, connected) = flume::bounded(1);
    std::thread::Builder::new()
        .name("flink-connect".into())
        .spawn(move || {
            let _ = answer.send(connect_blocking(&address, shard, shards, timeout, seed));
        })?;
    let connected = connected
        .recv_async()
        .await
        .map_err(|_| io::Error::other("the connecting thread ended without an answer"))??;
    // SAFETY: the descriptor was just connected here and is handed over whole.
    Ok(unsafe { TcpStream::from_raw_fd(connected.into_raw_fd()) })
}

fn connect_blocking(
    address: &str,
    shard: usize,
    shards: usize,
    timeout: Duration,
    mut seed: u32,
) -> io::Result<OwnedFd> {
    let target = address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let (low, high) = ephemeral_ports();
    let shards = shards.max(1) as u32;
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for _ in 0..PORT_ATTEMPTS {
        let Some(port) = port_of_shard(low, high, shard as u32, shards, &mut seed) else {
            continue;
        };
        match connect_from(target, port, timeout) {
            Ok(fd) => return Ok(fd),
            Err(error)
                if matches!(
                    error.raw_os_error(),
                    Some(libc::EADDRINUSE) | Some(libc::EADDRNOTAVAIL)
                ) =>
            {
                last = error
            }
            Err(error) => return Err(error),
        }
    }
    Err(last)
}

/// A random port in `low..=high` that `shard_of_port` maps to `shard`.
fn port_of_shard(low: u32, high: u32, shard: u32, shards: u32, seed: &mut u32) -> Option<u16> {
    // Each draw hits with probability 1 / shards.
    for _ in 0..shards.saturating_mul(16) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 17;
        *seed ^= *seed << 5;
        let port = u16::try_from(low + *seed % (high - low + 1)).ok()?;
        if shard_of_port(port, shards) == shard {
            return Some(port);
        }
    }
    None
}

/// A blocking connect from source `port` (SO_SNDTIMEO bounds it), left non-blocking.
fn connect_from(target: SocketAddr, port: u16, timeout: Duration) -> io::Result<OwnedFd> {
    let fd = tcp_socket(target)?;
    // SAFETY: plain socket calls on a descriptor `fd` owns.
    unsafe {
        let one: libc::c_int = 1;
        set(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one)?;
        let limit = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        set(&fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &limit)?;
        let local = match target {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], port)),
            SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], port)),
        };
        let (local, local_len) = sockaddr(local);
        if libc::bind(fd.as_raw_fd(), std::ptr::addr_of!(*local).cast(), local_len) != 0 {
            return Err(io::Error::last_os_error());
        }
        let (remote, remote_len) = sockaddr(target);
        if libc::connect(
            fd.as_raw_fd(),
            std::ptr::addr_of!(*remote).cast(),
            remote_len,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }
}

/// A blocking TCP socket of `address`'s family (close-on-exec).
fn tcp_socket(address: SocketAddr) -> io::Result<OwnedFd> {
    let domain = match address {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: a new descriptor, owned by the OwnedFd from here on.
    unsafe {
        let raw = libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(raw))
    }
}

fn set<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live `T` of the size given.
    let result = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    match result {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// `address` as a `sockaddr_storage` and its length.
fn sockaddr(address: SocketAddr) -> (Box<libc::sockaddr_storage>, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid; the family's struct is written into it.
    let mut storage: Box<libc::sockaddr_storage> = Box::new(unsafe { std::mem::zeroed() });
    let length = match address {
        SocketAddr::V4(v4) => {
            let inet = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe { std::ptr::write(std::ptr::addr_of_mut!(*storage).cast(), inet) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let inet6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write(std::ptr::addr_of_mut!(*storage).cast(), inet6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, length as libc::socklen_t)
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), or its default.
fn ephemeral_ports() -> (u32, u32) {
    let configured = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(str::parse::<u32>);
            Some((bounds.next()?.ok()?, bounds.next()?.ok()?))
        });
    match configured {
        Some((low, high)) if 1024 <= low && low < high && high <= 65_535 => (low, high),
        _ => (32_768, 60_999),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_jumps_where_it_says() {
        let program = program(4);
        // IPv6 (version 6) goes to the load after the IPv6 header, IPv4 to the header length.
        assert_eq!(program[2].code, JMP | JEQ);
        assert_eq!(usize::from(program[2].jt) + 3, 6);
        assert_eq!(program[6].k, NET + 40);
        assert_eq!(program[5].k as usize + 6, 7);
        assert_eq!(
            [program[7].k, program[8].k, program[9].k],
            [HASH_MULTIPLIER, 16, 4]
        );
    }

    #[test]
    fn chosen_ports_hash_to_their_shard() {
        let mut seed = 12345;
        for (shard, shards) in [(0, 2), (1, 2), (3, 4), (6, 7)] {
            let port = port_of_shard(32_768, 60_999, shard, shards, &mut seed).unwrap();
            assert!((32_768..=60_999).contains(&port));
            assert_eq!(shard_of_port(port, shards), shard);
        }
    }

    #[test]
    fn even_ports_spread_over_shards() {
        // Linux gives connect() ports of one parity: they must not all land on even shards.
        for shards in [2, 3, 4, 8] {
            let mut counts = vec![0u32; shards as usize];
            for port in (32_768..33_768).step_by(2) {
                counts[shard_of_port(port, shards) as usize] += 1;
            }
            let expected = 500 / shards;
            assert!(
                counts
                    .iter()
                    .all(|count| count.abs_diff(expected) < expected / 4),
                "{shards} shards: {counts:?}"
            );
        }
    }
}
