"""Topic administration with confluent-kafka's AdminClient: create topics with partitions and
configs, see them in metadata, read the configs back with DescribeConfigs, change them with
IncrementalAlterConfigs and AlterConfigs (a smaller max.message.bytes refuses the next larger
produce at once), refuse a duplicate, delete one and see it gone while the other stays; and
describe the cluster (DescribeCluster: its id, its one broker, which is the controller); and
be told that ACLs cannot be changed because security is disabled (no authorizer), as Kafka says.
"""

import time
import warnings

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AlterConfigOpType,
                                  ConfigEntry, ConfigResource, NewTopic, ResourcePatternType, ResourceType)

from common import (METADATA_WAIT_S, POLL_INTERVAL_S, REQUEST_TIMEOUT_S, CheckFailed,
                    admin_client, argument_parser, create_topic, expect, expect_equal, log,
                    run_main, unique_name)

# name prefix -> (partitions, topic configs)
TOPICS = {
    "orders": (3, {"retention.ms": "3600000"}),
    "audit": (1, {"retention.ms": "604800000"}),
    "clicks": (5, {}),
}


def check_metadata(admin, bootstrap, topics):
    metadata = admin.list_topics(timeout=REQUEST_TIMEOUT_S)
    host, port = bootstrap.rsplit(":", 1)
    advertised = {(broker.host, broker.port) for broker in metadata.brokers.values()}
    expect((host, int(port)) in advertised,
           f"metadata brokers {advertised} do not include the bootstrap address {bootstrap}")
    for name, (partitions, _) in topics.items():
        expect(name in metadata.topics, f"topic {name} missing from metadata: "
                                        f"{sorted(metadata.topics)}")
        topic = metadata.topics[name]
        expect(topic.error is None, f"topic {name} has error {topic.error}")
        expect_equal(sorted(topic.partitions), list(range(partitions)), f"partitions of {name}")
        for partition in topic.partitions.values():
            expect(partition.leader in metadata.brokers,
                   f"{name}/{partition.id} leader {partition.leader} is not a known broker")
            expect(partition.error is None, f"{name}/{partition.id} has error {partition.error}")


def check_configs(admin, topics):
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in topics]
    futures = admin.describe_configs(resources, request_timeout=REQUEST_TIMEOUT_S)
    for resource, future in futures.items():
        entries = future.result(timeout=REQUEST_TIMEOUT_S)
        _, wanted = topics[resource.name]
        for key, value in wanted.items():
            expect(key in entries, f"DescribeConfigs for {resource.name} lacks {key}; got "
                                   f"{sorted(entries)}")
            expect_equal(entries[key].value, value, f"{key} of {resource.name}")


def described(admin, name):
    resource = ConfigResource(ResourceType.TOPIC, name)
    return admin.describe_configs([resource], request_timeout=REQUEST_TIMEOUT_S)[resource].result(REQUEST_TIMEOUT_S)


def produce_error(bootstrap, topic, value_bytes):
    """The delivery error of one record of `value_bytes` (None when it was stored)."""
    outcome = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 10_000})
    producer.produce(topic, b"x" * value_bytes, on_delivery=lambda error, _: outcome.append(error))
    producer.flush(REQUEST_TIMEOUT_S)
    expect_equal(len(outcome), 1, "one delivery report")
    return outcome[0]


def check_alter_configs(admin, bootstrap, name):
    def alter(*entries):
        resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=list(entries))
        return admin.incremental_alter_configs([resource], request_timeout=REQUEST_TIMEOUT_S)[resource]

    expect_equal(produce_error(bootstrap, name, 4_000), None, "a 4 KB record before the change")
    alter(ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
          ConfigEntry("max.message.bytes", "2048", incremental_operation=AlterConfigOpType.SET)).result(REQUEST_TIMEOUT_S)
    entries = described(admin, name)
    expect_equal((entries["retention.ms"].value, entries["max.message.bytes"].value), ("7200000", "2048"),
                 "IncrementalAlterConfigs SET")
    error = produce_error(bootstrap, name, 4_000)
    expect(error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE,
           f"the partition applies the new max.message.bytes at once: got {error}")
    alter(ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE)).result(REQUEST_TIMEOUT_S)
    entries = described(admin, name)
    expect(entries["max.message.bytes"].is_default, "DELETE puts the default back")
    expect_equal(entries["retention.ms"].value, "7200000", "DELETE leaves the other configs")
    expect_equal(produce_error(bootstrap, name, 4_000), None, "a 4 KB record after the DELETE")
    try:
        alter(ConfigEntry("retention.ms", "often", incremental_operation=AlterConfigOpType.SET)).result(REQUEST_TIMEOUT_S)
        raise CheckFailed("retention.ms=often was accepted")
    except KafkaException as error:
        expect_equal(error.args[0].code(), KafkaError.INVALID_CONFIG, f"a bad value: {error}")
    expect_equal(described(admin, name)["retention.ms"].value, "7200000", "a refused change changes nothing")
    # AlterConfigs replaces every override: retention.ms goes back to its default.
    resource = ConfigResource(ResourceType.TOPIC, name, set_config={"segment.ms": "600000"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # confluent-kafka prefers the incremental API
        admin.alter_configs([resource], request_timeout=REQUEST_TIMEOUT_S)[resource].result(REQUEST_TIMEOUT_S)
    entries = described(admin, name)
    expect(entries["retention.ms"].is_default and entries["segment.ms"].value == "600000",
           f"AlterConfigs replaced the overrides: retention.ms {entries['retention.ms']}, "
           f"segment.ms {entries['segment.ms']}")


def check_duplicate_refused(admin, name):
    futures = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)],
                                  request_timeout=REQUEST_TIMEOUT_S)
    try:
        futures[name].result(timeout=REQUEST_TIMEOUT_S)
    except KafkaException as error:
        expect_equal(error.args[0].code(), KafkaError.TOPIC_ALREADY_EXISTS,
                     f"error creating {name} a second time")
        return
    raise CheckFailed(f"creating existing topic {name} again succeeded; expected "
                      "TOPIC_ALREADY_EXISTS")


def delete_and_check_gone(admin, doomed, survivors):
    futures = admin.delete_topics([doomed], operation_timeout=REQUEST_TIMEOUT_S,
                                  request_timeout=REQUEST_TIMEOUT_S)
    futures[doomed].result(timeout=REQUEST_TIMEOUT_S)
    deadline = time.monotonic() + METADATA_WAIT_S
    while True:
        names = set(admin.list_topics(timeout=REQUEST_TIMEOUT_S).topics)
        if doomed not in names:
            break
        expect(time.monotonic() < deadline,
               f"deleted topic {doomed} still listed after {METADATA_WAIT_S}s")
        time.sleep(POLL_INTERVAL_S)
    missing = [name for name in survivors if name not in names]
    expect(not missing, f"deleting {doomed} also removed {missing}")


def check_cluster(admin, bootstrap):
    cluster = admin.describe_cluster(request_timeout=REQUEST_TIMEOUT_S).result()
    host, port = bootstrap.rsplit(":", 1)
    expect_equal(cluster.cluster_id, "sluice", "cluster id")
    expect_equal([(node.id, node.host, node.port) for node in cluster.nodes], [(0, host, int(port))], "brokers")
    expect_equal(cluster.controller.id, 0, "controller")


def check_acls_refused(admin):
    binding = AclBinding(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                  AclPermissionType.ANY)
    for what, futures in [("CreateAcls", admin.create_acls([binding])), ("DeleteAcls", admin.delete_acls([everything]))]:
        for future in futures.values():
            try:
                future.result()
                expect(False, f"{what} succeeded without an authorizer")
            except KafkaException as error:
                expect_equal(error.args[0].code(), KafkaError.SECURITY_DISABLED, f"{what}'s error")


def main():
    args = argument_parser(__doc__).parse_args()
    admin = admin_client(args.bootstrap)
    topics = {unique_name(prefix): spec for prefix, spec in TOPICS.items()}
    for name, (partitions, config) in topics.items():
        create_topic(args.bootstrap, name, partitions, config)
    log(f"created {sorted(topics)}")

    check_metadata(admin, args.bootstrap, topics)
    check_cluster(admin, args.bootstrap)
    check_acls_refused(admin)
    check_configs(admin, {name: spec for name, spec in topics.items() if spec[1]})
    names = list(topics)
    check_alter_configs(admin, args.bootstrap, names[1])
    log("altered configs")
    check_duplicate_refused(admin, names[0])

    doomed, survivors = names[0], names[1:]
    delete_and_check_gone(admin, doomed, survivors)
    check_metadata(admin, args.bootstrap, {name: topics[name] for name in survivors})
    log(f"deleted {doomed}; {survivors} remain")
    print(f"ok: created {len(topics)} topics, checked metadata and configs, altered configs, deleted 1")


if __name__ == "__main__":
    run_main(main)
