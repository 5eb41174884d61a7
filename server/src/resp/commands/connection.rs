//! Connection commands: PING, ECHO, HELLO, SELECT, CLIENT, COMMAND, INFO, CONFIG (QUIT is
//! handled by the connection). Enough for redis-cli, redis-py and redis-benchmark.
use bytes::Bytes;

use crate::metrics::{Dropped, Protocol};
use crate::resp::clients::{self, ClientFilter};
use crate::resp::command::{parse_integer, syntax_error, Args, CommandResult};
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::runtime::mesh::{ShardRequest, ShardResponse};

/// The Redis version reported to clients: the one whose stream commands sluice follows.
pub const REDIS_VERSION: &str = "7.2.0";

pub fn ping(session: &Session, args: &mut Args) -> CommandResult {
    let _ = session;
    match (args.next_word(), args.remaining()) {
        (None, _) => Ok(Reply::Status("PONG")),
        (Some(message), 0) => Ok(Reply::Bulk(message)),
        _ => Err(args.wrong_arity()),
    }
}

pub fn echo(args: &mut Args) -> CommandResult {
    let message = args.required()?;
    if args.remaining() > 0 {
        return Err(args.wrong_arity());
    }
    Ok(Reply::Bulk(message))
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`: switches to RESP3 (or back to 2).
pub fn hello(session: &Session, args: &mut Args) -> CommandResult {
    if let Some(version) = args.next_word() {
        match parse_integer(&version) {
            Some(2) => session.resp3.set(false),
            Some(3) => session.resp3.set(true),
            Some(_) => return Err(Reply::error("NOPROTO unsupported protocol version")),
            None => return Err(Reply::error("ERR Protocol version is not an integer or out of range")),
        }
    }
    while let Some(option) = args.next_word() {
        if option.eq_ignore_ascii_case(b"SETNAME") {
            *session.name.borrow_mut() = Some(args.required()?);
        } else if option.eq_ignore_ascii_case(b"AUTH") {
            let (user, _password) = (args.required()?, args.required()?);
            sign_in(&user)?;
        } else {
            return Err(syntax_error());
        }
    }
    let protocol = if session.resp3.get() { 3 } else { 2 };
    Ok(Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("redis")),
        (Reply::bulk("version"), Reply::bulk(REDIS_VERSION)),
        (Reply::bulk("proto"), Reply::Integer(protocol)),
        (Reply::bulk("id"), Reply::Integer(session.id as i64)),
        (Reply::bulk("mode"), Reply::bulk("standalone")),
        (Reply::bulk("role"), Reply::bulk("master")),
        (Reply::bulk("modules"), Reply::Array(Vec::new())),
    ]))
}

/// Only database 0 exists (streams are topics; there is one namespace).
pub fn select(args: &mut Args) -> CommandResult {
    let index = args.integer()?;
    args.finish()?;
    if index == 0 {
        Ok(Reply::OK)
    } else {
        Err(Reply::error("ERR DB index is out of range"))
    }
}

pub async fn client(session: &Session, args: &mut Args) -> CommandResult {
    let given = args.required()?;
    let sub = given.to_ascii_uppercase();
    match &sub[..] {
        b"SETNAME" => {
            let name = args.required()?;
            args.finish()?;
            if name.iter().any(|byte| *byte <= b' ') {
                return Err(Reply::error("ERR Client names cannot contain spaces, newlines or special characters."));
            }
            *session.name.borrow_mut() = (!name.is_empty()).then_some(name);
            Ok(Reply::OK)
        }
        b"GETNAME" => Ok(session.name.borrow().clone().map_or(Reply::Null, Reply::Bulk)),
        b"ID" => {
            args.finish().map_err(|_| args.wrong_arity())?;
            Ok(Reply::Integer(session.id as i64))
        }
        // Client libraries announce themselves (redis-py: lib-name, lib-ver); CLIENT LIST shows it.
        b"SETINFO" => {
            let (attribute, value) = (args.required()?.to_ascii_uppercase(), args.required()?);
            args.finish().map_err(|_| args.wrong_arity())?;
            if value.iter().any(|byte| *byte <= b' ' || *byte > b'~') {
                return Err(Reply::error(
                    "ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.",
                ));
            }
            let mut library = session.library.borrow_mut();
            match &attribute[..] {
                b"LIB-NAME" => library.0 = Some(value),
                b"LIB-VER" => library.1 = Some(value),
                _ => {
                    return Err(Reply::error(format!(
                        "ERR Unrecognized option '{}'",
                        String::from_utf8_lossy(&attribute).to_ascii_lowercase()
                    )))
                }
            }
            Ok(Reply::OK)
        }
        b"INFO" => {
            args.finish().map_err(|_| args.wrong_arity())?;
            Ok(Reply::Bulk(Bytes::from(clients::line(session, std::time::Instant::now()) + "\n")))
        }
        b"LIST" => {
            let mut filter = ClientFilter::default();
            while args.remaining() > 0 {
                if args.take_keyword("TYPE") {
                    filter.none = !client_type_is_normal(&args.required()?)?;
                } else if args.take_keyword("ID") {
                    let mut ids = Vec::new();
                    while args.remaining() > 0 {
                        ids.push(client_id(&args.required()?)?);
                    }
                    filter.ids = Some(ids);
                } else {
                    return Err(syntax_error());
                }
            }
            let lines: String = every_shard(session, filter, false).await.into_iter().map(|line| line + "\n").collect();
            Ok(Reply::Bulk(Bytes::from(lines)))
        }
        b"KILL" => {
            if args.remaining() == 1 {
                // The old form: CLIENT KILL ip:port.
                let addr = String::from_utf8_lossy(&args.required()?).into_owned();
                let filter = ClientFilter { addr: Some(addr), ..ClientFilter::default() };
                return match every_shard(session, filter, true).await.len() {
                    0 => Err(Reply::error("ERR No such client")),
                    _ => Ok(Reply::OK),
                };
            }
            let mut filter = ClientFilter { skip: Some(session.id), ..ClientFilter::default() };
            let text = |word: Bytes| String::from_utf8_lossy(&word).into_owned();
            while args.remaining() > 0 {
                let option = args.required()?.to_ascii_uppercase();
                let value = args.required()?;
                match &option[..] {
                    b"ID" => filter.ids = Some(vec![client_id(&value)?]),
                    b"TYPE" => filter.none = !client_type_is_normal(&value)?,
                    b"USER" => filter.user = Some(text(value)),
                    b"ADDR" => filter.addr = Some(text(value)),
                    b"LADDR" => filter.laddr = Some(text(value)),
                    b"MAXAGE" => {
                        filter.age_s_min = Some(
                            parse_integer(&value).and_then(|age| u64::try_from(age).ok()).ok_or_else(syntax_error)?,
                        )
                    }
                    b"SKIPME" if value.eq_ignore_ascii_case(b"yes") => filter.skip = Some(session.id),
                    b"SKIPME" if value.eq_ignore_ascii_case(b"no") => filter.skip = None,
                    _ => return Err(syntax_error()),
                }
            }
            Ok(Reply::Integer(every_shard(session, filter, true).await.len() as i64))
        }
        _ => {
            Err(Reply::error(format!("ERR unknown subcommand '{}'. Try CLIENT HELP.", String::from_utf8_lossy(&given))))
        }
    }
}

/// The RESP connections of every shard that match, as CLIENT LIST lines in id order; closed
/// when `kill`.
async fn every_shard(session: &Session, filter: ClientFilter, kill: bool) -> Vec<String> {
    let shard = &session.shard;
    let asks =
        (0..shard.count).map(|target| shard.call(target, ShardRequest::RespClients { filter: filter.clone(), kill }));
    let mut found: Vec<(u64, String)> = Vec::new();
    for answer in futures::future::join_all(asks).await {
        let ShardResponse::RespClients(lines) = answer else { unreachable!("RespClients answers with RespClients") };
        found.extend(lines);
    }
    found.sort_unstable_by_key(|(id, _)| *id);
    found.into_iter().map(|(_, line)| line).collect()
}

/// CLIENT LIST / KILL TYPE: every connection here is `normal` (no replicas, no pub/sub).
fn client_type_is_normal(name: &[u8]) -> Result<bool, Reply> {
    match name.to_ascii_lowercase().as_slice() {
        b"normal" => Ok(true),
        b"master" | b"replica" | b"slave" | b"pubsub" => Ok(false),
        _ => Err(Reply::error(format!("ERR Unknown client type '{}'", String::from_utf8_lossy(name)))),
    }
}

fn client_id(word: &[u8]) -> Result<u64, Reply> {
    parse_integer(word)
        .and_then(|id| u64::try_from(id).ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| Reply::error("ERR Invalid client ID"))
}

/// `WAIT numreplicas timeout`: there are no replicas, so 0, at once (Redis would wait for the
/// timeout first when asked for replicas it does not have).
pub fn wait(args: &mut Args) -> CommandResult {
    let (_replicas, timeout_ms) = (args.integer()?, args.integer()?);
    args.finish().map_err(|_| args.wrong_arity())?;
    if timeout_ms < 0 {
        return Err(Reply::error("ERR timeout is negative"));
    }
    Ok(Reply::Integer(0))
}

/// `WAITAOF numlocal numreplicas timeout`: every write this connection made was on disk before
/// it was answered (and `run` waits for its XADDs still in flight before any other command),
/// so `[1, 0]` at once: synced locally, no replicas.
pub fn waitaof(args: &mut Args) -> CommandResult {
    let (_local, _replicas, timeout_ms) = (args.integer()?, args.integer()?, args.integer()?);
    args.finish().map_err(|_| args.wrong_arity())?;
    if timeout_ms < 0 {
        return Err(Reply::error("ERR timeout is negative"));
    }
    Ok(Reply::Array(vec![Reply::Integer(1), Reply::Integer(0)]))
}

/// `TIME`: the broker's clock, seconds and microseconds since the Unix epoch.
pub fn time(args: &mut Args) -> CommandResult {
    args.finish().map_err(|_| args.wrong_arity())?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let bulk = |value: u64| Reply::Bulk(Bytes::from(value.to_string()));
    Ok(Reply::Array(vec![bulk(now.as_secs()), bulk(u64::from(now.subsec_micros()))]))
}

/// `AUTH [user] password`: sluice has no passwords, and answers as Redis does when none is set:
/// the default user needs none, any other user does not exist.
pub fn auth(args: &mut Args) -> CommandResult {
    match (args.required()?, args.next_word(), args.remaining()) {
        (_, None, 0) => Err(Reply::error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure \
             your configuration is correct?",
        )),
        (user, Some(_), 0) => sign_in(&user).map(|()| Reply::OK),
        _ => Err(syntax_error()),
    }
}

/// Credentials (AUTH, HELLO ... AUTH) as Redis without requirepass takes them: the default
/// user with any password; no other user exists.
fn sign_in(user: &[u8]) -> Result<(), Reply> {
    if user == b"default" {
        Ok(())
    } else {
        Err(Reply::error("WRONGPASS invalid username-password pair or user is disabled."))
    }
}

/// `COMMAND` (empty list: clients fall back to their own tables), `COMMAND COUNT`, `COMMAND
/// DOCS` (empty: redis-cli then offers no hints).
pub fn command(args: &mut Args) -> CommandResult {
    match args.next_word().map(|sub| sub.to_ascii_uppercase()) {
        None => Ok(Reply::Array(Vec::new())),
        Some(sub) if &sub[..] == b"COUNT" => Ok(Reply::Integer(0)),
        Some(sub) if &sub[..] == b"DOCS" || &sub[..] == b"INFO" => Ok(Reply::Array(Vec::new())),
        Some(_) => Err(syntax_error()),
    }
}

/// `INFO [section]`: server and keyspace.
/// `INFO [section ...]`: Redis's sections, with the fields monitoring tools and `redis-cli
/// --stat` read, from what the broker measures (every shard's, one mesh round for clients and
/// stats). Fields of machinery sluice does not have are given only where their value is fixed
/// and true here: no fork child (no RDB save, no AOF rewrite), no replicas, no eviction; the
/// log is fsynced before every answer, Redis's `appendonly yes` with `appendfsync always`.
pub async fn info(session: &Session, args: &mut Args) -> CommandResult {
    let asked: Vec<String> =
        args.rest().iter().map(|section| String::from_utf8_lossy(section).to_ascii_lowercase()).collect();
    let every =
        asked.is_empty() || asked.iter().any(|section| matches!(section.as_str(), "all" | "everything" | "default"));
    let wants = |name: &str| every || asked.iter().any(|section| section == name);
    let shard = &session.shard;
    let measured = if wants("clients") || wants("stats") { Some(crate::metrics::collect(shard).await) } else { None };
    let mut sections: Vec<(&str, Vec<(&str, String)>)> = Vec::new();
    if wants("server") {
        let uptime = crate::process::uptime().as_secs();
        sections.push((
            "Server",
            vec![
                ("redis_version", REDIS_VERSION.to_string()),
                ("sluice_version", env!("CARGO_PKG_VERSION").to_string()),
                ("redis_mode", "standalone".to_string()),
                ("os", std::env::consts::OS.to_string()),
                ("arch_bits", "64".to_string()),
                ("process_id", std::process::id().to_string()),
                ("tcp_port", shard.config.resp_listen.port().to_string()),
                ("uptime_in_seconds", uptime.to_string()),
                ("uptime_in_days", (uptime / 86_400).to_string()),
            ],
        ));
    }
    if let (true, Some(measured)) = (wants("clients"), &measured) {
        sections.push((
            "Clients",
            vec![
                ("connected_clients", measured.connections_open[Protocol::Resp.index()].to_string()),
                ("blocked_clients", measured.resp_blocked.to_string()),
                ("maxclients", clients_max(session).to_string()),
            ],
        ));
    }
    if wants("memory") {
        let resident = crate::process::resident_bytes();
        sections.push((
            "Memory",
            vec![
                ("used_memory", resident.to_string()),
                ("used_memory_human", human_bytes(resident)),
                ("used_memory_rss", resident.to_string()),
                ("used_memory_rss_human", human_bytes(resident)),
                ("maxmemory", "0".to_string()),
                ("maxmemory_human", "0B".to_string()),
                ("maxmemory_policy", "noeviction".to_string()),
            ],
        ));
    }
    if wants("persistence") {
        let fixed = [
            ("loading", "0"),
            ("async_loading", "0"),
            ("rdb_bgsave_in_progress", "0"),
            ("aof_enabled", "1"),
            ("aof_rewrite_in_progress", "0"),
            ("aof_rewrite_scheduled", "0"),
        ];
        sections.push(("Persistence", fixed.iter().map(|(name, value)| (*name, value.to_string())).collect()));
    }
    if let (true, Some(measured)) = (wants("stats"), &measured) {
        let commands: u64 = measured.resp_command_seconds.iter().map(|histogram| histogram.count).sum();
        let refused = measured.connections_dropped[Protocol::Resp.index()][Dropped::ConnectionsMax as usize];
        sections.push((
            "Stats",
            vec![
                ("total_connections_received", shard.connections.clients_received().to_string()),
                ("total_commands_processed", commands.to_string()),
                ("rejected_connections", refused.to_string()),
            ],
        ));
    }
    if wants("replication") {
        sections.push(("Replication", vec![("role", "master".to_string()), ("connected_slaves", "0".to_string())]));
    }
    if wants("cpu") {
        let (user, system) = crate::process::cpu_time();
        sections.push((
            "CPU",
            vec![
                ("used_cpu_sys", format!("{:.6}", system.as_secs_f64())),
                ("used_cpu_user", format!("{:.6}", user.as_secs_f64())),
            ],
        ));
    }
    if wants("keyspace") {
        let keys = shard.metadata().topics.len();
        let databases = if keys > 0 { vec![("db0", format!("keys={keys},expires=0,avg_ttl=0"))] } else { Vec::new() };
        sections.push(("Keyspace", databases));
    }
    let text: Vec<String> = sections
        .iter()
        .map(|(title, fields)| {
            let lines: String = fields.iter().map(|(name, value)| format!("{name}:{value}\r\n")).collect();
            format!("# {title}\r\n{lines}")
        })
        .collect();
    Ok(Reply::Bulk(Bytes::from(text.join("\r\n"))))
}

/// Redis's maxclients: `--connections-max` is per shard (and per front door).
fn clients_max(session: &Session) -> usize {
    session.shard.config.connections_max * session.shard.count
}

/// Bytes as Redis's INFO writes them for people: `1.50M`, `812.00K`, `512B`.
fn human_bytes(bytes: u64) -> String {
    let units = [(1u64 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
    match units.iter().find(|(size, _)| bytes >= *size) {
        Some((size, unit)) => format!("{:.2}{unit}", bytes as f64 / *size as f64),
        None => format!("{bytes}B"),
    }
}

/// `CONFIG GET pattern...`: what tools ask (redis-benchmark: save, appendonly), answered from
/// sluice's own settings where Redis has the same one (port, bind, maxclients, timeout), and
/// with the fixed values that are true here for the rest (as INFO's); CONFIG SET refused.
pub fn config(session: &Session, args: &mut Args) -> CommandResult {
    let sub = args.required()?.to_ascii_uppercase();
    if &sub[..] != b"GET" {
        return Err(Reply::error("ERR CONFIG SET and friends are not supported: configure sluice with its flags"));
    }
    let settings = &session.shard.config;
    let (port, bind) = (settings.resp_listen.port().to_string(), settings.resp_listen.ip().to_string());
    let maxclients = clients_max(session).to_string();
    let timeout = (settings.connection_idle_timeout_ms / 1000).to_string();
    let known: [(&str, &str); 10] = [
        ("save", ""),
        ("appendonly", "yes"),
        ("appendfsync", "always"),
        ("databases", "1"),
        ("maxmemory", "0"),
        ("maxmemory-policy", "noeviction"),
        ("port", &port),
        ("bind", &bind),
        ("maxclients", &maxclients),
        ("timeout", &timeout),
    ];
    let mut pairs = Vec::new();
    for pattern in args.rest() {
        let pattern = String::from_utf8_lossy(&pattern).to_ascii_lowercase();
        for (name, value) in &known {
            if glob_matches(&pattern, name)
                && !pairs.iter().any(|(known, _): &(Reply, Reply)| *known == Reply::bulk(*name))
            {
                pairs.push((Reply::bulk(*name), Reply::Bulk(Bytes::copy_from_slice(value.as_bytes()))));
            }
        }
    }
    Ok(Reply::Map(pairs))
}

/// `*` and exact names: the patterns clients send to CONFIG GET.
fn glob_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((prefix, suffix)) => name.starts_with(prefix) && name[prefix.len()..].ends_with(suffix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_patterns_match_like_redis() {
        assert!(glob_matches("*", "save"));
        assert!(glob_matches("append*", "appendonly"));
        assert!(!glob_matches("append*", "save"));
        assert!(glob_matches("save", "save"));
    }
}
