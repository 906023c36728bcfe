//! One connection's task on the tokio adapter, and its link to the region task.
//!
//! A plain connection's socket is shared: the region task writes what the
//! socket takes at once itself (an echo costs no hop), the connection task
//! reads and finishes writes that would block. A TLS connection's stream is
//! owned by its task (rustls state cannot be shared), so every batch goes
//! to the task through the same command slot.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use super::LINGER;
use super::front::Stream;
use super::table;
use crate::session::ConnectionId;

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 16 * 1024;
thread_local! {
    /// Where connection tasks on this thread read into (one read at a time per thread).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(READ_CHUNK));
}

/// What a connection task tells the region task.
pub(crate) enum Report {
    Data(ConnectionId, Vec<u8>),
    /// The peer closed, or reading or writing failed.
    Gone(ConnectionId),
    Written(ConnectionId),
}

/// What the region task and one connection task share: the socket (plain
/// connections only), and the region task's commands in a slot rather than
/// a channel (a tokio channel costs over a kilobyte per idle connection; the
/// slot needs a few bytes).
struct Shared {
    stream: Option<TcpStream>,
    cmds: std::sync::Mutex<Cmds>,
    /// Wakes the connection task after `cmds` changed.
    wake: Notify,
}

/// The region task's commands to a connection task.
#[derive(Default)]
struct Cmds {
    /// A batch the socket did not take at once; at most one at a time.
    write: Option<Bytes>,
    paused: bool,
    /// Everything is written: shut down and linger.
    close: bool,
}

impl Shared {
    fn new(stream: Option<TcpStream>) -> Shared {
        Shared { stream, cmds: std::sync::Mutex::default(), wake: Notify::new() }
    }

    /// Changes the commands and wakes the connection task (a wake-up before it
    /// waits is kept, so none is lost).
    fn command(&self, f: impl FnOnce(&mut Cmds)) {
        // The lock guards plain data, so a poisoned one is still usable.
        f(&mut self.cmds.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        self.wake.notify_one();
    }

    /// Takes the pending write and reads the flags.
    fn take(&self) -> (Option<Bytes>, bool, bool) {
        let mut cmds = self.cmds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (cmds.write.take(), cmds.paused, cmds.close)
    }
}

/// One connection's task, as the table drives it.
pub(crate) struct Task {
    /// Shared with the connection task: the region task writes what a plain socket takes at once.
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Task {
    /// Starts the task of a connection the region task just took.
    pub(crate) fn spawn(conn: ConnectionId, stream: Stream, reports: mpsc::Sender<Report>) -> Task {
        match stream {
            Stream::Plain(sock) => {
                let shared = Arc::new(Shared::new(Some(sock)));
                Task { task: tokio::spawn(connection(conn, shared.clone(), reports)), shared }
            }
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => {
                let shared = Arc::new(Shared::new(None));
                Task { task: tokio::spawn(owned_connection(conn, shared.clone(), tls, reports)), shared }
            }
        }
    }
}

impl table::Link for Task {
    fn write(&mut self, batch: Bytes) -> bool {
        // Whatever a plain socket takes now needs no hop to the connection task.
        let rest = match self.shared.stream.as_ref().map(|s| s.try_write(&batch)) {
            Some(Ok(n)) if n == batch.len() => return false,
            Some(Ok(n)) => batch.slice(n..),
            // Would block, failed, or TLS: the connection task finishes or reports it.
            Some(Err(_)) | None => batch,
        };
        self.shared.command(|c| c.write = Some(rest));
        true
    }

    /// The region task lets go of its share, so the task can own the socket to linger.
    fn finish(self) {
        self.shared.command(|c| c.close = true);
    }

    fn set_paused(&self, paused: bool) {
        self.shared.command(|c| c.paused = paused);
    }

    fn kill(self) {
        self.task.abort();
    }
}

/// One plain connection: reads unless paused, writes what the region task could not.
async fn connection(conn: ConnectionId, link: Arc<Shared>, reports: mpsc::Sender<Report>) {
    let Some(stream) = &link.stream else { return };
    loop {
        let (write, paused, close) = link.take();
        // A batch is written before a close that came after it.
        if let Some(bytes) = write {
            let report = match write_all(stream, &bytes).await {
                Ok(()) => Report::Written(conn),
                Err(_) => Report::Gone(conn),
            };
            if !report_to(&reports, report).await {
                return;
            }
            continue;
        }
        if close {
            break;
        }
        tokio::select! {
            () = link.wake.notified() => {}
            ready = stream.readable(), if !paused => {
                // Read into the thread's scratch buffer and hand over a copy of
                // exactly what came: an idle connection holds no buffer, and a
                // small message costs a small allocation, not a 16 KiB one.
                let read = ready.and_then(|()| {
                    SCRATCH.with_borrow_mut(|scratch| {
                        scratch.clear();
                        read_chunk(stream, scratch).map(|n| scratch[..n].to_vec())
                    })
                });
                let report = match read {
                    Ok(data) if data.is_empty() => Report::Gone(conn),
                    Ok(data) => Report::Data(conn, data),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(_) => Report::Gone(conn),
                };
                if !report_to(&reports, report).await {
                    return;
                }
            },
        }
    }
    // The region task let go of its share when it sent `Close`.
    let Ok(Shared { stream: Some(stream), .. }) = Arc::try_unwrap(link) else { return };
    linger(stream).await;
}

/// One connection whose stream the task owns (TLS): reads unless paused,
/// writes every batch the region task sends.
#[cfg(feature = "tls")]
async fn owned_connection(
    conn: ConnectionId,
    link: Arc<Shared>,
    mut stream: Box<super::front::TlsStream>,
    reports: mpsc::Sender<Report>,
) {
    // rustls keeps its own buffers per connection, so one more costs little.
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let (write, paused, close) = link.take();
        if let Some(bytes) = write {
            let written = async { stream.write_all(&bytes).await.and(stream.flush().await) };
            let report = if written.await.is_ok() { Report::Written(conn) } else { Report::Gone(conn) };
            if !report_to(&reports, report).await {
                return;
            }
            continue;
        }
        if close {
            break;
        }
        tokio::select! {
            () = link.wake.notified() => {}
            // Cancel-safe: rustls keeps a record read halfway in its own state.
            read = stream.read(&mut buf), if !paused => {
                let report = match read {
                    Ok(0) | Err(_) => Report::Gone(conn),
                    Ok(n) => Report::Data(conn, buf[..n].to_vec()),
                };
                if !report_to(&reports, report).await {
                    return;
                }
            },
        }
    }
    drop(buf);
    linger(stream).await;
}

/// Sends a report; `false` when the task must end (the peer is gone, or the region task).
async fn report_to(reports: &mpsc::Sender<Report>, report: Report) -> bool {
    let gone = matches!(report, Report::Gone(_));
    reports.send(report).await.is_ok() && !gone
}

/// Shuts down our side (a TLS close_notify first), then drains the peer's
/// until it closes: closing a socket with unread input sends a reset, which
/// can destroy our close frame.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    if stream.shutdown().await.is_ok() {
        let mut buf = vec![0u8; 4096];
        let _ = tokio::time::timeout(LINGER, async { while let Ok(1..) = stream.read(&mut buf).await {} }).await;
    }
}

/// Reads what the socket holds into `buf`'s spare room, without waiting.
///
/// As tokio's own `AsyncRead` does on epoll and kqueue: a read that leaves
/// room in the buffer shows the socket drained, so its readiness is cleared
/// now rather than by one more read that would only find nothing (which
/// cost a `recvfrom` per message). Readiness that arrived meanwhile, and a
/// peer's close, are kept by tokio, so no wake-up is lost.
fn read_chunk(stream: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut read = None;
    let outcome = stream.try_io(Interest::READABLE, || {
        let n = stream.try_read_buf(buf)?;
        read = Some(n);
        if n > 0 && buf.len() < buf.capacity() { Err(std::io::ErrorKind::WouldBlock.into()) } else { Ok(()) }
    });
    match read {
        Some(n) => Ok(n),
        None => outcome.map(|()| 0),
    }
}

/// Writes all of `bytes` to a socket shared with the region task.
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
