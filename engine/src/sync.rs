//! A single-threaded notification primitive for tasks on one shard.
//!
//! `Notify::notified()` resolves after the next `notify_all()`. Waiters are woken in bulk; the
//! waiter re-checks its condition (group commit, fetch long poll). Never shared across threads.
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct Notify {
    epoch: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn notify_all(&self) {
        self.epoch.set(self.epoch.get().wrapping_add(1));
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for waker in wakers {
            waker.wake();
        }
    }

    /// A future that completes at the next `notify_all` after this call.
    pub fn notified(&self) -> Notified<'_> {
        Notified { notify: self, epoch: self.epoch.get(), registered: false }
    }
}

pub struct Notified<'a> {
    notify: &'a Notify,
    epoch: u64,
    registered: bool,
}

impl Future for Notified<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.notify.epoch.get() != self.epoch {
            return Poll::Ready(());
        }
        if !self.registered {
            self.notify.wakers.borrow_mut().push(context.waker().clone());
            self.registered = true;
        } else {
            let mut wakers = self.notify.wakers.borrow_mut();
            if !wakers.iter().any(|waker| waker.will_wake(context.waker())) {
                wakers.push(context.waker().clone());
            }
        }
        Poll::Pending
    }
}
