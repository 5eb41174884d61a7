// ioredis (the Node.js Redis client BullMQ and many services use) on Redis Streams: entries
// added, trimmed and read back; a consumer group's reads, pending list, claims and
// acknowledgements; a pipeline and a MULTI answered in order; XREAD BLOCK woken by another
// connection's XADD; Redis's error texts reaching the client.
'use strict';

const Redis = require('ioredis');
const { expect, expectEqual, log, runMain, uniqueName } = require('./common');

const ENTRIES = 20;
const BLOCK_MS = 5000;

async function main(address) {
  const [host, port] = address.split(':');
  const redis = new Redis({ host, port: Number(port), maxRetriesPerRequest: 1, lazyConnect: true });
  await redis.connect();
  const stream = uniqueName('ioredis');

  const ids = [];
  for (let index = 0; index < ENTRIES; index += 1) {
    ids.push(await redis.xadd(stream, '*', 'index', String(index), 'payload', `value-${index}`));
  }
  expectEqual(await redis.xlen(stream), ENTRIES, 'XLEN');
  const range = await redis.xrange(stream, '-', '+', 'COUNT', 3);
  expectEqual(range, [0, 1, 2].map((index) => [ids[index], ['index', String(index), 'payload', `value-${index}`]]),
    'XRANGE with COUNT');
  expectEqual((await redis.xrevrange(stream, '+', '-', 'COUNT', 1))[0][0], ids[ENTRIES - 1], 'XREVRANGE');
  try {
    await redis.xadd(stream, '1-1', 'late', 'entry');
    expect(false, 'an XADD with a smaller ID was accepted');
  } catch (error) {
    expect(String(error.message).includes('equal or smaller than the target stream top item'),
      `Redis's error text for a smaller ID, got ${error.message}`);
  }

  // A consumer group: two workers, a claim, acknowledgements.
  expectEqual(await redis.xgroup('CREATE', stream, 'workers', '0'), 'OK', 'XGROUP CREATE');
  const first = await redis.xreadgroup('GROUP', 'workers', 'alice', 'COUNT', 5, 'STREAMS', stream, '>');
  expectEqual(first[0][1].map(([id]) => id), ids.slice(0, 5), "alice's first five");
  const summary = await redis.xpending(stream, 'workers');
  expectEqual([summary[0], summary[1], summary[2], summary[3]], [5, ids[0], ids[4], [['alice', '5']]], 'XPENDING summary');
  const claimed = await redis.xclaim(stream, 'workers', 'bob', 0, ids[0], ids[1]);
  expectEqual(claimed.map(([id]) => id), [ids[0], ids[1]], 'XCLAIM moves two to bob');
  const detail = await redis.xpending(stream, 'workers', '-', '+', 10, 'bob');
  expectEqual(detail.map(([id, owner, , deliveries]) => [id, owner, deliveries]),
    [[ids[0], 'bob', 2], [ids[1], 'bob', 2]], "bob's pending entries, delivered twice");
  const auto = await redis.xautoclaim(stream, 'workers', 'carol', 0, '0-0', 'COUNT', 2);
  expectEqual(auto[1].map(([id]) => id), [ids[0], ids[1]], 'XAUTOCLAIM takes the oldest two');
  expectEqual(await redis.xack(stream, 'workers', ids[0], ids[1], ids[2]), 3, 'XACK');
  expectEqual(await redis.call('XACKDEL', stream, 'workers', 'IDS', 2, ids[3], ids[4]), [1, 1], 'XACKDEL');
  expectEqual((await redis.xpending(stream, 'workers'))[0], 0, 'nothing pending');
  const groups = await redis.xinfo('GROUPS', stream);
  const group = Object.fromEntries(groups[0].reduce((pairs, value, at, all) => (at % 2 ? pairs : [...pairs, [value, all[at + 1]]]), []));
  expectEqual([group.name, group['last-delivered-id'], group.pending], ['workers', ids[4], 0], 'XINFO GROUPS');

  // Pipelines and transactions answer in order.
  const pipelined = await redis.pipeline().xadd(stream, '*', 'n', 'p1').xadd(stream, '*', 'n', 'p2').xlen(stream).exec();
  expect(pipelined.every(([error]) => error === null), `pipeline errors: ${JSON.stringify(pipelined)}`);
  expectEqual(pipelined[2][1], ENTRIES - 2 + 2, 'XLEN in the pipeline sees its XADDs (two were deleted)');
  const transaction = await redis.multi().xadd(stream, '*', 'n', 'm1').xlen(stream).exec();
  expectEqual(transaction[1][1], ENTRIES + 1, 'MULTI/EXEC answers in order');
  expectEqual(await redis.xtrim(stream, 'MAXLEN', 10), ENTRIES + 1 - 10, 'XTRIM MAXLEN');

  // XREAD BLOCK on one connection, woken by an XADD on another.
  const reader = redis.duplicate();
  const blocked = reader.xread('BLOCK', BLOCK_MS, 'STREAMS', stream, '$');
  await new Promise((resolve) => setTimeout(resolve, 200));
  const woke = await redis.xadd(stream, '*', 'n', 'wake');
  const read = await blocked;
  expectEqual(read[0][1].map(([id]) => id), [woke], 'XREAD BLOCK woken by the new entry');
  reader.disconnect();

  expectEqual(await redis.del(stream), 1, 'DEL');
  redis.disconnect();
  log(`ioredis: ${ENTRIES} entries, a group of three workers, pipelines and a blocked read`);
}

runMain(main, 'resp');
