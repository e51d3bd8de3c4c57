//! drc as a replica of a Redis server: the replication handshake, the full sync's
//! snapshot and the command stream with its offsets.
//!
//! # Protocol (Redis 7.0, as a `replicaof` replica speaks it)
//! `AUTH` (when configured), `REPLCONF listening-port 0`, `REPLCONF capa eof capa
//! psync2`, then `PSYNC <replid> <offset>` (`? -1` the first time). The answer is
//! `+FULLRESYNC <replid> <offset>`, followed by the snapshot (`$<length>` and an RDB,
//! or, diskless, `$EOF:<40-byte mark>`, the RDB and the mark again; newlines keep the
//! connection alive while the server prepares it), or `+CONTINUE [<replid>]`: the
//! server's backlog still holds everything after the offset asked for.
//!
//! # Offsets
//! After the snapshot the server sends its write commands (and PING, `REPLCONF
//! GETACK`) as RESP arrays of bulk strings. The replication offset of a command is
//! the offset of the sync plus the bytes of the stream up to and including it: a
//! reconnect with `PSYNC <replid> <offset + 1>` (the next byte) resumes right after it. The caller
//! acknowledges what it made durable ([`Replica::ack`]; after a diskless snapshot the
//! server sends nothing until the first acknowledgement, which [`Replica::snapshot`]
//! sends once the snapshot is read); the server also asks with
//! `REPLCONF GETACK *`, which [`Replica::next_command`] hands on like any command.
//!
//! # Hostile bytes
//! Nothing the server sends is trusted for a size: a header line is read up to
//! [`MAX_LINE`] bytes, a bulk string's length is at most [`MAX_BULK`] (Redis' own
//! `proto-max-bulk-len` limit) and its bytes are allocated as they arrive, and an
//! array's element count reserves no more than [`RESERVE`] slots ahead. A stream
//! breaking these rules is a protocol error, never an allocation it asked for
//! (fuzzed: `fuzz/fuzz_targets/resp_stream.rs`).

use super::endpoint::{Endpoint, Io};
use super::rdb::{Rdb, RdbError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("{addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("{addr}: {what}")]
    Protocol { addr: String, what: String },
    #[error("{addr}: snapshot: {source}")]
    Snapshot { addr: String, source: RdbError },
}

/// How the server answered PSYNC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sync {
    /// A snapshot follows ([`Replica::snapshot`]), then the commands from `offset`.
    Full { replid: String, offset: u64 },
    /// The commands from the offset asked for follow.
    Continue { replid: String, offset: u64 },
}

/// A command of the stream, with the replication offset right after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCommand {
    pub args: Vec<Vec<u8>>,
    pub offset: u64,
}

impl StreamCommand {
    /// The command name, upper-cased.
    pub fn name(&self) -> String {
        self.args
            .first()
            .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
            .unwrap_or_default()
    }
}

/// How the snapshot is framed on the wire.
enum Framing {
    Length(u64),
    Mark(Vec<u8>),
}

/// A replication connection to one Redis server.
pub struct Replica {
    addr: String,
    io: BufReader<Box<dyn Io>>,
    /// The replication id and the offset after the last command read.
    pub replid: String,
    pub offset: u64,
    /// The offset last acknowledged, and when an acknowledgement was last sent.
    acked: u64,
    last_ack: std::time::Instant,
    framing: Option<Framing>,
    durable: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

/// The longest header or status line read (a `*<n>`/`$<len>` header is a few bytes).
pub const MAX_LINE: u64 = 64 << 10;
/// The longest bulk string accepted: Redis' `proto-max-bulk-len` default, 512 MB.
pub const MAX_BULK: usize = 512 << 20;
/// Slots reserved ahead for an array's elements (it grows as they arrive).
const RESERVE: usize = 1024;

/// How often a replica with nothing to read acknowledges again.
const ACK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Replica {
    /// A replica reading `io` (`addr` names it in errors); [`Replica::connect`] speaks
    /// the handshake on it, tests and fuzzing feed a command stream under way.
    pub fn streaming(io: Box<dyn Io>, addr: &str) -> Replica {
        Replica {
            addr: addr.to_string(),
            io: BufReader::new(io),
            replid: String::new(),
            offset: 0,
            acked: 0,
            last_ack: std::time::Instant::now(),
            framing: None,
            durable: None,
        }
    }

    /// Connects to `server` and asks for the stream after `from` (`(replid, offset)`),
    /// or for everything (`None`).
    pub async fn connect(server: &Endpoint, from: Option<(&str, u64)>) -> Result<(Replica, Sync), ReplicaError> {
        let addr = &server.addr;
        let io = server.stream().await.map_err(|source| ReplicaError::Io {
            addr: addr.to_string(),
            source,
        })?;
        let mut r = Replica::streaming(io, addr);
        if let Some((user, pass)) = &server.auth {
            r.call(&[b"AUTH", user.as_bytes(), pass.as_bytes()]).await?;
        }
        r.call(&[b"REPLCONF", b"listening-port", b"0"]).await?;
        r.call(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"]).await?;
        // a replica that has `o` bytes of the stream asks for the next one (`o + 1`,
        // as Redis's own replicas do): a server restarted from its snapshot holds
        // nothing before that byte in its backlog, and refuses `o`
        let (id, off) = from.map_or(("?".to_string(), "-1".to_string()), |(id, o)| {
            (id.to_string(), (o + 1).to_string())
        });
        r.send(&[b"PSYNC", id.as_bytes(), off.as_bytes()]).await?;
        // (newlines may come first: the server keeps the connection alive)
        let line = loop {
            let l = r.line().await?;
            if !l.is_empty() {
                break l;
            }
        };
        let mut words = line.split_whitespace();
        let sync = match words.next() {
            Some("+FULLRESYNC") => {
                let replid = words.next().unwrap_or_default().to_string();
                let offset = words.next().and_then(|o| o.parse().ok()).ok_or_else(|| r.bad(&line))?;
                Sync::Full { replid, offset }
            }
            Some("+CONTINUE") => {
                let replid = words.next().map_or_else(|| id.clone(), str::to_string);
                let offset = from.map(|f| f.1).unwrap_or(0);
                Sync::Continue { replid, offset }
            }
            _ => return Err(r.bad(&line)),
        };
        let (Sync::Full { replid, offset } | Sync::Continue { replid, offset }) = &sync;
        r.replid = replid.clone();
        r.offset = *offset;
        r.acked = *offset;
        if matches!(sync, Sync::Full { .. }) {
            // newlines while the server prepares the snapshot, then its framing
            let head = loop {
                let l = r.line().await?;
                if !l.is_empty() {
                    break l;
                }
            };
            r.framing = Some(match head.strip_prefix("$EOF:") {
                Some(mark) if mark.len() == 40 => Framing::Mark(mark.as_bytes().to_vec()),
                Some(_) => return Err(r.bad(&head)),
                None => Framing::Length(
                    head.strip_prefix('$')
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| r.bad(&head))?,
                ),
            });
        }
        Ok((r, sync))
    }

    /// The snapshot of a full sync, read by `each` item by item (bounded memory);
    /// afterwards the stream continues with the commands.
    pub async fn snapshot<F>(&mut self, mut each: F) -> Result<(), ReplicaError>
    where
        F: FnMut(super::rdb::RdbItem),
    {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let (r, ()) = tokio::join!(self.snapshot_to(tx), async {
            while let Some(item) = rx.recv().await {
                each(item);
            }
        });
        r
    }

    /// The snapshot of a full sync, sent item by item into `out` (a bounded queue:
    /// the reading waits for its consumer, memory stays bounded); afterwards the
    /// stream continues with the commands.
    pub async fn snapshot_to(
        &mut self,
        out: tokio::sync::mpsc::Sender<super::rdb::RdbItem>,
    ) -> Result<(), ReplicaError> {
        let framing = self.framing.take().ok_or_else(|| ReplicaError::Protocol {
            addr: self.addr.clone(),
            what: "no snapshot to read (the sync was a continuation)".into(),
        })?;
        let addr = self.addr.clone();
        let snap = |source| ReplicaError::Snapshot {
            addr: addr.clone(),
            source,
        };
        // a snapshot of known length is read through a window of exactly that length
        let limit = match framing {
            Framing::Length(n) => n,
            Framing::Mark(_) => u64::MAX,
        };
        let mut window = (&mut self.io).take(limit);
        let mut rdb = Rdb::open(&mut window).await.map_err(snap)?;
        while let Some(item) = rdb.next().await.map_err(snap)? {
            if out.send(item).await.is_err() {
                return Err(self.bad("the snapshot's reader went away"));
            }
        }
        drop(out);
        drop(rdb);
        let left = window.limit();
        if limit != u64::MAX && left != 0 {
            return Err(self.bad(&format!("the snapshot ended {left} bytes before its length")));
        }
        if let Framing::Mark(mark) = framing {
            let mut end = vec![0u8; mark.len()];
            self.io.read_exact(&mut end).await.map_err(|e| self.io_err(e))?;
            if end != mark {
                return Err(self.bad("the snapshot did not end with its EOF mark"));
            }
        }
        // the server streams commands after a diskless sync only once the replica
        // acknowledged the snapshot (Redis 7.0)
        self.ack(self.offset).await
    }

    /// The next command of the stream (PING and REPLCONF GETACK included).
    /// The last acknowledged offset is sent again every second, busy or idle, as
    /// replicas do (the server drops a replica silent for `repl-timeout`, and it may
    /// have ignored an acknowledgement sent before it finished the snapshot).
    pub async fn next_command(&mut self) -> Result<StreamCommand, ReplicaError> {
        self.read_command(false).await
    }

    /// [`Replica::next_command`] keeping only the command's name (and a `SELECT`'s
    /// database) when `light`: the other arguments are read past, never allocated (a
    /// transaction whose content the caller does not need).
    pub async fn next_command_light(&mut self, light: bool) -> Result<StreamCommand, ReplicaError> {
        self.read_command(light).await
    }

    async fn read_command(&mut self, light: bool) -> Result<StreamCommand, ReplicaError> {
        // busy or not, the server hears from its replica every second
        if self.last_ack.elapsed() >= ACK_EVERY {
            self.ack(self.ack_due()).await?;
        }
        loop {
            match tokio::time::timeout(ACK_EVERY, self.io.fill_buf()).await {
                Ok(Ok([])) => return Err(self.io_err(std::io::ErrorKind::UnexpectedEof.into())),
                Ok(Ok(_)) => break,
                Ok(Err(e)) => return Err(self.io_err(e)),
                Err(_) => self.ack(self.ack_due()).await?,
            }
        }
        let mut head = self.raw_line().await?;
        // newlines keep the connection alive until the stream starts: not part of it
        while trim_crlf(&head).is_empty() {
            head = self.raw_line().await?;
        }
        let mut used = head.len() as u64;
        let n = self.header(&head, b'*', "a command array")?;
        let mut args = Vec::with_capacity(n.min(RESERVE));
        for i in 0..n {
            let h = self.raw_line().await?;
            used += h.len() as u64;
            let len = self.header(&h, b'$', "a bulk string")?;
            if len > MAX_BULK {
                return Err(self.bad(&format!(
                    "a bulk string of {len} bytes, over the {MAX_BULK} Redis allows (proto-max-bulk-len)"
                )));
            }
            if light
                && i > 0
                && !args
                    .first()
                    .is_some_and(|a: &Vec<u8>| a.eq_ignore_ascii_case(b"SELECT"))
            {
                let skip = (len + 2) as u64;
                let copied = tokio::io::copy(&mut (&mut self.io).take(skip), &mut tokio::io::sink())
                    .await
                    .map_err(|e| self.io_err(e))?;
                if copied != skip {
                    return Err(self.io_err(std::io::ErrorKind::UnexpectedEof.into()));
                }
                used += skip;
                continue;
            }
            // allocated as the bytes arrive, not as the header says
            let mut b = Vec::with_capacity((len + 2).min(64 << 10));
            let got = (&mut self.io)
                .take(len as u64 + 2)
                .read_to_end(&mut b)
                .await
                .map_err(|e| self.io_err(e))?;
            if got != len + 2 {
                return Err(self.io_err(std::io::ErrorKind::UnexpectedEof.into()));
            }
            used += b.len() as u64;
            b.truncate(len);
            args.push(b);
        }
        self.offset += used;
        Ok(StreamCommand {
            args,
            offset: self.offset,
        })
    }

    /// Acknowledgements follow `durable` (what the caller made durable), read at each
    /// one: while the stream is quiet the caller is not asked again.
    pub fn follow(&mut self, durable: std::sync::Arc<std::sync::atomic::AtomicU64>) {
        self.durable = Some(durable);
    }

    fn ack_due(&self) -> u64 {
        let followed = self
            .durable
            .as_ref()
            .map_or(0, |d| d.load(std::sync::atomic::Ordering::Relaxed));
        // (never past what was read: a stale value of an earlier stream is ignored)
        self.acked.max(followed.min(self.offset))
    }

    /// The offset to acknowledge from now on (sent with the next periodic
    /// acknowledgement, at most a second later).
    pub fn acknowledge_later(&mut self, offset: u64) {
        if offset > self.acked {
            self.acked = offset;
        }
    }

    /// Tells the server everything up to `offset` is safe (`REPLCONF ACK`).
    pub async fn ack(&mut self, offset: u64) -> Result<(), ReplicaError> {
        self.acked = offset;
        self.last_ack = std::time::Instant::now();
        self.send(&[b"REPLCONF", b"ACK", offset.to_string().as_bytes()]).await
    }

    async fn send(&mut self, args: &[&[u8]]) -> Result<(), ReplicaError> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend(b"\r\n");
        }
        let e = self.io.get_mut().write_all(&out).await;
        e.map_err(|e| self.io_err(e))
    }

    /// Sends a command and expects `+...` back.
    async fn call(&mut self, args: &[&[u8]]) -> Result<(), ReplicaError> {
        self.send(args).await?;
        let l = self.line().await?;
        if l.starts_with('+') {
            Ok(())
        } else {
            Err(self.bad(&format!("{} answered {l}", String::from_utf8_lossy(args[0]))))
        }
    }

    async fn raw_line(&mut self) -> Result<Vec<u8>, ReplicaError> {
        let mut l = Vec::new();
        let n = (&mut self.io)
            .take(MAX_LINE)
            .read_until(b'\n', &mut l)
            .await
            .map_err(|e| self.io_err(e))?;
        if n == 0 {
            return Err(self.io_err(std::io::ErrorKind::UnexpectedEof.into()));
        }
        if n as u64 == MAX_LINE && l.last() != Some(&b'\n') {
            return Err(self.bad(&format!("a line longer than {MAX_LINE} bytes")));
        }
        Ok(l)
    }

    async fn line(&mut self) -> Result<String, ReplicaError> {
        let l = self.raw_line().await?;
        Ok(String::from_utf8_lossy(trim_crlf(&l)).into_owned())
    }

    /// The number of a RESP header line (`*<n>`, `$<len>`) starting with `mark`.
    fn header(&self, line: &[u8], mark: u8, what: &str) -> Result<usize, ReplicaError> {
        line.strip_prefix(&[mark])
            .and_then(|n| std::str::from_utf8(trim_crlf(n)).ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| self.bad(&format!("expected {what}, got {:?}", String::from_utf8_lossy(line))))
    }

    fn bad(&self, what: &str) -> ReplicaError {
        ReplicaError::Protocol {
            addr: self.addr.clone(),
            what: what.to_string(),
        }
    }

    fn io_err(&self, source: std::io::Error) -> ReplicaError {
        ReplicaError::Io {
            addr: self.addr.clone(),
            source,
        }
    }
}

fn trim_crlf(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica reading `bytes` (its acknowledgements go nowhere).
    fn over(bytes: &[u8]) -> Replica {
        let io = tokio::io::join(std::io::Cursor::new(bytes.to_vec()), tokio::io::sink());
        Replica::streaming(Box::new(io), "test")
    }

    #[tokio::test]
    async fn commands_read_with_their_offsets() {
        let mut r = over(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n*1\r\n$4\r\nPING\r\n");
        let c = r.next_command().await.unwrap();
        assert_eq!(c.args, vec![b"SET".to_vec(), b"k".to_vec(), b"v1".to_vec()]);
        assert_eq!(c.offset, 28);
        assert_eq!(r.next_command().await.unwrap().name(), "PING");
        assert!(r.next_command().await.is_err(), "end of the bytes");
    }

    /// Sizes a hostile stream announces are not allocated (found by reading, fuzzed
    /// since): each is an error naming what was wrong.
    #[tokio::test]
    async fn announced_sizes_are_never_allocated_ahead() {
        // 10^11 elements, then a 10 GB bulk string: errors, not allocations
        let e = over(b"*99999999999\r\n$3\r\nSET\r\n").next_command().await.unwrap_err();
        assert!(
            e.to_string().contains("end of file") || e.to_string().contains("eof"),
            "{e}"
        );
        let e = over(b"*1\r\n$9999999999\r\nabc").next_command().await.unwrap_err();
        assert!(e.to_string().contains("proto-max-bulk-len"), "{e}");
        let e = over(b"*1\r\n$18446744073709551615\r\n")
            .next_command()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("proto-max-bulk-len"), "{e}");
        // a bulk string shorter than announced
        let e = over(b"*1\r\n$100\r\nabc").next_command().await.unwrap_err();
        assert!(matches!(e, ReplicaError::Io { .. }), "{e}");
        // a header line without end
        let mut long = b"*1".to_vec();
        long.extend(std::iter::repeat_n(b'1', MAX_LINE as usize + 10));
        let e = over(&long).next_command().await.unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
    }
}
