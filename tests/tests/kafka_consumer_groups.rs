//! Story: a team runs several consumers with one group.id. The broker splits the partitions
//! between them (range, roundrobin and cooperative-sticky assignors), moves a leaving member's
//! partitions to the others, lets other groups read the same topic independently, and keeps
//! committed offsets across a kill -9 so a restarted consumer resumes exactly after its last
//! commit. Admin tools list, describe and delete the group.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_tests::{require_python, unique_topic, Broker};

fn broker() -> Broker {
    Broker::builder().shards(2).arg("--group-initial-rebalance-delay-ms").arg("0").start()
}

#[test]
fn members_share_partitions_with_every_assignor() {
    require_python!();
    let broker = broker();
    for assignor in ["range", "roundrobin", "cooperative-sticky"] {
        let topic = unique_topic("shared");
        let group = format!("{topic}-group");
        // The script checks the split, the hand-over on close and exactly-once consumption.
        broker.python("consumer_groups.py", &["share", "--topic", &topic, "--group", &group, "--assignor", assignor]);
        let fanout_group = format!("{topic}-fanout");
        broker.python("consumer_groups.py", &["fanout", "--topic", &topic, "--group", &fanout_group]);
    }
}

#[test]
fn committed_offsets_survive_kill_9_and_admin_sees_the_group() {
    require_python!();
    let mut broker = broker();
    let topic = unique_topic("resume");
    let group = format!("{topic}-group");
    broker.python("consumer_groups.py", &["share", "--topic", &topic, "--group", &format!("{group}-warmup")]);
    let committed = broker.python("consumer_groups.py", &["commit", "--topic", &topic, "--group", &group]);
    let committed = committed.trim().to_string();
    assert!(committed.contains(':'), "commit printed its offsets: {committed:?}");

    broker.restart();

    // Kafka keeps a group's protocol type in its metadata record: it still lists as a consumer
    // group, Empty, though no member is left after the restart.
    broker.python("consumer_groups.py", &["emptied", "--topic", &topic, "--group", &group]);
    broker.python("consumer_groups.py", &["resume", "--topic", &topic, "--group", &group, "--expected", &committed]);
    broker.python("consumer_groups.py", &["admin", "--topic", &topic, "--group", &group]);
}

#[test]
fn a_member_that_dies_without_leaving_is_replaced_after_its_session_timeout() {
    require_python!();
    let broker = broker();
    let topic = unique_topic("crash");
    // The script checks the dead member held partitions and that the survivor gets them all.
    broker.python("consumer_groups.py", &["crash", "--topic", &topic, "--group", &format!("{topic}-group")]);
}

#[test]
fn kafka_python_members_share_and_commit() {
    require_python!();
    let broker = broker();
    broker.python("kafka_python_groups.py", &[]);
}
