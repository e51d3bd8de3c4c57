//! Offline reading of binlog (and relay log) files: `drc binlog dump`.
//!
//! Events are framed here, not by mysql_common's iterator, so that a truncated or
//! corrupt file ends with an error naming the file and the offset instead of a silent
//! stop or a panic: the header's `event_size` is checked against what the file still
//! holds before an event is parsed, CRC32 checksums are verified, and a decoder panic
//! on hostile bytes is caught and reported as corruption at that offset.
//! MySQL compressed transactions (TRANSACTION_PAYLOAD, zstd) are decompressed as a
//! stream and their inner events fed to the same [`Assembler`].

use super::assembler::{Assembler, DecodeError, EventPos, Limits};
use crate::model::Transaction;
use mysql_common::binlog::consts::{BinlogChecksumAlg, BinlogVersion, EventType};
use mysql_common::binlog::events::{Event, TransactionPayloadEvent};
use mysql_common::binlog::EventStreamReader;
use std::fs::File;
use std::io::{BufReader, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

const HEADER_LEN: usize = 19;
/// Larger than any event a server writes (max_allowed_packet is at most 1 GiB).
const MAX_EVENT: usize = 1 << 30;

/// What a finished file read reports.
#[derive(Debug, Default)]
pub struct FileSummary {
    pub events: u64,
    pub transactions: u64,
    /// Transactions cut off by the end of the file or by the next transaction.
    pub incomplete: u64,
}

/// Reads `path` to the end, handing every transaction fragment to `sink`.
/// The sink may fail (e.g. stdout closed); its error stops the read.
pub fn read_file<F>(path: &Path, zone: &str, limits: Limits, mut sink: F) -> Result<FileSummary, DecodeError>
where
    F: FnMut(Transaction) -> std::io::Result<()>,
{
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let err = |offset: u64, what: String| DecodeError {
        file: path.display().to_string(),
        offset,
        what,
    };
    let f = File::open(path).map_err(|e| err(0, format!("cannot open: {e}")))?;
    let mut input = BufReader::with_capacity(1 << 20, f);
    let mut magic = [0u8; 4];
    input
        .read_exact(&mut magic)
        .map_err(|_| err(0, "too short to be a binlog file (no 4-byte magic)".into()))?;
    if magic != [0xfe, b'b', b'i', b'n'] {
        return Err(err(0, "not a binlog file (bad magic number)".into()));
    }
    let mut esr = EventStreamReader::new(BinlogVersion::Version4);
    let mut asm = Assembler::new(zone, &name, limits, None);
    let mut summary = FileSummary::default();
    let mut offset = 4u64;
    let mut buf = Vec::with_capacity(64 << 10);
    let mut out = Vec::new();
    loop {
        buf.clear();
        buf.resize(HEADER_LEN, 0);
        let got = read_full(&mut input, &mut buf).map_err(|e| err(offset, format!("read error: {e}")))?;
        if got == 0 {
            break;
        }
        if got < HEADER_LEN {
            return Err(err(
                offset,
                format!("truncated event header ({got} of {HEADER_LEN} bytes)"),
            ));
        }
        let size = u32::from_le_bytes(buf[9..13].try_into().unwrap()) as usize;
        if !(HEADER_LEN..=MAX_EVENT).contains(&size) {
            return Err(err(offset, format!("corrupt event header: event size {size}")));
        }
        let got = read_body(&mut input, &mut buf, size).map_err(|e| err(offset, format!("read error: {e}")))?;
        if got < size - HEADER_LEN {
            return Err(err(
                offset,
                format!(
                    "truncated event: header says {size} bytes, file has {} left",
                    got + HEADER_LEN
                ),
            ));
        }
        let end = offset + size as u64;
        let ev = parse_event(&mut esr, &buf, false).map_err(|e| err(offset, e))?;
        verify_checksum(&ev).map_err(|e| err(offset, e))?;
        summary.events += 1;
        let at = EventPos { end, arrival: None };
        asm.push(&ev, at, &mut out).map_err(|e| err(offset, e.what))?;
        if ev.header().event_type_raw() == EventType::TRANSACTION_PAYLOAD_EVENT as u8 {
            feed_payload(&mut esr, &ev, at, &mut asm, &mut out).map_err(|e| err(offset, e))?;
        }
        for tx in out.drain(..) {
            summary.transactions += tx.last as u64;
            sink(tx).map_err(|e| err(end, format!("output: {e}")))?;
        }
        offset = end;
    }
    if asm.in_transaction() {
        asm.abandon_open_group();
        tracing::warn!(file = %path.display(), offset, "file ends inside a transaction; its changes were not printed");
    }
    summary.incomplete = asm.incomplete_groups;
    Ok(summary)
}

/// Reads the body of an event of `size` bytes after the header in `buf`, as the bytes
/// come: the memory follows the bytes there are, never the size a header claims (found
/// by fuzzing: an event size of 1 GiB in a short file was allocated whole). Returns how
/// many body bytes there were.
fn read_body(r: &mut impl Read, buf: &mut Vec<u8>, size: usize) -> std::io::Result<usize> {
    buf.truncate(HEADER_LEN);
    r.take((size - HEADER_LEN) as u64).read_to_end(buf)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Parses one complete event. mysql_common may panic on inconsistent bytes; such a
/// panic is reported as corruption, never propagated.
fn parse_event(esr: &mut EventStreamReader, bytes: &[u8], decompressed: bool) -> Result<Event, String> {
    let r = catch_unwind(AssertUnwindSafe(|| {
        if decompressed {
            esr.read_decompressed(bytes)
        } else {
            esr.read(bytes)
        }
    }));
    match r {
        Ok(Ok(Some(ev))) => Ok(ev),
        Ok(Ok(None)) => Err("empty event".into()),
        Ok(Err(e)) => Err(format!("corrupt event: {e}")),
        Err(_) => Err("corrupt event (inconsistent lengths inside the event)".into()),
    }
}

fn verify_checksum(ev: &Event) -> Result<(), String> {
    let footer = ev.footer();
    if !footer.get_checksum_enabled() {
        return Ok(());
    }
    if let (Ok(Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32)), Some(stored)) =
        (footer.get_checksum_alg(), ev.checksum())
    {
        let calc = ev.calc_checksum(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32);
        if calc != u32::from_le_bytes(stored) {
            return Err(format!(
                "checksum mismatch in {:?} event (stored {:08x}, computed {calc:08x}): the file is corrupt",
                ev.header().event_type(),
                u32::from_le_bytes(stored)
            ));
        }
    }
    Ok(())
}

/// Feeds the inner events of a TRANSACTION_PAYLOAD event, streaming the decompression.
fn feed_payload(
    esr: &mut EventStreamReader,
    ev: &Event,
    at: EventPos,
    asm: &mut Assembler,
    out: &mut Vec<Transaction>,
) -> Result<(), String> {
    // (mysql_common may panic on inconsistent lengths inside the event: corruption)
    let tpe = catch_unwind(AssertUnwindSafe(|| ev.read_event::<TransactionPayloadEvent<'_>>()))
        .map_err(|_| "corrupt TRANSACTION_PAYLOAD event (inconsistent lengths inside the event)".to_string())?
        .map_err(|e| format!("TRANSACTION_PAYLOAD: {e}"))?;
    let mut rdr = tpe
        .decompressed()
        .map_err(|e| format!("TRANSACTION_PAYLOAD decompression: {e}"))?;
    let mut inner = Vec::new();
    loop {
        inner.clear();
        inner.resize(HEADER_LEN, 0);
        let got = read_full(&mut rdr, &mut inner).map_err(|e| format!("TRANSACTION_PAYLOAD decompression: {e}"))?;
        if got == 0 {
            return Ok(());
        }
        if got < HEADER_LEN {
            return Err("TRANSACTION_PAYLOAD: truncated inner event header".into());
        }
        let size = u32::from_le_bytes(inner[9..13].try_into().unwrap()) as usize;
        if !(HEADER_LEN..=MAX_EVENT).contains(&size) {
            return Err(format!("TRANSACTION_PAYLOAD: corrupt inner event size {size}"));
        }
        if read_body(&mut rdr, &mut inner, size).map_err(|e| e.to_string())? < size - HEADER_LEN {
            return Err("TRANSACTION_PAYLOAD: truncated inner event".into());
        }
        let iev = parse_event(esr, &inner, true)?;
        asm.push(&iev, at, out).map_err(|e| e.what)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing: an event header claiming 1 GiB in a file of a few bytes was
    /// allocated whole before reading; it is a truncated event, read with the memory of
    /// the bytes there are. A PREVIOUS_GTIDS count of 2^56 (mysql_common reserved memory
    /// for it) and a TRANSACTION_PAYLOAD whose lengths point past its end (mysql_common
    /// panicked) are corrupt events naming the offset.
    #[test]
    fn hostile_lengths_are_errors_at_their_offset_not_allocations_or_panics() {
        let dir = std::env::temp_dir().join(format!("drc-hostile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hostile.000001");
        let mut f = vec![0xfe, b'b', b'i', b'n'];
        let mut header = vec![0u8; HEADER_LEN];
        header[4] = 0x22; // GTID event type, any
        header[9..13].copy_from_slice(&((1u32 << 30) - 1).to_le_bytes());
        f.extend(&header);
        f.extend(b"tiny");
        std::fs::write(&path, &f).unwrap();
        let e = read_file(&path, "z", Limits::default(), |_| Ok(())).unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.what.contains("truncated event"), "{}", e.what);
        std::fs::remove_dir_all(&dir).unwrap();
        // the count of a PREVIOUS_GTIDS event against its length
        let mut ev = (1u64 << 55).to_le_bytes().to_vec();
        ev.extend([0u8; 40]);
        assert!(super::super::assembler::previous_gtids_fit(&ev)
            .unwrap_err()
            .contains("server UUIDs"));
        let mut ev = 1u64.to_le_bytes().to_vec();
        ev.extend([7u8; 16]);
        ev.extend((1u64 << 40).to_le_bytes());
        assert!(super::super::assembler::previous_gtids_fit(&ev)
            .unwrap_err()
            .contains("intervals"));
        let mut ev = 1u64.to_le_bytes().to_vec();
        ev.extend([7u8; 16]);
        ev.extend(1u64.to_le_bytes());
        ev.extend([0u8; 16]);
        super::super::assembler::previous_gtids_fit(&ev).unwrap();
    }

    /// The fuzzer's open finding of 2026-12-07 (one allocation of 5.5–8 GiB from 581
    /// bytes): a rows event whose images take no bytes repeated its first row until
    /// memory ran out. Now a corrupt event at its offset.
    #[test]
    fn a_rows_event_of_empty_rows_is_an_error_not_endless_rows() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz/binlog_rows_of_no_bytes.000001");
        let e = read_file(&path, "z", Limits::default(), |_| Ok(())).unwrap_err();
        assert_eq!(e.offset, 275);
        assert!(e.what.contains("a row of no bytes"), "{}", e.what);
    }
}
