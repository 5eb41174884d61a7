//! The produce run: `producers` connections, each pipelining pre-encoded Produce requests.
//!
//! Per connection, a sender thread writes requests and a receiver thread reads the answers,
//! which the broker sends in request order. The sender hands the receiver what it sent (a
//! [`Sent`]) through a channel *before* writing, and takes one of `in_flight` slots that the
//! receiver gives back when the answer arrives: so never more than `in_flight` requests are
//! outstanding, and every answer is matched by correlation id to the request it answers.
//!
//! Each request carries one batch of `records_per_batch` records for one partition of one
//! topic (with `topics` above 1, `<topic>-0`, `<topic>-1`, ...); a connection cycles through
//! every partition of every topic, starting at its own index so connections spread.
//!
//! Timeline ([`super::timeline`]): everything acknowledged after `warmup` counts; in a timed
//! run sending stops at `warmup + duration` and only answers that arrive before then count
//! towards throughput. Latency is recorded for every request sent after the warm-up, answered
//! in time or not. Closed loop, a request's latency starts when it is written; open loop (`rate`), it starts
//! when the schedule said it should have been written, so waiting for a free slot counts.
//!
//! With `consumers`, connections that follow the topic from its end offsets read what the
//! producers write, alongside ([`super::follow`]), and every batch carries its send time for
//! their end-to-end latency.
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use kafka_protocol::messages::ProduceRequest;
use serde::Serialize;

use super::admin;
use super::follow::{FollowResult, FollowerTotals, Followers};
use super::limits::{
    CONNECTIONS_MAX, IN_FLIGHT_MAX, MESSAGE_BYTES_MAX, PARTITIONS_MAX, PREPARED_REQUEST_BYTES_MAX, PRODUCE_VERSION,
    RECORDS_PER_BATCH_MAX, TOPICS_MAX,
};
use super::stats::{latency_histogram, print_progress, record_latency, LatencySummary, LiveCounters};
pub use super::timeline::StopAfter;
use super::timeline::{sleep_until, Timeline};
use super::wire::{
    self, decode_response, error_name, produce_error_code, read_frame, ClientError, FrameBuffer, PreparedProduce,
};
use crate::{now_ms, record_batch_sized};

#[derive(Debug, Clone, Serialize)]
pub struct ProduceConfig {
    pub bootstrap: String,
    /// The topic, or with `topics` above 1 the prefix of `<topic>-0` ... `<topic>-<topics - 1>`.
    pub topic: String,
    pub topics: usize,
    /// Partitions of each topic created.
    pub partitions: i32,
    pub producers: usize,
    pub message_bytes: usize,
    pub records_per_batch: usize,
    /// 0, 1 or -1 (all).
    pub acks: i16,
    pub in_flight: usize,
    pub stop_after: StopAfter,
    pub warmup_s: f64,
    /// Open loop: messages per second over all connections. None: closed loop.
    pub rate_msgs_per_s: Option<f64>,
    /// Connections that follow the topic while it is written, for end-to-end latency (0: none).
    pub consumers: usize,
    /// Print the progress line every second.
    pub progress: bool,
}

impl ProduceConfig {
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (self.producers >= 1 && self.producers <= CONNECTIONS_MAX, format!("--producers is 1..={CONNECTIONS_MAX}")),
            (
                self.partitions >= 1 && self.partitions <= PARTITIONS_MAX,
                format!("--partitions is 1..={PARTITIONS_MAX}"),
            ),
            ((1..=TOPICS_MAX).contains(&self.topics), format!("--topics is 1..={TOPICS_MAX}")),
            (self.message_bytes <= MESSAGE_BYTES_MAX, format!("--message-bytes is at most {MESSAGE_BYTES_MAX}")),
            (
                (1..=RECORDS_PER_BATCH_MAX).contains(&self.records_per_batch),
                format!("--records-per-batch is 1..={RECORDS_PER_BATCH_MAX}"),
            ),
            (matches!(self.acks, -1..=1), "--acks is 0, 1, -1 or all".to_string()),
            ((1..=IN_FLIGHT_MAX).contains(&self.in_flight), format!("--in-flight is 1..={IN_FLIGHT_MAX}")),
            (self.warmup_s >= 0.0 && self.warmup_s.is_finite(), "--warmup-s is a non-negative number".to_string()),
            (
                self.rate_msgs_per_s.is_none_or(|rate| rate > 0.0 && rate.is_finite()),
                "--rate is a positive number of messages per second".to_string(),
            ),
            (self.stop_after.is_valid(), "--duration-s or --messages must be positive".to_string()),
            (self.consumers <= CONNECTIONS_MAX, format!("--consumers is 0..={CONNECTIONS_MAX}")),
        ];
        match checks.into_iter().find(|(valid, _)| !valid) {
            Some((_, message)) => Err(message),
            None => Ok(()),
        }
    }

    fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_s)
    }

    /// The topics the run writes.
    pub fn topic_names(&self) -> Vec<String> {
        admin::topic_names(&self.topic, self.topics)
    }

    /// Time between two requests of one connection in open loop.
    fn request_interval(&self) -> Option<Duration> {
        self.rate_msgs_per_s
            .map(|rate| Duration::from_secs_f64(self.records_per_batch as f64 * self.producers as f64 / rate))
    }
}

/// What a produce run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ProduceResult {
    /// Partitions written, over all topics (a topic may have existed with another count).
    pub partitions: i32,
    /// Length of the measured window, in seconds.
    pub measured_s: f64,
    /// Messages acknowledged inside the measured window.
    pub messages: u64,
    pub msgs_per_s: f64,
    /// Record values acknowledged per second, in 10^6 bytes.
    pub payload_mb_per_s: f64,
    /// Record batches (what the broker writes to its log) acknowledged per second, 10^6 bytes.
    pub log_mb_per_s: f64,
    /// Messages acknowledged over the whole run, warm-up and drain included.
    pub messages_acked_total: u64,
    /// Latency from send (closed loop) or intended send (open loop) to acknowledgement, of the
    /// requests sent after the warm-up. None with acks=0: the broker does not answer.
    pub latency: Option<LatencySummary>,
    /// How far behind its schedule the open-loop sender was at worst after the warm-up, in
    /// milliseconds (waiting for a free in-flight slot, or a client too slow for the rate).
    pub schedule_lag_max_ms: Option<f64>,
    /// Partition errors plus broken connections.
    pub errors: u64,
    pub failed_messages: u64,
    pub error_samples: Vec<String>,
    /// What the consumers that followed the topic read, with `consumers`.
    pub consumers: Option<FollowResult>,
}

/// Why a run could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProduceError {
    Config(String),
    Setup(ClientError),
}

impl std::fmt::Display for ProduceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(message) => write!(f, "{message}"),
            Self::Setup(error) => write!(f, "setting up the topic: {error}"),
        }
    }
}

impl std::error::Error for ProduceError {}

/// Creates the topic, runs the load, and adds up what every connection saw.
pub fn run(config: &ProduceConfig) -> Result<ProduceResult, ProduceError> {
    config.validate().map_err(ProduceError::Config)?;
    let mut setup = wire::Connection::connect(&config.bootstrap).map_err(ProduceError::Setup)?;
    let mut targets = Vec::new();
    for topic in config.topic_names() {
        let partitions = admin::ensure_topic(&mut setup, &topic, config.partitions).map_err(ProduceError::Setup)?;
        if partitions != config.partitions {
            eprintln!("note: topic {topic} already exists with {partitions} partitions; using them all");
        }
        targets.extend((0..partitions).map(|partition| Target { topic: topic.clone(), partition }));
    }
    let prepared = prepare_requests(config, &targets)?;
    let run = RunContext::new(config, targets);
    let followers = (config.consumers > 0)
        .then(|| Followers::new(&config.bootstrap, &run.targets, config.consumers, &run.timeline))
        .transpose()
        .map_err(ProduceError::Setup)?;
    let (stop_progress, progress_stopped) = mpsc::channel::<()>();
    let (totals, followed) = thread::scope(|scope| {
        if config.progress {
            let (counters, started, warmup) = (&run.counters, run.timeline.started, config.warmup());
            scope.spawn(move || print_progress("produce", counters, started, warmup, progress_stopped));
        }
        let consumers: Vec<_> = followers
            .iter()
            .flat_map(|followers| (0..config.consumers).map(move |index| (followers, index)))
            .map(|(followers, index)| scope.spawn(move || followers.follow(index)))
            .collect();
        let connections: Vec<_> = (0..config.producers)
            .map(|index| {
                let (run, prepared) = (&run, prepared.clone());
                scope.spawn(move || run_connection(index, run, prepared))
            })
            .collect();
        let totals: Vec<ConnectionTotals> = connections
            .into_iter()
            .map(|handle| handle.join().unwrap_or_else(|_| ConnectionTotals::panicked()))
            .collect();
        let followed = followers.as_ref().map(|followers| {
            followers.producers_done(run.counters.messages.load(Ordering::Relaxed));
            let totals: Vec<FollowerTotals> = consumers
                .into_iter()
                .map(|handle| {
                    handle.join().unwrap_or_else(|_| {
                        followers.counters.note_error("a consumer thread panicked".into());
                        FollowerTotals::default()
                    })
                })
                .collect();
            followers.result(totals)
        });
        let _ = stop_progress.send(());
        (totals, followed)
    });
    let mut result = run.result(totals);
    result.consumers = followed;
    Ok(result)
}

/// A partition of a topic the run writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub topic: String,
    pub partition: i32,
}

/// One Produce request per partition of every topic, encoded once, shared out to every
/// connection; in the order of `targets`.
fn prepare_requests(config: &ProduceConfig, targets: &[Target]) -> Result<Vec<PreparedProduce>, ProduceError> {
    let batch = Bytes::from(record_batch_sized(config.records_per_batch, config.message_bytes, now_ms()));
    let total_bytes = batch.len().saturating_mul(targets.len()).saturating_mul(config.producers);
    if total_bytes > PREPARED_REQUEST_BYTES_MAX {
        return Err(ProduceError::Config(format!(
            "{} producers x {} partitions x {} byte batches exceed the {PREPARED_REQUEST_BYTES_MAX} bytes \
             of pre-encoded requests allowed; use fewer or smaller",
            config.producers,
            targets.len(),
            batch.len()
        )));
    }
    targets
        .iter()
        .map(|Target { topic, partition }| {
            let request = PreparedProduce::new(topic, *partition, config.acks, batch.clone(), PRODUCE_VERSION);
            // Followers measure end to end from the send time each batch carries.
            let request = match config.consumers {
                0 => request,
                _ => request.and_then(|request| request.carrying_send_time(&batch)),
            };
            request.map_err(ProduceError::Setup)
        })
        .collect()
}

/// What every connection of one run shares.
struct RunContext<'a> {
    config: &'a ProduceConfig,
    /// Every partition written, in the order of the prepared requests.
    targets: Vec<Target>,
    timeline: Timeline,
    /// Record values and whole batch of one request, in bytes.
    payload_bytes_per_request: u64,
    log_bytes_per_request: u64,
    counters: LiveCounters,
}

impl<'a> RunContext<'a> {
    fn new(config: &'a ProduceConfig, targets: Vec<Target>) -> Self {
        assert!(!targets.is_empty(), "a topic has partitions");
        let batch_bytes = record_batch_sized(config.records_per_batch, config.message_bytes, 0).len();
        Self {
            config,
            targets,
            timeline: Timeline::new(config.stop_after, config.warmup(), config.records_per_batch as u64),
            payload_bytes_per_request: (config.records_per_batch * config.message_bytes) as u64,
            log_bytes_per_request: batch_bytes as u64,
            counters: LiveCounters::new(config.producers),
        }
    }

    /// Whether another request may go out at `now`.
    fn may_send(&self, now: Instant) -> bool {
        self.timeline.may_send(now)
    }

    /// Whether an answer arriving at `acked_at` counts towards throughput.
    fn in_window(&self, acked_at: Instant) -> bool {
        self.timeline.in_window(acked_at)
    }

    fn note_error(&self, description: String) {
        self.counters.note_error(description);
    }

    fn result(&self, totals: Vec<ConnectionTotals>) -> ProduceResult {
        let mut sum = ConnectionTotals::default();
        for connection in totals {
            sum.merge(connection);
        }
        let measured_s = self.timeline.measured_s(sum.last_ack);
        let per_s = |value: u64| if measured_s > 0.0 { value as f64 / measured_s } else { 0.0 };
        ProduceResult {
            partitions: self.targets.len() as i32,
            measured_s,
            messages: sum.window_messages,
            msgs_per_s: per_s(sum.window_messages),
            payload_mb_per_s: per_s(sum.window_payload_bytes) / 1e6,
            log_mb_per_s: per_s(sum.window_log_bytes) / 1e6,
            messages_acked_total: self.counters.messages.load(Ordering::Relaxed),
            latency: (self.config.acks != 0 && !sum.latency.is_empty()).then(|| LatencySummary::of(&sum.latency)),
            schedule_lag_max_ms: self.config.rate_msgs_per_s.map(|_| sum.schedule_lag_max.as_secs_f64() * 1e3),
            errors: self.counters.errors.load(Ordering::Relaxed),
            failed_messages: sum.failed_messages,
            error_samples: self.counters.error_samples(),
            consumers: None,
        }
    }
}

/// What one connection counted.
#[derive(Debug)]
struct ConnectionTotals {
    window_messages: u64,
    window_payload_bytes: u64,
    window_log_bytes: u64,
    failed_messages: u64,
    last_ack: Option<Instant>,
    schedule_lag_max: Duration,
    latency: Histogram<u64>,
}

impl Default for ConnectionTotals {
    fn default() -> Self {
        Self {
            window_messages: 0,
            window_payload_bytes: 0,
            window_log_bytes: 0,
            failed_messages: 0,
            last_ack: None,
            schedule_lag_max: Duration::ZERO,
            latency: latency_histogram(),
        }
    }
}

impl ConnectionTotals {
    fn panicked() -> Self {
        eprintln!("error: a connection thread panicked");
        Self::default()
    }

    fn merge(&mut self, other: ConnectionTotals) {
        self.window_messages += other.window_messages;
        self.window_payload_bytes += other.window_payload_bytes;
        self.window_log_bytes += other.window_log_bytes;
        self.failed_messages += other.failed_messages;
        self.last_ack = self.last_ack.max(other.last_ack);
        self.schedule_lag_max = self.schedule_lag_max.max(other.schedule_lag_max);
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    fn count_acked(&mut self, run: &RunContext<'_>, acked_at: Instant) {
        let messages = run.config.records_per_batch as u64;
        run.counters.add_acked(messages, run.payload_bytes_per_request);
        if run.in_window(acked_at) {
            self.window_messages += messages;
            self.window_payload_bytes += run.payload_bytes_per_request;
            self.window_log_bytes += run.log_bytes_per_request;
        }
        self.last_ack = self.last_ack.max(Some(acked_at));
    }
}

/// A request written and not yet answered, as the receiver needs to know it.
#[derive(Debug, Clone, Copy)]
struct Sent {
    correlation_id: i32,
    /// Which of the run's targets it wrote to.
    target: usize,
    /// Where its latency starts: the write (closed loop) or the schedule (open loop).
    latency_from: Instant,
}

/// At most `capacity` requests outstanding on one connection.
#[derive(Debug)]
struct InFlightSlots {
    taken: Mutex<usize>,
    freed: Condvar,
    capacity: usize,
    /// Set when the connection broke: nobody waits for a slot any more.
    broken: AtomicBool,
}

impl InFlightSlots {
    fn new(capacity: usize) -> Self {
        Self { taken: Mutex::new(0), freed: Condvar::new(), capacity, broken: AtomicBool::new(false) }
    }

    /// Waits for a free slot; false if the connection broke meanwhile.
    fn acquire(&self) -> bool {
        let Ok(mut taken) = self.taken.lock() else { return false };
        while *taken >= self.capacity && !self.broken.load(Ordering::Relaxed) {
            taken = match self.freed.wait(taken) {
                Ok(taken) => taken,
                Err(_) => return false,
            };
        }
        *taken += 1;
        !self.broken.load(Ordering::Relaxed)
    }

    fn release(&self) {
        if let Ok(mut taken) = self.taken.lock() {
            debug_assert!(*taken > 0, "released a slot nobody took");
            *taken = taken.saturating_sub(1);
        }
        self.freed.notify_one();
    }

    fn break_connection(&self) {
        self.broken.store(true, Ordering::Relaxed);
        let _guard = self.taken.lock();
        self.freed.notify_all();
    }
}

fn run_connection(index: usize, run: &RunContext<'_>, prepared: Vec<PreparedProduce>) -> ConnectionTotals {
    let stream = match wire::connect(&run.config.bootstrap) {
        Ok(stream) => stream,
        Err(error) => {
            run.note_error(format!("producer {index}: {error}"));
            return ConnectionTotals::default();
        }
    };
    if run.config.acks == 0 {
        return send_loop(index, run, stream, prepared, None);
    }
    let reader = match stream.try_clone() {
        Ok(reader) => reader,
        Err(source) => {
            run.note_error(format!("producer {index}: {}", ClientError::Io { doing: "cloning the socket", source }));
            return ConnectionTotals::default();
        }
    };
    let slots = InFlightSlots::new(run.config.in_flight);
    let (sent_sender, sent_receiver) = mpsc::channel::<Sent>();
    thread::scope(|scope| {
        let receiver = scope.spawn(|| receive_loop(index, run, reader, sent_receiver, &slots));
        let mut totals = send_loop(index, run, stream, prepared, Some((&slots, sent_sender)));
        match receiver.join() {
            Ok(received) => totals.merge(received),
            Err(_) => totals.merge(ConnectionTotals::panicked()),
        }
        totals
    })
}

/// Writes requests until the run says stop or the connection breaks. With acks=0 (no
/// `pipeline`) a request counts as acknowledged once written.
fn send_loop(
    index: usize,
    run: &RunContext<'_>,
    mut stream: TcpStream,
    mut prepared: Vec<PreparedProduce>,
    pipeline: Option<(&InFlightSlots, mpsc::Sender<Sent>)>,
) -> ConnectionTotals {
    let mut totals = ConnectionTotals::default();
    let interval = run.config.request_interval();
    let mut next_partition = index % prepared.len();
    for request_index in 0u64.. {
        let scheduled =
            interval.map(|interval| run.timeline.scheduled_send(interval, index, run.config.producers, request_index));
        if let Some(at) = scheduled {
            sleep_until(at);
            if at >= run.timeline.warmup_end {
                totals.schedule_lag_max = totals.schedule_lag_max.max(Instant::now().saturating_duration_since(at));
            }
        }
        if !run.may_send(Instant::now()) {
            break;
        }
        let correlation_id = (request_index % i32::MAX as u64) as i32;
        let request = &mut prepared[next_partition];
        if let Some((slots, _)) = &pipeline {
            if !slots.acquire() {
                break;
            }
        }
        let latency_from = scheduled.unwrap_or_else(Instant::now);
        if let Some((_, sent)) = &pipeline {
            if sent.send(Sent { correlation_id, target: next_partition, latency_from }).is_err() {
                break; // the receiver stopped: the connection broke
            }
        }
        request.stamp_send_time(run.timeline.epoch_us(latency_from));
        if let Err(source) = stream.write_all(request.frame(correlation_id)) {
            run.note_error(format!(
                "producer {index}: {}",
                ClientError::Io { doing: "sending a produce request", source }
            ));
            break;
        }
        if pipeline.is_none() {
            totals.count_acked(run, Instant::now());
        }
        next_partition = (next_partition + 1) % prepared.len();
    }
    totals
}

/// Reads answers in order until the sender is done and everything it sent is answered, or the
/// connection breaks.
fn receive_loop(
    index: usize,
    run: &RunContext<'_>,
    mut stream: TcpStream,
    sent_requests: mpsc::Receiver<Sent>,
    slots: &InFlightSlots,
) -> ConnectionTotals {
    let mut totals = ConnectionTotals::default();
    let responses = FrameBuffer::default();
    while let Ok(sent) = sent_requests.recv() {
        let target = &run.targets[sent.target];
        let error_code = read_frame(&mut stream, &responses)
            .and_then(|frame| decode_response::<ProduceRequest>(frame, PRODUCE_VERSION, sent.correlation_id))
            .and_then(|response| produce_error_code(&response, &target.topic, target.partition));
        let acked_at = Instant::now();
        slots.release();
        match error_code {
            Ok(0) => {
                totals.count_acked(run, acked_at);
                if sent.latency_from >= run.timeline.warmup_end {
                    let latency = acked_at.saturating_duration_since(sent.latency_from);
                    record_latency(&mut totals.latency, latency);
                    run.counters.record_interval_latency(index, latency);
                }
            }
            Ok(code) => {
                totals.failed_messages += run.config.records_per_batch as u64;
                run.note_error(format!("{}/{}: {}", target.topic, target.partition, error_name(code)));
            }
            Err(error) => {
                run.note_error(format!("producer {index}: {error}"));
                slots.break_connection();
                break;
            }
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config() -> ProduceConfig {
        ProduceConfig {
            bootstrap: "127.0.0.1:9092".into(),
            topic: "bench".into(),
            topics: 1,
            partitions: 2,
            producers: 4,
            message_bytes: 1024,
            records_per_batch: 16,
            acks: -1,
            in_flight: 8,
            stop_after: StopAfter::Seconds(10.0),
            warmup_s: 2.0,
            rate_msgs_per_s: None,
            consumers: 0,
            progress: false,
        }
    }

    #[test]
    fn open_loop_spreads_the_rate_over_connections_and_batches() {
        let open = ProduceConfig { rate_msgs_per_s: Some(64_000.0), ..config() };
        // 64k msgs/s over 4 connections of 16-record requests: 1000 requests/s each.
        assert_eq!(open.request_interval(), Some(Duration::from_millis(1)));
        assert_eq!(config().request_interval(), None);
    }

    #[test]
    fn nonsense_is_refused_by_name() {
        assert!(config().validate().is_ok());
        let cases = [
            (ProduceConfig { acks: 2, ..config() }, "--acks"),
            (ProduceConfig { in_flight: 0, ..config() }, "--in-flight"),
            (ProduceConfig { producers: 0, ..config() }, "--producers"),
            (ProduceConfig { rate_msgs_per_s: Some(0.0), ..config() }, "--rate"),
            (ProduceConfig { stop_after: StopAfter::Messages(0), ..config() }, "--messages"),
            (ProduceConfig { topics: 0, ..config() }, "--topics"),
            (ProduceConfig { consumers: CONNECTIONS_MAX + 1, ..config() }, "--consumers"),
        ];
        for (bad, flag) in cases {
            let message = bad.validate().unwrap_err();
            assert!(message.contains(flag), "{message:?} should name {flag}");
        }
    }

    #[test]
    fn several_topics_are_named_from_the_prefix_and_one_is_the_topic_itself() {
        assert_eq!(config().topic_names(), ["bench"]);
        assert_eq!(ProduceConfig { topics: 3, ..config() }.topic_names(), ["bench-0", "bench-1", "bench-2"]);
    }

    #[test]
    fn a_run_bounded_by_messages_hands_out_whole_batches() {
        let bounded = ProduceConfig { stop_after: StopAfter::Messages(33), ..config() };
        let run = RunContext::new(&bounded, vec![Target { topic: "bench".into(), partition: 0 }]);
        let granted = (0..10).filter(|_| run.may_send(Instant::now())).count();
        assert_eq!(granted, 3, "33 messages in 16-record batches are 3 requests");
    }

    #[test]
    fn slots_bound_the_requests_in_flight_and_a_broken_connection_frees_the_waiter() {
        let slots = InFlightSlots::new(2);
        assert!(slots.acquire());
        assert!(slots.acquire());
        thread::scope(|scope| {
            let waiter = scope.spawn(|| slots.acquire());
            thread::sleep(Duration::from_millis(50));
            assert!(!waiter.is_finished(), "a third request must wait for an answer");
            slots.release();
            assert!(waiter.join().unwrap());
            let waiter = scope.spawn(|| slots.acquire());
            slots.break_connection();
            assert!(!waiter.join().unwrap());
        });
    }
}
