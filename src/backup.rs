//! The backup file: every raw record a store holds (what offerlab cannot
//! recompute), in one gzip stream of JSON lines that any tool can read.
//!
//! ```text
//! {"format":"offerlab-backup","version":2,"offerlab":"0.1.0","source":"sled","created_at":"2026-12-07T00:00:00Z"}
//! {"exposure":{"visitor":"v1","experiment":"cart-protection-copy","variant":1,"ts":"…","phase":1,"attributes":{"device":"mobile"}}}
//! {"event":{"id":"e1","visitor":"v1","name":"order","value":30.0,"ts":"…"}}
//! {"allocation":{"experiment":"cart-protection-copy","record":{"version":1,"fingerprint":"v2:…"}}}
//! {"verdict":{"experiment":"cart-protection-copy","code":"collecting_data"}}
//! {"trailer":{"counts":{"exposures":1,"events":1,"allocations":1,"verdicts":1},"sha256":"…"}}
//! ```
//!
//! The header names the format and its version; the trailer counts each
//! kind of record and holds the SHA-256 of every byte (uncompressed) before
//! the trailer's line, so a cut or altered file is found before anything is
//! restored. Tallies, aggregates and value indexes are not in it: a restore
//! rebuilds them.

use std::io::{BufRead, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::allocation::AllocationRecord;
use crate::ids::ExperimentId;
use crate::records::{Event, Exposure};

/// The name in every header.
pub const FORMAT: &str = "offerlab-backup";
/// The version this build writes and the newest it reads. Version 2 added
/// the exposures' `attributes` (segments); a version 1 file reads as
/// exposures without them.
pub const VERSION: u32 = 2;

/// The first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    /// The offerlab that wrote it.
    pub offerlab: String,
    /// `sled` or `postgres`.
    pub source: String,
    pub created_at: DateTime<Utc>,
}

/// One raw record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    Exposure(Exposure),
    Event(Event),
    /// The allocation last accepted for a test (its phase).
    Allocation {
        experiment: ExperimentId,
        record: AllocationRecord,
    },
    /// The verdict code last recorded for a test (notifications compare
    /// with it).
    Verdict {
        experiment: ExperimentId,
        code: String,
    },
}

/// How many records of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub exposures: u64,
    pub events: u64,
    pub allocations: u64,
    pub verdicts: u64,
}

impl Counts {
    fn add(&mut self, r: &Record) {
        match r {
            Record::Exposure(_) => self.exposures += 1,
            Record::Event(_) => self.events += 1,
            Record::Allocation { .. } => self.allocations += 1,
            Record::Verdict { .. } => self.verdicts += 1,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Last {
    Trailer { counts: Counts, sha256: String },
}

/// Why a file is not a backup to restore.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot read the backup: {0}")]
    Io(#[from] std::io::Error),
    #[error("this is not an offerlab backup ({0}); pass a file written by `offerlab backup`")]
    Foreign(String),
    #[error("the backup was written by a newer offerlab (format version {0}, this one reads up to {VERSION}); restore it with that version")]
    Newer(u32),
    #[error("the backup ends before its trailer, after {0} records: it is truncated; take the backup again or use another copy")]
    Truncated(u64),
    #[error("line {line} of the backup does not decode ({detail}): the file is damaged; use another copy")]
    Damaged { line: u64, detail: String },
    #[error("the backup's checksum does not match its contents: the file is damaged; use another copy")]
    Checksum,
    #[error("the backup's trailer counts {said:?}, but it holds {found:?}: the file is damaged; use another copy")]
    Counts { said: Counts, found: Counts },
    #[error("the backup goes on after its trailer: the file is damaged; use another copy")]
    AfterTrailer,
}

/// Writes a backup: the header at once, each record as it comes, the
/// trailer at [`Writer::finish`].
pub struct Writer<W: Write> {
    out: flate2::write::GzEncoder<W>,
    hash: Sha256,
    counts: Counts,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, source: &str, created_at: DateTime<Utc>) -> std::io::Result<Writer<W>> {
        let mut w = Writer {
            out: flate2::write::GzEncoder::new(out, flate2::Compression::default()),
            hash: Sha256::new(),
            counts: Counts::default(),
        };
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            offerlab: env!("CARGO_PKG_VERSION").into(),
            source: source.into(),
            created_at,
        };
        w.line(&serde_json::to_vec(&header).expect("a header serializes"))?;
        Ok(w)
    }

    fn line(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.hash.update(b"\n");
        self.out.write_all(bytes)?;
        self.out.write_all(b"\n")
    }

    pub fn record(&mut self, r: &Record) -> std::io::Result<()> {
        self.counts.add(r);
        self.line(&serde_json::to_vec(r).expect("records serialize"))
    }

    /// Writes the trailer and ends the stream; the counts written.
    pub fn finish(mut self) -> std::io::Result<(Counts, W)> {
        let sha256 = hex::encode(std::mem::take(&mut self.hash).finalize());
        let trailer = serde_json::to_vec(&Last::Trailer { counts: self.counts, sha256 }).expect("a trailer serializes");
        self.out.write_all(&trailer)?;
        self.out.write_all(b"\n")?;
        Ok((self.counts, self.out.finish()?))
    }
}

/// Writes a store's export as a backup to `out`, on the calling (blocking)
/// thread: the stream is read as it comes, so memory stays flat.
pub fn write_export<W: Write>(
    mut export: crate::store::Export,
    out: W,
    source: &str,
    created_at: DateTime<Utc>,
) -> Result<(Counts, W), crate::store::StoreError> {
    let mut w = Writer::new(out, source, created_at)?;
    while let Some(chunk) = export.blocking_recv() {
        for r in chunk? {
            w.record(&r)?;
        }
    }
    Ok(w.finish()?)
}

/// What writing a backup into a store fails with: the file (read a second
/// time, after its check) or the store.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Writes the records of a backup, already checked whole by [`read`],
/// into `store`, [`crate::store::RECORD_CHUNK`] at a time. The file is
/// read on a blocking thread and its chunks handed over through a bounded
/// channel, so memory stays flat and no async worker waits on the file;
/// the first write that fails stops the import.
pub async fn import(
    store: &dyn crate::store::Store,
    input: impl std::io::Read + Send + 'static,
) -> Result<(), ImportError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Record>>(2);
    let reading = tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(crate::store::RECORD_CHUNK);
        // Once the importer has gone (a write failed), the rest is read
        // and dropped.
        let mut gone = false;
        let checked = read(input, |r| {
            if gone {
                return;
            }
            chunk.push(r);
            if chunk.len() == crate::store::RECORD_CHUNK {
                gone = tx.blocking_send(std::mem::take(&mut chunk)).is_err();
            }
        });
        if !gone {
            let _ = tx.blocking_send(chunk);
        }
        checked
    });
    let mut failed = None;
    while let Some(records) = rx.recv().await {
        if let Err(e) = store.import(records).await {
            failed = Some(e);
            break;
        }
    }
    drop(rx);
    reading.await.map_err(|e| BackupError::Io(std::io::Error::other(e.to_string())))??;
    failed.map_or(Ok(()), |e| Err(e.into()))
}

/// Makes a backup written to `partial` durable under its final `path`: the
/// file synced, renamed, then its folder synced, so a file with the final
/// name is always whole. Returns its size.
pub fn keep(file: std::fs::File, partial: &std::path::Path, path: &std::path::Path) -> std::io::Result<u64> {
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    std::fs::rename(partial, path)?;
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    std::fs::File::open(folder)?.sync_all()?;
    Ok(bytes)
}

/// Reads a whole backup, checking header, every record, counts and
/// checksum, and hands each record to `each` as it goes: a caller that
/// writes must read the file twice, once with a `each` that does nothing,
/// so that a damaged file writes nothing.
pub fn read(input: impl std::io::Read, mut each: impl FnMut(Record)) -> Result<(Header, Counts), BackupError> {
    let mut lines = std::io::BufReader::new(flate2::read::GzDecoder::new(input));
    let mut hash = Sha256::new();
    let mut buf = Vec::new();
    let mut next = |hash: &mut Sha256, buf: &mut Vec<u8>| -> Result<bool, BackupError> {
        buf.clear();
        let n = lines.read_until(b'\n', buf)?;
        if n == 0 {
            return Ok(false);
        }
        if buf.last() != Some(&b'\n') {
            return Err(BackupError::Truncated(0));
        }
        hash.update(&buf[..]);
        buf.pop();
        Ok(true)
    };
    let header: Header = match next(&mut hash, &mut buf) {
        Ok(true) => serde_json::from_slice(&buf).map_err(|e| BackupError::Foreign(e.to_string()))?,
        Ok(false) => return Err(BackupError::Foreign("it is empty".into())),
        Err(BackupError::Io(e)) => return Err(BackupError::Foreign(e.to_string())),
        Err(e) => return Err(e),
    };
    if header.format != FORMAT {
        return Err(BackupError::Foreign(format!("its format is {:?}", header.format)));
    }
    if header.version > VERSION {
        return Err(BackupError::Newer(header.version));
    }
    let mut found = Counts::default();
    let mut line = 1u64;
    loop {
        let before = hash.clone();
        let read = next(&mut hash, &mut buf).map_err(|e| match e {
            BackupError::Truncated(_) => BackupError::Truncated(line - 1),
            BackupError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => BackupError::Truncated(line - 1),
            BackupError::Io(io) => BackupError::Damaged { line: line + 1, detail: io.to_string() },
            other => other,
        })?;
        if !read {
            return Err(BackupError::Truncated(line - 1));
        }
        line += 1;
        if let Ok(Last::Trailer { counts, sha256 }) = serde_json::from_slice::<Last>(&buf) {
            if hex::encode(before.finalize()) != sha256 {
                return Err(BackupError::Checksum);
            }
            if counts != found {
                return Err(BackupError::Counts { said: counts, found });
            }
            let mut rest = Vec::new();
            match next(&mut Sha256::new(), &mut rest) {
                Ok(false) => return Ok((header, found)),
                Ok(true) | Err(BackupError::Truncated(_)) => return Err(BackupError::AfterTrailer),
                Err(BackupError::Io(io)) => return Err(BackupError::Damaged { line, detail: io.to_string() }),
                Err(e) => return Err(e),
            }
        }
        let record: Record =
            serde_json::from_slice(&buf).map_err(|e| BackupError::Damaged { line, detail: e.to_string() })?;
        found.add(&record);
        each(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let at: DateTime<Utc> = "2026-11-30T12:00:00Z".parse().unwrap();
        let mut w = Writer::new(Vec::new(), "sled", at).unwrap();
        for i in 0..50 {
            let e = Event {
                id: format!("e{i}").parse().unwrap(),
                visitor: format!("v{}", i % 7).parse().unwrap(),
                name: "order".parse().unwrap(),
                value: f64::from(i) * 1.5,
                ts: at,
            };
            w.record(&Record::Event(e)).unwrap();
        }
        w.record(&Record::Verdict {
            experiment: "cart-protection-copy".parse().unwrap(),
            code: "collecting_data".into(),
        })
        .unwrap();
        w.finish().unwrap().1
    }

    #[test]
    fn a_backup_reads_back_with_its_counts() {
        let mut n = 0;
        let (header, counts) = read(&sample()[..], |_| n += 1).unwrap();
        assert_eq!((header.format.as_str(), header.version, header.source.as_str()), (FORMAT, VERSION, "sled"));
        assert_eq!(counts, Counts { exposures: 0, events: 50, allocations: 0, verdicts: 1 });
        assert_eq!(n, 51);
    }

    #[test]
    fn a_cut_or_altered_file_is_refused() {
        let good = sample();
        for cut in [0, 5, 20, good.len() / 2, good.len() - 9, good.len() - 1] {
            assert!(read(&good[..cut], |_| {}).is_err(), "cut at {cut}");
        }
        // An altered record with its checksum unchanged: the checksum catches it.
        let mut text = String::new();
        flate2::read::GzDecoder::new(&good[..]).read_to_string(&mut text).unwrap();
        let altered = text.replacen("\"value\":3.0", "\"value\":4.0", 1);
        assert_ne!(altered, text);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(altered.as_bytes()).unwrap();
        assert!(matches!(read(&gz.finish().unwrap()[..], |_| {}), Err(BackupError::Checksum)));
        let newer = text.replacen(&format!("\"version\":{VERSION}"), "\"version\":9", 1);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(newer.as_bytes()).unwrap();
        assert!(matches!(read(&gz.finish().unwrap()[..], |_| {}), Err(BackupError::Newer(9))));
        assert!(matches!(read(&b"hello"[..], |_| {}), Err(BackupError::Foreign(_))));
    }

    use std::io::Read as _;
}
