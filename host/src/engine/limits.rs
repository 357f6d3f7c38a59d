//! Per-guest limits: the memory cap (a `ResourceLimiter`) and the CPU deadline (an epoch
//! callback that reads the CPU clock of the thread the activation runs on).

use std::time::Duration;

/// Sandbox limits for guests.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Linear memory a guest may grow to.
    pub memory_bytes: usize,
    /// CPU time one activation may use: the guest's own and the host's work on its calls.
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

/// The limit state of one store. It must be created on the thread that runs the activation.
pub struct Meter {
    pub memory_bytes: usize,
    pub cpu_deadline: Duration,
    /// The thread's CPU clock when the activation began.
    started: Duration,
    pub exceeded: Option<Exceeded>,
}

impl Meter {
    pub fn new(limits: &Limits) -> Self {
        Self {
            memory_bytes: limits.memory_bytes,
            cpu_deadline: limits.cpu_deadline,
            started: thread_cpu_time(),
            exceeded: None,
        }
    }

    /// CPU time the activation has used so far.
    pub fn used(&self) -> Duration {
        thread_cpu_time().saturating_sub(self.started)
    }

    /// Called on every epoch tick while the guest runs (on the activation's thread).
    pub fn over_deadline(&mut self) -> bool {
        if self.used() > self.cpu_deadline {
            self.exceeded = Some(Exceeded::Cpu);
            true
        } else {
            false
        }
    }
}

/// The CPU time the calling thread has used.
///
/// An activation runs on one thread from instantiation to return, so the difference of two
/// readings is the CPU it used: the guest's code and the host's work on its calls. Unlike a wall
/// clock, it leaves out the time the thread waited: for the store, the network, or a core on a
/// busy machine, so one tenant's load cannot push another tenant's guests over their deadline.
/// It is a system call (about 1 µs here, against 20 ns for the monotonic clock), so it is read
/// on epoch ticks, not around every host call.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through the valid pointer it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(
        rc, 0,
        "the thread CPU clock is available on Linux and macOS"
    );
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
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
    fn waiting_does_not_count_against_the_deadline_and_computing_does() {
        let mut m = Meter::new(&Limits {
            cpu_deadline: Duration::from_millis(50),
            ..Limits::default()
        });
        // Asleep (as when waiting for the store or for a core), the thread uses no CPU.
        std::thread::sleep(Duration::from_millis(200));
        assert!(m.used() < Duration::from_millis(50), "{:?}", m.used());
        assert!(!m.over_deadline());
        assert_eq!(m.exceeded, None);

        // Computing does count, and past the deadline it is recorded.
        let mut x = 0u64;
        while m.used() <= Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(m.over_deadline());
        assert_eq!(m.exceeded, Some(Exceeded::Cpu));
    }

    #[test]
    fn another_threads_computing_is_not_counted() {
        let m = Meter::new(&Limits::default());
        // Another thread's computing is not this thread's.
        std::thread::spawn(|| {
            let start = thread_cpu_time();
            let mut x = 0u64;
            while thread_cpu_time() - start < Duration::from_millis(100) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        })
        .join()
        .unwrap();
        assert!(m.used() < Duration::from_millis(50), "{:?}", m.used());
    }
}
