//! Idempotent producers: per partition, the last batches each producer id wrote (sequence
//! range and offsets), so a retried batch is answered with its original offsets instead of
//! being written twice, a gap in sequences is refused, and a fenced epoch is refused.
use std::collections::{HashMap, VecDeque};

/// Batches remembered per producer, as Kafka does (max.in.flight for idempotence is 5).
pub const PRODUCER_BATCHES_KEPT: usize = 5;
/// Producers remembered per partition; the least recently seen are forgotten past this.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerError {
    /// The batch's first sequence is not the one after the last batch's (or not 0 for a new epoch).
    OutOfOrderSequence { expected: i32, found: i32 },
    /// An older epoch of a producer id that has moved on (a zombie producer).
    InvalidProducerEpoch { current: i16, found: i16 },
}

impl std::fmt::Display for ProducerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OutOfOrderSequence { expected, found } => {
                write!(f, "out of order sequence: expected {expected}, got {found}")
            }
            Self::InvalidProducerEpoch { current, found } => {
                write!(f, "producer epoch {found} is older than the current epoch {current}")
            }
        }
    }
}

/// One batch a producer wrote: its sequence range and the offsets it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenBatch {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

/// One producer's state as a snapshot holds it: its epoch and its kept batches, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerState {
    pub producer_id: i64,
    pub epoch: i16,
    pub batches: Vec<WrittenBatch>,
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<WrittenBatch>,
    last_seen: u64,
}

/// What to do with an idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already written at these offsets: answer with them, write nothing.
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// The producer state of one partition. Lives with its partition on one shard.
#[derive(Debug, Default, Clone)]
pub struct ProducerTable {
    producers: HashMap<i64, ProducerEntry>,
    clock: u64,
}

fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

impl ProducerTable {
    /// Checks a batch of `records_count` records from `producer_id`/`epoch` starting at `first_sequence`.
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_sequence: i32,
        records_count: i32,
    ) -> Result<SequenceCheck, ProducerError> {
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        if epoch < entry.epoch {
            return Err(ProducerError::InvalidProducerEpoch { current: entry.epoch, found: epoch });
        }
        if epoch > entry.epoch {
            return if first_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(ProducerError::OutOfOrderSequence { expected: 0, found: first_sequence })
            };
        }
        let last_sequence = first_sequence.wrapping_add(records_count - 1);
        if let Some(written) =
            entry.batches.iter().find(|b| b.first_sequence == first_sequence && b.last_sequence == last_sequence)
        {
            return Ok(SequenceCheck::Duplicate { base_offset: written.base_offset, last_offset: written.last_offset });
        }
        let expected = entry.batches.back().map_or(first_sequence, |last| next_sequence(last.last_sequence));
        if first_sequence != expected {
            return Err(ProducerError::OutOfOrderSequence { expected, found: first_sequence });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records an appended idempotent batch.
    pub fn record(
        &mut self,
        producer_id: i64,
        epoch: i16,
        first_sequence: i32,
        records_count: i32,
        base_offset: i64,
        last_offset: i64,
    ) {
        self.clock += 1;
        if !self.producers.contains_key(&producer_id) && self.producers.len() >= PRODUCERS_PER_PARTITION_MAX {
            if let Some(oldest) = self.producers.iter().min_by_key(|(_, entry)| entry.last_seen).map(|(id, _)| *id) {
                self.producers.remove(&oldest);
            }
        }
        let entry = self.producers.entry(producer_id).or_insert(ProducerEntry {
            epoch,
            batches: VecDeque::new(),
            last_seen: 0,
        });
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_seen = self.clock;
        let last_sequence = first_sequence.wrapping_add(records_count - 1);
        entry.batches.push_back(WrittenBatch { first_sequence, last_sequence, base_offset, last_offset });
        if entry.batches.len() > PRODUCER_BATCHES_KEPT {
            entry.batches.pop_front();
        }
    }

    /// Every producer's state, the least recently seen first (the order eviction follows).
    pub fn states(&self) -> Vec<ProducerState> {
        let mut entries: Vec<(&i64, &ProducerEntry)> = self.producers.iter().collect();
        entries.sort_unstable_by_key(|(_, entry)| entry.last_seen);
        entries
            .into_iter()
            .map(|(producer_id, entry)| ProducerState {
                producer_id: *producer_id,
                epoch: entry.epoch,
                batches: entry.batches.iter().copied().collect(),
            })
            .collect()
    }

    /// The table holding `states` (as `states` returns them: the last is the most recently
    /// seen). Callers check the limits first (the snapshot decoder does).
    pub fn from_states(states: Vec<ProducerState>) -> Self {
        assert!(states.len() <= PRODUCERS_PER_PARTITION_MAX, "{} producers in one table", states.len());
        let mut table = Self::default();
        for state in states {
            assert!(state.batches.len() <= PRODUCER_BATCHES_KEPT, "{} batches kept", state.batches.len());
            table.clock += 1;
            let entry = ProducerEntry { epoch: state.epoch, batches: state.batches.into(), last_seen: table.clock };
            table.producers.insert(state.producer_id, entry);
        }
        table
    }

    /// Number of producers remembered.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Forgets batches at or past `offset` (the log was cut there). Epochs stay as they are; a
    /// partition rolling back restores its durable table instead, which also undoes an epoch
    /// bump that only a discarded batch made.
    pub fn truncate_from(&mut self, offset: i64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|batch| batch.base_offset < offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_duplicates_and_gaps_are_refused() {
        let mut table = ProducerTable::default();
        assert_eq!(table.check(7, 0, 0, 3), Ok(SequenceCheck::Append));
        table.record(7, 0, 0, 3, 100, 102);
        assert_eq!(table.check(7, 0, 0, 3), Ok(SequenceCheck::Duplicate { base_offset: 100, last_offset: 102 }));
        assert_eq!(table.check(7, 0, 5, 1), Err(ProducerError::OutOfOrderSequence { expected: 3, found: 5 }));
        assert_eq!(table.check(7, 0, 3, 2), Ok(SequenceCheck::Append));
        table.record(7, 0, 3, 2, 103, 104);
        assert_eq!(table.check(7, 0, 3, 2), Ok(SequenceCheck::Duplicate { base_offset: 103, last_offset: 104 }));
    }

    #[test]
    fn epochs_fence_zombies_and_restart_sequences() {
        let mut table = ProducerTable::default();
        table.record(7, 1, 0, 1, 0, 0);
        assert_eq!(table.check(7, 0, 1, 1), Err(ProducerError::InvalidProducerEpoch { current: 1, found: 0 }));
        assert_eq!(table.check(7, 2, 4, 1), Err(ProducerError::OutOfOrderSequence { expected: 0, found: 4 }));
        assert_eq!(table.check(7, 2, 0, 1), Ok(SequenceCheck::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_rollback_forgets() {
        let mut table = ProducerTable::default();
        for index in 0..7 {
            table.record(1, 0, index, 1, i64::from(index), i64::from(index));
        }
        assert_eq!(table.check(1, 0, 0, 1), Err(ProducerError::OutOfOrderSequence { expected: 7, found: 0 }));
        assert_eq!(table.check(1, 0, 6, 1), Ok(SequenceCheck::Duplicate { base_offset: 6, last_offset: 6 }));
        table.truncate_from(5);
        assert_eq!(table.check(1, 0, 5, 1), Ok(SequenceCheck::Append));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut table = ProducerTable::default();
        table.record(1, 0, i32::MAX, 1, 0, 0);
        assert_eq!(table.check(1, 0, 0, 1), Ok(SequenceCheck::Append));
    }
}
