//! The Frame Streams receiver for `dnstap-socket-path` (Unbound, BIND, Knot, dnsdist).
//!
//! The resolver connects and writes READY (its content types); we answer ACCEPT with
//! `protobuf:dnstap.Dnstap`; it sends START, data frames, and STOP, which we answer with
//! FINISH. A writer that skips READY and starts with START (unidirectional mode) is served
//! too. Each connection runs on its own thread with its own pairer and a clone of the sink.

use super::dnstap::handle_payload;
use super::pair::Pairer;
use super::{DnsSink, Stats, fstrm, reject};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often blocked accepts and reads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// Totals over every connection [`serve_unix`] handled.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServeStats {
    pub connections: u64,
    /// Connections dropped for a protocol error (bad content type, corrupt framing).
    pub protocol_errors: u64,
    pub stats: Stats,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.frames += o.frames;
        self.control_frames += o.control_frames;
        self.messages_skipped += o.messages_skipped;
        self.queries += o.queries;
        self.responses += o.responses;
        self.paired += o.paired;
        self.unanswered += o.unanswered;
        self.unmatched_responses += o.unmatched_responses;
        self.records += o.records;
        self.rejects += o.rejects;
    }
}

/// Counts what passes to the real sink.
struct Counting<'a, S> {
    inner: &'a mut S,
    records: u64,
    rejects: u64,
}

impl<S: DnsSink> DnsSink for Counting<'_, S> {
    fn record(&mut self, r: crate::record::DnsRecord) {
        self.records += 1;
        self.inner.record(r);
    }
    fn reject(&mut self, r: botwatch_model::Reject) {
        self.rejects += 1;
        self.inner.reject(r);
    }
}

/// Listens on `path` (a stale socket file there is replaced) until `stop` is set, then
/// waits for open connections to notice and returns the totals. Blocking; run it on a
/// thread of its own.
pub fn serve_unix<S: DnsSink + Clone + Send>(
    path: &Path,
    sink: S,
    stop: &AtomicBool,
) -> io::Result<ServeStats> {
    if let Ok(m) = std::fs::symlink_metadata(path)
        && m.file_type().is_socket()
    {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    let totals = Mutex::new(ServeStats::default());
    std::thread::scope(|scope| {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let mut sink = sink.clone();
                    let totals = &totals;
                    scope.spawn(move || {
                        let mut stats = Stats::default();
                        let ok = connection(stream, &mut sink, stop, &mut stats);
                        if let Ok(mut t) = totals.lock() {
                            t.connections += 1;
                            t.protocol_errors += u64::from(!ok);
                            t.stats.add(&stats);
                        }
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })?;
    let _ = std::fs::remove_file(path);
    Ok(totals.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// One writer's connection; `false` when it ended with a protocol error.
fn connection<S: DnsSink>(
    mut stream: UnixStream,
    sink: &mut S,
    stop: &AtomicBool,
    stats: &mut Stats,
) -> bool {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(POLL)).is_err() {
        return false;
    }
    let mut out = Counting { inner: sink, records: 0, rejects: 0 };
    let mut dec = fstrm::Decoder::new(fstrm::MAX_DATA_FRAME);
    let mut pairer = Pairer::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    let ok = 'conn: loop {
        loop {
            match dec.next_frame() {
                Ok(Some(fstrm::OwnedFrame::Data(p))) => {
                    n += 1;
                    stats.frames += 1;
                    handle_payload(&p, n, &mut pairer, &mut out, stats);
                }
                Ok(Some(fstrm::OwnedFrame::Control { kind, content_types })) => {
                    n += 1;
                    stats.frames += 1;
                    stats.control_frames += 1;
                    let dnstap_ok =
                        content_types.is_empty() || content_types.iter().any(|c| c == fstrm::CONTENT_TYPE);
                    match kind {
                        fstrm::READY | fstrm::START if !dnstap_ok => {
                            out.reject(reject(
                                n,
                                &[],
                                "writer offers no protobuf:dnstap.Dnstap content type",
                            ));
                            break 'conn false;
                        }
                        fstrm::READY => {
                            let accept = fstrm::encode_control(fstrm::ACCEPT, Some(fstrm::CONTENT_TYPE));
                            if stream.write_all(&accept).is_err() {
                                break 'conn false;
                            }
                        }
                        fstrm::STOP => {
                            let _ = stream.write_all(&fstrm::encode_control(fstrm::FINISH, None));
                            break 'conn true;
                        }
                        _ => {}
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    out.reject(reject(n + 1, &[], format!("corrupt Frame Streams data: {e}")));
                    break 'conn false;
                }
            }
        }
        if stop.load(Ordering::Relaxed) {
            break true;
        }
        match stream.read(&mut buf) {
            Ok(0) => break dec.pending() == 0,
            Ok(k) => dec.push(&buf[..k]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => break false,
        }
    };
    pairer.finish(&mut out, stats);
    stats.records = out.records;
    stats.rejects = out.rejects;
    ok
}
