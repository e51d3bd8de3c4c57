//! A streaming reader of Redis RDB snapshots (versions up to 10: Redis 7.0), the
//! payload of a replica's full sync. It reads from any [`AsyncRead`] (the replication
//! socket, or a `dump.rdb`) and hands out [`RdbItem`]s one at a time.
//!
//! # Memory
//! A key's value is handed out in chunks of at most [`CHUNK`] elements: a set of a
//! million members is read with the memory of one chunk. Compact encodings
//! (listpack, ziplist, intset, zipmap) are one string in the file, bounded by the
//! server's `*-max-listpack-*` settings (a quicklist node by `list-max-listpack-size`),
//! and are decoded whole.
//!
//! # What is read
//! Strings (raw, integer, LZF-compressed), lists (quicklist of listpacks or
//! ziplists, ziplist, linked list), sets (hashtable, intset, listpack), sorted sets
//! (skiplist with binary or text scores, ziplist, listpack), hashes (hashtable,
//! zipmap, ziplist, listpack), absolute expiry times (ms and s), database selection,
//! AUX fields; idle/frequency hints and RESIZEDB are skipped; the CRC-64 after EOF
//! (version 5+) is compared when the server wrote one (not zero). Streams, modules
//! and functions are refused with an error that names them (drc does not sync them).
//!
//! (Over 600 lines on purpose: one streaming reader for every RDB encoding Redis 7
//! writes (listpack, ziplist, intset, quicklist, zipmap, LZF); split by encoding it
//! would scatter one state machine.)

use tokio::io::{AsyncRead, AsyncReadExt};

/// At most this many elements of a collection per item.
pub const CHUNK: usize = 1024;

/// The longest string a Redis server holds (`proto-max-bulk-len` is at most 512 MB):
/// a longer length in a snapshot is corruption.
const MAX_STRING: u64 = 512 << 20;

/// The type of a key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    List,
    Set,
    Zset,
    Hash,
}

/// One step of a snapshot, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum RdbItem {
    /// An AUX field (`redis-ver`, `repl-id`, ...).
    Aux(Vec<u8>, Vec<u8>),
    /// The keys after this belong to database `n`.
    Db(u64),
    /// A key begins: its database, name, type and absolute expiry (ms since the epoch).
    Key {
        db: u64,
        key: Vec<u8>,
        kind: Kind,
        expire_at_ms: Option<i64>,
    },
    /// A string key's value.
    Str(Vec<u8>),
    /// Elements of the current key, in order.
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    Zset(Vec<(Vec<u8>, f64)>),
    /// The current key is complete.
    KeyEnd,
    /// The snapshot is complete (its checksum verified when the server wrote one).
    End,
}

#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    #[error("reading the snapshot: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an RDB snapshot (header {0:?})")]
    Header(String),
    #[error("RDB version {0} is newer than this reader knows (up to 10, Redis 7.0)")]
    Version(u32),
    #[error("RDB value type {0} ({1}) is not synced by drc")]
    Unsupported(u8, &'static str),
    #[error("corrupt RDB: {0}")]
    Corrupt(String),
}

type R<T> = Result<T, RdbError>;

fn corrupt<T>(what: impl Into<String>) -> R<T> {
    Err(RdbError::Corrupt(what.into()))
}

/// What remains of the current key.
enum Pending {
    None,
    /// A decoded value to hand out, then the key's end.
    Value(RdbItem),
    KeyEnd,
    /// `n` more elements of a hashtable or linked-list encoding (value type `t`).
    Elements {
        t: u8,
        n: u64,
    },
    /// `n` more quicklist nodes (`v2`: each with a container byte).
    Nodes {
        n: u64,
        v2: bool,
    },
}

/// The reader: call [`Rdb::next`] until it returns [`RdbItem::End`].
pub struct Rdb<S> {
    src: S,
    crc: crc::Digest<'static, u64>,
    pub version: u32,
    db: u64,
    pending: Pending,
    done: bool,
}

static CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

impl<S: AsyncRead + Unpin> Rdb<S> {
    /// Reads the header (`REDIS` and the version).
    pub async fn open(src: S) -> R<Self> {
        let mut r = Rdb {
            src,
            crc: CRC64.digest(),
            version: 0,
            db: 0,
            pending: Pending::None,
            done: false,
        };
        let head = r.bytes(9).await?;
        let bad = || RdbError::Header(String::from_utf8_lossy(&head).into_owned());
        if &head[..5] != b"REDIS" {
            return Err(bad());
        }
        r.version = std::str::from_utf8(&head[5..])
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)?;
        if r.version > 10 {
            return Err(RdbError::Version(r.version));
        }
        Ok(r)
    }

    /// The source, positioned after the snapshot (the replication stream goes on).
    pub fn into_inner(self) -> S {
        self.src
    }

    /// The next item; [`RdbItem::End`] once, at the end (then `None`).
    pub async fn next(&mut self) -> R<Option<RdbItem>> {
        if self.done {
            return Ok(None);
        }
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::None => {}
            Pending::Value(item) => {
                self.pending = Pending::KeyEnd;
                return Ok(Some(item));
            }
            Pending::KeyEnd => return Ok(Some(RdbItem::KeyEnd)),
            Pending::Elements { n: 0, .. } | Pending::Nodes { n: 0, .. } => return Ok(Some(RdbItem::KeyEnd)),
            Pending::Elements { t, n } => return self.elements(t, n).await.map(Some),
            Pending::Nodes { n, v2 } => return self.nodes(n, v2).await.map(Some),
        }
        let mut expire_at_ms = None;
        loop {
            let op = self.u8().await?;
            match op {
                0xFA => {
                    let k = self.string().await?;
                    let v = self.string().await?;
                    return Ok(Some(RdbItem::Aux(k, v)));
                }
                0xFB => {
                    self.length().await?;
                    self.length().await?;
                }
                0xFC => expire_at_ms = Some(u64::from_le_bytes(self.array().await?) as i64),
                0xFD => expire_at_ms = Some(i64::from(u32::from_le_bytes(self.array().await?)) * 1000),
                0xFE => {
                    self.db = self.length().await?;
                    return Ok(Some(RdbItem::Db(self.db)));
                }
                0xF8 => {
                    self.length().await?; // LRU idle time
                }
                0xF9 => {
                    self.u8().await?; // LFU frequency
                }
                0xF7 => return Err(RdbError::Unsupported(op, "module aux data")),
                // a function library (Redis 7.0: its code, one string): not synced
                // (functions are deployed per zone, docs/REDIS.md)
                0xF5 => {
                    self.string().await?;
                }
                0xF6 => {
                    return Err(RdbError::Unsupported(
                        op,
                        "functions (Redis 7.0 release candidate format)",
                    ))
                }
                0xFF => {
                    let computed = std::mem::replace(&mut self.crc, CRC64.digest()).finalize();
                    if self.version >= 5 {
                        let mut sum = [0u8; 8];
                        self.src.read_exact(&mut sum).await?;
                        let stored = u64::from_le_bytes(sum);
                        if stored != 0 && stored != computed {
                            return corrupt(format!("checksum {stored:#x}, computed {computed:#x}"));
                        }
                    }
                    self.done = true;
                    return Ok(Some(RdbItem::End));
                }
                t => return self.key(t, expire_at_ms).await.map(Some),
            }
        }
    }

    /// A key of value type `t`: its header; the value follows in the next items.
    async fn key(&mut self, t: u8, expire_at_ms: Option<i64>) -> R<RdbItem> {
        let kind = match t {
            0 => Kind::String,
            1 | 10 | 14 | 18 => Kind::List,
            2 | 11 | 20 => Kind::Set,
            3 | 5 | 12 | 17 => Kind::Zset,
            4 | 9 | 13 | 16 => Kind::Hash,
            6 | 7 => return Err(RdbError::Unsupported(t, "module value")),
            15 | 19 | 21 => return Err(RdbError::Unsupported(t, "stream")),
            _ => return corrupt(format!("unknown value type {t}")),
        };
        let key = self.string().await?;
        self.pending = match t {
            0 => Pending::Value(RdbItem::Str(self.string().await?)),
            1..=5 => Pending::Elements {
                t,
                n: self.length().await?,
            },
            14 | 18 => Pending::Nodes {
                n: self.length().await?,
                v2: t == 18,
            },
            _ => {
                let blob = self.string().await?;
                Pending::Value(compact(t, &blob)?)
            }
        };
        Ok(RdbItem::Key {
            db: self.db,
            key,
            kind,
            expire_at_ms,
        })
    }

    /// Up to [`CHUNK`] of the `n` remaining elements of a value of type `t`.
    async fn elements(&mut self, t: u8, n: u64) -> R<RdbItem> {
        let k = n.min(CHUNK as u64);
        let item = match t {
            1 => {
                let mut v = Vec::with_capacity(k as usize);
                for _ in 0..k {
                    v.push(self.string().await?);
                }
                RdbItem::List(v)
            }
            2 => {
                let mut v = Vec::with_capacity(k as usize);
                for _ in 0..k {
                    v.push(self.string().await?);
                }
                RdbItem::Set(v)
            }
            3 | 5 => {
                let mut v = Vec::with_capacity(k as usize);
                for _ in 0..k {
                    let m = self.string().await?;
                    let score = if t == 5 {
                        f64::from_le_bytes(self.array().await?)
                    } else {
                        self.text_double().await?
                    };
                    v.push((m, score));
                }
                RdbItem::Zset(v)
            }
            4 => {
                let mut v = Vec::with_capacity(k as usize);
                for _ in 0..k {
                    let f = self.string().await?;
                    v.push((f, self.string().await?));
                }
                RdbItem::Hash(v)
            }
            _ => return corrupt(format!("value type {t} has no element encoding")),
        };
        self.pending = Pending::Elements { t, n: n - k };
        Ok(item)
    }

    /// Quicklist nodes until about [`CHUNK`] elements are read, of the `n` remaining.
    async fn nodes(&mut self, mut n: u64, v2: bool) -> R<RdbItem> {
        let mut out = Vec::new();
        while n > 0 && out.len() < CHUNK {
            let container = if v2 { self.length().await? } else { 2 };
            let blob = self.string().await?;
            match container {
                1 => out.push(blob), // a plain node: one large element
                2 if v2 => out.extend(listpack(&blob)?),
                2 => out.extend(ziplist(&blob)?),
                c => return corrupt(format!("quicklist container {c}")),
            }
            n -= 1;
        }
        self.pending = Pending::Nodes { n, v2 };
        Ok(RdbItem::List(out))
    }

    // --- primitives (every byte read goes into the checksum) ---

    /// `n` bytes, read as they come: the memory follows the bytes there are, never a
    /// length the input claims (found by fuzzing: a length of 7e18 was allocated whole).
    async fn bytes(&mut self, n: usize) -> R<Vec<u8>> {
        if n as u64 > MAX_STRING {
            return corrupt(format!(
                "a string of {n} bytes (a Redis string holds at most {MAX_STRING})"
            ));
        }
        let mut b = Vec::with_capacity(n.min(1 << 16));
        (&mut self.src).take(n as u64).read_to_end(&mut b).await?;
        if b.len() != n {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        self.crc.update(&b);
        Ok(b)
    }

    async fn array<const N: usize>(&mut self) -> R<[u8; N]> {
        let mut b = [0u8; N];
        self.src.read_exact(&mut b).await?;
        self.crc.update(&b);
        Ok(b)
    }

    async fn u8(&mut self) -> R<u8> {
        Ok(self.array::<1>().await?[0])
    }

    /// A length, or (`Err(special)`) the code of a special string encoding.
    async fn length_or_special(&mut self) -> R<Result<u64, u8>> {
        let b = self.u8().await?;
        Ok(match b >> 6 {
            0 => Ok(u64::from(b & 0x3F)),
            1 => Ok((u64::from(b & 0x3F) << 8) | u64::from(self.u8().await?)),
            2 => match b {
                0x80 => Ok(u64::from(u32::from_be_bytes(self.array().await?))),
                0x81 => Ok(u64::from_be_bytes(self.array().await?)),
                _ => return corrupt(format!("length byte {b:#x}")),
            },
            _ => Err(b & 0x3F),
        })
    }

    async fn length(&mut self) -> R<u64> {
        match self.length_or_special().await? {
            Ok(n) => Ok(n),
            Err(s) => corrupt(format!("special encoding {s} where a length belongs")),
        }
    }

    /// A string: raw, an integer written as text, or LZF-compressed.
    async fn string(&mut self) -> R<Vec<u8>> {
        match self.length_or_special().await? {
            Ok(n) => self.bytes(n as usize).await,
            Err(0) => Ok((self.u8().await? as i8).to_string().into_bytes()),
            Err(1) => Ok(i16::from_le_bytes(self.array().await?).to_string().into_bytes()),
            Err(2) => Ok(i32::from_le_bytes(self.array().await?).to_string().into_bytes()),
            Err(3) => {
                let clen = self.length().await? as usize;
                let len = self.length().await? as usize;
                let data = self.bytes(clen).await?;
                lzf(&data, len)
            }
            Err(s) => corrupt(format!("string encoding {s}")),
        }
    }

    /// A score written as text (value type 3): length byte, 253 NaN, 254 +inf, 255 -inf.
    async fn text_double(&mut self) -> R<f64> {
        let n = self.u8().await?;
        Ok(match n {
            253 => f64::NAN,
            254 => f64::INFINITY,
            255 => f64::NEG_INFINITY,
            n => {
                let b = self.bytes(n as usize).await?;
                parse_f64(&b)?
            }
        })
    }
}

fn parse_f64(b: &[u8]) -> R<f64> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or_else(|| corrupt(format!("score {:?}", String::from_utf8_lossy(b))), Ok)
}

/// A value in a compact encoding (one blob), decoded whole.
fn compact(t: u8, blob: &[u8]) -> R<RdbItem> {
    Ok(match t {
        9 => RdbItem::Hash(pairs(zipmap(blob)?)?),
        10 => RdbItem::List(ziplist(blob)?),
        11 => RdbItem::Set(intset(blob)?),
        12 => RdbItem::Zset(scored(ziplist(blob)?)?),
        13 => RdbItem::Hash(pairs(ziplist(blob)?)?),
        16 => RdbItem::Hash(pairs(listpack(blob)?)?),
        17 => RdbItem::Zset(scored(listpack(blob)?)?),
        20 => RdbItem::Set(listpack(blob)?),
        _ => return corrupt(format!("value type {t} is not a compact encoding")),
    })
}

fn pairs(v: Vec<Vec<u8>>) -> R<Vec<(Vec<u8>, Vec<u8>)>> {
    if v.len() % 2 != 0 {
        return corrupt("odd number of entries in a hash");
    }
    let mut it = v.into_iter();
    let mut out = Vec::new();
    while let (Some(f), Some(x)) = (it.next(), it.next()) {
        out.push((f, x));
    }
    Ok(out)
}

fn scored(v: Vec<Vec<u8>>) -> R<Vec<(Vec<u8>, f64)>> {
    pairs(v)?.into_iter().map(|(m, s)| Ok((m, parse_f64(&s)?))).collect()
}

/// LZF decompression (the format Redis compresses strings with).
fn lzf(input: &[u8], len: usize) -> R<Vec<u8>> {
    // an LZF byte expands to at most 132 (a 2-byte back reference of 264 bytes)
    if len > input.len().saturating_mul(132) {
        return corrupt(format!("LZF of {} bytes cannot give {len}", input.len()));
    }
    let mut out = Vec::with_capacity(len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            let lit = input
                .get(i..i + n)
                .ok_or_else(|| RdbError::Corrupt("LZF literal past the end".into()))?;
            out.extend_from_slice(lit);
            i += n;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                n += *input
                    .get(i)
                    .ok_or_else(|| RdbError::Corrupt("LZF length past the end".into()))? as usize;
                i += 1;
            }
            let low = *input
                .get(i)
                .ok_or_else(|| RdbError::Corrupt("LZF offset past the end".into()))? as usize;
            i += 1;
            let back = ((ctrl & 0x1F) << 8) + low + 1;
            if back > out.len() {
                return corrupt("LZF reference before the start");
            }
            let start = out.len() - back;
            for k in 0..n + 2 {
                let b = out[start + k];
                out.push(b);
            }
        }
        if out.len() > len {
            return corrupt(format!("LZF gives more than the {len} bytes expected"));
        }
    }
    if out.len() != len {
        return corrupt(format!("LZF gave {} bytes, {len} expected", out.len()));
    }
    Ok(out)
}

/// A bounds-checked cursor over a blob.
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let s = self
            .b
            .get(self.i..self.i + n)
            .ok_or_else(|| RdbError::Corrupt("entry past the end of its blob".into()))?;
        self.i += n;
        Ok(s)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn le(&mut self, n: usize) -> R<u64> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |a, &b| (a << 8) | u64::from(b)))
    }
}

/// Sign-extends the low `bits` bits of `v`.
fn signed(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// The entries of a listpack (Redis 7 compact encoding).
fn listpack(b: &[u8]) -> R<Vec<Vec<u8>>> {
    let mut c = Cur { b, i: 6 }; // total bytes (4), element count (2)
    let mut out = Vec::new();
    loop {
        let e = c.u8()?;
        let start = c.i - 1;
        let v: Vec<u8> = if e == 0xFF {
            break;
        } else if e & 0x80 == 0 {
            (e & 0x7F).to_string().into_bytes()
        } else if e & 0xC0 == 0x80 {
            c.take((e & 0x3F) as usize)?.to_vec()
        } else if e & 0xE0 == 0xC0 {
            signed((u64::from(e & 0x1F) << 8) | u64::from(c.u8()?), 13)
                .to_string()
                .into_bytes()
        } else if e & 0xF0 == 0xE0 {
            let n = ((e & 0x0F) as usize) << 8 | c.u8()? as usize;
            c.take(n)?.to_vec()
        } else {
            match e {
                0xF0 => {
                    let n = c.le(4)? as usize;
                    c.take(n)?.to_vec()
                }
                0xF1 => signed(c.le(2)?, 16).to_string().into_bytes(),
                0xF2 => signed(c.le(3)?, 24).to_string().into_bytes(),
                0xF3 => signed(c.le(4)?, 32).to_string().into_bytes(),
                0xF4 => (c.le(8)? as i64).to_string().into_bytes(),
                _ => return corrupt(format!("listpack entry encoding {e:#x}")),
            }
        };
        // the back-length: the entry's size in 1..=5 bytes of 7 bits
        let size = c.i - start;
        let back = match size {
            0..=127 => 1,
            128..=16_383 => 2,
            16_384..=2_097_151 => 3,
            2_097_152..=268_435_455 => 4,
            _ => 5,
        };
        c.take(back)?;
        out.push(v);
    }
    Ok(out)
}

/// The entries of a ziplist (the compact encoding before Redis 7).
fn ziplist(b: &[u8]) -> R<Vec<Vec<u8>>> {
    let mut c = Cur { b, i: 10 }; // bytes (4), tail offset (4), count (2)
    let mut out = Vec::new();
    loop {
        let prev = c.u8()?;
        if prev == 0xFF {
            break;
        }
        if prev == 0xFE {
            c.take(4)?;
        }
        let e = c.u8()?;
        let v = match e >> 6 {
            0 => c.take((e & 0x3F) as usize)?.to_vec(),
            1 => {
                let n = ((e & 0x3F) as usize) << 8 | c.u8()? as usize;
                c.take(n)?.to_vec()
            }
            2 => {
                let n = u32::from_be_bytes(c.take(4)?.try_into().expect("4 bytes")) as usize;
                c.take(n)?.to_vec()
            }
            _ => match e {
                0xC0 => signed(c.le(2)?, 16).to_string().into_bytes(),
                0xD0 => signed(c.le(4)?, 32).to_string().into_bytes(),
                0xE0 => (c.le(8)? as i64).to_string().into_bytes(),
                0xF0 => signed(c.le(3)?, 24).to_string().into_bytes(),
                0xFE => (c.u8()? as i8).to_string().into_bytes(),
                0xF1..=0xFD => ((e & 0x0F) - 1).to_string().into_bytes(),
                _ => return corrupt(format!("ziplist entry encoding {e:#x}")),
            },
        };
        out.push(v);
    }
    Ok(out)
}

/// The members of an intset.
fn intset(b: &[u8]) -> R<Vec<Vec<u8>>> {
    let mut c = Cur { b, i: 0 };
    let width = c.le(4)? as usize;
    let n = c.le(4)? as usize;
    if !matches!(width, 2 | 4 | 8) {
        return corrupt(format!("intset width {width}"));
    }
    (0..n)
        .map(|_| Ok(signed(c.le(width)?, width as u32 * 8).to_string().into_bytes()))
        .collect()
}

/// The fields and values of a zipmap (hashes of Redis before 2.6), alternating.
fn zipmap(b: &[u8]) -> R<Vec<Vec<u8>>> {
    let mut c = Cur { b, i: 1 }; // count (1)
    let mut out = Vec::new();
    let len = |c: &mut Cur| -> R<Option<usize>> {
        Ok(match c.u8()? {
            0xFF => None,
            254 => Some(c.le(4)? as usize),
            n => Some(n as usize),
        })
    };
    while let Some(n) = len(&mut c)? {
        out.push(c.take(n)?.to_vec());
        let Some(n) = len(&mut c)? else {
            return corrupt("zipmap field without a value");
        };
        let free = c.u8()? as usize;
        out.push(c.take(n)?.to_vec());
        c.take(free)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    /// Found by fuzzing: a string length of 2^62 in a snapshot was allocated whole
    /// (the daemon would abort); it is corruption, read with the memory of the bytes
    /// that are there.
    #[tokio::test]
    async fn a_length_larger_than_the_input_is_an_error_not_an_allocation() {
        for len in [u64::MAX / 4, 100_000] {
            let mut snap = b"REDIS0010".to_vec();
            snap.extend([0xFA, 0x81]); // an aux field whose name has a 64-bit length
            snap.extend(len.to_be_bytes());
            snap.extend(b"short");
            let mut r = Rdb::open(snap.as_slice()).await.unwrap();
            assert!(r.next().await.is_err(), "length {len}");
        }
        // LZF claiming far more than its input can give
        assert!(lzf(&[0, b'a'], 1 << 40).is_err());
    }

    use super::*;

    #[test]
    fn lzf_copies_back_references() {
        // "abcabcabc": literal "abc" (ctrl 2), then a back reference of 6 bytes
        // (length code 4 = 6 - 2, offset 2 = 3 - 1)
        let data = [2, b'a', b'b', b'c', (4 << 5), 2];
        assert_eq!(lzf(&data, 9).unwrap(), b"abcabcabc");
        assert!(lzf(&data, 8).is_err());
    }

    #[test]
    fn listpack_integers_and_strings() {
        // 7-bit uint 5, 6-bit string "hi", 13-bit int -2, int16 1000, EOF
        let mut b = vec![0u8; 6];
        b.extend([5, 1]);
        b.extend([0x82, b'h', b'i', 3]);
        let v13 = (-2i64 as u64) & 0x1FFF;
        b.extend([0xC0 | (v13 >> 8) as u8, v13 as u8, 2]);
        b.extend([0xF1, 0xE8, 0x03, 3]);
        b.push(0xFF);
        assert_eq!(
            listpack(&b).unwrap(),
            vec![b"5".to_vec(), b"hi".to_vec(), b"-2".to_vec(), b"1000".to_vec()]
        );
    }

    #[test]
    fn intset_members_sign_extend() {
        let mut b = vec![2, 0, 0, 0, 2, 0, 0, 0];
        b.extend((-3i16).to_le_bytes());
        b.extend(7i16.to_le_bytes());
        assert_eq!(intset(&b).unwrap(), vec![b"-3".to_vec(), b"7".to_vec()]);
    }
}
