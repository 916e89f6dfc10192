//! The sled trees, each behind a typed wrapper with its own key and value
//! types, so a key of one tree cannot be used on another. Reads work on the
//! tree; writes go through a transaction's view of it ([`Tx`]).

use sled::transaction::{TransactionalTree, UnabortableTransactionError};
use sled::Tree;

use super::keys::{AggregateKey, ExposureKey, TallyKey, VisitorEventKey};
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

/// First exposures: (visitor, test, phase) → the exposure.
#[derive(Clone)]
pub struct Exposures(pub(super) Tree);

impl Exposures {
    pub fn get(&self, key: &ExposureKey) -> Result<Option<Exposure>, StoreError> {
        self.0.get(key.encode())?.map(|v| decode(&v)).transpose()
    }

    /// Every exposure of one visitor, across tests and phases.
    pub fn of_visitor(&self, visitor: &str) -> Result<Vec<Exposure>, StoreError> {
        self.0.scan_prefix(ExposureKey::visitor_prefix(visitor)).values().map(|v| decode(&v?)).collect()
    }

    pub fn all(&self) -> impl Iterator<Item = Result<Exposure, StoreError>> + '_ {
        self.0.iter().values().map(|v| decode(&v?))
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }
}

/// Raw events by id: the idempotency record and the source of truth.
#[derive(Clone)]
pub struct Events(pub(super) Tree);

impl Events {
    pub fn contains(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.0.contains_key(id.as_bytes())?)
    }

    pub fn all(&self) -> impl Iterator<Item = Result<Event, StoreError>> + '_ {
        self.0.iter().values().map(|v| decode(&v?))
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }
}

/// A visitor's events in time order: (visitor, ts, id) → the event.
#[derive(Clone)]
pub struct VisitorEvents(pub(super) Tree);

impl VisitorEvents {
    pub fn of_visitor(&self, visitor: &str) -> Result<Vec<Event>, StoreError> {
        self.0.scan_prefix(ExposureKey::visitor_prefix(visitor)).values().map(|v| decode(&v?)).collect()
    }
}

/// Per-visitor running tallies: (test, phase, visitor) → attributed events.
#[derive(Clone)]
pub struct TallyTree(pub(super) Tree);

/// Per-day sufficient statistics: (test, phase, variant, day, metric) → sums.
#[derive(Clone)]
pub struct Aggregates(pub(super) Tree);

impl Aggregates {
    pub fn of_phase(&self, experiment: &str, phase: u32) -> Result<Vec<(AggregateKey, Moments)>, StoreError> {
        self.0
            .scan_prefix(AggregateKey::prefix(experiment, phase))
            .map(|kv| {
                let (k, v) = kv?;
                let key = AggregateKey::decode(&k).ok_or_else(|| StoreError::Corrupt("aggregate key".into()))?;
                Ok((key, decode(&v)?))
            })
            .collect()
    }

    pub fn all(&self) -> Result<Vec<(AggregateKey, Moments)>, StoreError> {
        self.0
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let key = AggregateKey::decode(&k).ok_or_else(|| StoreError::Corrupt("aggregate key".into()))?;
                Ok((key, decode(&v)?))
            })
            .collect()
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
    pub fn put_exposure(&self, e: &Exposure) -> TxResult<()> {
        let key = ExposureKey { visitor: e.visitor.clone(), experiment: e.experiment.clone(), phase: e.phase };
        self.exposures.insert(key.encode(), encode(e))?;
        Ok(())
    }

    pub fn put_event(&self, e: &Event) -> TxResult<()> {
        self.events.insert(e.id.as_bytes(), encode(e))?;
        let key = VisitorEventKey { visitor: e.visitor.clone(), ts_millis: e.ts.timestamp_millis(), id: e.id.clone() };
        self.visitor_events.insert(key.encode(), encode(e))?;
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
