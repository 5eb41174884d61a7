//! RESP connections moving between shards (`balance`). With both thresholds at 0, every shard
//! that did any work moves one of its connections to a shard that did no more, every 100 ms,
//! each connection at most once a second: connections keep moving while their clients
//! pipeline. Each must keep its session (client id, name) and answer every command, in order,
//! including a command whose first half arrived before the move and the rest after it. Under
//! a pipelined load (`sluice-bench xadd`), connections that keep moving lose and repeat no
//! entry: the stream holds exactly what was acknowledged.
use std::io::Write;
use std::time::{Duration, Instant};

use sluice_tests::{acknowledged_total, resp, sluice_bench_report, unique_topic, Broker};

const CONNECTIONS: usize = 4;
const XADDS_PER_ROUND: usize = 24;
/// Long enough for every connection to move a few times (each may move once a second).
const MOVES_WAIT: Duration = Duration::from_secs(30);

fn always_moving() -> Broker {
    Broker::builder()
        .shards(2)
        .args(["--connection-balance-busy-permille", "0", "--connection-balance-gap-permille", "0"])
        .start()
}

fn client_info_field(info: &str, field: &str) -> String {
    let prefix = format!("{field}=");
    info.split_whitespace()
        .find_map(|pair| pair.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {field} in CLIENT INFO: {info}"))
        .to_string()
}

#[test]
fn connections_moved_between_shards_keep_their_session_and_every_reply() {
    let broker = always_moving();
    let address = broker.resp_addr();
    let mut connections: Vec<_> = (0..CONNECTIONS).map(|_| resp::connect(&address)).collect();
    let mut ids = Vec::new();
    for (index, connection) in connections.iter_mut().enumerate() {
        resp::command(connection, &["CLIENT", "SETNAME", &format!("mover-{index}")]);
        ids.push(resp::command(connection, &["CLIENT", "ID"]).trim_start_matches(':').to_string());
    }
    // The shards each connection was seen on, and the last entry ID it got.
    let mut seen_on: Vec<Vec<String>> = vec![Vec::new(); CONNECTIONS];
    let mut last_ids: Vec<(u64, u64)> = vec![(0, 0); CONNECTIONS];
    let mut added = 0usize;
    let started = Instant::now();
    let mut round = 0usize;
    while seen_on.iter().any(|shards| shards.len() < 2) {
        assert!(
            started.elapsed() < MOVES_WAIT,
            "after {round} rounds, not every connection moved: shards seen {seen_on:?}"
        );
        round += 1;
        for (index, connection) in connections.iter_mut().enumerate() {
            let key = format!("balance-{index}");
            let mut request = String::new();
            for _ in 0..XADDS_PER_ROUND {
                request.push_str(&resp::encode(&["XADD", &key, "*", "round", &round.to_string()]));
            }
            request.push_str(&resp::encode(&["CLIENT", "INFO"]));
            // Half a command now and the rest a little later, so that some moves carry it.
            let split = request.len() - 7;
            connection.get_mut().write_all(&request.as_bytes()[..split]).expect("send");
            std::thread::sleep(Duration::from_millis(5));
            connection.get_mut().write_all(&request.as_bytes()[split..]).expect("send");
            for _ in 0..XADDS_PER_ROUND {
                let id = resp::read_reply(connection);
                let (ms, seq) = id.split_once('-').unwrap_or_else(|| panic!("XADD answered {id}"));
                let id = (ms.parse::<u64>().expect("ms"), seq.parse::<u64>().expect("seq"));
                assert!(id > last_ids[index], "connection {index}: entry {id:?} after {:?}", last_ids[index]);
                last_ids[index] = id;
                added += 1;
            }
            let info = resp::read_reply(connection);
            assert_eq!(client_info_field(&info, "id"), ids[index], "the client id stays: {info}");
            assert_eq!(client_info_field(&info, "name"), format!("mover-{index}"), "the name stays: {info}");
            let shard = client_info_field(&info, "shard");
            if !seen_on[index].contains(&shard) {
                seen_on[index].push(shard);
            }
        }
    }
    let mut total = 0usize;
    for (index, connection) in connections.iter_mut().enumerate() {
        let length = resp::command(connection, &["XLEN", &format!("balance-{index}")]);
        total += length.trim_start_matches(':').parse::<usize>().expect("XLEN");
    }
    assert_eq!(total, added, "every XADD answered landed once");
    let moved = broker.metric("sluice_connections_moved_total");
    assert!(moved >= CONNECTIONS as f64, "every connection moved at least once, counted: {moved}");
}

#[test]
fn connections_moving_under_a_pipelined_load_lose_and_repeat_no_entry() {
    let broker = always_moving();
    let stream = unique_topic("balance-load");
    let (_run, report) = sluice_bench_report(&[
        "xadd",
        "--resp",
        &broker.resp_addr(),
        "--stream",
        &stream,
        "--producers",
        "16",
        "--pipeline",
        "16",
        "--message-bytes",
        "100",
        "--warmup-s",
        "0.5",
        "--duration-s",
        "3",
    ]);
    let acked = acknowledged_total(&report, "latency");
    assert_eq!(report["result"]["failed_messages"], 0, "{report:#}");
    let mut connection = resp::connect(&broker.resp_addr());
    let length = resp::command(&mut connection, &["XLEN", &stream]);
    assert_eq!(length.trim_start_matches(':').parse::<u64>().expect("XLEN"), acked, "exactly what was acknowledged");
    let moved = broker.metric("sluice_connections_moved_total");
    assert!(moved >= 4.0, "connections moved during the run: {moved}");
}
