//! The partition's append permit: one holder at a time, handed out strictly in the order it was
//! asked for.
//!
//! Why not glommio's `Semaphore`: on release it wakes the first waiter but leaves the unit free
//! until that waiter runs, so a task that asks in between takes it first. Two produce requests
//! pipelined on one connection reach a partition's owner in request order (see
//! `net::connection`), and must be appended in that order: an idempotent producer's sequence
//! numbers depend on it. Here a release hands the permit to the first waiter directly, and a
//! newcomer finds it held.
//!
//! A task's place in line is taken when its `acquire` is first polled, so an owner that starts
//! appends in arrival order (mesh order) appends them in that order. Lives on one shard
//! (`Rc`, `RefCell`): nothing here is `Send`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A first-come, first-served lock without data: held by one task at a time.
#[derive(Default)]
pub struct AppendPermit {
    state: RefCell<State>,
}

/// Invariant: `waiters` is empty whenever the permit is not held.
#[derive(Default)]
struct State {
    held: bool,
    /// In arrival order; a release hands the permit to the front one.
    waiters: VecDeque<Rc<Waiter>>,
}

#[derive(Default)]
struct Waiter {
    /// Set when a release handed the permit to this waiter.
    granted: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl AppendPermit {
    pub fn new() -> AppendPermit {
        AppendPermit::default()
    }

    /// Waits for the permit, behind every task that asked before.
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire {
            permit: self,
            waiter: None,
        }
    }

    /// Hands the permit to the first waiter, or frees it when none waits.
    fn release(&self) {
        let next = {
            let mut state = self.state.borrow_mut();
            let next = state.waiters.pop_front();
            if next.is_none() {
                state.held = false;
            }
            next
        };
        if let Some(next) = next {
            next.granted.set(true);
            let waker = next.waker.borrow_mut().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// The permit, held until dropped.
pub struct AppendPermitGuard<'a> {
    permit: &'a AppendPermit,
}

impl Drop for AppendPermitGuard<'_> {
    fn drop(&mut self) {
        self.permit.release();
    }
}

/// The future `AppendPermit::acquire` returns.
pub struct Acquire<'a> {
    permit: &'a AppendPermit,
    /// This task's place in line once it had to wait.
    waiter: Option<Rc<Waiter>>,
}

impl<'a> Future for Acquire<'a> {
    type Output = AppendPermitGuard<'a>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let permit = this.permit;
        match &this.waiter {
            None => {
                let mut state = permit.state.borrow_mut();
                if !state.held {
                    state.held = true;
                    return Poll::Ready(AppendPermitGuard { permit });
                }
                let waiter = Rc::new(Waiter::default());
                *waiter.waker.borrow_mut() = Some(context.waker().clone());
                state.waiters.push_back(waiter.clone());
                this.waiter = Some(waiter);
                Poll::Pending
            }
            Some(waiter) if waiter.granted.get() => {
                this.waiter = None;
                Poll::Ready(AppendPermitGuard { permit })
            }
            Some(waiter) => {
                *waiter.waker.borrow_mut() = Some(context.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for Acquire<'_> {
    /// A waiter that gives up leaves the line; one that was handed the permit and never took it
    /// passes it on.
    fn drop(&mut self) {
        let Some(waiter) = self.waiter.take() else {
            return;
        };
        if waiter.granted.get() {
            self.permit.release();
        } else {
            self.permit
                .state
                .borrow_mut()
                .waiters
                .retain(|other| !Rc::ptr_eq(other, &waiter));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn poll<'a>(future: &mut Acquire<'a>) -> Option<AppendPermitGuard<'a>> {
        let mut context = Context::from_waker(Waker::noop());
        match Pin::new(future).poll(&mut context) {
            Poll::Ready(guard) => Some(guard),
            Poll::Pending => None,
        }
    }

    /// Proves waiters get the permit in the order they asked, and a newcomer asking between a
    /// release and the woken waiter's turn does not take it first.
    #[test]
    fn hands_the_permit_out_in_arrival_order() {
        let permit = AppendPermit::new();
        let held = poll(&mut permit.acquire()).expect("a free permit is taken at once");
        let mut first = permit.acquire();
        let mut second = permit.acquire();
        assert!(poll(&mut first).is_none());
        assert!(poll(&mut second).is_none());
        drop(held);
        let mut newcomer = permit.acquire();
        assert!(poll(&mut newcomer).is_none(), "a newcomer barged in");
        assert!(
            poll(&mut second).is_none(),
            "the second waiter passed the first"
        );
        let first_guard = poll(&mut first).expect("the first waiter was handed the permit");
        drop(first_guard);
        assert!(poll(&mut newcomer).is_none());
        drop(poll(&mut second).expect("then the second"));
        drop(poll(&mut newcomer).expect("then the newcomer"));
        assert!(
            poll(&mut permit.acquire()).is_some(),
            "free again at the end"
        );
    }

    /// Proves a waiter that gives up leaves the line, and one that gives up after being handed
    /// the permit passes it on.
    #[test]
    fn abandoned_waiters_pass_the_permit_on() {
        let permit = AppendPermit::new();
        let held = poll(&mut permit.acquire()).unwrap();
        let mut leaving = permit.acquire();
        let mut granted_then_gone = permit.acquire();
        let mut last = permit.acquire();
        assert!(poll(&mut leaving).is_none());
        assert!(poll(&mut granted_then_gone).is_none());
        assert!(poll(&mut last).is_none());
        drop(leaving);
        drop(held);
        drop(granted_then_gone);
        let guard = poll(&mut last).expect("the permit reached the last waiter");
        drop(guard);
        assert!(!permit.state.borrow().held);
        assert!(permit.state.borrow().waiters.is_empty());
    }
}
