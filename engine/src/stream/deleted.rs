//! Entries deleted from the middle of a stream (XDEL). The log is append-only, so a deleted
//! entry's record stays until retention or trimming removes its segment; the stream keeps
//! the offsets it deleted and every Redis read skips them. Offsets are kept as runs
//! (`start..end`), so deleting the entries a work queue has finished with, oldest first,
//! costs one run however many there are.
use std::collections::BTreeMap;

/// Separate runs of deleted offsets one stream may hold; XDEL is refused past it (trimming
/// the stream frees the runs below its new start).
pub const DELETED_RUNS_PER_STREAM_MAX: usize = 100_000;

/// A set of offsets, as disjoint, non-adjacent runs `start..end`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletedEntries {
    /// start -> end (exclusive).
    runs: BTreeMap<i64, i64>,
}

impl DeletedEntries {
    pub fn from_runs(runs: impl IntoIterator<Item = (i64, i64)>) -> Self {
        let mut deleted = Self::default();
        for (start, end) in runs {
            deleted.insert_run(start, end);
        }
        deleted
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    pub fn run_count(&self) -> usize {
        self.runs.len()
    }

    /// Whether `offset` was deleted.
    pub fn contains(&self, offset: i64) -> bool {
        self.runs.range(..=offset).next_back().is_some_and(|(_, end)| offset < *end)
    }

    /// The run holding `offset` would be a new one (XDEL checks the limit with this).
    pub fn would_add_run(&self, offset: i64) -> bool {
        let joins_before = self.runs.range(..=offset).next_back().is_some_and(|(_, end)| offset <= *end);
        let joins_after = self.runs.contains_key(&offset.saturating_add(1));
        !joins_before && !joins_after
    }

    /// Adds `start..end`, merging it with the runs it touches.
    pub fn insert_run(&mut self, start: i64, end: i64) {
        if start >= end {
            return;
        }
        let (mut start, mut end) = (start, end);
        if let Some((&before_start, &before_end)) = self.runs.range(..=start).next_back() {
            if before_end >= start {
                start = before_start;
                end = end.max(before_end);
            }
        }
        let touching: Vec<(i64, i64)> = self.runs.range(start..=end).map(|(&from, &to)| (from, to)).collect();
        for (from, to) in touching {
            self.runs.remove(&from);
            end = end.max(to);
        }
        self.runs.insert(start, end);
    }

    /// Adds `offset`; false when it was already there.
    pub fn insert(&mut self, offset: i64) -> bool {
        if self.contains(offset) {
            return false;
        }
        self.insert_run(offset, offset + 1);
        true
    }

    /// Forgets everything below `start` (the stream's start moved past it).
    pub fn forget_below(&mut self, start: i64) {
        let below: Vec<(i64, i64)> = self.runs.range(..start).map(|(&from, &to)| (from, to)).collect();
        for (from, to) in below {
            self.runs.remove(&from);
            if to > start {
                self.runs.insert(start, to);
            }
        }
    }

    /// The runs, clipped to `from..to`, in order.
    pub fn runs_in(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        if from >= to {
            return Vec::new();
        }
        let first = self.runs.range(..=from).next_back().map_or(from, |(&start, _)| start);
        self.runs
            .range(first..to)
            .map(|(&start, &end)| (start.max(from), end.min(to)))
            .filter(|(start, end)| start < end)
            .collect()
    }

    /// All runs, in order.
    pub fn runs(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.runs.iter().map(|(&start, &end)| (start, end))
    }

    /// Deleted offsets in `from..to`.
    pub fn count_in(&self, from: i64, to: i64) -> i64 {
        self.runs_in(from, to).iter().map(|(start, end)| end - start).sum()
    }

    /// The highest deleted offset.
    pub fn last(&self) -> Option<i64> {
        self.runs.last_key_value().map(|(_, end)| end - 1)
    }

    /// Where the log must start so that `from..to` keeps its newest `keep` offsets that were
    /// not deleted (XTRIM MAXLEN); `from` when it holds no more than that.
    pub fn start_keeping(&self, keep: u64, from: i64, to: i64) -> i64 {
        let mut left = keep;
        let mut cursor = to;
        for (start, end) in self.runs_in(from, to).into_iter().rev() {
            let live = (cursor - end) as u64;
            if live >= left {
                return cursor - left as i64;
            }
            left -= live;
            cursor = start;
        }
        (cursor - left.min((cursor - from) as u64) as i64).max(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(deleted: &DeletedEntries) -> Vec<(i64, i64)> {
        deleted.runs().collect()
    }

    #[test]
    fn neighbouring_offsets_merge_into_one_run() {
        let mut deleted = DeletedEntries::default();
        assert!(deleted.insert(5));
        assert!(deleted.insert(7));
        assert_eq!(runs(&deleted), vec![(5, 6), (7, 8)]);
        assert!(deleted.would_add_run(9));
        assert!(!deleted.would_add_run(6));
        assert!(deleted.insert(6));
        assert_eq!(runs(&deleted), vec![(5, 8)]);
        assert!(!deleted.insert(6), "already deleted");
        assert!(deleted.insert(4));
        assert_eq!(runs(&deleted), vec![(4, 8)]);
        assert!(deleted.contains(4) && deleted.contains(7));
        assert!(!deleted.contains(3) && !deleted.contains(8));
        assert_eq!(deleted.last(), Some(7));
    }

    #[test]
    fn a_run_swallows_the_runs_it_covers() {
        let mut deleted = DeletedEntries::from_runs([(1, 2), (4, 5), (9, 12)]);
        deleted.insert_run(2, 10);
        assert_eq!(runs(&deleted), vec![(1, 12)]);
        deleted.insert_run(20, 20);
        assert_eq!(deleted.run_count(), 1, "an empty run adds nothing");
    }

    #[test]
    fn counts_and_runs_are_clipped_to_the_range_asked() {
        let deleted = DeletedEntries::from_runs([(2, 5), (8, 9), (20, 30)]);
        assert_eq!(deleted.runs_in(3, 25), vec![(3, 5), (8, 9), (20, 25)]);
        assert_eq!(deleted.count_in(0, 100), 3 + 1 + 10);
        assert_eq!(deleted.count_in(4, 21), 1 + 1 + 1);
        assert_eq!(deleted.count_in(10, 10), 0);
        assert!(deleted.runs_in(9, 20).is_empty());
    }

    #[test]
    fn forgetting_below_a_start_cuts_the_run_it_falls_in() {
        let mut deleted = DeletedEntries::from_runs([(2, 5), (8, 12)]);
        deleted.forget_below(10);
        assert_eq!(runs(&deleted), vec![(10, 12)]);
        deleted.forget_below(12);
        assert!(deleted.is_empty());
    }

    #[test]
    fn trimming_to_a_length_counts_only_entries_not_deleted() {
        // Offsets 0..10 with 7 and 8 deleted: the newest live ones are 9, 6, 5, ...
        let deleted = DeletedEntries::from_runs([(7, 9)]);
        assert_eq!(deleted.start_keeping(3, 0, 10), 5);
        assert_eq!(deleted.start_keeping(1, 0, 10), 9);
        assert_eq!(deleted.start_keeping(0, 0, 10), 10);
        assert_eq!(deleted.start_keeping(8, 0, 10), 0, "exactly all the live ones");
        assert_eq!(deleted.start_keeping(50, 0, 10), 0, "fewer than asked: nothing goes");
        assert_eq!(DeletedEntries::default().start_keeping(4, 3, 10), 6);
        let tail_deleted = DeletedEntries::from_runs([(8, 10)]);
        assert_eq!(tail_deleted.start_keeping(2, 0, 10), 6);
        assert_eq!(tail_deleted.start_keeping(0, 0, 10), 10);
    }
}
