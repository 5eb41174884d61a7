//! The XADD run: `producers` connections to a RESP server (sluice or redis-server), each
//! pipelining up to `pipeline` pre-encoded XADDs to one stream; or, with [`Wire::Nats`], the
//! same load as JetStream publishes to a NATS server (each answered once stored), so one tool
//! measures Redis Streams and JetStream alike.
//!
//! One thread per connection does both halves, so a reply costs no thread hand-off: it writes
//! every command that is due in one write (each free pipeline slot in closed loop; those the
//! schedule has reached in open loop), then reads replies, which come in command order, and
//! takes every whole reply one read brought. Open loop waits for replies only until the next
//! send is due.
//!
//! Every entry carries its send time in its `ts` field (microseconds since the Unix epoch: the
//! write in closed loop, the intended send in open loop), which `xreadgroup` compares with its
//! own clock for the end-to-end latency (a JetStream message carries it as its `ts` header). A
//! reply is the new entry's ID (acknowledged: on disk with sluice, as `appendfsync` says with
//! Redis, as `sync_interval` says with JetStream) or an error, counted; any error makes the
//! command exit non-zero. The XADD latency is from the write (or the intended send) to the ID.
use std::collections::VecDeque;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::limits::{CONNECTIONS_MAX, MESSAGE_BYTES_MAX, PIPELINE_MAX};
use super::nats_wire::{self, NatsConnection, PreparedPublish};
use super::resp_wire::{PreparedXadd, Reply, RespConnection};
use super::stats::{latency_histogram, print_progress, record_latency, LatencySummary, LiveCounters};
use super::timeline::{sleep_until, StopAfter, Timeline};
use crate::filler_bytes;

/// Which front door the stream loads knock on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Wire {
    /// Redis Streams over RESP: XADD, XREADGROUP + XACK (sluice, redis-server).
    Resp,
    /// NATS JetStream: publishes answered once stored, a durable pull consumer with explicit
    /// acknowledgements (nats-server -js). The stream takes the subject of its own name.
    Nats,
}

impl Wire {
    pub fn name(self) -> &'static str {
        match self {
            Wire::Resp => "RESP",
            Wire::Nats => "NATS JetStream",
        }
    }

    /// What a producer's command is called in reports.
    pub fn produce_command(self) -> &'static str {
        match self {
            Wire::Resp => "XADD",
            Wire::Nats => "publish",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct XaddConfig {
    pub wire: Wire,
    /// Address of the RESP listener, or of the NATS server.
    pub target: String,
    pub stream: String,
    /// Connections.
    pub producers: usize,
    /// Size of each entry's `data` field.
    pub message_bytes: usize,
    /// Commands outstanding per connection.
    pub pipeline: usize,
    pub stop_after: StopAfter,
    pub warmup_s: f64,
    /// Open loop: entries per second over all connections. None: closed loop.
    pub rate_msgs_per_s: Option<f64>,
    /// Print the progress line every second.
    pub progress: bool,
}

impl XaddConfig {
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (self.producers >= 1 && self.producers <= CONNECTIONS_MAX, format!("--producers is 1..={CONNECTIONS_MAX}")),
            (self.message_bytes <= MESSAGE_BYTES_MAX, format!("--message-bytes is at most {MESSAGE_BYTES_MAX}")),
            ((1..=PIPELINE_MAX).contains(&self.pipeline), format!("--pipeline is 1..={PIPELINE_MAX}")),
            (!self.stream.is_empty(), "--stream is a key, not empty".to_string()),
            (self.warmup_s >= 0.0 && self.warmup_s.is_finite(), "--warmup-s is a non-negative number".to_string()),
            (
                self.rate_msgs_per_s.is_none_or(|rate| rate > 0.0 && rate.is_finite()),
                "--rate is a positive number of messages per second".to_string(),
            ),
            (self.stop_after.is_valid(), "--duration-s or --messages must be positive".to_string()),
        ];
        match checks.into_iter().find(|(valid, _)| !valid) {
            Some((_, message)) => Err(message),
            None => Ok(()),
        }
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_s)
    }

    /// Time between two commands of one connection in open loop.
    fn command_interval(&self) -> Option<Duration> {
        self.rate_msgs_per_s.map(|rate| Duration::from_secs_f64(self.producers as f64 / rate))
    }
}

/// What an XADD run measured.
#[derive(Debug, Clone, Serialize)]
pub struct XaddResult {
    /// Length of the measured window, in seconds.
    pub measured_s: f64,
    /// Entries acknowledged (answered with their ID) inside the measured window.
    pub messages: u64,
    pub msgs_per_s: f64,
    /// `data` bytes acknowledged per second, in 10^6 bytes.
    pub payload_mb_per_s: f64,
    /// Entries acknowledged over the whole run, warm-up and drain included: what the stream
    /// gained, if nobody else writes to it.
    pub messages_acked_total: u64,
    /// From the write (closed loop) or the intended send (open loop) to the ID, of the commands
    /// sent after the warm-up.
    pub latency: Option<LatencySummary>,
    /// How far behind its schedule the open-loop sender was at worst after the warm-up, in
    /// milliseconds (a full pipeline, or a client too slow for the rate).
    pub schedule_lag_max_ms: Option<f64>,
    /// Error replies plus broken connections.
    pub errors: u64,
    /// Commands not acknowledged: answered with an error, or outstanding on a broken connection.
    pub failed_messages: u64,
    pub error_samples: Vec<String>,
}

/// Runs the load and adds up what every connection saw.
pub fn run(config: &XaddConfig) -> Result<XaddResult, String> {
    config.validate()?;
    if config.wire == Wire::Nats {
        let mut connection = NatsConnection::connect(&config.target).map_err(|error| error.to_string())?;
        nats_wire::create_stream(&mut connection, &config.stream)?;
    }
    let run = XaddRun {
        config,
        timeline: Timeline::new(config.stop_after, config.warmup(), 1),
        counters: LiveCounters::new(config.producers),
    };
    let (stop_progress, progress_stopped) = mpsc::channel::<()>();
    let totals = thread::scope(|scope| {
        if config.progress {
            let (counters, started, warmup) = (&run.counters, run.timeline.started, config.warmup());
            scope.spawn(move || print_progress("xadd", counters, started, warmup, progress_stopped));
        }
        let connections: Vec<_> = (0..config.producers)
            .map(|index| {
                let run = &run;
                (index, scope.spawn(move || run.connection(index)))
            })
            .collect();
        let totals: Vec<ConnectionTotals> = connections
            .into_iter()
            .map(|(index, handle)| {
                handle.join().unwrap_or_else(|_| {
                    run.counters.note_error(format!("producer {index}: the connection thread panicked"));
                    ConnectionTotals::default()
                })
            })
            .collect();
        let _ = stop_progress.send(());
        totals
    });
    Ok(run.result(totals))
}

/// What every connection of one run shares.
struct XaddRun<'a> {
    config: &'a XaddConfig,
    timeline: Timeline,
    counters: LiveCounters,
}

impl XaddRun<'_> {
    fn result(&self, totals: Vec<ConnectionTotals>) -> XaddResult {
        let mut sum = ConnectionTotals::default();
        for connection in totals {
            sum.merge(connection);
        }
        let measured_s = self.timeline.measured_s(sum.last_ack);
        let per_s = |value: u64| if measured_s > 0.0 { value as f64 / measured_s } else { 0.0 };
        XaddResult {
            measured_s,
            messages: sum.window_messages,
            msgs_per_s: per_s(sum.window_messages),
            payload_mb_per_s: per_s(sum.window_messages * self.config.message_bytes as u64) / 1e6,
            messages_acked_total: sum.acked_messages,
            latency: (!sum.latency.is_empty()).then(|| LatencySummary::of(&sum.latency)),
            schedule_lag_max_ms: self.config.rate_msgs_per_s.map(|_| sum.schedule_lag_max.as_secs_f64() * 1e3),
            errors: self.counters.errors.load(std::sync::atomic::Ordering::Relaxed),
            failed_messages: sum.failed_messages,
            error_samples: self.counters.error_samples(),
        }
    }

    /// One connection: send what is due, read what is answered, until the run stops sending and
    /// every command is answered, or the connection breaks.
    fn connection(&self, index: usize) -> ConnectionTotals {
        let mut totals = ConnectionTotals::default();
        let payload = filler_bytes(self.config.message_bytes, index as u64 + 1);
        let (mut connection, prepared) = match Publisher::connect(self.config, &payload) {
            Ok(connected) => connected,
            Err(error) => {
                self.counters.note_error(format!("producer {index}: {error}"));
                return totals;
            }
        };
        let mut pipeline = Pipeline {
            prepared,
            outstanding: VecDeque::with_capacity(self.config.pipeline),
            out: Vec::new(),
            sent: 0,
            sending: true,
        };
        while let Some(read_until) = self.send_due(index, &mut pipeline, &mut totals) {
            if let Err(error) = connection.send(&pipeline.out) {
                return self.broken(index, &error, pipeline.outstanding.len(), totals);
            }
            if pipeline.outstanding.is_empty() {
                // Open loop, all answered: nothing to read before the next send.
                sleep_until(read_until.unwrap_or_else(Instant::now));
                continue;
            }
            let answer = match read_until {
                Some(deadline) => connection.answer_before(deadline),
                None => connection.answer().map(Some),
            };
            let mut answer = match answer {
                Ok(answer) => answer,
                Err(error) => return self.broken(index, &error, pipeline.outstanding.len(), totals),
            };
            // Every whole answer the read brought, without another system call.
            while let Some(outcome) = answer {
                let Some(latency_from) = pipeline.outstanding.pop_front() else {
                    let error = format!("an answer to no command: {outcome:?}");
                    return self.broken(index, &error, 0, totals);
                };
                totals.count_answer(self, index, outcome, latency_from);
                answer = match connection.buffered_answer() {
                    Ok(answer) => answer,
                    Err(error) => return self.broken(index, &error, pipeline.outstanding.len(), totals),
                };
            }
        }
        totals
    }

    /// Encodes into `pipeline.out` every command due now. Returns None when the connection is
    /// done (nothing more to send, nothing outstanding); else until when to read replies before
    /// sending again: None to wait for a reply (closed loop, or a full pipeline), or the next
    /// scheduled send.
    fn send_due(
        &self,
        index: usize,
        pipeline: &mut Pipeline,
        totals: &mut ConnectionTotals,
    ) -> Option<Option<Instant>> {
        let interval = self.config.command_interval();
        let schedule = |sent: u64| {
            interval.map(|interval| self.timeline.scheduled_send(interval, index, self.config.producers, sent))
        };
        pipeline.out.clear();
        let now = Instant::now();
        while pipeline.sending && pipeline.outstanding.len() < self.config.pipeline {
            let scheduled = schedule(pipeline.sent);
            if scheduled.is_some_and(|at| at > now) {
                break;
            }
            if !self.timeline.may_send(now) {
                pipeline.sending = false;
                break;
            }
            if let Some(at) = scheduled.filter(|&at| at >= self.timeline.warmup_end) {
                totals.schedule_lag_max = totals.schedule_lag_max.max(now.saturating_duration_since(at));
            }
            let latency_from = scheduled.unwrap_or(now);
            let sent_at_us = self.timeline.epoch_us(latency_from);
            pipeline.out.extend_from_slice(pipeline.prepared.command(sent_at_us, pipeline.sent));
            pipeline.outstanding.push_back(latency_from);
            pipeline.sent += 1;
        }
        if !pipeline.sending && pipeline.outstanding.is_empty() {
            return None;
        }
        let slot_free = pipeline.sending && pipeline.outstanding.len() < self.config.pipeline;
        Some(if slot_free { schedule(pipeline.sent) } else { None })
    }

    fn broken(
        &self,
        index: usize,
        error: &dyn std::fmt::Display,
        outstanding: usize,
        mut totals: ConnectionTotals,
    ) -> ConnectionTotals {
        self.counters.note_error(format!("producer {index}: {error}"));
        totals.failed_messages += outstanding as u64;
        totals
    }
}

/// What a producer's answer says: acknowledged, or why not.
type Answer = Result<(), String>;

/// One producer's connection, on either wire.
enum Publisher {
    Resp(RespConnection),
    /// `answered`: the sequence of the oldest publish not answered yet.
    Nats {
        connection: NatsConnection,
        answered: u64,
    },
}

impl Publisher {
    /// Connects, and prepares the command this connection will send over and over.
    fn connect(config: &XaddConfig, payload: &[u8]) -> Result<(Self, Prepared), String> {
        match config.wire {
            Wire::Resp => {
                let connection = RespConnection::connect(&config.target).map_err(|error| error.to_string())?;
                Ok((Self::Resp(connection), Prepared::Xadd(PreparedXadd::new(&config.stream, payload))))
            }
            Wire::Nats => {
                let mut connection = NatsConnection::connect(&config.target).map_err(|error| error.to_string())?;
                let inbox = nats_wire::new_inbox();
                connection.subscribe(&format!("{inbox}.*")).map_err(|error| error.to_string())?;
                let prepared = PreparedPublish::new(&config.stream, &format!("{inbox}."), payload);
                Ok((Self::Nats { connection, answered: 0 }, Prepared::Publish(prepared)))
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self {
            Self::Resp(connection) => connection.send(bytes).map_err(|error| error.to_string()),
            Self::Nats { connection, .. } => connection.send(bytes).map_err(|error| error.to_string()),
        }
    }

    /// The next answer, waiting up to the I/O timeout for it.
    fn answer(&mut self) -> Result<Answer, String> {
        loop {
            if let Some(answer) = self.read_answer(None)? {
                return Ok(answer);
            }
        }
    }

    /// The next answer if it arrives before `deadline`.
    fn answer_before(&mut self, deadline: Instant) -> Result<Option<Answer>, String> {
        self.read_answer(Some(deadline))
    }

    fn read_answer(&mut self, deadline: Option<Instant>) -> Result<Option<Answer>, String> {
        match self {
            Self::Resp(connection) => {
                let reply = match deadline {
                    Some(deadline) => connection.read_reply_before(deadline),
                    None => connection.read_reply().map(Some),
                };
                Ok(reply.map_err(|error| error.to_string())?.map(xadd_answer))
            }
            Self::Nats { connection, answered } => {
                let message = connection.next_message(deadline).map_err(|error| error.to_string())?;
                message.map(|message| nats_answer(&message, answered)).transpose()
            }
        }
    }

    /// An answer already read from the socket, if a whole one is there.
    fn buffered_answer(&mut self) -> Result<Option<Answer>, String> {
        match self {
            Self::Resp(connection) => {
                Ok(connection.buffered_reply().map_err(|error| error.to_string())?.map(xadd_answer))
            }
            Self::Nats { connection, answered } => {
                let message = connection.buffered_message().map_err(|error| error.to_string())?;
                message.map(|message| nats_answer(&message, answered)).transpose()
            }
        }
    }
}

/// An XADD's reply: the new entry's ID, or why there is none.
fn xadd_answer(reply: Reply) -> Answer {
    match reply {
        Reply::Bulk(Some(_id)) => Ok(()),
        Reply::Error(message) => Err(format!("XADD: {message}")),
        other => Err(format!("XADD answered {}, not an ID", other.describe())),
    }
}

/// JetStream's answer to the oldest outstanding publish (`answered`, counted on).
fn nats_answer(message: &nats_wire::Message, answered: &mut u64) -> Result<Answer, String> {
    let answer = nats_wire::publish_answer(message, *answered).map_err(|error| error.to_string())?;
    *answered += 1;
    Ok(answer)
}

/// The command a connection sends over and over, patched for each send.
#[derive(Debug, Clone)]
enum Prepared {
    Xadd(PreparedXadd),
    Publish(PreparedPublish),
}

impl Prepared {
    /// The bytes of send number `sequence` on its connection, carrying `sent_at_us`.
    fn command(&mut self, sent_at_us: u64, sequence: u64) -> &[u8] {
        match self {
            Self::Xadd(prepared) => prepared.command(sent_at_us),
            Self::Publish(prepared) => prepared.command(sent_at_us, sequence),
        }
    }

    #[cfg(test)]
    fn size_bytes(&self) -> usize {
        match self {
            Self::Xadd(prepared) => prepared.size_bytes(),
            Self::Publish(prepared) => prepared.size_bytes(),
        }
    }
}

/// One connection's commands: the encoded command, those outstanding (oldest first, each with
/// where its latency starts), and the bytes of the next write.
struct Pipeline {
    prepared: Prepared,
    outstanding: VecDeque<Instant>,
    out: Vec<u8>,
    sent: u64,
    sending: bool,
}

/// What one connection counted.
#[derive(Debug)]
struct ConnectionTotals {
    window_messages: u64,
    acked_messages: u64,
    failed_messages: u64,
    last_ack: Option<Instant>,
    schedule_lag_max: Duration,
    latency: Histogram<u64>,
}

impl Default for ConnectionTotals {
    fn default() -> Self {
        Self {
            window_messages: 0,
            acked_messages: 0,
            failed_messages: 0,
            last_ack: None,
            schedule_lag_max: Duration::ZERO,
            latency: latency_histogram(),
        }
    }
}

impl ConnectionTotals {
    fn merge(&mut self, other: ConnectionTotals) {
        self.window_messages += other.window_messages;
        self.acked_messages += other.acked_messages;
        self.failed_messages += other.failed_messages;
        self.last_ack = self.last_ack.max(other.last_ack);
        self.schedule_lag_max = self.schedule_lag_max.max(other.schedule_lag_max);
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    fn count_answer(&mut self, run: &XaddRun<'_>, index: usize, answer: Answer, latency_from: Instant) {
        let answered_at = Instant::now();
        match answer {
            Ok(()) => {
                run.counters.add_acked(1, run.config.message_bytes as u64);
                self.acked_messages += 1;
                if run.timeline.in_window(answered_at) {
                    self.window_messages += 1;
                }
                self.last_ack = self.last_ack.max(Some(answered_at));
                if latency_from >= run.timeline.warmup_end {
                    let latency = answered_at.saturating_duration_since(latency_from);
                    record_latency(&mut self.latency, latency);
                    run.counters.record_interval_latency(index, latency);
                }
            }
            Err(refusal) => {
                self.failed_messages += 1;
                run.counters.note_error(refusal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config() -> XaddConfig {
        XaddConfig {
            wire: Wire::Resp,
            target: "127.0.0.1:6379".into(),
            stream: "bench".into(),
            producers: 4,
            message_bytes: 100,
            pipeline: 16,
            stop_after: StopAfter::Seconds(5.0),
            warmup_s: 1.0,
            rate_msgs_per_s: None,
            progress: false,
        }
    }

    #[test]
    fn open_loop_spreads_the_rate_over_connections() {
        let open = XaddConfig { rate_msgs_per_s: Some(4_000.0), ..config() };
        assert_eq!(open.command_interval(), Some(Duration::from_millis(1)));
        assert_eq!(config().command_interval(), None);
    }

    #[test]
    fn nonsense_is_refused_by_name() {
        assert!(config().validate().is_ok());
        let cases = [
            (XaddConfig { pipeline: 0, ..config() }, "--pipeline"),
            (XaddConfig { pipeline: PIPELINE_MAX + 1, ..config() }, "--pipeline"),
            (XaddConfig { producers: 0, ..config() }, "--producers"),
            (XaddConfig { stream: String::new(), ..config() }, "--stream"),
            (XaddConfig { rate_msgs_per_s: Some(-1.0), ..config() }, "--rate"),
            (XaddConfig { stop_after: StopAfter::Seconds(0.0), ..config() }, "--duration-s"),
        ];
        for (bad, flag) in cases {
            let message = bad.validate().unwrap_err();
            assert!(message.contains(flag), "{message:?} should name {flag}");
        }
    }

    #[test]
    fn closed_loop_fills_the_pipeline_in_one_write_then_waits_for_a_reply() {
        let config = XaddConfig { stop_after: StopAfter::Messages(20), ..config() };
        let run = XaddRun {
            config: &config,
            timeline: Timeline::new(config.stop_after, Duration::ZERO, 1),
            counters: LiveCounters::new(config.producers),
        };
        let mut pipeline = Pipeline {
            prepared: Prepared::Xadd(PreparedXadd::new("bench", &[7; 100])),
            outstanding: VecDeque::new(),
            out: Vec::new(),
            sent: 0,
            sending: true,
        };
        let mut totals = ConnectionTotals::default();
        assert_eq!(run.send_due(0, &mut pipeline, &mut totals), Some(None), "wait for a reply");
        assert_eq!(pipeline.outstanding.len(), 16);
        assert_eq!(pipeline.out.len(), 16 * pipeline.prepared.size_bytes());
        assert_eq!(run.send_due(0, &mut pipeline, &mut totals), Some(None));
        assert!(pipeline.out.is_empty(), "a full pipeline sends nothing");
        pipeline.outstanding.drain(..10);
        assert_eq!(run.send_due(0, &mut pipeline, &mut totals), Some(None));
        assert_eq!(pipeline.out.len(), 4 * pipeline.prepared.size_bytes(), "only 20 messages in all");
        assert!(!pipeline.sending);
        pipeline.outstanding.clear();
        assert_eq!(run.send_due(0, &mut pipeline, &mut totals), None, "all sent and answered");
    }

    #[test]
    fn error_replies_are_counted_and_ids_acknowledge() {
        let config = config();
        let run = XaddRun {
            config: &config,
            timeline: Timeline::new(config.stop_after, Duration::ZERO, 1),
            counters: LiveCounters::new(config.producers),
        };
        let mut totals = ConnectionTotals::default();
        let sent = Instant::now();
        totals.count_answer(&run, 0, xadd_answer(Reply::Bulk(Some(b"1-0".to_vec()))), sent);
        totals.count_answer(&run, 0, xadd_answer(Reply::Error("ERR invalid stream key".into())), sent);
        totals.count_answer(&run, 0, xadd_answer(Reply::Integer(3)), sent);
        assert_eq!((totals.acked_messages, totals.window_messages, totals.failed_messages), (1, 1, 2));
        assert_eq!(totals.latency.len(), 1);
        let result = run.result(vec![totals]);
        assert_eq!(result.errors, 2);
        assert_eq!(result.error_samples[0], "XADD: ERR invalid stream key");
        assert!(result.error_samples[1].contains("Integer(3)"), "{:?}", result.error_samples);
    }
}
