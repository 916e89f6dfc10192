//! The sled trees, each behind a typed wrapper with its own key and value
//! types, so a key of one tree cannot be used on another. Reads outside a
//! write work on the trees; writes go through one transaction's view of all
//! of them ([`Tx`]), which only needs point reads, so a whole group commit
//! fits in one transaction that sees its own earlier writes.
//!
//! A record that does not decode is never read as empty: that would let the
//! next write replace it and erase what it held. It stops the write with
//! [`Corrupt`], which names the tree, the key and what to run.

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Tree;

use super::keys::{
    describe, event_chunk_key, phase_prefix, visitor_key, AggregateKey, CappedScope, SegmentKey, TallyKey,
};
use crate::allocation::AllocationRecord;
use crate::attribution::Tallies;
use crate::ids::{EventId, ExperimentId, VariantIndex, VisitorId};
use crate::notify::{AfterTry, Delivery, LastDelivery};
use crate::records::{Event, Exposure};
use crate::stats::{Moments, VisitorValue};
use crate::store::rules::{CappedCounts, CappedEntry, CappedIndex, CappedSide, Change, Ledger, Stored};
use crate::store::{Corrupt, StoreError};

/// Most events one chunk of a visitor's event list holds. Appending an
/// event rewrites only the last chunk, so its cost does not grow with the
/// visitor's history; a small chunk keeps that rewrite short (with 64, an
/// append re-encoded 32 events on average, a fifth of ingest's time), and
/// reading a history, needed only at a first exposure, takes one point
/// read per 8 events.
pub const EVENTS_PER_CHUNK: usize = 8;

pub(super) fn decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, Corrupt> {
    serde_json::from_slice(bytes).map_err(|e| Corrupt { tree, key: describe(key), detail: e.to_string() })
}

pub(super) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialize")
}

pub(super) type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// Decodes a value read inside a transaction; a bad record aborts it.
fn tx_decode<T: serde::de::DeserializeOwned + Default>(
    tree: &'static str,
    key: &[u8],
    bytes: Option<sled::IVec>,
) -> TxResult<T> {
    match bytes {
        None => Ok(T::default()),
        Some(b) => decode(tree, key, &b).map_err(|c| ConflictableTransactionError::Abort(StoreError::Corrupt(c))),
    }
}

/// First exposures, per visitor: visitor → every (test, phase) exposure.
#[derive(Clone)]
pub struct Exposures(pub(super) Tree);

impl Exposures {
    pub const NAME: &'static str = "exposures";

    /// The segment attributes `visitor`'s first exposure to `experiment`'s
    /// `phase` kept (none without one).
    pub fn kept(
        &self,
        visitor: &VisitorId,
        experiment: &ExperimentId,
        phase: u32,
    ) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        let key = visitor_key(visitor);
        let Some(bytes) = self.0.get(key)? else { return Ok(Default::default()) };
        let list: Vec<Exposure> = decode(Self::NAME, key, &bytes)?;
        Ok(list
            .into_iter()
            .find(|e| &e.experiment == experiment && e.phase == phase)
            .map(|e| e.attributes)
            .unwrap_or_default())
    }

    /// Every stored exposure, visitor by visitor.
    pub fn all(&self) -> impl Iterator<Item = Result<Vec<Exposure>, StoreError>> + '_ {
        self.0.iter().map(|kv| {
            let (k, v) = kv?;
            Ok(decode(Self::NAME, &k, &v)?)
        })
    }
}

/// Raw events by id, as layouts up to 5 kept them beside the visitors'
/// lists: read once by the upgrade to layout 6, then dropped. Ids were
/// unique across visitors then, and a global index of them was a third of
/// the store at a million visitors.
#[derive(Clone)]
pub struct Events(pub(super) Tree);

impl Events {
    pub const NAME: &'static str = "events";

    pub fn all(&self) -> impl Iterator<Item = Result<Event, StoreError>> + '_ {
        self.0.iter().map(|kv| {
            let (k, v) = kv?;
            Ok(decode(Self::NAME, &k, &v)?)
        })
    }
}

/// The raw events, visitor by visitor, in chunks of [`EVENTS_PER_CHUNK`]
/// in arrival order: full chunks under (visitor, 0), (visitor, 1), …, and
/// the chunk still filling under (visitor, [`OPEN_CHUNK`]), which also
/// says how many full chunks there are and holds a digest of the latest
/// older events' ids; the digests before those are in pages of
/// [`DIGESTS_PER_PAGE`] under (visitor, [`digest_page`]`(p)`). Appending
/// an event, and finding whether its id is new for its visitor, read and
/// write only the open chunk for a visitor with fewer than
/// [`DIGESTS_PER_PAGE`] events, and one more point read per page after.
///
/// Every value here stays small (under 20 KiB with the longest ids), which
/// durability depends on: sled 0.34 writes a node larger than a quarter of
/// its 512 KiB segment to a file of its own under `blobs/` that it never
/// syncs, and a leaf node holds up to 17 values. Before pages, a visitor's
/// open chunk grew by 20 bytes per event, and past about 6,000 events of
/// one visitor it became such a file.
#[derive(Clone)]
pub struct VisitorEvents(pub(super) Tree);

/// The chunk number of a visitor's open chunk: after every full chunk and
/// digest page in key order.
pub const OPEN_CHUNK: u32 = u32::MAX;

/// Most id digests a page holds, and the open chunk before it moves them
/// to a page: 4 KiB a page (8 bytes each), about 10 KiB in the open chunk.
/// A multiple of [`EVENTS_PER_CHUNK`], so pages fill exactly.
pub const DIGESTS_PER_PAGE: usize = 512;

/// Chunk numbers from here to [`OPEN_CHUNK`] are digest pages, not full
/// chunks: page `p` is number `OPEN_CHUNK - 1 - p`. Full chunks stay far
/// below it (4 billion chunks of 8 events).
const FIRST_PAGE_NUMBER: u32 = OPEN_CHUNK - (1 << 24);

/// The chunk number of digest page `p`.
pub fn digest_page(p: u32) -> u32 {
    OPEN_CHUNK - 1 - p
}

/// The chunk still filling, how many full chunks come before it, how many
/// digest pages, and the [`id_digest`] of every event of the full chunks
/// that no page holds: an id whose digest is neither there nor in a page
/// is new for the visitor without reading a full chunk; one whose digest
/// is (a retry of an older event, or a collision) is looked up in the full
/// chunks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenChunk {
    pub full: u32,
    pub events: Vec<Event>,
    #[serde(default)]
    pub older: Vec<u64>,
    #[serde(default)]
    pub pages: u32,
}

/// One record of [`VisitorEvents`].
pub enum Chunk {
    Full(Vec<Event>),
    Open(OpenChunk),
    /// A page of id digests, stored as 8 bytes each, big-endian.
    Digests(Vec<u64>),
}

impl Chunk {
    /// The events the record holds (none for a digest page).
    pub fn into_events(self) -> Vec<Event> {
        match self {
            Chunk::Full(events) => events,
            Chunk::Open(open) => open.events,
            Chunk::Digests(_) => Vec::new(),
        }
    }
}

/// The chunk number a key of [`VisitorEvents`] ends with.
fn chunk_number(key: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(key.get(key.len().checked_sub(4)?..)?.try_into().ok()?))
}

fn encode_digests(digests: &[u64]) -> Vec<u8> {
    digests.iter().flat_map(|d| d.to_be_bytes()).collect()
}

/// A stable 64-bit digest of an event id (FNV-1a), kept on disk: it must
/// never change between versions.
pub fn id_digest(id: &EventId) -> u64 {
    id.as_str().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl VisitorEvents {
    pub const NAME: &'static str = "visitor_events";

    /// Every stored event, visitor by visitor, chunk by chunk.
    pub fn all(&self) -> impl Iterator<Item = Result<Vec<Event>, StoreError>> + '_ {
        self.0.iter().map(|kv| {
            let (k, v) = kv?;
            Ok(Self::decode_chunk(&k, &v)?.into_events())
        })
    }

    /// Every visitor's events, visitor by visitor, each list as it stood
    /// when its open chunk was read, without a transaction: full chunks
    /// never change once written, so the events are the full chunks the
    /// open chunk names and its own. A chunk that filled after the scan
    /// passed its place is read by its key.
    pub fn by_visitor(&self) -> impl Iterator<Item = Result<Vec<Event>, StoreError>> + '_ {
        let mut fulls: Vec<(sled::IVec, Vec<Event>)> = Vec::new();
        self.0.iter().filter_map(move |kv| {
            let read = || -> Result<Option<Vec<Event>>, StoreError> {
                let (k, v) = kv?;
                let mut open = match Self::decode_chunk(&k, &v)? {
                    Chunk::Full(events) => {
                        fulls.push((k, events));
                        return Ok(None);
                    }
                    Chunk::Digests(_) => return Ok(None),
                    Chunk::Open(open) => open,
                };
                let events = std::mem::take(&mut open.events);
                let visitor = super::keys::chunk_visitor(&k).ok_or_else(|| Corrupt {
                    tree: Self::NAME,
                    key: describe(&k),
                    detail: "not a visitor's chunk".into(),
                })?;
                let mut all: Vec<Event> = Vec::new();
                let seen = std::mem::take(&mut fulls);
                for n in 0..open.full {
                    let key = event_chunk_key(&visitor, n);
                    match seen.iter().find(|(k, _)| k[..] == key[..]) {
                        Some((_, chunk)) => all.extend(chunk.iter().cloned()),
                        None => {
                            let bytes = self.0.get(&key)?.ok_or_else(|| Corrupt {
                                tree: Self::NAME,
                                key: describe(&key),
                                detail: "a full chunk the open one names is missing".into(),
                            })?;
                            all.extend(Self::decode_chunk(&key, &bytes)?.into_events());
                        }
                    }
                }
                all.extend(events);
                Ok(Some(all))
            };
            read().transpose()
        })
    }

    /// A record of the tree, by its key's chunk number.
    pub fn decode_chunk(key: &[u8], bytes: &[u8]) -> Result<Chunk, Corrupt> {
        match chunk_number(key) {
            Some(OPEN_CHUNK) => Ok(Chunk::Open(decode(Self::NAME, key, bytes)?)),
            Some(n) if n >= FIRST_PAGE_NUMBER => {
                let pieces = bytes.chunks_exact(8);
                if !pieces.remainder().is_empty() {
                    let detail = format!("a page of id digests is {} bytes, not a multiple of 8", bytes.len());
                    return Err(Corrupt { tree: Self::NAME, key: describe(key), detail });
                }
                Ok(Chunk::Digests(pieces.map(|d| u64::from_be_bytes(d.try_into().expect("8 bytes"))).collect()))
            }
            _ => Ok(Chunk::Full(decode(Self::NAME, key, bytes)?)),
        }
    }

    /// Recomputes every open chunk's digests of older ids, and the digest
    /// pages before it, from the full chunks, in place: no event is added,
    /// dropped or changed. Returns how many visitors changed.
    pub fn redigest(&self) -> Result<usize, StoreError> {
        let mut changed = 0;
        let mut older = Vec::new();
        let mut full = 0u32;
        let mut pages: Vec<(sled::IVec, Vec<u64>)> = Vec::new();
        let mut visitor: Vec<u8> = Vec::new();
        for kv in self.0.iter() {
            let (k, v) = kv?;
            // Each key is the visitor's key, then the chunk's number.
            let prefix = &k[..k.len().saturating_sub(4)];
            if prefix != visitor.as_slice() {
                (visitor, full) = (prefix.to_vec(), 0);
                older.clear();
                pages.clear();
            }
            let mut open = match Self::decode_chunk(&k, &v)? {
                Chunk::Full(events) => {
                    older.extend(events.iter().map(|e| id_digest(&e.id)));
                    full += 1;
                    continue;
                }
                Chunk::Digests(digests) => {
                    pages.push((k, digests));
                    continue;
                }
                Chunk::Open(open) => open,
            };
            let whole = older.len() / DIGESTS_PER_PAGE;
            let expected: Vec<&[u64]> = older.chunks(DIGESTS_PER_PAGE).take(whole).collect();
            let rest = older[whole * DIGESTS_PER_PAGE..].to_vec();
            let mut fixed = false;
            for (p, digests) in expected.iter().enumerate() {
                let key = [prefix, &digest_page(p as u32).to_be_bytes()].concat();
                if !pages.iter().any(|(k, d)| k[..] == key[..] && d[..] == digests[..]) {
                    self.0.insert(&key, encode_digests(digests))?;
                    fixed = true;
                }
            }
            for (k, _) in &pages {
                let stale = Self::page_of(k).is_none_or(|p| p as usize >= whole);
                if stale {
                    self.0.remove(k)?;
                    fixed = true;
                }
            }
            if open.older != rest || open.full != full || open.pages as usize != whole {
                (open.older, open.full, open.pages) = (rest, full, whole as u32);
                self.0.insert(&k, encode(&open))?;
                fixed = true;
            }
            changed += usize::from(fixed);
            older.clear();
            pages.clear();
            full = 0;
        }
        Ok(changed)
    }

    /// The page number of a digest page's key.
    fn page_of(key: &[u8]) -> Option<u32> {
        chunk_number(key).filter(|n| (FIRST_PAGE_NUMBER..OPEN_CHUNK).contains(n)).map(|n| OPEN_CHUNK - 1 - n)
    }

    /// How many events are stored.
    pub fn count(&self) -> Result<usize, StoreError> {
        self.all().try_fold(0, |n, chunk| Ok(n + chunk?.len()))
    }

    /// Every event of a visitor.
    pub fn of_visitor(&self, visitor: &VisitorId) -> Result<Vec<Event>, StoreError> {
        let prefix = event_chunk_key(visitor, 0);
        let mut out = Vec::new();
        for kv in self.0.scan_prefix(&prefix[..prefix.len() - 4]) {
            let (k, v) = kv?;
            out.extend(Self::decode_chunk(&k, &v)?.into_events());
        }
        Ok(out)
    }
}

/// Per-visitor running tallies: (test, phase, visitor) → attributed events
/// of the names the test's metrics read.
#[derive(Clone)]
pub struct TallyTree(pub(super) Tree);

impl TallyTree {
    pub const NAME: &'static str = "tallies";

    /// Every visitor's tallies in one phase of one test, with their raw
    /// key.
    pub fn of_phase(
        &self,
        experiment: &ExperimentId,
        phase: u32,
    ) -> impl Iterator<Item = Result<(sled::IVec, Tallies), StoreError>> {
        self.0.scan_prefix(phase_prefix(experiment, phase)).map(|kv| {
            let (k, v) = kv?;
            let tallies = decode(Self::NAME, &k, &v)?;
            Ok((k, tallies))
        })
    }

    /// One visitor's tallies, if they have any.
    pub fn get(&self, key: &TallyKey) -> Result<Option<Tallies>, StoreError> {
        let k = key.encode();
        Ok(self.0.get(&k)?.map(|v| decode(Self::NAME, &k, &v)).transpose()?)
    }

    /// A record of this tree that cannot be used, and why.
    pub fn corrupt(key: &[u8], detail: &str) -> Corrupt {
        Corrupt { tree: Self::NAME, key: describe(key), detail: detail.into() }
    }
}

/// Rows of sums of `tree` (aggregates, segment rows), each key decoded by
/// `decode`; a key or value that does not decode is corrupt.
fn decode_sum_rows<K>(
    tree: &'static str,
    iter: sled::Iter,
    decode: fn(&[u8]) -> Option<K>,
) -> Result<Vec<(K, Moments)>, StoreError> {
    iter.map(|kv| {
        let (k, v) = kv?;
        let key =
            decode(&k).ok_or_else(|| Corrupt { tree, key: describe(&k), detail: "the key does not decode".into() })?;
        Ok((key, Aggregates::decode_value_of(tree, &k, &v)?))
    })
    .collect()
}

/// Per-day sufficient statistics: (test, phase, variant, date, metric) → sums.
#[derive(Clone)]
pub struct Aggregates(pub(super) Tree);

impl Aggregates {
    pub const NAME: &'static str = "aggregates";

    fn decode_rows(iter: sled::Iter) -> Result<Vec<(AggregateKey, Moments)>, StoreError> {
        decode_sum_rows(Self::NAME, iter, AggregateKey::decode)
    }

    /// A row's sums as 72 bytes: `n` then the eight sums of
    /// [`Moments::SUM_NAMES`], each 8 bytes big-endian. Every event changes
    /// a few rows, so their encoding is on the hot path: JSON numbers cost
    /// a fifth of ingest.
    pub fn encode_value(m: &Moments) -> [u8; Self::VALUE_LEN] {
        let mut out = [0u8; Self::VALUE_LEN];
        out[..8].copy_from_slice(&m.n.to_be_bytes());
        for (i, x) in m.sums().iter().enumerate() {
            out[8 + 8 * i..16 + 8 * i].copy_from_slice(&x.to_bits().to_be_bytes());
        }
        out
    }

    const VALUE_LEN: usize = 8 * (1 + Moments::SUM_NAMES.len());

    pub fn decode_value(key: &[u8], bytes: &[u8]) -> Result<Moments, Corrupt> {
        Self::decode_value_of(Self::NAME, key, bytes)
    }

    /// [`Self::decode_value`] for a row of `tree` (the segment rows hold
    /// the same sums).
    fn decode_value_of(tree: &'static str, key: &[u8], bytes: &[u8]) -> Result<Moments, Corrupt> {
        let field = |i: usize| u64::from_be_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        if bytes.len() != Self::VALUE_LEN {
            return Err(Corrupt {
                tree,
                key: describe(key),
                detail: format!("{} bytes where a row's sums take {}", bytes.len(), Self::VALUE_LEN),
            });
        }
        Ok(Moments::from_sums(field(0), std::array::from_fn(|i| f64::from_bits(field(i + 1)))))
    }

    pub fn of_phase(&self, experiment: &ExperimentId, phase: u32) -> Result<Vec<(AggregateKey, Moments)>, StoreError> {
        Self::decode_rows(self.0.scan_prefix(phase_prefix(experiment, phase)))
    }

    pub fn all(&self) -> Result<Vec<(AggregateKey, Moments)>, StoreError> {
        Self::decode_rows(self.0.iter())
    }
}

/// The segment rows ([`SegmentKey`]): each aggregate row's sums by the raw
/// value of each segment attribute, in the aggregates' encoding. Derived:
/// `rebuild` recomputes them.
#[derive(Clone)]
pub struct SegmentAggregates(pub(super) Tree);

impl SegmentAggregates {
    pub const NAME: &'static str = "segment_aggregates";

    fn decode_rows(iter: sled::Iter) -> Result<Vec<(SegmentKey, Moments)>, StoreError> {
        decode_sum_rows(Self::NAME, iter, SegmentKey::decode)
    }

    pub fn of_phase(&self, experiment: &ExperimentId, phase: u32) -> Result<Vec<(SegmentKey, Moments)>, StoreError> {
        Self::decode_rows(self.0.scan_prefix(phase_prefix(experiment, phase)))
    }

    pub fn all(&self) -> Result<Vec<(SegmentKey, Moments)>, StoreError> {
        Self::decode_rows(self.0.iter())
    }
}

/// Each capped metric's value index ([`CappedScope`]): its counts, and
/// its visitors ordered by value and by covariate. Derived: `rebuild`
/// recomputes it.
#[derive(Clone)]
pub struct Capped(pub(super) Tree);

impl Capped {
    pub const NAME: &'static str = "capped";
    const ENTRY_LEN: usize = 2 + 4 + 3 * 8;

    fn corrupt(key: &[u8], detail: String) -> Corrupt {
        Corrupt { tree: Self::NAME, key: describe(key), detail }
    }

    /// An entry as 30 bytes: the variant (2), the day (days from the common
    /// era, 4), then `x`, `y` and the covariate (8 each), big-endian.
    pub fn encode_entry(e: &CappedEntry) -> [u8; Self::ENTRY_LEN] {
        let mut out = [0; Self::ENTRY_LEN];
        out[..2].copy_from_slice(&e.variant.to_be_bytes());
        out[2..6].copy_from_slice(&chrono::Datelike::num_days_from_ce(&e.date).to_be_bytes());
        for (i, x) in [e.value.x, e.value.y, e.value.pre].into_iter().enumerate() {
            out[6 + 8 * i..14 + 8 * i].copy_from_slice(&x.to_be_bytes());
        }
        out
    }

    pub fn decode_entry(key: &[u8], bytes: &[u8]) -> Result<CappedEntry, Corrupt> {
        let bad = || Self::corrupt(key, format!("an entry of {} bytes, not {}", bytes.len(), Self::ENTRY_LEN));
        let b: &[u8; Self::ENTRY_LEN] = bytes.try_into().map_err(|_| bad())?;
        let f = |i: usize| f64::from_be_bytes(b[6 + 8 * i..14 + 8 * i].try_into().expect("8 bytes"));
        let variant = VariantIndex::from_be_bytes([b[0], b[1]])
            .ok_or_else(|| Self::corrupt(key, "a variant out of range".into()))?;
        let days = i32::from_be_bytes(b[2..6].try_into().expect("4 bytes"));
        let date = chrono::NaiveDate::from_num_days_from_ce_opt(days)
            .ok_or_else(|| Self::corrupt(key, format!("day {days} is no date")))?;
        Ok(CappedEntry { variant, date, value: VisitorValue { x: f(0), y: f(1), pre: f(2) } })
    }

    /// Counts as 24 bytes: covered, positive, negative, big-endian; then
    /// the floor (8 more) when the index has one.
    fn encode_counts(c: CappedCounts) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        for n in [c.covered, c.positive, c.negative] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        if let Some(floor) = c.floor {
            out.extend_from_slice(&floor.to_be_bytes());
        }
        out
    }

    fn decode_counts(key: &[u8], bytes: Option<&[u8]>) -> Result<CappedCounts, Corrupt> {
        let Some(bytes) = bytes else { return Ok(CappedCounts::default()) };
        if bytes.len() != 24 && bytes.len() != 32 {
            return Err(Self::corrupt(key, format!("counts of {} bytes, not 24 or 32", bytes.len())));
        }
        let word = |i: usize| bytes[8 * i..8 * i + 8].try_into().expect("8 bytes");
        let n = |i: usize| u64::from_be_bytes(word(i));
        let floor = (bytes.len() == 32).then(|| f64::from_be_bytes(word(3)));
        Ok(CappedCounts { covered: n(0), positive: n(1), negative: n(2), floor })
    }

    /// The counts under `key` as a transaction reads them.
    fn counts_in(t: &TransactionalTree, key: &[u8]) -> TxResult<CappedCounts> {
        Self::decode_counts(key, t.get(key)?.as_deref())
            .map_err(|c| ConflictableTransactionError::Abort(StoreError::Corrupt(c)))
    }

    /// The value and visitor of an entry key `k` of the side under `prefix`.
    fn side_entry(prefix: &[u8], k: &[u8]) -> Result<(f64, VisitorId), Corrupt> {
        CappedScope::decode_entry(&k[prefix.len()..])
            .ok_or_else(|| Self::corrupt(k, "a key that does not decode".into()))
    }

    pub fn counts(&self, scope: &CappedScope) -> Result<CappedCounts, StoreError> {
        let key = scope.counts_key();
        Ok(Self::decode_counts(&key, self.0.get(&key)?.as_deref())?)
    }

    /// The values of the value side's entries above `floor`, `skip`
    /// places from the top and on, `take` of them, read from their keys
    /// alone.
    pub fn values(
        &self,
        scope: &CappedScope,
        floor: Option<f64>,
        skip: usize,
        take: usize,
    ) -> Result<Vec<f64>, StoreError> {
        let prefix = scope.side_prefix(CappedSide::Value);
        let mut out = Vec::with_capacity(take);
        for k in self.0.scan_prefix(&prefix).keys().rev().skip(skip).take(take) {
            let k = k?;
            let (value, _) = Self::side_entry(&prefix, &k)?;
            if floor.is_some_and(|f| value <= f) {
                break;
            }
            out.push(value);
        }
        Ok(out)
    }

    /// Raises the index's floor to `floor`, then drops every key at or
    /// below it. The floor goes first, in a transaction of its own that
    /// serialises with the writer's: a writer after it keeps nothing at or
    /// below it, so the sweep finds every key to drop and races with no
    /// write.
    pub fn raise_floor(&self, scope: &CappedScope, floor: f64) -> Result<bool, StoreError> {
        let key = scope.counts_key();
        let raised = self.0.transaction(|t| {
            let mut c = Self::counts_in(t, &key)?;
            if c.floor.is_some_and(|f| f >= floor) {
                return Ok(false);
            }
            c.floor = Some(floor);
            t.insert(&key[..], Self::encode_counts(c))?;
            Ok(true)
        });
        if !raised? {
            return Ok(false);
        }
        // In batches of 1,024 keys, each atomic: the writer waits for one
        // batch at a time, never for the whole sweep.
        for side in CappedSide::BOTH {
            let prefix = scope.side_prefix(side);
            let mut doomed = Vec::new();
            for k in self.0.scan_prefix(&prefix).keys() {
                let k = k?;
                let (value, _) = Self::side_entry(&prefix, &k)?;
                if value > floor {
                    break;
                }
                doomed.push(k);
            }
            for chunk in doomed.chunks(1024) {
                let mut batch = sled::Batch::default();
                chunk.iter().for_each(|k| batch.remove(k.clone()));
                self.0.apply_batch(batch)?;
            }
        }
        Ok(true)
    }

    /// Entries of one side from the top down, while above `floor`.
    pub fn top(
        &self,
        scope: &CappedScope,
        side: CappedSide,
        floor: f64,
    ) -> Result<Vec<(VisitorId, CappedEntry)>, StoreError> {
        let prefix = scope.side_prefix(side);
        let mut out = Vec::new();
        for kv in self.0.scan_prefix(&prefix).rev() {
            let (k, v) = kv?;
            let (value, visitor) = Self::side_entry(&prefix, &k)?;
            if value <= floor {
                break;
            }
            out.push((visitor, Self::decode_entry(&k, &v)?));
        }
        Ok(out)
    }

    /// The whole tree, decoded (for `verify`).
    pub fn all(&self) -> Result<CappedIndex, StoreError> {
        let mut index = CappedIndex::default();
        for kv in self.0.iter() {
            let (k, v) = kv?;
            let bad = || Self::corrupt(&k, "a key that does not decode".into());
            let (scope, tag, rest) = CappedScope::decode_key(&k).ok_or_else(bad)?;
            if tag == 0 {
                index.counts.insert(scope, Self::decode_counts(&k, Some(&v))?);
            } else {
                // A scope's counts sort before its entries.
                let floor = index.counts.get(&scope).and_then(|c| c.floor);
                let (value, visitor) = CappedScope::decode_entry(rest).ok_or_else(bad)?;
                if floor.is_some_and(|f| value <= f) {
                    continue;
                }
                index.entries.insert((scope, visitor), Self::decode_entry(&k, &v)?);
            }
        }
        Ok(index)
    }

    /// Writes a recomputed index (the tree cleared first).
    pub fn write_all(&self, index: &CappedIndex) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (scope, c) in &index.counts {
            batch.insert(scope.counts_key(), Self::encode_counts(*c));
        }
        for ((scope, visitor), e) in &index.entries {
            for side in CappedSide::BOTH.into_iter().filter(|s| s.of(e.value) != 0.0) {
                batch.insert(scope.entry_key(side, side.of(e.value), visitor), &Self::encode_entry(e)[..]);
            }
        }
        Ok(self.0.apply_batch(batch)?)
    }
}

/// Notifications: the verdict code last recorded per test (`verdicts`),
/// deliveries waiting for their webhook (`outbox`, by delivery id), and
/// how each webhook's last delivery ended (`last_deliveries`).
#[derive(Clone)]
pub struct Notifications {
    pub(super) verdicts: Tree,
    pub(super) outbox: Tree,
    pub(super) last: Tree,
}

impl Notifications {
    pub const NAMES: [&'static str; 3] = ["verdicts", "outbox", "last_deliveries"];

    pub fn verdicts(&self) -> Result<std::collections::BTreeMap<ExperimentId, String>, StoreError> {
        let mut out = std::collections::BTreeMap::new();
        for kv in self.verdicts.iter() {
            let (k, v) = kv?;
            let bad = |detail: &str| Corrupt { tree: "verdicts", key: describe(&k), detail: detail.into() };
            let id = super::keys::experiment_of(&k).ok_or_else(|| bad("not a test id"))?;
            out.insert(id, String::from_utf8(v.to_vec()).map_err(|_| bad("a code that is not text"))?);
        }
        Ok(out)
    }

    /// Records the code and the deliveries in one transaction, if the
    /// stored code is still `seen`.
    pub fn advance(
        &self,
        experiment: &ExperimentId,
        seen: Option<&str>,
        code: &str,
        deliveries: &[Delivery],
    ) -> Result<bool, StoreError> {
        use sled::transaction::Transactional;
        let key = experiment.as_str().as_bytes();
        let done = (&self.verdicts, &self.outbox).transaction(|(verdicts, outbox)| {
            let stored = verdicts.get(key)?;
            if stored.as_deref() != seen.map(str::as_bytes) {
                return Ok(false);
            }
            verdicts.insert(key, code.as_bytes())?;
            for d in deliveries {
                outbox.insert(d.id.as_bytes(), encode(d))?;
            }
            Ok::<_, ConflictableTransactionError<StoreError>>(true)
        });
        done.map_err(StoreError::from)
    }

    /// The delivery due soonest at `now`.
    pub fn due(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Option<Delivery>, StoreError> {
        let mut soonest: Option<Delivery> = None;
        for kv in self.outbox.iter() {
            let (k, v) = kv?;
            let d: Delivery = decode("outbox", &k, &v)?;
            if d.next_at <= now && soonest.as_ref().is_none_or(|s| d.next_at < s.next_at) {
                soonest = Some(d);
            }
        }
        Ok(soonest)
    }

    pub fn tried(&self, id: &str, after: &AfterTry) -> Result<(), StoreError> {
        use sled::transaction::Transactional;
        (&self.outbox, &self.last)
            .transaction(|(outbox, last)| {
                match after {
                    AfterTry::Again(d) => {
                        outbox.insert(id.as_bytes(), encode(d))?;
                    }
                    AfterTry::Done(l) => {
                        outbox.remove(id.as_bytes())?;
                        last.insert(l.webhook.as_bytes(), encode(l))?;
                    }
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(StoreError::from)
    }

    pub fn last(&self) -> Result<Vec<LastDelivery>, StoreError> {
        self.last
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok(decode("last_deliveries", &k, &v)?)
            })
            .collect()
    }
}

/// The allocation last accepted per test: test id → record.
#[derive(Clone)]
pub struct Allocations(pub(super) Tree);

impl Allocations {
    pub const NAME: &'static str = "allocations";

    pub fn get(&self, experiment: &ExperimentId) -> Result<Option<AllocationRecord>, StoreError> {
        let key = experiment.as_str().as_bytes();
        Ok(self.0.get(key)?.map(|v| decode(Self::NAME, key, &v)).transpose()?)
    }

    /// Every test's accepted allocation.
    pub fn all(&self) -> Result<Vec<(ExperimentId, AllocationRecord)>, StoreError> {
        self.0
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let experiment = super::keys::experiment_of(&k).ok_or_else(|| Corrupt {
                    tree: Self::NAME,
                    key: describe(&k),
                    detail: "not a test id".into(),
                })?;
                Ok((experiment, decode(Self::NAME, &k, &v)?))
            })
            .collect()
    }

    pub fn put(&self, experiment: &ExperimentId, record: &AllocationRecord) -> Result<(), StoreError> {
        self.0.insert(experiment.as_str().as_bytes(), encode(record))?;
        Ok(())
    }
}

/// One write transaction's view of every tree.
pub struct Tx<'a> {
    pub exposures: &'a TransactionalTree,
    pub visitor_events: &'a TransactionalTree,
    pub tallies: &'a TransactionalTree,
    pub aggregates: &'a TransactionalTree,
    pub segments: &'a TransactionalTree,
    pub capped: &'a TransactionalTree,
    /// The changes of the aggregate and segment rows this transaction
    /// made, summed per row, written once each by [`Tx::write_sums`]: a
    /// group's writes touch the same few rows (today's, per variant and
    /// metric) again and again, and no rule reads a row back.
    pub sums: std::cell::RefCell<SummedChanges>,
}

/// Per row key, the visitors joining or leaving and the change of the sums
/// (whose own `n` stays 0). Keys are hashed with FxHash, not SipHash: a
/// map lives for one transaction and holds a few rows per write in it, so
/// segment values chosen to collide could slow one group, not the service.
#[derive(Default)]
pub struct SummedChanges {
    aggregates: RowSums,
    segments: RowSums,
    /// The key being summed, encoded into the same buffer each time.
    scratch: Vec<u8>,
}

type RowSums = rustc_hash::FxHashMap<Vec<u8>, (i64, Moments)>;

impl SummedChanges {
    fn aggregate(&mut self, key: &AggregateKey, change: Change) {
        self.scratch.clear();
        key.encode_into(&mut self.scratch);
        sum_into(&mut self.aggregates, &self.scratch, change);
    }

    fn segment(&mut self, row: &AggregateKey, attribute: &str, value: &str, change: Change) {
        self.scratch.clear();
        SegmentKey::encode_of_into(row, attribute, value, &mut self.scratch);
        sum_into(&mut self.segments, &self.scratch, change);
    }
}

/// Adds `change` to the row under `key`; a key is allocated only for a row
/// this transaction has not touched yet.
fn sum_into(rows: &mut RowSums, key: &[u8], change: Change) {
    let (n, sums) = match rows.get_mut(key) {
        Some(row) => row,
        None => rows.entry(key.to_vec()).or_default(),
    };
    *n += change.visitors;
    sums.apply_delta(change.old, change.new);
}

/// Adds a row's summed changes `(n, sums)` to the row under `k` in `tree`;
/// a row left with no visitors is removed.
fn update_sums(tree: &TransactionalTree, name: &'static str, k: Vec<u8>, (n, sums): (i64, Moments)) -> TxResult<()> {
    let mut m = match tree.get(&k)? {
        None => Moments::default(),
        Some(bytes) => Aggregates::decode_value_of(name, &k, &bytes)
            .map_err(|c| ConflictableTransactionError::Abort(StoreError::Corrupt(c)))?,
    };
    m.n = m.n.saturating_add_signed(n);
    m.merge(&sums);
    if m.n == 0 {
        tree.remove(k)?;
    } else {
        tree.insert(k, &Aggregates::encode_value(&m)[..])?;
    }
    Ok(())
}

impl Tx<'_> {
    /// Writes the summed changes of every aggregate and segment row this
    /// transaction touched; called once, at its end.
    pub fn write_sums(&self) -> TxResult<()> {
        let SummedChanges { aggregates, segments, .. } = self.sums.take();
        for (k, change) in aggregates {
            update_sums(self.aggregates, Aggregates::NAME, k, change)?;
        }
        for (k, change) in segments {
            update_sums(self.segments, SegmentAggregates::NAME, k, change)?;
        }
        Ok(())
    }

    /// A visitor's open chunk.
    fn open_chunk(&self, visitor: &VisitorId) -> TxResult<OpenChunk> {
        let key = event_chunk_key(visitor, OPEN_CHUNK);
        tx_decode(VisitorEvents::NAME, &key, self.visitor_events.get(&key)?)
    }

    /// Whether one of a visitor's first `pages` digest pages holds
    /// `digest`.
    fn in_digest_pages(&self, visitor: &VisitorId, pages: u32, digest: u64) -> TxResult<bool> {
        for p in 0..pages {
            let key = event_chunk_key(visitor, digest_page(p));
            let corrupt = |c: Corrupt| ConflictableTransactionError::Abort(StoreError::Corrupt(c));
            let bytes = self.visitor_events.get(&key)?.ok_or_else(|| {
                let detail = "a page of id digests the open chunk names is missing".into();
                corrupt(Corrupt { tree: VisitorEvents::NAME, key: describe(&key), detail })
            })?;
            if let Chunk::Digests(page) = VisitorEvents::decode_chunk(&key, &bytes).map_err(corrupt)? {
                if page.contains(&digest) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// A visitor's full chunk `n`.
    fn full_chunk(&self, visitor: &VisitorId, n: u32) -> TxResult<Vec<Event>> {
        let key = event_chunk_key(visitor, n);
        tx_decode(VisitorEvents::NAME, &key, self.visitor_events.get(&key)?)
    }

    /// Appends an event to its visitor's open chunk; a chunk that fills
    /// moves to its number, its ids' digests stay in the open chunk, and a
    /// new open chunk begins.
    pub fn append_event(&self, e: &Event) -> TxResult<()> {
        let mut open = self.open_chunk(&e.visitor)?;
        open.events.push(e.clone());
        if open.events.len() == EVENTS_PER_CHUNK {
            self.visitor_events.insert(event_chunk_key(&e.visitor, open.full), encode(&open.events))?;
            open.older.extend(open.events.iter().map(|e| id_digest(&e.id)));
            open.full += 1;
            open.events.clear();
            // An open chunk written before pages may hold more than a page.
            while open.older.len() >= DIGESTS_PER_PAGE {
                let page = event_chunk_key(&e.visitor, digest_page(open.pages));
                self.visitor_events.insert(page, encode_digests(&open.older[..DIGESTS_PER_PAGE]))?;
                open.older.drain(..DIGESTS_PER_PAGE);
                open.pages += 1;
            }
        }
        self.visitor_events.insert(event_chunk_key(&e.visitor, OPEN_CHUNK), encode(&open))?;
        Ok(())
    }
}

impl Ledger for Tx<'_> {
    type Error = ConflictableTransactionError<StoreError>;

    fn exposures_of(&self, visitor: &VisitorId) -> TxResult<Vec<Exposure>> {
        let key = visitor_key(visitor);
        tx_decode(Exposures::NAME, key, self.exposures.get(key)?)
    }

    fn put_exposures(&self, visitor: &VisitorId, list: &[Exposure]) -> TxResult<()> {
        self.exposures.insert(visitor_key(visitor), encode(&list))?;
        Ok(())
    }

    /// Whether `e.id` is new for its visitor, stored as the same event, or
    /// stored as another one ([`Stored::compare`]): the open chunk answers,
    /// unless the id's digest is among the older ones.
    fn event_by_id(&self, e: &Event) -> TxResult<Stored> {
        let open = self.open_chunk(&e.visitor)?;
        if let Some(stored) = open.events.iter().find(|s| s.id == e.id) {
            return Ok(Stored::compare(Some(stored), e));
        }
        let digest = id_digest(&e.id);
        if !open.older.contains(&digest) && !self.in_digest_pages(&e.visitor, open.pages, digest)? {
            return Ok(Stored::New);
        }
        for n in 0..open.full {
            if let Some(stored) = self.full_chunk(&e.visitor, n)?.iter().find(|s| s.id == e.id) {
                return Ok(Stored::compare(Some(stored), e));
            }
        }
        Ok(Stored::New)
    }

    /// Every event of a visitor: one point read per chunk.
    fn events_of(&self, visitor: &VisitorId) -> TxResult<Vec<Event>> {
        let open = self.open_chunk(visitor)?;
        let mut out = Vec::with_capacity(open.full as usize * EVENTS_PER_CHUNK + open.events.len());
        for n in 0..open.full {
            out.extend(self.full_chunk(visitor, n)?);
        }
        out.extend(open.events);
        Ok(out)
    }

    /// Stores a new event in its visitor's list.
    fn put_event(&self, e: &Event) -> TxResult<()> {
        self.append_event(e)
    }

    fn tallies(&self, key: &TallyKey) -> TxResult<Tallies> {
        let k = key.encode();
        let bytes = self.tallies.get(&k)?;
        tx_decode(TallyTree::NAME, &k, bytes)
    }

    fn put_tallies(&self, key: &TallyKey, t: &Tallies) -> TxResult<()> {
        self.tallies.insert(key.encode(), encode(t))?;
        Ok(())
    }

    /// Applies `change` to one aggregate row; a row left with no visitors
    /// (its last visitor moved to another day) is removed.
    fn update_aggregate(&self, key: &AggregateKey, change: Change) -> TxResult<()> {
        self.sums.borrow_mut().aggregate(key, change);
        Ok(())
    }

    fn update_segment(&self, row: &AggregateKey, attribute: &str, value: &str, change: Change) -> TxResult<()> {
        self.sums.borrow_mut().segment(row, attribute, value, change);
        Ok(())
    }

    /// Removes the visitor's keys at their old values, writes them at the
    /// new ones, and moves the counts.
    fn update_capped(&self, key: &AggregateKey, visitor: &VisitorId, change: Change) -> TxResult<()> {
        let counts = change.counts();
        if change.old == change.new && counts == [0; 3] {
            // Nothing moves: spare the read of the counts.
            return Ok(());
        }
        let scope = CappedScope::of(key);
        let k = scope.counts_key();
        let mut c = Capped::counts_in(self.capped, &k)?;
        let (before, after) = change.entries(key, c.floor);
        if before == after && counts == [0; 3] {
            return Ok(());
        }
        for side in CappedSide::BOTH {
            let at = |e: Option<CappedEntry>| e.and_then(|e| side.kept(e.value, c.floor));
            if let Some(old) = at(before) {
                self.capped.remove(scope.entry_key(side, old, visitor))?;
            }
            if let (Some(new), Some(e)) = (at(after), after) {
                self.capped.insert(scope.entry_key(side, new, visitor), &Capped::encode_entry(&e)[..])?;
            }
        }
        if counts != [0; 3] {
            c.add(counts);
            self.capped.insert(k, Capped::encode_counts(c))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events appended while the scan is under way (the open chunk filling
    /// and moving) leave each visitor's list as it stood at one moment: a
    /// prefix of its events, in order, never one with a gap.
    #[test]
    fn a_visitor_scanned_while_its_chunk_moves_reads_as_of_one_moment() {
        use sled::transaction::Transactional;
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let trees: Vec<sled::Tree> = ["a", "b", "c", "d", "e", "f"].iter().map(|n| db.open_tree(n).unwrap()).collect();
        let events = VisitorEvents(trees[1].clone());
        let visitor: VisitorId = "shopper".parse().unwrap();
        let event = |i: usize| Event {
            id: format!("e{i}").parse().unwrap(),
            visitor: visitor.clone(),
            name: "order".parse().unwrap(),
            value: i as f64,
            ts: "2026-11-30T12:00:00Z".parse().unwrap(),
        };
        let append = |range: std::ops::Range<usize>| {
            (&trees[0], &trees[1], &trees[2], &trees[3], &trees[4], &trees[5])
                .transaction(|(exposures, visitor_events, tallies, aggregates, segments, capped)| {
                    let sums = Default::default();
                    let tx = Tx { exposures, visitor_events, tallies, aggregates, segments, capped, sums };
                    range.clone().try_for_each(|i| tx.append_event(&event(i)))
                })
                .unwrap()
        };
        append(0..12); // one full chunk of 8, four in the open one
        let mut scan = events.by_visitor();
        append(12..16); // the open chunk fills and moves while the scan waits
        let read = scan.next().unwrap().unwrap();
        assert!(scan.next().is_none());
        let ids: Vec<String> = read.iter().map(|e| e.id.to_string()).collect();
        let want = |n: usize| (0..n).map(|i| format!("e{i}")).collect::<Vec<_>>();
        assert!(ids == want(12) || ids == want(16), "{ids:?}");
    }

    #[test]
    fn aggregate_rows_round_trip_and_a_short_row_is_corrupt() {
        let m = Moments::from_sums(3, [2.5, -0.0, 1e300, f64::MIN_POSITIVE, 7.25, 4.0, 16.0, -1.5]);
        let bytes = Aggregates::encode_value(&m);
        let back = Aggregates::decode_value(b"k", &bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.sum_sq.to_bits(), m.sum_sq.to_bits());
        let e = Aggregates::decode_value(b"k", &bytes[..40]).unwrap_err();
        assert!(e.to_string().contains("40 bytes"), "{e}");
        assert!(Aggregates::decode_value(b"k", b"{\"n\":1}").is_err(), "a JSON row of format 2 is not read as sums");
        assert!(Aggregates::decode_value(b"k", &bytes[..48]).is_err(), "a row of format 3 is not read as sums");
    }
}
