//! The sled trees, each behind a typed wrapper with its own key and value
//! types, so a key of one tree cannot be used on another. Reads outside a
//! write work on the trees; writes go through one transaction's view of all
//! of them ([`Tx`]), which only needs point reads, so a whole group commit
//! fits in one transaction that sees its own earlier writes.

use sled::transaction::{TransactionalTree, UnabortableTransactionError};
use sled::Tree;

use super::keys::{visitor_key, AggregateKey, TallyKey};
use super::StoreError;
use crate::allocation::AllocationRecord;
use crate::attribution::Tallies;
use crate::stats::Moments;
use crate::tracking::{Event, Exposure};

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialize")
}

type TxResult<T> = Result<T, UnabortableTransactionError>;

fn tx_decode<T: serde::de::DeserializeOwned + Default>(bytes: Option<sled::IVec>) -> T {
    // Values in a transaction were written by this process; a corrupt one
    // reads as empty and `rebuild` repairs derived trees.
    bytes.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// First exposures, per visitor: visitor → every (test, phase) exposure.
#[derive(Clone)]
pub struct Exposures(pub(super) Tree);

impl Exposures {
    /// Every stored exposure, visitor by visitor.
    pub fn all(&self) -> impl Iterator<Item = Result<Vec<Exposure>, StoreError>> + '_ {
        self.0.iter().values().map(|v| decode(&v?))
    }
}

/// Raw events by id: the idempotency record and the source of truth.
#[derive(Clone)]
pub struct Events(pub(super) Tree);

impl Events {
    pub fn all(&self) -> impl Iterator<Item = Result<Event, StoreError>> + '_ {
        self.0.iter().values().map(|v| decode(&v?))
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }
}

/// A visitor's events: visitor → every event of theirs, in arrival order.
#[derive(Clone)]
pub struct VisitorEvents(pub(super) Tree);

impl VisitorEvents {
    pub fn of_visitor(&self, visitor: &str) -> Result<Vec<Event>, StoreError> {
        Ok(self.0.get(visitor_key(visitor))?.map(|v| decode(&v)).transpose()?.unwrap_or_default())
    }
}

/// Per-visitor running tallies: (test, phase, visitor) → attributed events.
#[derive(Clone)]
pub struct TallyTree(pub(super) Tree);

/// Per-day sufficient statistics: (test, phase, variant, day, metric) → sums.
#[derive(Clone)]
pub struct Aggregates(pub(super) Tree);

impl Aggregates {
    fn decode_rows(iter: sled::Iter) -> Result<Vec<(AggregateKey, Moments)>, StoreError> {
        iter.map(|kv| {
            let (k, v) = kv?;
            let key = AggregateKey::decode(&k).ok_or_else(|| StoreError::Corrupt("aggregate key".into()))?;
            Ok((key, decode(&v)?))
        })
        .collect()
    }

    pub fn of_phase(&self, experiment: &str, phase: u32) -> Result<Vec<(AggregateKey, Moments)>, StoreError> {
        Self::decode_rows(self.0.scan_prefix(AggregateKey::prefix(experiment, phase)))
    }

    pub fn all(&self) -> Result<Vec<(AggregateKey, Moments)>, StoreError> {
        Self::decode_rows(self.0.iter())
    }
}

/// The allocation last accepted per test: test id → record.
#[derive(Clone)]
pub struct Allocations(pub(super) Tree);

impl Allocations {
    pub fn get(&self, experiment: &str) -> Result<Option<AllocationRecord>, StoreError> {
        self.0.get(experiment.as_bytes())?.map(|v| decode(&v)).transpose()
    }

    pub fn put(&self, experiment: &str, record: &AllocationRecord) -> Result<(), StoreError> {
        self.0.insert(experiment.as_bytes(), encode(record))?;
        Ok(())
    }
}

/// One write transaction's view of every tree.
pub struct Tx<'a> {
    pub exposures: &'a TransactionalTree,
    pub events: &'a TransactionalTree,
    pub visitor_events: &'a TransactionalTree,
    pub tallies: &'a TransactionalTree,
    pub aggregates: &'a TransactionalTree,
}

impl Tx<'_> {
    pub fn exposures_of(&self, visitor: &str) -> TxResult<Vec<Exposure>> {
        Ok(tx_decode(self.exposures.get(visitor_key(visitor))?))
    }

    pub fn put_exposures(&self, visitor: &str, list: &[Exposure]) -> TxResult<()> {
        self.exposures.insert(visitor_key(visitor), encode(&list))?;
        Ok(())
    }

    pub fn event_exists(&self, id: &str) -> TxResult<bool> {
        Ok(self.events.get(id.as_bytes())?.is_some())
    }

    pub fn events_of(&self, visitor: &str) -> TxResult<Vec<Event>> {
        Ok(tx_decode(self.visitor_events.get(visitor_key(visitor))?))
    }

    /// Stores a new event by id and in its visitor's list.
    pub fn put_event(&self, e: &Event) -> TxResult<()> {
        self.events.insert(e.id.as_bytes(), encode(e))?;
        let mut list = self.events_of(&e.visitor)?;
        list.push(e.clone());
        self.visitor_events.insert(visitor_key(&e.visitor), encode(&list))?;
        Ok(())
    }

    pub fn tallies(&self, key: &TallyKey) -> TxResult<Tallies> {
        Ok(tx_decode(self.tallies.get(key.encode())?))
    }

    pub fn put_tallies(&self, key: &TallyKey, t: &Tallies) -> TxResult<()> {
        self.tallies.insert(key.encode(), encode(t))?;
        Ok(())
    }

    /// Applies `change` to one aggregate row; a row left with no visitors
    /// (its last visitor moved to another day) is removed.
    pub fn update_aggregate(&self, key: &AggregateKey, change: impl FnOnce(&mut Moments)) -> TxResult<()> {
        let k = key.encode();
        let mut m: Moments = tx_decode(self.aggregates.get(&k)?);
        change(&mut m);
        if m.n == 0 {
            self.aggregates.remove(k)?;
        } else {
            self.aggregates.insert(k, encode(&m))?;
        }
        Ok(())
    }
}
