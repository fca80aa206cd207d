//! A blocking UDP collector: one socket, one [`Collector`], until told to stop.

use super::netflow::{Collector, Counters};
use crate::record::FlowRecord;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often `stop` is looked at while no datagram arrives.
const POLL: Duration = Duration::from_millis(100);

/// Binds `bind` and collects until `stop` is set; see [`serve_socket`].
pub fn serve(bind: SocketAddr, sink: impl FnMut(Vec<FlowRecord>), stop: &AtomicBool) -> io::Result<Counters> {
    serve_socket(UdpSocket::bind(bind)?, sink, stop)
}

/// Receives export datagrams on `socket` and hands each one's flows to `sink`. Bad packets
/// and missing templates are counted and never end the loop; only socket errors other than
/// timeouts do. Returns the counters when `stop` is set.
pub fn serve_socket(
    socket: UdpSocket,
    mut sink: impl FnMut(Vec<FlowRecord>),
    stop: &AtomicBool,
) -> io::Result<Counters> {
    socket.set_read_timeout(Some(POLL))?;
    let mut collector = Collector::new();
    // The largest UDP payload; a shorter buffer would silently truncate big export packets.
    let mut buf = vec![0u8; 65_535];
    while !stop.load(Ordering::Relaxed) {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            // An ICMP port-unreachable for an earlier send surfaces here on some systems.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => continue,
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        // Errors are already counted by the collector.
        let _ = collector.decode(from, &buf[..n], &mut out);
        if !out.is_empty() {
            sink(out);
        }
    }
    Ok(collector.counters())
}
