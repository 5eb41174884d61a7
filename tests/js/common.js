// Helpers shared by the Node.js test scripts (KafkaJS, ioredis), as tests/py/common.py is for
// the Python ones.
//
// Every script takes --bootstrap host:port (or --resp); it exits 0 only if every check passed, and
// otherwise prints "FAIL: <what was expected and what was seen>" and exits 1. Every wait is
// bounded. KafkaJS's own log goes to stderr at WARN (shown when a test fails).
'use strict';

const crypto = require('crypto');
const { Kafka, logLevel } = require('kafkajs');

// Bounds on every wait, in milliseconds.
const CONSUME_TIMEOUT_MS = 60000;
const POLL_INTERVAL_MS = 50;

class CheckFailed extends Error {}

function expect(condition, message) {
  if (!condition) {
    throw new CheckFailed(message);
  }
}

function expectEqual(actual, expected, what) {
  const [a, e] = [JSON.stringify(actual), JSON.stringify(expected)];
  expect(a === e, `${what}: expected ${e}, got ${a}`);
}

function log(message) {
  process.stderr.write(`${message}\n`);
}

// The value after `--name` on the command line (`--bootstrap` for Kafka, `--resp` for Redis).
function argument(name) {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0 || !process.argv[at + 1]) {
    throw new CheckFailed(`usage: node SCRIPT --${name} host:port`);
  }
  return process.argv[at + 1];
}

function uniqueName(prefix) {
  return `${prefix}-${crypto.randomBytes(5).toString('hex')}`;
}

// A KafkaJS client for the broker; its log lines go to stderr.
function client(bootstrap, clientId) {
  const logCreator = () => ({ namespace, level, log: entry }) => {
    const { message, ...extra } = entry;
    process.stderr.write(`[kafkajs ${namespace} ${level}] ${message} ${JSON.stringify(extra)}\n`);
  };
  return new Kafka({ clientId, brokers: [bootstrap], logLevel: logLevel.WARN, logCreator, retry: { retries: 5 } });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Waits until `condition()` holds, checking every POLL_INTERVAL_MS; fails after `timeoutMs`.
async function waitFor(condition, what, timeoutMs = CONSUME_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    expect(Date.now() < deadline, `timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(POLL_INTERVAL_MS);
  }
}

// Runs `main(address)`, the address given as `--bootstrap` (or `--resp` when `flag` says);
// a failed check or any error is a clear message and exit code 1.
function runMain(main, flag = 'bootstrap') {
  process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
  Promise.resolve()
    .then(() => main(argument(flag)))
    .then(() => process.exit(0))
    .catch((error) => {
      if (error instanceof CheckFailed) {
        process.stderr.write(`FAIL: ${error.message}\n`);
      } else {
        process.stderr.write(`${error && error.stack ? error.stack : error}\nFAIL: unexpected error (above)\n`);
      }
      process.exit(1);
    });
}

module.exports = { CheckFailed, client, expect, expectEqual, log, runMain, sleep, uniqueName, waitFor };
