//! Per-guest limits: the memory cap and the per-store counts of instances, memories and
//! tables (a `ResourceLimiter`), and the CPU and wall-clock deadlines (an epoch callback that
//! reads the CPU clock of the thread the activation runs on, and the guest's share of the
//! wall clock).

use std::time::{Duration, Instant};

/// Core instances one component may create. A Rust guest needs three or four (its module and
/// the canonical-ABI shims); the cap keeps one component from taking many pool slots.
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 16;
/// Linear memories one component may have, all counted together against the memory cap.
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 4;
/// Tables one component may have.
pub const MAX_TABLES_PER_COMPONENT: u32 = 16;
/// Elements a table may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Sandbox limits for guests.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Linear memory a guest may grow to.
    pub memory_bytes: usize,
    /// CPU time one activation may use: the guest's own and the host's work on its calls.
    pub cpu_deadline: Duration,
    /// Wall-clock time one activation may take, less the time the host spends in its own calls
    /// (store commits, artifact I/O). A guest cannot block (see `engine::wasi`), so this is a
    /// backstop, not the usual way an activation ends.
    pub wall_deadline: Duration,
    /// Component instances that may exist at once (pool size); activations take half of them.
    pub max_instances: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            cpu_deadline: Duration::from_secs(10),
            wall_deadline: Duration::from_secs(60),
            max_instances: 256,
        }
    }
}

impl Limits {
    /// Activations that may run at once: each holds one component instance, and the other
    /// half of the pool is headroom for instances wasmtime has not yet given back.
    pub fn activation_slots(&self) -> usize {
        (self.max_instances as usize / 2).max(1)
    }
}

/// Which limit stopped a guest, recorded before the trap so it can be told apart from others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    Memory,
    Cpu,
    Wall,
}

/// The limit state of one store. It must be created on the thread that runs the activation.
pub struct Meter {
    pub memory_bytes: usize,
    pub cpu_deadline: Duration,
    pub wall_deadline: Duration,
    /// The thread's CPU clock when the activation began.
    started: Duration,
    /// The wall clock when the activation began.
    started_wall: Instant,
    /// Bytes of linear memory of all the store's memories together.
    memory_total: usize,
    pub exceeded: Option<Exceeded>,
}

impl Meter {
    pub fn new(limits: &Limits) -> Self {
        Self {
            memory_bytes: limits.memory_bytes,
            cpu_deadline: limits.cpu_deadline,
            wall_deadline: limits.wall_deadline,
            started: thread_cpu_time(),
            started_wall: Instant::now(),
            memory_total: 0,
            exceeded: None,
        }
    }

    /// CPU time the activation has used so far.
    pub fn used(&self) -> Duration {
        thread_cpu_time().saturating_sub(self.started)
    }

    /// Wall time the activation has taken so far, less `in_host`: the time the host spent on
    /// its own I/O for the guest's calls (store commits, artifacts).
    pub fn guest_wall_time(&self, in_host: Duration) -> Duration {
        self.started_wall.elapsed().saturating_sub(in_host)
    }

    /// Called on every epoch tick while the guest runs (on the activation's thread), with the
    /// time the host has spent on its own I/O so far.
    pub fn over_deadline(&mut self, in_host: Duration) -> bool {
        if self.used() > self.cpu_deadline {
            self.exceeded = Some(Exceeded::Cpu);
            true
        } else if self.guest_wall_time(in_host) > self.wall_deadline {
            self.exceeded = Some(Exceeded::Wall);
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
    /// The cap counts every memory of the instance together: a component with several
    /// memories gets no more than one with a single memory.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .memory_total
            .saturating_sub(current)
            .saturating_add(desired);
        if total > self.memory_bytes {
            self.exceeded = Some(Exceeded::Memory);
            return Err(wasmtime::Error::msg(format!(
                "memory limit exceeded: the guest's memories would take {total} bytes together, the cap is {}",
                self.memory_bytes
            )));
        }
        self.memory_total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES_PER_COMPONENT as usize
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES_PER_COMPONENT as usize
    }

    fn tables(&self) -> usize {
        MAX_TABLES_PER_COMPONENT as usize
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
    fn the_memory_cap_counts_all_memories_together() {
        let mut m = Meter::new(&Limits {
            memory_bytes: 4 << 20,
            ..Limits::default()
        });
        // Three memories of 1 MiB each fit under 4 MiB; a fourth grown to 2 MiB does not.
        for _ in 0..3 {
            assert!(m.memory_growing(0, 1 << 20, None).unwrap());
        }
        assert!(m.memory_growing(0, 1 << 20, None).unwrap());
        assert_eq!(m.exceeded, None);
        assert!(m.memory_growing(1 << 20, 2 << 20, None).is_err());
        assert_eq!(m.exceeded, Some(Exceeded::Memory));
    }

    #[test]
    fn the_hosts_own_time_is_not_the_guests_wall_time() {
        let mut m = Meter::new(&Limits {
            wall_deadline: Duration::from_millis(100),
            ..Limits::default()
        });
        std::thread::sleep(Duration::from_millis(150));
        // All of it was spent in the host (say, a slow commit): the guest used none.
        let in_host = Duration::from_millis(150);
        assert!(m.guest_wall_time(in_host) < Duration::from_millis(100));
        assert!(!m.over_deadline(in_host));
        std::thread::sleep(Duration::from_millis(120));
        assert!(m.over_deadline(in_host));
        assert_eq!(m.exceeded, Some(Exceeded::Wall));
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
        assert!(!m.over_deadline(Duration::ZERO));
        assert_eq!(m.exceeded, None);

        // Computing does count, and past the deadline it is recorded.
        let mut x = 0u64;
        while m.used() <= Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(m.over_deadline(Duration::ZERO));
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
