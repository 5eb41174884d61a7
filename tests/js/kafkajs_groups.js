// Consumer groups with KafkaJS: a second member joining splits the partitions (the first is
// told to rejoin through its heartbeat), records are consumed once across the rebalance, the
// first member takes everything back when the second leaves; the admin client lists and
// describes the group (still "consumer" once empty), sets, resets and reads its offsets,
// and deletes it.
'use strict';

const { client, expect, expectEqual, log, runMain, uniqueName, waitFor } = require('./common');

const PARTITIONS = 4;
const MESSAGES_PER_ROUND = 40;

async function main(bootstrap) {
  const kafka = client(bootstrap, 'kafkajs-groups');
  const admin = kafka.admin();
  await admin.connect();
  const topic = uniqueName('kjs-groups');
  const groupId = uniqueName('kjs-group');
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }] });
  const producer = kafka.producer();
  await producer.connect();
  let produced = 0;
  const produceRound = async () => {
    const messages = Array.from({ length: MESSAGES_PER_ROUND }, (_, index) => ({
      value: `m-${produced + index}`, partition: (produced + index) % PARTITIONS,
    }));
    await producer.send({ topic, acks: -1, messages });
    produced += MESSAGES_PER_ROUND;
  };

  const seen = new Map(); // "partition:offset" -> member name
  const assignments = { first: [], second: [] };
  const member = async (name) => {
    const consumer = kafka.consumer({
      groupId, sessionTimeout: 10000, heartbeatInterval: 300, rebalanceTimeout: 10000, maxWaitTimeInMs: 500,
    });
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      assignments[name] = (payload.memberAssignment[topic] || []).slice().sort();
    });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const at = `${partition}:${message.offset}`;
        expect(!seen.has(at), `record ${at} consumed twice (by ${seen.get(at)} and ${name})`);
        seen.set(at, name);
      },
    });
    return consumer;
  };

  const first = await member('first');
  await produceRound();
  await waitFor(() => seen.size === produced, 'the first member to consume the first round');
  expectEqual(assignments.first, [0, 1, 2, 3], 'the only member holds every partition');

  const second = await member('second');
  await waitFor(() => assignments.second.length > 0 && assignments.first.length + assignments.second.length === PARTITIONS,
    'the rebalance to split the partitions');
  const split = [...assignments.first, ...assignments.second].sort();
  expectEqual(split, [0, 1, 2, 3], 'the partitions split between the two members');
  await produceRound();
  await waitFor(() => seen.size === produced, 'both members to consume the second round');
  expect([...seen.values()].includes('second'), 'the second member consumed its share');

  await second.disconnect();
  await waitFor(() => assignments.first.length === PARTITIONS, 'the first member to take every partition back');
  await produceRound();
  await waitFor(() => seen.size === produced, 'the first member to consume the third round');

  const described = (await admin.describeGroups([groupId])).groups[0];
  expectEqual([described.state, described.protocolType, described.members.length], ['Stable', 'consumer', 1],
    'the group described');
  await first.disconnect();
  await waitFor(async () => {
    const listed = (await admin.listGroups()).groups.find((group) => group.groupId === groupId);
    return listed && listed.protocolType === 'consumer';
  }, 'the emptied group listed as a consumer group');
  const empty = (await admin.describeGroups([groupId])).groups[0];
  expectEqual([empty.state, empty.protocolType], ['Empty', 'consumer'], 'the emptied group described');

  // Committed offsets: what the members committed, then set, reset, and gone with the group.
  const offsets = async () => {
    const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return entry.partitions.sort((a, b) => a.partition - b.partition).map((partition) => partition.offset);
  };
  const perPartition = String(produced / PARTITIONS);
  expectEqual(await offsets(), Array(PARTITIONS).fill(perPartition), 'committed offsets after consuming everything');
  await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '5' }] });
  expectEqual((await offsets())[0], '5', 'offset of partition 0 after setOffsets');
  await admin.resetOffsets({ groupId, topic, earliest: true });
  expectEqual(await offsets(), Array(PARTITIONS).fill('-2'), 'offsets after resetOffsets to earliest');
  const deleted = await admin.deleteGroups([groupId]);
  expectEqual(deleted[0].errorCode, 0, 'deleteGroups');
  expect(!(await admin.listGroups()).groups.some((group) => group.groupId === groupId), 'the group gone from listGroups');

  await producer.disconnect();
  await admin.disconnect();
  log(`kafkajs groups: ${produced} records consumed once across two rebalances`);
}

runMain(main);
