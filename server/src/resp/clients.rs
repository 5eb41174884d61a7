//! The RESP connections a shard serves, for CLIENT LIST, CLIENT INFO and CLIENT KILL.
//!
//! Each shard keeps its own (one executor per thread, so a thread-local with no lock); CLIENT
//! LIST and KILL ask every shard (`ShardRequest::RespClients`). A line has Redis 7.2's fields,
//! in its order, and `shard` (the core serving the connection) at the end. The per-connection
//! memory fields (`qbuf`, `argv-mem`, `obl`, `omem`, `tot-mem`...) are 0: the broker accounts
//! request memory per shard (`request-memory-bytes-max`), not per connection; clients parse
//! them (redis-py's CLIENT INFO needs them). Killing shuts the socket down: the
//! connection ends at its next read, or, for one blocked in XREAD/XREADGROUP BLOCK, once the
//! wait is over.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use super::session::Session;

thread_local! {
    static CLIENTS: RefCell<BTreeMap<u64, Weak<Session>>> = const { RefCell::new(BTreeMap::new()) };
}

/// Counts a connection in its shard's list until the returned guard is dropped.
pub fn register(session: &Rc<Session>) -> Registered {
    CLIENTS.with(|clients| clients.borrow_mut().insert(session.id, Rc::downgrade(session)));
    Registered(session.id)
}

pub struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        CLIENTS.with(|clients| clients.borrow_mut().remove(&self.0));
    }
}

/// Which connections CLIENT LIST shows or CLIENT KILL closes: all of these that are given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientFilter {
    pub ids: Option<Vec<u64>>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    pub user: Option<String>,
    /// Connected for at least this many seconds.
    pub age_s_min: Option<u64>,
    /// `TYPE` other than normal: every connection here is normal, none matches.
    pub none: bool,
    /// SKIPME: the asking connection.
    pub skip: Option<u64>,
}

impl ClientFilter {
    fn matches(&self, session: &Session, now: Instant) -> bool {
        let connection = &session.connection;
        !self.none
            && self.skip != Some(session.id)
            && self.ids.as_ref().is_none_or(|ids| ids.contains(&session.id))
            && self.addr.as_ref().is_none_or(|addr| *addr == connection.addr)
            && self.laddr.as_ref().is_none_or(|laddr| *laddr == connection.laddr)
            && self.user.as_ref().is_none_or(|user| user == "default")
            && self.age_s_min.is_none_or(|age| now.duration_since(connection.opened).as_secs() >= age)
    }
}

/// This shard's connections that match, by id, as CLIENT LIST lines; closed first when `kill`.
pub fn matching(filter: &ClientFilter, kill: bool) -> Vec<(u64, String)> {
    let now = Instant::now();
    let sessions: Vec<Rc<Session>> =
        CLIENTS.with(|clients| clients.borrow().values().filter_map(Weak::upgrade).collect());
    let mut found = Vec::new();
    for session in sessions.iter().filter(|session| filter.matches(session, now)) {
        found.push((session.id, line(session, now)));
        if kill {
            session.kill();
        }
    }
    found
}

/// One CLIENT LIST line (without its newline).
pub fn line(session: &Session, now: Instant) -> String {
    let connection = &session.connection;
    let (last_active, command) = session.last_command.get();
    let name = session.name.borrow().as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
    let (lib_name, lib_ver) = {
        let library = session.library.borrow();
        let text = |value: &Option<bytes::Bytes>| {
            value.as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned()
        };
        (text(&library.0), text(&library.1))
    };
    let queued = session.transaction.borrow().as_ref().map(|transaction| transaction.queued_count());
    format!(
        "id={} addr={} laddr={} fd={} name={name} age={} idle={} flags={} db=0 sub=0 psub=0 ssub=0 multi={} \
         watch=0 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} \
         user=default redir=-1 resp={} lib-name={lib_name} lib-ver={lib_ver} shard={}",
        session.id,
        connection.addr,
        connection.laddr,
        connection.fd,
        now.duration_since(connection.opened).as_secs(),
        now.duration_since(last_active).as_secs(),
        if queued.is_some() { "x" } else { "N" },
        queued.map_or(-1, |count| count as i64),
        if command.is_empty() { "NULL" } else { &command },
        if session.resp3.get() { 3 } else { 2 },
        session.shard.id,
    )
}

/// One of this shard's connections that ran a command within `active_within`, arrived here
/// at least `stay` ago and is not asked to move already: the one `balance` moves next.
pub fn movable(active_within: Duration, stay: Duration) -> Option<Rc<Session>> {
    let now = Instant::now();
    CLIENTS.with(|clients| {
        clients.borrow().values().filter_map(Weak::upgrade).find(|session| {
            now.duration_since(session.last_command.get().0) <= active_within
                && now.duration_since(session.arrived) >= stay
                && !session.move_pending()
        })
    })
}
