//! The XREADGROUP run: `consumers` connections of one consumer group reading a stream with
//! `XREADGROUP ... COUNT n BLOCK ms STREAMS key >` and acknowledging with XACK; optionally with
//! an XADD load ([`super::xadd`]) in the same process, to measure end-to-end latency.
//!
//! The run creates the group first (`XGROUP CREATE key group <start-id> MKSTREAM`; an existing
//! group is an error, so a run never reads another run's leftovers). Each consumer sends the
//! XACK of what it read with its next XREADGROUP, in one write: one round trip per read.
//!
//! End-to-end latency: every benchmark entry carries its send time (`ts`, see
//! [`super::resp_wire::PreparedXadd`]); a consumer compares it with the wall clock when the
//! entry's XREADGROUP reply arrives, for the entries sent after the warm-up. With an open-loop
//! producer the send time is the intended one.
//!
//! When the run stops: with producers, once they have stopped and the consumers have read
//! every entry they acknowledged (anything else is an error: lost or extra entries); alone,
//! after the measured window (`--duration-s`) or `--messages` entries. Either way, a consumer
//! gives up when nothing new arrives for [`CONSUME_DRAIN_TIMEOUT`] where entries are due.
//!
//! With [`Wire::Nats`] the group is a new durable JetStream pull consumer with explicit
//! acknowledgements (delivering new messages for `$`, all for `0`), on the stream the
//! producers publish to. Each consumer keeps one pull of up to `count` messages outstanding
//! for up to `block_ms`: JetStream sends each message as soon as it is stored, and a message
//! counts as read when it arrives. The acknowledgements of what a pull brought go out with the
//! next pull, in one write, like the XACKs; JetStream does not answer them, so
//! `messages_acked_total` counts those sent.
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::drain::{Drain, LastProgress, TARGET_UNKNOWN};
use super::limits::{CONNECTIONS_MAX, PULL_EXPIRY_GRACE, READ_BLOCK_MS_MAX, READ_COUNT_MAX};
use super::nats_wire::{self, NatsConnection};
use super::resp_wire::{encode_command, sent_at_us, Reply, RespConnection, RespError, PAYLOAD_FIELD};
use super::stats::{latency_histogram, print_progress, record_latency, LatencySummary, LiveCounters};
use super::timeline::{epoch_us_now, StopAfter, Timeline};
use super::xadd::{self, Wire, XaddConfig, XaddResult};

#[derive(Debug, Clone, Serialize)]
pub struct XreadgroupConfig {
    pub wire: Wire,
    /// Address of the RESP listener, or of the NATS server.
    pub target: String,
    pub stream: String,
    pub group: String,
    /// Where the new group starts: `$` (entries added from now on) or an ID (`0`: all).
    pub start_id: String,
    pub consumers: usize,
    /// XREADGROUP COUNT.
    pub count: usize,
    /// XREADGROUP BLOCK, in milliseconds.
    pub block_ms: u64,
    /// The measured window; consumers alone also stop after it.
    pub stop_after: StopAfter,
    pub warmup_s: f64,
    /// An XADD load on the same stream, run alongside (same window).
    pub producers: Option<XaddConfig>,
    pub progress: bool,
}

impl XreadgroupConfig {
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (self.consumers >= 1 && self.consumers <= CONNECTIONS_MAX, format!("--consumers is 1..={CONNECTIONS_MAX}")),
            ((1..=READ_COUNT_MAX).contains(&self.count), format!("--count is 1..={READ_COUNT_MAX}")),
            ((1..=READ_BLOCK_MS_MAX).contains(&self.block_ms), format!("--block-ms is 1..={READ_BLOCK_MS_MAX}")),
            (!self.stream.is_empty() && !self.group.is_empty(), "--stream and --group are not empty".to_string()),
            (self.warmup_s >= 0.0 && self.warmup_s.is_finite(), "--warmup-s is a non-negative number".to_string()),
            (self.stop_after.is_valid(), "--duration-s or --messages must be positive".to_string()),
            (
                self.wire == Wire::Resp || ["$", "0"].contains(&self.start_id.as_str()),
                "--start-id with --nats is $ (new messages) or 0 (all of them)".to_string(),
            ),
        ];
        match checks.into_iter().find(|(valid, _)| !valid) {
            Some((_, message)) => Err(message),
            None => self.producers.as_ref().map_or(Ok(()), XaddConfig::validate),
        }
    }

    fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_s)
    }
}

/// What an XREADGROUP run measured.
#[derive(Debug, Clone, Serialize)]
pub struct XreadgroupResult {
    /// Length of the measured window, in seconds.
    pub measured_s: f64,
    /// Entries read inside the measured window.
    pub messages: u64,
    pub msgs_per_s: f64,
    /// `data` bytes read per second, in 10^6 bytes.
    pub payload_mb_per_s: f64,
    /// Entries read over the whole run, warm-up and drain included.
    pub messages_read_total: u64,
    /// What the XACKs answered they acknowledged, over the whole run (JetStream: the
    /// acknowledgements sent, which it does not answer).
    pub messages_acked_total: u64,
    /// XREADGROUP calls (JetStream pulls), and those that came back empty (BLOCK timed out).
    pub reads: u64,
    pub empty_reads: u64,
    /// From each entry's send time (`ts`) to its XREADGROUP reply, for entries sent after the
    /// warm-up.
    pub end_to_end_latency: Option<LatencySummary>,
    pub errors: u64,
    pub error_samples: Vec<String>,
    /// The XADD load run alongside, if any.
    pub producers: Option<XaddResult>,
}

/// Creates the group, runs the consumers (and the producers, if any), adds up what they saw.
pub fn run(config: &XreadgroupConfig) -> Result<XreadgroupResult, String> {
    config.validate()?;
    match config.wire {
        Wire::Resp => create_group(config)?,
        Wire::Nats => {
            let mut connection = NatsConnection::connect(&config.target).map_err(|error| error.to_string())?;
            nats_wire::create_stream(&mut connection, &config.stream)?;
            nats_wire::create_pull_consumer(&mut connection, &config.stream, &config.group, config.start_id == "0")?;
        }
    }
    let run = ConsumeRun {
        config,
        timeline: Timeline::new(config.stop_after, config.warmup(), 1),
        counters: LiveCounters::new(config.consumers),
        drain: Drain::new(match (config.producers.is_some(), config.stop_after) {
            (false, StopAfter::Messages(messages)) => messages,
            _ => TARGET_UNKNOWN,
        }),
    };
    let (stop_progress, progress_stopped) = mpsc::channel::<()>();
    let (totals, producers) = thread::scope(|scope| {
        if config.progress {
            let (counters, started, warmup) = (&run.counters, run.timeline.started, config.warmup());
            scope.spawn(move || print_progress("xreadgroup", counters, started, warmup, progress_stopped));
        }
        let consumers: Vec<_> = (0..config.consumers)
            .map(|index| {
                let run = &run;
                let consumer = move || match config.wire {
                    Wire::Resp => run.consumer(index),
                    Wire::Nats => run.nats_consumer(index),
                };
                (index, scope.spawn(consumer))
            })
            .collect();
        let producers = config.producers.as_ref().map(|producers| {
            let result = xadd::run(producers);
            let acked = result.as_ref().map_or(0, |result| result.messages_acked_total);
            run.drain.set_target(acked);
            result
        });
        let totals: Vec<ConsumerTotals> = consumers
            .into_iter()
            .map(|(index, handle)| {
                handle.join().unwrap_or_else(|_| {
                    run.counters.note_error(format!("consumer {index}: the connection thread panicked"));
                    ConsumerTotals::default()
                })
            })
            .collect();
        let _ = stop_progress.send(());
        (totals, producers)
    });
    Ok(run.result(totals, producers.transpose()?))
}

fn create_group(config: &XreadgroupConfig) -> Result<(), String> {
    let mut connection = RespConnection::connect(&config.target).map_err(|error| error.to_string())?;
    let reply = connection
        .call(&[
            b"XGROUP",
            b"CREATE",
            config.stream.as_bytes(),
            config.group.as_bytes(),
            config.start_id.as_bytes(),
            b"MKSTREAM",
        ])
        .map_err(|error| format!("XGROUP CREATE: {error}"))?;
    match reply {
        Reply::Simple(_) => Ok(()),
        Reply::Error(message) if message.starts_with("BUSYGROUP") => Err(format!(
            "group {} of {} exists already (a run starts a new group: pick another --group)",
            config.group, config.stream
        )),
        other => Err(format!("XGROUP CREATE answered {}", other.describe())),
    }
}

/// What every consumer of one run shares.
struct ConsumeRun<'a> {
    config: &'a XreadgroupConfig,
    timeline: Timeline,
    counters: LiveCounters,
    /// Entries the consumers are to read: what the producers acknowledged once they are done,
    /// `--messages` alone, else unknown.
    drain: Drain,
}

impl ConsumeRun<'_> {
    fn result(&self, totals: Vec<ConsumerTotals>, producers: Option<XaddResult>) -> XreadgroupResult {
        let mut sum = ConsumerTotals::default();
        for consumer in totals {
            sum.merge(consumer);
        }
        self.check_everything_read(sum.read_messages, producers.as_ref());
        let measured_s = self.timeline.measured_s(sum.last_read);
        let per_s = |value: u64| if measured_s > 0.0 { value as f64 / measured_s } else { 0.0 };
        XreadgroupResult {
            measured_s,
            messages: sum.window_messages,
            msgs_per_s: per_s(sum.window_messages),
            payload_mb_per_s: per_s(sum.window_payload_bytes) / 1e6,
            messages_read_total: sum.read_messages,
            messages_acked_total: sum.acked_messages,
            reads: sum.reads,
            empty_reads: sum.empty_reads,
            end_to_end_latency: (!sum.end_to_end.is_empty()).then(|| LatencySummary::of(&sum.end_to_end)),
            errors: self.counters.errors.load(Ordering::Relaxed),
            error_samples: self.counters.error_samples(),
            producers,
        }
    }

    /// With producers, the consumers read exactly what was acknowledged; alone with
    /// `--messages`, at least that many.
    fn check_everything_read(&self, read: u64, producers: Option<&XaddResult>) {
        let target = self.drain.target();
        match producers {
            Some(_) => {
                if let Some(mismatch) = self.drain.mismatch(read) {
                    self.counters.note_error(mismatch);
                }
            }
            None if target != TARGET_UNKNOWN && read < target => {
                self.counters.note_error(format!("only {read} of {target} entries came within the time allowed"))
            }
            _ => {}
        }
    }

    /// Whether consumers are done: everything due is read, the window is over (consumers
    /// alone, timed), or nothing new came for too long while entries are due.
    fn done(&self, last_progress: &mut LastProgress) -> bool {
        let window_over = self.timeline.send_until.is_some_and(|until| Instant::now() >= until);
        (self.config.producers.is_none() && window_over) || self.drain.done(last_progress)
    }

    /// One consumer: read, acknowledge with the next read, until the run is done or the
    /// connection breaks.
    fn consumer(&self, index: usize) -> ConsumerTotals {
        let mut totals = ConsumerTotals::default();
        let note = |error: &dyn std::fmt::Display| self.counters.note_error(format!("consumer {index}: {error}"));
        let mut connection = match RespConnection::connect(&self.config.target) {
            Ok(connection) => connection,
            Err(error) => {
                note(&error);
                return totals;
            }
        };
        let read_command = self.read_command(index);
        let mut read_ids: Vec<Vec<u8>> = Vec::new();
        let mut out = Vec::new();
        let mut last_progress = LastProgress::now();
        while !self.done(&mut last_progress) {
            out.clear();
            self.encode_xack(&mut out, &read_ids);
            out.extend_from_slice(&read_command);
            let exchange = connection.send(&out).and_then(|()| {
                let acked = if read_ids.is_empty() { None } else { Some(connection.read_reply()?) };
                Ok((acked, connection.read_reply()?))
            });
            let (acked, read) = match exchange {
                Ok(replies) => replies,
                Err(error) => {
                    note(&error);
                    return totals;
                }
            };
            if let Some(acked) = acked {
                self.count_xack(index, &mut totals, acked, read_ids.len());
            }
            read_ids.clear();
            match entries(read) {
                Ok(entries) => {
                    totals.count_read_call(entries.is_empty());
                    self.count_read(index, &mut totals, entries, &mut read_ids);
                }
                Err(error) => {
                    note(&error);
                    return totals;
                }
            }
        }
        if !read_ids.is_empty() {
            out.clear();
            self.encode_xack(&mut out, &read_ids);
            match connection.send(&out).and_then(|()| connection.read_reply()) {
                Ok(acked) => self.count_xack(index, &mut totals, acked, read_ids.len()),
                Err(error) => note(&error),
            }
        }
        totals
    }

    /// One JetStream consumer: pull, read what the pull brings as it comes, acknowledge it with
    /// the next pull, until the run is done or the connection breaks.
    fn nats_consumer(&self, index: usize) -> ConsumerTotals {
        let mut totals = ConsumerTotals::default();
        let note = |error: &dyn std::fmt::Display| self.counters.note_error(format!("consumer {index}: {error}"));
        let inbox = nats_wire::new_inbox();
        let connected = NatsConnection::connect(&self.config.target)
            .and_then(|mut connection| connection.subscribe(&inbox).map(|_sid| connection));
        let mut connection = match connected {
            Ok(connection) => connection,
            Err(error) => {
                note(&error);
                return totals;
            }
        };
        let mut read_acks: Vec<Vec<u8>> = Vec::new();
        let mut out = Vec::new();
        let mut last_progress = LastProgress::now();
        let config = self.config;
        while !self.done(&mut last_progress) {
            out.clear();
            encode_acks(&mut out, &mut read_acks, &mut totals);
            nats_wire::encode_pull(&mut out, &config.stream, &config.group, &inbox, config.count, config.block_ms);
            let pulled = connection.send(&out).map_err(|error| error.to_string());
            if let Err(error) = pulled.and_then(|()| self.pull(index, &mut connection, &mut totals, &mut read_acks)) {
                note(&error);
                return totals;
            }
        }
        out.clear();
        encode_acks(&mut out, &mut read_acks, &mut totals);
        if let Err(error) = connection.send(&out).and_then(|()| connection.flush()) {
            note(&error);
        }
        totals
    }

    /// Reads the messages of the pull just sent until it ends: its batch delivered, its
    /// request expired (status 408), or [`PULL_EXPIRY_GRACE`] past its expiry without either.
    /// Each group of messages one socket read brought counts as read together, as one
    /// XREADGROUP reply would.
    fn pull(
        &self,
        index: usize,
        connection: &mut NatsConnection,
        totals: &mut ConsumerTotals,
        read_acks: &mut Vec<Vec<u8>>,
    ) -> Result<(), String> {
        let expires = Instant::now() + Duration::from_millis(self.config.block_ms) + PULL_EXPIRY_GRACE;
        let mut delivered = 0;
        let mut ended = false;
        while !ended {
            let mut arrived = Vec::new();
            let mut next = connection.next_message(Some(expires)).map_err(|error| error.to_string())?;
            // nats-server 2.9 sometimes lets a partly delivered pull expire without its 408.
            ended |= next.is_none();
            while let Some(message) = next.take() {
                match message.status() {
                    Some((404 | 408, _)) => ended = true,
                    Some((100, _)) => {} // an idle heartbeat
                    Some((code, text)) => return Err(format!("a pull answered status {code} {text}")),
                    None => {
                        let payload_bytes = message.payload.len() as u64;
                        let sent_at_us = message.sent_at_us();
                        let Some(id) = message.reply else {
                            return Err(format!(
                                "a delivery without a reply subject to acknowledge: {}",
                                message.subject.escape_ascii()
                            ));
                        };
                        arrived.push(ReadEntry { id, sent_at_us, payload_bytes });
                        delivered += 1;
                        ended = delivered == self.config.count;
                    }
                }
                if !ended {
                    next = connection.buffered_message().map_err(|error| error.to_string())?;
                }
            }
            self.count_read(index, totals, arrived, read_acks);
        }
        totals.count_read_call(delivered == 0);
        Ok(())
    }

    fn read_command(&self, index: usize) -> Vec<u8> {
        let config = self.config;
        let (consumer, count, block_ms) =
            (format!("sluice-bench-{index}"), config.count.to_string(), config.block_ms.to_string());
        let mut command = Vec::new();
        encode_command(
            &mut command,
            &[
                b"XREADGROUP",
                b"GROUP",
                config.group.as_bytes(),
                consumer.as_bytes(),
                b"COUNT",
                count.as_bytes(),
                b"BLOCK",
                block_ms.as_bytes(),
                b"STREAMS",
                config.stream.as_bytes(),
                b">",
            ],
        );
        command
    }

    /// `XACK key group id ...` into `out`; nothing if there is nothing to acknowledge.
    fn encode_xack(&self, out: &mut Vec<u8>, ids: &[Vec<u8>]) {
        if ids.is_empty() {
            return;
        }
        let mut arguments: Vec<&[u8]> = vec![b"XACK", self.config.stream.as_bytes(), self.config.group.as_bytes()];
        arguments.extend(ids.iter().map(Vec::as_slice));
        encode_command(out, &arguments);
    }

    fn count_xack(&self, index: usize, totals: &mut ConsumerTotals, reply: Reply, ids: usize) {
        match reply {
            Reply::Integer(acked) if acked == ids as i64 => totals.acked_messages += ids as u64,
            other => self
                .counters
                .note_error(format!("consumer {index}: XACK of {ids} entries answered {}", other.describe())),
        }
    }

    fn count_read(&self, index: usize, totals: &mut ConsumerTotals, entries: Vec<ReadEntry>, ids: &mut Vec<Vec<u8>>) {
        let read_at = Instant::now();
        let read_at_us = epoch_us_now();
        let sent_after_warmup_us = self.timeline.epoch_us(self.timeline.warmup_end);
        if entries.is_empty() {
            return;
        }
        let read = entries.len() as u64;
        let payload_bytes: u64 = entries.iter().map(|entry| entry.payload_bytes).sum();
        let in_window = self.timeline.in_window(read_at);
        for entry in entries {
            if let Some(sent_at_us) = entry.sent_at_us.filter(|&sent_at_us| sent_at_us >= sent_after_warmup_us) {
                let latency = Duration::from_micros(read_at_us.saturating_sub(sent_at_us));
                record_latency(&mut totals.end_to_end, latency);
                self.counters.record_interval_latency(index, latency);
            }
            ids.push(entry.id);
        }
        totals.read_messages += read;
        if in_window {
            totals.window_messages += read;
            totals.window_payload_bytes += payload_bytes;
        }
        totals.last_read = totals.last_read.max(Some(read_at));
        self.drain.add_read(read);
        self.counters.add_acked(read, payload_bytes);
    }
}

/// The JetStream acknowledgements of everything in `read_acks` (their reply subjects), into
/// `out`, counted as sent.
fn encode_acks(out: &mut Vec<u8>, read_acks: &mut Vec<Vec<u8>>, totals: &mut ConsumerTotals) {
    for reply in read_acks.drain(..) {
        nats_wire::encode_ack(out, &reply);
        totals.acked_messages += 1;
    }
}

/// One entry of an XREADGROUP reply, as the run needs it.
#[derive(Debug, PartialEq)]
struct ReadEntry {
    id: Vec<u8>,
    /// Its `ts` field, if it has one (entries not written by `xadd` have none).
    sent_at_us: Option<u64>,
    /// Length of its `data` field.
    payload_bytes: u64,
}

/// The entries of an XREADGROUP reply (RESP2: `[[key, [[id, [field, value, ...]], ...]]]`, or
/// a null array when BLOCK timed out). An error reply is an error: it would repeat.
fn entries(reply: Reply) -> Result<Vec<ReadEntry>, RespError> {
    let unexpected =
        |what: &str, reply: &Reply| RespError::Protocol(format!("XREADGROUP {what}: {}", reply.describe()));
    let streams = match reply {
        Reply::Array(None) => return Ok(Vec::new()),
        Reply::Array(Some(streams)) => streams,
        Reply::Error(message) => return Err(RespError::Protocol(format!("XREADGROUP: {message}"))),
        other => return Err(unexpected("answered", &other)),
    };
    let mut found = Vec::new();
    for stream in streams {
        let Reply::Array(Some(mut key_and_entries)) = stream else { return Err(unexpected("stream", &stream)) };
        let Some(Reply::Array(Some(stream_entries))) = key_and_entries.pop() else {
            return Err(RespError::Protocol("XREADGROUP: a stream without entries".into()));
        };
        for entry in stream_entries {
            let Reply::Array(Some(mut id_and_fields)) = entry else { return Err(unexpected("entry", &entry)) };
            let fields = match id_and_fields.pop() {
                Some(Reply::Array(Some(fields))) => fields,
                _ => Vec::new(), // an entry trimmed away since: an ID without fields
            };
            let Some(Reply::Bulk(Some(id))) = id_and_fields.pop() else {
                return Err(RespError::Protocol("XREADGROUP: an entry without an ID".into()));
            };
            let payload_bytes = fields.chunks_exact(2).find_map(|pair| match pair {
                [Reply::Bulk(Some(name)), Reply::Bulk(Some(value))] if name == PAYLOAD_FIELD => Some(value.len()),
                _ => None,
            });
            found.push(ReadEntry {
                id,
                sent_at_us: sent_at_us(&fields),
                payload_bytes: payload_bytes.unwrap_or(0) as u64,
            });
        }
    }
    Ok(found)
}

/// What one consumer counted.
#[derive(Debug)]
struct ConsumerTotals {
    read_messages: u64,
    acked_messages: u64,
    window_messages: u64,
    window_payload_bytes: u64,
    reads: u64,
    empty_reads: u64,
    last_read: Option<Instant>,
    end_to_end: Histogram<u64>,
}

impl Default for ConsumerTotals {
    fn default() -> Self {
        Self {
            read_messages: 0,
            acked_messages: 0,
            window_messages: 0,
            window_payload_bytes: 0,
            reads: 0,
            empty_reads: 0,
            last_read: None,
            end_to_end: latency_histogram(),
        }
    }
}

impl ConsumerTotals {
    /// One XREADGROUP answered, or one pull ended.
    fn count_read_call(&mut self, empty: bool) {
        self.reads += 1;
        if empty {
            self.empty_reads += 1;
        }
    }

    fn merge(&mut self, other: ConsumerTotals) {
        self.read_messages += other.read_messages;
        self.acked_messages += other.acked_messages;
        self.window_messages += other.window_messages;
        self.window_payload_bytes += other.window_payload_bytes;
        self.reads += other.reads;
        self.empty_reads += other.empty_reads;
        self.last_read = self.last_read.max(other.last_read);
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.end_to_end.add(&other.end_to_end);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::load::resp_wire::parse_reply;

    fn parsed(bytes: &[u8]) -> Reply {
        parse_reply(bytes).unwrap().unwrap().0
    }

    #[test]
    fn entries_come_out_of_a_read_with_their_send_time_and_payload_size() {
        let reply = parsed(
            b"*1\r\n*2\r\n$5\r\nbench\r\n*2\r\n\
              *2\r\n$3\r\n1-0\r\n*4\r\n$2\r\nts\r\n$16\r\n0001700000000123\r\n$4\r\ndata\r\n$3\r\nabc\r\n\
              *2\r\n$3\r\n2-0\r\n*2\r\n$5\r\nother\r\n$1\r\nx\r\n",
        );
        assert_eq!(
            entries(reply).unwrap(),
            vec![
                ReadEntry { id: b"1-0".to_vec(), sent_at_us: Some(1_700_000_000_123), payload_bytes: 3 },
                ReadEntry { id: b"2-0".to_vec(), sent_at_us: None, payload_bytes: 0 },
            ]
        );
    }

    #[test]
    fn a_timed_out_read_is_empty_and_an_error_reply_is_an_error() {
        assert!(entries(parsed(b"*-1\r\n")).unwrap().is_empty());
        let error = entries(parsed(b"-NOGROUP No such key 'bench' or consumer group 'g'\r\n")).unwrap_err();
        assert!(error.to_string().contains("NOGROUP"), "{error}");
        assert!(entries(parsed(b":1\r\n")).is_err());
    }

    fn config() -> XreadgroupConfig {
        XreadgroupConfig {
            wire: Wire::Resp,
            target: "127.0.0.1:6379".into(),
            stream: "bench".into(),
            group: "group".into(),
            start_id: "$".into(),
            consumers: 2,
            count: 100,
            block_ms: 100,
            stop_after: StopAfter::Seconds(5.0),
            warmup_s: 1.0,
            producers: None,
            progress: false,
        }
    }

    #[test]
    fn nonsense_is_refused_by_name() {
        assert!(config().validate().is_ok());
        let cases = [
            (XreadgroupConfig { consumers: 0, ..config() }, "--consumers"),
            (XreadgroupConfig { count: 0, ..config() }, "--count"),
            (XreadgroupConfig { block_ms: READ_BLOCK_MS_MAX + 1, ..config() }, "--block-ms"),
            (XreadgroupConfig { group: String::new(), ..config() }, "--group"),
            (XreadgroupConfig { wire: Wire::Nats, start_id: "1-0".into(), ..config() }, "--start-id"),
        ];
        for (bad, flag) in cases {
            let message = bad.validate().unwrap_err();
            assert!(message.contains(flag), "{message:?} should name {flag}");
        }
    }

    #[test]
    fn with_producers_the_consumers_must_read_exactly_what_was_acknowledged() {
        let config = config();
        let run = ConsumeRun {
            config: &config,
            timeline: Timeline::new(config.stop_after, Duration::ZERO, 1),
            counters: LiveCounters::new(1),
            drain: Drain::new(10),
        };
        run.check_everything_read(9, Some(&xadd_result(10)));
        run.check_everything_read(10, Some(&xadd_result(10)));
        assert_eq!(run.counters.error_samples().len(), 1, "{:?}", run.counters.error_samples());
    }

    fn xadd_result(acked: u64) -> XaddResult {
        XaddResult {
            measured_s: 1.0,
            messages: acked,
            msgs_per_s: acked as f64,
            payload_mb_per_s: 0.0,
            messages_acked_total: acked,
            latency: None,
            schedule_lag_max_ms: None,
            errors: 0,
            failed_messages: 0,
            error_samples: Vec::new(),
        }
    }
}
