//! Parsing RESP commands the way a connection's reader does (`resp::read_commands`): the bytes
//! read are appended to the connection's buffer, `command::next_command` cuts frames off it
//! (`redis-protocol`'s decoder) as `command::Args`, whose name picks the command. Throughput is
//! in commands.
//!
//! - `xadd_pipeline_64x100B`: 64 pipelined `XADD stream * payload <100 bytes>` in one read.
//! - `xreadgroup`: one `XREADGROUP GROUP workers worker-1 COUNT 100 BLOCK 2000 STREAMS stream >`.
use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_bench::filler_bytes;
use sluice_bench::load::resp_wire::encode_command;
use sluice_server::resp::command::next_command;

const PIPELINED_XADDS: usize = 64;
const XADD_VALUE_BYTES: usize = 100;

fn xadd_pipeline() -> Vec<u8> {
    let mut buffer = Vec::new();
    for index in 0..PIPELINED_XADDS {
        let value = filler_bytes(XADD_VALUE_BYTES, index as u64 + 1);
        encode_command(&mut buffer, &[b"XADD", b"stream", b"*", b"payload", &value]);
    }
    buffer
}

fn xreadgroup() -> Vec<u8> {
    let mut buffer = Vec::new();
    let words: [&[u8]; 11] = [
        b"XREADGROUP",
        b"GROUP",
        b"workers",
        b"worker-1",
        b"COUNT",
        b"100",
        b"BLOCK",
        b"2000",
        b"STREAMS",
        b"stream",
        b">",
    ];
    encode_command(&mut buffer, &words);
    buffer
}

/// Appends `read` to an empty connection buffer and parses every command in it; returns how
/// many there were and the name of the last.
fn parse_commands(read: &[u8]) -> (usize, String) {
    let mut buffer = BytesMut::with_capacity(read.len());
    buffer.extend_from_slice(read);
    let mut commands = 0;
    let mut last_name = String::new();
    while let Some(command) = next_command(&mut buffer).expect("well-formed RESP") {
        let mut args = command.expect("an array of bulk strings");
        last_name = args.name().to_string();
        black_box(args.next_word());
        commands += 1;
    }
    assert!(buffer.is_empty(), "every command parsed");
    (commands, last_name)
}

fn resp_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("resp_parse");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    for (name, read, commands, command_name) in [
        ("xadd_pipeline_64x100B", xadd_pipeline(), PIPELINED_XADDS, "xadd"),
        ("xreadgroup", xreadgroup(), 1, "xreadgroup"),
    ] {
        assert_eq!(parse_commands(&read), (commands, command_name.to_string()));
        group.throughput(Throughput::Elements(commands as u64));
        group.bench_function(name, |bencher| bencher.iter(|| parse_commands(black_box(&read))));
    }
    group.finish();
}

criterion_group!(benches, resp_parse);
criterion_main!(benches);
