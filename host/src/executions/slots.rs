//! Activation slots, shared fairly between tenants.
//!
//! A host runs a bounded number of activations at once (each holds an instance of the pool).
//! With one first-come queue, a tenant that starts 2,000 executions makes every other tenant
//! wait behind all of them. Here each tenant has its own queue, the queues are served in turn
//! (round robin: whenever a slot frees, the next tenant in the ring with someone waiting gets
//! it), and a tenant holds at most its `max_activation_slots` at once, so a flood of one tenant
//! costs another at most one activation's wait.

use crate::ids::TenantId;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The slots of one host.
pub struct Slots {
    state: Mutex<State>,
}

struct State {
    free: usize,
    tenants: HashMap<TenantId, Tenant>,
    /// Tenants with someone waiting, in the order they are served.
    ring: VecDeque<TenantId>,
}

#[derive(Default)]
struct Tenant {
    held: usize,
    cap: usize,
    waiting: VecDeque<oneshot::Sender<Permit>>,
}

/// One slot, held until dropped.
pub struct Permit {
    slots: Arc<Slots>,
    tenant: TenantId,
    /// A permit that never reached its waiter is given back by hand, not on drop.
    armed: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.armed {
            self.slots.release(&self.tenant);
        }
    }
}

impl Slots {
    pub fn new(total: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                free: total,
                tenants: HashMap::new(),
                ring: VecDeque::new(),
            }),
        })
    }

    /// Waits for a slot for `tenant`, which may hold at most `cap` at once.
    pub async fn acquire(self: &Arc<Self>, tenant: &TenantId, cap: usize) -> Permit {
        let waiter = {
            let mut state = self.state.lock().expect("slots poisoned");
            let free = state.free;
            let entry = state.tenants.entry(tenant.clone()).or_default();
            entry.cap = cap.max(1);
            if free > 0 && entry.held < entry.cap && entry.waiting.is_empty() {
                entry.held += 1;
                state.free -= 1;
                return self.permit(tenant);
            }
            let (tx, rx) = oneshot::channel();
            entry.waiting.push_back(tx);
            if !state.ring.contains(tenant) {
                state.ring.push_back(tenant.clone());
            }
            rx
        };
        waiter
            .await
            .expect("a waiter's sender is dropped only after a permit is sent")
    }

    fn permit(self: &Arc<Self>, tenant: &TenantId) -> Permit {
        Permit {
            slots: self.clone(),
            tenant: tenant.clone(),
            armed: true,
        }
    }

    fn release(self: &Arc<Self>, tenant: &TenantId) {
        let mut state = self.state.lock().expect("slots poisoned");
        state.free += 1;
        if let Some(entry) = state.tenants.get_mut(tenant) {
            entry.held = entry.held.saturating_sub(1);
        }
        self.hand_out(&mut state);
    }

    /// Gives free slots to the tenants in the ring, one each in turn.
    fn hand_out(self: &Arc<Self>, state: &mut State) {
        let mut passed = 0;
        while state.free > 0 && passed < state.ring.len() {
            let Some(tenant) = state.ring.pop_front() else {
                break;
            };
            let entry = state.tenants.entry(tenant.clone()).or_default();
            if entry.held >= entry.cap {
                // At its cap: its turn waits until one of its own slots frees.
                state.ring.push_back(tenant);
                passed += 1;
                continue;
            }
            let mut granted = false;
            while let Some(waiter) = entry.waiting.pop_front() {
                match waiter.send(self.permit(&tenant)) {
                    Ok(()) => {
                        granted = true;
                        break;
                    }
                    // The waiter gave up (its task ended): this slot is still free.
                    Err(mut unsent) => unsent.armed = false,
                }
            }
            if granted {
                entry.held += 1;
                state.free -= 1;
                passed = 0;
            }
            if !entry.waiting.is_empty() {
                state.ring.push_back(tenant.clone());
            } else if entry.held == 0 {
                state.tenants.remove(&tenant);
            }
        }
        // Forget tenants that hold nothing and wait for nothing.
        if state.tenants.len() > 1024 {
            state
                .tenants
                .retain(|_, t| t.held > 0 || !t.waiting.is_empty());
        }
    }

    /// Slots held by `tenant` now.
    pub fn held(&self, tenant: &TenantId) -> usize {
        let state = self.state.lock().expect("slots poisoned");
        state.tenants.get(tenant).map_or(0, |t| t.held)
    }

    /// Activations waiting for a slot now, all tenants together.
    pub fn waiting(&self) -> usize {
        let state = self.state.lock().expect("slots poisoned");
        state.tenants.values().map(|t| t.waiting.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(name: &str) -> TenantId {
        TenantId::from_raw(name)
    }

    #[tokio::test]
    async fn a_tenant_never_holds_more_than_its_cap() {
        let slots = Slots::new(4);
        let a = t("a");
        let p1 = slots.acquire(&a, 2).await;
        let _p2 = slots.acquire(&a, 2).await;
        let third = tokio::spawn({
            let (slots, a) = (slots.clone(), a.clone());
            async move { slots.acquire(&a, 2).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!third.is_finished(), "a third slot went past the cap of 2");
        assert_eq!(slots.held(&a), 2);
        drop(p1);
        let _p3 = third.await.unwrap();
        assert_eq!(slots.held(&a), 2);
    }

    #[tokio::test]
    async fn waiting_tenants_are_served_in_turn() {
        // One slot; tenant a queues 100 waiters before b queues one. When the slot frees, b is
        // served after at most one more of a's, not after all of them.
        let slots = Slots::new(1);
        let (a, b) = (t("a"), t("b"));
        let first = slots.acquire(&a, 10).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..100 {
            let (slots, a, order) = (slots.clone(), a.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _p = slots.acquire(&a, 10).await;
                order.lock().unwrap().push(format!("a{i}"));
            }));
            tokio::task::yield_now().await;
        }
        {
            let (slots, b, order) = (slots.clone(), b.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _p = slots.acquire(&b, 10).await;
                order.lock().unwrap().push("b".to_string());
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(first);
        for task in tasks {
            task.await.unwrap();
        }
        let order = order.lock().unwrap();
        let b_at = order.iter().position(|s| s == "b").unwrap();
        assert!(b_at <= 1, "b was served at position {b_at}: {order:?}");
        assert_eq!(order.len(), 101);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_keep_a_slot() {
        let slots = Slots::new(1);
        let a = t("a");
        let held = slots.acquire(&a, 5).await;
        let gave_up = tokio::spawn({
            let (slots, a) = (slots.clone(), a.clone());
            async move { slots.acquire(&a, 5).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        gave_up.abort();
        let _ = gave_up.await;
        drop(held);
        // The slot is free again: this does not wait forever.
        let _again = tokio::time::timeout(Duration::from_secs(10), slots.acquire(&a, 5))
            .await
            .expect("the slot was lost to a waiter that gave up");
        assert_eq!(slots.held(&a), 1);
    }
}
