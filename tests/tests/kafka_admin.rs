//! Story: an operator manages topics with a stock Kafka admin client (confluent-kafka's
//! AdminClient): creates topics with partition counts and retention settings, sees them in the
//! cluster metadata, reads their configs back, changes them (IncrementalAlterConfigs and
//! AlterConfigs, applied to the partitions at once), is refused a duplicate, and deletes one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::{require_python, Broker};

#[test]
fn operator_creates_describes_and_deletes_topics() {
    require_python!();
    let broker = Broker::builder().shards(2).start();

    let stdout = broker.python("admin_topics.py", &[]);

    assert!(
        stdout.contains("ok: created 3 topics, checked metadata and configs, altered configs, deleted 1"),
        "admin_topics.py did not report success: {stdout}"
    );
}

/// DescribeLogDirs (what Kafka UIs read topic sizes from): one log directory, every partition
/// with the bytes of its segments, the file system's sizes; a topic that does not exist is left
/// out. No stock Python client sends it at a version this broker serves (kafka-python sends v0
/// only), so the request is built with the same codec crate the broker uses.
#[test]
fn log_dirs_show_partition_sizes() {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use kafka_protocol::messages::{DescribeLogDirsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use sluice_tests::raw;

    let broker = Broker::builder().shards(2).start();
    let topic = sluice_tests::unique_topic("log-dirs");
    let cli = |args: &[&str]| {
        let mut command = std::process::Command::new(sluice_tests::sluice_bin());
        command.args(args).arg("--bootstrap").arg(broker.bootstrap());
        let finished = sluice_tests::Running::spawn(command, None).wait(std::time::Duration::from_secs(30));
        assert_eq!(finished.status.and_then(|status| status.code()), Some(0), "{}", finished.failure_report());
    };
    cli(&["topic", "create", &topic, "--partitions", "2"]);
    cli(&["produce", &topic, "--partition", "1", "--value", "a record of some bytes"]);
    let mut kafka = raw::connect(&broker.bootstrap());

    let everything = raw::call(&mut kafka, &DescribeLogDirsRequest::default().with_topics(None), 4, 1);
    assert_eq!(everything.error_code, 0);
    assert_eq!(everything.results.len(), 1, "one log directory");
    let dir = &everything.results[0];
    assert_eq!(dir.error_code, 0);
    assert!(dir.log_dir.as_str().ends_with("/topics"), "{}", dir.log_dir.as_str());
    assert!(dir.total_bytes > 0 && dir.usable_bytes > 0 && dir.usable_bytes <= dir.total_bytes, "{dir:?}");
    let sizes: Vec<(i32, i64)> = dir
        .topics
        .iter()
        .find(|listed| listed.name.0.as_str() == topic)
        .unwrap_or_else(|| panic!("{topic} not listed: {dir:?}"))
        .partitions
        .iter()
        .map(|partition| (partition.partition_index, partition.partition_size))
        .collect();
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert_eq!(sizes[0], (0, 0), "the empty partition");
    assert!(sizes[1].0 == 1 && sizes[1].1 > 0, "the partition holding a record: {sizes:?}");

    let asked = |name: &str, partitions: Vec<i32>| {
        DescribableLogDirTopic::default()
            .with_topic(TopicName(StrBytes::from_string(name.to_string())))
            .with_partitions(partitions)
    };
    let request = DescribeLogDirsRequest::default()
        .with_topics(Some(vec![asked(&topic, vec![1]), asked("no-such-topic", vec![0])]));
    let some = raw::call(&mut kafka, &request, 4, 2);
    let listed: Vec<(String, Vec<i32>)> = some.results[0]
        .topics
        .iter()
        .map(|listed| {
            (listed.name.0.to_string(), listed.partitions.iter().map(|partition| partition.partition_index).collect())
        })
        .collect();
    assert_eq!(listed, [(topic, vec![1])], "only the partition asked for; the unknown topic left out");
}
