//! The runtime as the host of the parts below it: callbacks, components and the scheduler each
//! declare the little they need from the host (a trait of their own), and the runtime is what
//! gives it. So those modules depend on the store roles they use, the engine, the agents and on
//! waking an execution, never on [`Runtime`] and its every part, nor on the whole store.

use super::Runtime;
use crate::agents::Agents;
use crate::artifacts::ArtifactStore;
use crate::engine::Engine;
use crate::ids::ExecutionId;
use crate::scheduler::Scheduler;
use crate::store::{Callbacks, Catalog, Journal};
use crate::tenancy::Tenancy;
use std::sync::Arc;

impl crate::callbacks::Host for Runtime {
    fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }
    fn callbacks(&self) -> &Arc<dyn Callbacks> {
        &self.callbacks
    }
    fn agents(&self) -> &Agents {
        &self.agents
    }
    fn artifacts(&self) -> &Arc<dyn ArtifactStore> {
        &self.artifacts
    }
    fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }
    fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }
    fn agent_inline_limit(&self) -> usize {
        self.agent_inline_limit
    }
    fn wake(self: &Arc<Self>, id: ExecutionId) {
        Runtime::wake(self, id);
    }
}

impl crate::components::Host for Runtime {
    fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }
    fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
    fn artifacts(&self) -> &Arc<dyn ArtifactStore> {
        &self.artifacts
    }
}

impl crate::scheduler::Host for Runtime {
    fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }
    fn callbacks(&self) -> &Arc<dyn Callbacks> {
        &self.callbacks
    }
    fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }
    fn wake(self: &Arc<Self>, id: ExecutionId) {
        Runtime::wake(self, id);
    }
    /// The ending's workflow event is in the outbox: post it now rather than at the next poll,
    /// and tell those waiting for the execution to finish.
    fn ended(self: &Arc<Self>, id: &ExecutionId) {
        self.notifier.kick();
        self.finished_now(id, None);
    }
}
