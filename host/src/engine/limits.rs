//! Per-guest limits: the memory cap (a `ResourceLimiter`) and the CPU deadline (an epoch
//! callback that counts only the time the guest itself runs).

use std::time::{Duration, Instant};

/// Sandbox limits for guests.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Linear memory a guest may grow to.
    pub memory_bytes: usize,
    /// Guest CPU time one activation may use, host calls excluded.
    pub cpu_deadline: Duration,
    /// Instances that may exist at once (pool size).
    pub max_instances: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            cpu_deadline: Duration::from_secs(10),
            max_instances: 256,
        }
    }
}

/// Which limit stopped a guest, recorded before the trap so it can be told apart from others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    Memory,
    Cpu,
}

/// The limit state of one store.
pub struct Meter {
    pub memory_bytes: usize,
    pub cpu_deadline: Duration,
    pub started: Instant,
    /// Time spent inside host calls, which does not count against the guest.
    pub host_time: Duration,
    pub exceeded: Option<Exceeded>,
}

impl Meter {
    pub fn new(limits: &Limits) -> Self {
        Self {
            memory_bytes: limits.memory_bytes,
            cpu_deadline: limits.cpu_deadline,
            started: Instant::now(),
            host_time: Duration::ZERO,
            exceeded: None,
        }
    }

    /// Guest CPU time so far.
    pub fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.host_time)
    }

    /// Called on every epoch tick while the guest runs.
    pub fn over_deadline(&mut self) -> bool {
        if self.guest_time() > self.cpu_deadline {
            self.exceeded = Some(Exceeded::Cpu);
            true
        } else {
            false
        }
    }
}

impl wasmtime::ResourceLimiter for Meter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.exceeded = Some(Exceeded::Memory);
            return Err(wasmtime::Error::msg(format!(
                "memory limit exceeded: the guest asked for {desired} bytes, the cap is {}",
                self.memory_bytes
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memory_over_the_cap_is_refused_and_recorded() {
        let mut m = Meter::new(&Limits {
            memory_bytes: 1 << 20,
            ..Limits::default()
        });
        assert!(m.memory_growing(0, 1 << 19, None).unwrap());
        assert!(m.memory_growing(0, 2 << 20, None).is_err());
        assert_eq!(m.exceeded, Some(Exceeded::Memory));
    }

    #[test]
    fn host_time_does_not_count_against_the_deadline() {
        let mut m = Meter::new(&Limits {
            cpu_deadline: Duration::from_millis(50),
            ..Limits::default()
        });
        m.started -= Duration::from_millis(100);
        m.host_time = Duration::from_millis(80);
        assert!(!m.over_deadline());
        m.host_time = Duration::from_millis(10);
        assert!(m.over_deadline());
        assert_eq!(m.exceeded, Some(Exceeded::Cpu));
    }
}
