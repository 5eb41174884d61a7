//! Who owns what: pure functions of names and the shard count. Every handler routes with these
//! and nothing else, so a partition is touched by exactly one shard.

/// The shard that owns `topic`'s `partition`. Partitions of one topic are spread round-robin
/// from a per-topic starting shard, so many single-partition topics also spread out.
pub fn owner(topic: &str, partition: i32, shard_count: usize) -> usize {
    assert!(shard_count > 0, "owner() with no shards");
    let start = crc32c::crc32c(topic.as_bytes()) as usize;
    start.wrapping_add(partition.max(0) as usize) % shard_count
}

/// The shard that coordinates metadata changes (topic catalogue writer).
pub const METADATA_SHARD: usize = 0;

/// The internal topic whose partitions hold committed offsets, as in Kafka.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Its partition count: fixed, so a group keeps its log when the shard count changes.
pub const OFFSETS_PARTITIONS: i32 = 16;

/// The `__consumer_offsets` partition that holds `group`'s offsets.
pub fn offsets_partition(group: &str) -> i32 {
    (crc32c::crc32c(group.as_bytes()) % OFFSETS_PARTITIONS as u32) as i32
}

/// The shard coordinating `group`: the owner of its offsets partition.
pub fn coordinator(group: &str, shard_count: usize) -> usize {
    owner(OFFSETS_TOPIC, offsets_partition(group), shard_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_coordinated_where_its_offsets_partition_lives() {
        for shards in 1..5 {
            for group in ["a", "orders-workers", "g-42"] {
                let shard = coordinator(group, shards);
                assert!(shard < shards);
                assert_eq!(shard, owner(OFFSETS_TOPIC, offsets_partition(group), shards));
            }
        }
    }

    #[test]
    fn owner_is_stable_in_range_and_spreads_partitions() {
        for shards in 1..8 {
            let owners: Vec<usize> = (0..64).map(|partition| owner("orders", partition, shards)).collect();
            assert!(owners.iter().all(|shard| *shard < shards));
            assert_eq!(owners, (0..64).map(|partition| owner("orders", partition, shards)).collect::<Vec<_>>());
            for shard in 0..shards {
                let count = owners.iter().filter(|owner| **owner == shard).count();
                assert!(count >= 64 / shards - 1, "shard {shard} of {shards} owns {count} of 64");
            }
        }
    }
}
