// KafkaJS (a Kafka client of its own, not librdkafka) against the broker: topics made and
// changed through its admin client, an idempotent producer's keyed records with headers read
// back whole and in order by a group consumer, offsets by timestamp exact to the record in
// plain and gzip batches, and a transactional producer refused as README says.
'use strict';

const { CompressionTypes, ConfigResourceTypes } = require('kafkajs');
const { client, expect, expectEqual, log, runMain, uniqueName, waitFor } = require('./common');

const PARTITIONS = 3;
const MESSAGES = 300;
const KEYS = 10;
const TIMED_RECORDS = 50;
const TIMED_STEP_MS = 1000;

async function main(bootstrap) {
  const kafka = client(bootstrap, 'kafkajs-roundtrip');
  const admin = kafka.admin();
  await admin.connect();
  const topic = uniqueName('kjs');
  const made = await admin.createTopics({
    topics: [{ topic, numPartitions: PARTITIONS, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
  });
  expectEqual(made, true, 'createTopics made the topic');
  expectEqual(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] }), false, 'createTopics again');
  const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
  expectEqual(metadata.topics[0].partitions.length, PARTITIONS, 'partitions in metadata');

  // Keyed records with headers from an idempotent producer, acknowledged after the fsync.
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const messages = [];
  for (let index = 0; index < MESSAGES; index += 1) {
    messages.push({ key: `key-${index % KEYS}`, value: `value-${index}`, headers: { index: String(index) } });
  }
  for (let from = 0; from < MESSAGES; from += 100) {
    const answers = await producer.send({ topic, acks: -1, messages: messages.slice(from, from + 100) });
    answers.forEach((answer) => expectEqual(answer.errorCode, 0, `produce answer ${JSON.stringify(answer)}`));
  }
  const ends = await admin.fetchTopicOffsets(topic);
  expectEqual(ends.reduce((sum, partition) => sum + Number(partition.high), 0), MESSAGES, 'high watermarks');

  // Read back by a group consumer: every record once, in produce order per partition, each
  // key on one partition (KafkaJS's default partitioner is the Java client's murmur2).
  const consumer = kafka.consumer({ groupId: uniqueName('kjs-group'), maxWaitTimeInMs: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = [];
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      seen.push({ partition, offset: Number(message.offset), key: message.key.toString(), value: message.value.toString(),
        index: message.headers.index.toString() });
    },
  });
  await waitFor(() => seen.length >= MESSAGES, `${MESSAGES} records consumed (have ${seen.length})`);
  await consumer.disconnect();
  expectEqual(seen.length, MESSAGES, 'records consumed');
  const keyPartition = new Map();
  const lastIndex = new Map();
  for (const record of seen) {
    expectEqual(record.value, `value-${record.index}`, 'value and header of one record');
    expectEqual(record.key, `key-${Number(record.index) % KEYS}`, 'key of the record');
    const partition = keyPartition.get(record.key);
    expect(partition === undefined || partition === record.partition, `key ${record.key} on two partitions`);
    keyPartition.set(record.key, record.partition);
    const last = lastIndex.get(record.partition);
    expect(last === undefined || Number(record.index) > last, `partition ${record.partition} out of produce order`);
    lastIndex.set(record.partition, Number(record.index));
  }

  // Offsets by timestamp, exact to the record, in a plain batch and in a gzip one.
  const base = Date.now() - 3600000;
  for (const [partition, compression] of [[0, CompressionTypes.None], [1, CompressionTypes.GZIP]]) {
    const timedTopic = `${topic}-timed`;
    if (partition === 0) {
      await admin.createTopics({ topics: [{ topic: timedTopic, numPartitions: 2 }] });
    }
    const timed = Array.from({ length: TIMED_RECORDS }, (_, index) => ({
      value: `timed-${index}`, partition, timestamp: String(base + index * TIMED_STEP_MS),
    }));
    await producer.send({ topic: timedTopic, acks: -1, compression, messages: timed });
    const target = base + 10 * TIMED_STEP_MS + TIMED_STEP_MS / 2; // between records 10 and 11
    const found = await admin.fetchTopicOffsetsByTimestamp(timedTopic, target);
    const offset = found.find((entry) => entry.partition === partition).offset;
    expectEqual(offset, '11', `offset for a timestamp in a ${compression ? 'gzip' : 'plain'} batch`);
  }

  // Topic configs read and changed, partitions added.
  const describe = async () => {
    const { resources } = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms'] }], includeSynonyms: false,
    });
    return resources[0].configEntries.find((entry) => entry.configName === 'retention.ms').configValue;
  };
  expectEqual(await describe(), '3600000', 'retention.ms as created');
  await admin.alterConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '7200000' }] }],
  });
  expectEqual(await describe(), '7200000', 'retention.ms after alterConfigs');
  await admin.createPartitions({ topicPartitions: [{ topic, count: PARTITIONS + 2 }] });
  const grown = await admin.fetchTopicMetadata({ topics: [topic] });
  expectEqual(grown.topics[0].partitions.length, PARTITIONS + 2, 'partitions after createPartitions');

  // Transactions are not supported: the producer learns it at once, with Kafka's error.
  const transactional = kafka.producer({ transactionalId: uniqueName('kjs-tx'), maxInFlightRequests: 1, idempotent: true });
  let refusal = null;
  try {
    await transactional.connect();
    await transactional.transaction();
  } catch (error) {
    refusal = error.type || error.name;
  }
  expectEqual(refusal, 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED', 'a transactional producer refused');
  await transactional.disconnect();

  await admin.deleteTopics({ topics: [topic, `${topic}-timed`] });
  expect(!(await admin.listTopics()).includes(topic), 'topic gone after deleteTopics');
  await producer.disconnect();
  await admin.disconnect();
  log(`kafkajs round trip: ${MESSAGES} records, ${KEYS} keys on ${new Set(keyPartition.values()).size} partitions`);
}

runMain(main);
