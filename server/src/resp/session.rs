//! What one RESP connection remembers between commands.
use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use sluice_engine::sync::Notify;

use crate::resp::command::Name;
use crate::runtime::ShardRef;

/// Where a connection comes from, for CLIENT LIST.
pub struct ConnectionInfo {
    /// The client's address, `ip:port`.
    pub addr: String,
    /// The broker's end, `ip:port`.
    pub laddr: String,
    /// The reader's socket descriptor (CLIENT KILL shuts the socket down through it).
    pub fd: RawFd,
    pub opened: Instant,
}

/// Lives on the shard that accepted the connection; never shared.
pub struct Session {
    pub shard: ShardRef,
    /// Unique across shards (CLIENT ID).
    pub id: u64,
    /// Chosen with HELLO 3.
    pub resp3: Cell<bool>,
    pub connection: ConnectionInfo,
    /// CLIENT SETNAME.
    pub name: RefCell<Option<Bytes>>,
    /// CLIENT SETINFO LIB-NAME and LIB-VER.
    pub library: RefCell<(Option<Bytes>, Option<Bytes>)>,
    /// When the last command started, and its name (CLIENT LIST's idle and cmd).
    pub last_command: Cell<(Instant, Name)>,
    /// XADDs answered later (waiting for fsync): any other command waits for them first, so
    /// it sees their entries, as a Redis client expects of a pipeline.
    deferred: Cell<usize>,
    deferred_done: Notify,
    /// XADDs read but not yet sent to their stream's owner.
    pub gathered: RefCell<Option<crate::resp::commands::xadd::Gathered>>,
    /// Open after MULTI, until EXEC or DISCARD.
    pub transaction: RefCell<Option<crate::resp::commands::transaction::Transaction>>,
    /// While EXEC runs a transaction's commands (which then do not block).
    pub executing: Cell<bool>,
    /// When the connection came to this shard (accepted, or moved here by `balance`).
    pub arrived: Instant,
    /// `balance` asked the connection to move to this shard, at this time.
    move_wanted: Cell<Option<(usize, Instant)>>,
}

/// What a session remembers, on its way to another shard with its connection (`balance`).
pub struct MovedSession {
    id: u64,
    resp3: bool,
    addr: String,
    laddr: String,
    opened: Instant,
    name: Option<Bytes>,
    library: (Option<Bytes>, Option<Bytes>),
    last_command: (Instant, Name),
}

impl Session {
    pub fn new(shard: ShardRef, id: u64, connection: ConnectionInfo) -> Rc<Self> {
        let opened = connection.opened;
        Rc::new(Self {
            shard,
            id,
            resp3: Cell::new(false),
            connection,
            name: RefCell::new(None),
            library: RefCell::new((None, None)),
            last_command: Cell::new((opened, Name::default())),
            deferred: Cell::new(0),
            deferred_done: Notify::default(),
            gathered: RefCell::new(None),
            transaction: RefCell::new(None),
            executing: Cell::new(false),
            arrived: Instant::now(),
            move_wanted: Cell::new(None),
        })
    }

    /// The session of a connection another shard moved here, now served through `fd`.
    pub fn moved_in(shard: ShardRef, moved: MovedSession, fd: RawFd) -> Rc<Self> {
        let connection = ConnectionInfo { addr: moved.addr, laddr: moved.laddr, fd, opened: moved.opened };
        let session = Self::new(shard, moved.id, connection);
        session.resp3.set(moved.resp3);
        *session.name.borrow_mut() = moved.name;
        *session.library.borrow_mut() = moved.library;
        session.last_command.set(moved.last_command);
        session
    }

    /// What the session takes along when its connection moves to another shard.
    pub fn moving_out(&self) -> MovedSession {
        MovedSession {
            id: self.id,
            resp3: self.resp3.get(),
            addr: self.connection.addr.clone(),
            laddr: self.connection.laddr.clone(),
            opened: self.connection.opened,
            name: self.name.borrow().clone(),
            library: self.library.borrow().clone(),
            last_command: self.last_command.get(),
        }
    }

    /// Asks the connection to move to shard `target` at its next quiet point (`balance`).
    pub fn want_move(&self, target: usize) {
        self.move_wanted.set(Some((target, Instant::now())));
    }

    pub fn move_pending(&self) -> bool {
        self.move_wanted.get().is_some()
    }

    /// Where the connection should move now, if `balance` asked within `fresh` and the
    /// connection is between transactions; the request is used up either way.
    pub fn take_move(&self, fresh: std::time::Duration) -> Option<usize> {
        let (target, asked) = self.move_wanted.take()?;
        let quiet = self.transaction.borrow().is_none() && !self.executing.get();
        (quiet && asked.elapsed() <= fresh).then_some(target)
    }

    /// CLIENT KILL: shuts the socket down, which ends the connection at its next read.
    pub fn kill(&self) {
        // SAFETY: shutdown only acts on the descriptor number, which this connection holds
        // open while its session is listed (`clients::register`).
        unsafe { libc::shutdown(self.connection.fd, libc::SHUT_RDWR) };
    }

    pub fn defer_started(&self) {
        self.deferred.set(self.deferred.get() + 1);
    }

    pub fn defer_finished(&self) {
        self.deferred.set(self.deferred.get() - 1);
        if self.deferred.get() == 0 {
            self.deferred_done.notify_all();
        }
    }

    /// Returns once no deferred command is left.
    pub async fn settled(&self) {
        loop {
            let done = self.deferred_done.notified();
            if self.deferred.get() == 0 {
                return;
            }
            done.await;
        }
    }
}

thread_local! {
    /// Commands blocked (XREAD/XREADGROUP BLOCK) on this shard: one executor per thread, so
    /// this count is the shard's, with no lock.
    static BLOCKED_ON_SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Commands blocked on this shard now (INFO's blocked_clients, summed over shards).
pub fn blocked_on_this_shard() -> usize {
    BLOCKED_ON_SHARD.with(Cell::get)
}

/// A blocked command's place in the shard's count; freed when dropped.
pub struct Blocked(());

impl Blocked {
    /// Takes a place, or refuses when `RESP_BLOCKED_CLIENTS_MAX_PER_SHARD` are blocked already.
    pub fn enter() -> Result<Self, crate::resp::reply::Reply> {
        let limit = crate::limits::RESP_BLOCKED_CLIENTS_MAX_PER_SHARD;
        BLOCKED_ON_SHARD.with(|blocked| {
            if blocked.get() >= limit {
                return Err(crate::resp::reply::Reply::error(format!(
                    "ERR too many blocked clients ({limit} per core): retry later or without BLOCK"
                )));
            }
            blocked.set(blocked.get() + 1);
            Ok(Blocked(()))
        })
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        BLOCKED_ON_SHARD.with(|blocked| blocked.set(blocked.get() - 1));
    }
}
